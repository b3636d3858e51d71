package jdiffusion.loader;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A diffusers pipeline folder: model_index.json plus component folders (unet, vae, text_encoder, scheduler,
 * tokenizer), each with a config and weights. Weights are opened per call and owned by the caller (close them).
 * Text encoder weights are exposed without transformers' "text_model." prefix (embeddings.*, encoder.layers.N.*,
 * final_layer_norm.*) whichever way the file stores them; lookups with the prefix work too.
 */
public record DiffusersModel(Path dir, ModelIndex index) {

    public static DiffusersModel open(Path dir) {
        if (!Files.isDirectory(dir)) throw new LoaderException(dir + ": not a directory");
        Path index = dir.resolve("model_index.json");
        if (!Files.isRegularFile(index)) throw new LoaderException(index + ": missing (not a diffusers pipeline folder)");
        return new DiffusersModel(dir, ModelIndex.load(index));
    }

    /** The folder of a component; LoaderException naming the path when it is missing. */
    public Path component(String name) {
        if (name.isEmpty() || name.contains("/") || name.contains("\\") || name.startsWith("."))
            throw new LoaderException(dir + ": bad component name '" + name + "'");
        Path p = dir.resolve(name);
        if (!Files.isDirectory(p)) throw new LoaderException(p + ": component folder missing");
        return p;
    }

    public UNetConfig unetConfig() {
        return UNetConfig.load(config("unet", "config.json"));
    }

    public VaeConfig vaeConfig() {
        return VaeConfig.load(config("vae", "config.json"));
    }

    public ClipTextConfig textEncoderConfig() {
        return ClipTextConfig.load(config("text_encoder", "config.json"));
    }

    public SchedulerConfig schedulerConfig() {
        return SchedulerConfig.load(config("scheduler", "scheduler_config.json"));
    }

    /** Another scheduler config in the scheduler folder, e.g. "scheduler_config_euler.json". */
    public SchedulerConfig schedulerConfig(String fileName) {
        return SchedulerConfig.load(config("scheduler", fileName));
    }

    public Path tokenizerDir() {
        return component("tokenizer");
    }

    private Path config(String component, String file) {
        Path p = component(component).resolve(file);
        if (!Files.isRegularFile(p)) throw new LoaderException(p + ": config missing");
        return p;
    }

    public Weights weights(String component) {
        return weights(component, null);
    }

    /**
     * Weights of a component: diffusion_pytorch_model[.variant].safetensors or model[.variant].safetensors, or a
     * sharded set described by *.safetensors.index[.variant].json (weight_map: name -> shard file), as one Weights.
     * variant is e.g. "fp16" or null.
     */
    public Weights weights(String component, String variant) {
        Path folder = component(component);
        if (variant != null && !variant.matches("[A-Za-z0-9_-]+"))
            throw new LoaderException(folder + ": bad variant name '" + variant + "'");
        String v = variant == null ? "" : "." + variant;
        var tried = new ArrayList<String>();
        for (String base : List.of("diffusion_pytorch_model", "model")) {
            Path single = folder.resolve(base + v + ".safetensors");
            tried.add(single.getFileName().toString());
            if (Files.isRegularFile(single)) return wrap(component, SafeTensors.open(single));
            for (String indexName : variant == null ? List.of(base + ".safetensors.index.json")
                    : List.of(base + ".safetensors.index" + v + ".json", base + v + ".safetensors.index.json")) {
                Path index = folder.resolve(indexName);
                tried.add(indexName);
                if (Files.isRegularFile(index)) return sharded(component, folder, index);
            }
        }
        String hint = "";
        try (var files = Files.list(folder)) {
            var present = files.map(p -> p.getFileName().toString()).sorted().toList();
            hint = " (folder holds " + present + ")";
            if (present.stream().anyMatch(n -> n.endsWith(".bin") || n.endsWith(".ckpt") || n.endsWith(".pt")))
                hint += "; PyTorch pickle files are not supported, convert them to safetensors";
        } catch (java.io.IOException ignored) {
            // the listing is only a hint
        }
        throw new LoaderException(folder + ": no weights file; tried " + tried + hint);
    }

    private Weights wrap(String component, SafeTensors file) {
        if (!component.startsWith("text_encoder")) return file;
        var entries = new LinkedHashMap<String, MappedWeights.Entry>();
        for (String name : file.names()) {
            String key = name.startsWith("text_model.") ? name.substring("text_model.".length()) : name;
            entries.put(key, MappedWeights.whole(file, name));
        }
        return new MappedWeights(file.source(), entries, List.of(file), "text_model.");
    }

    private Weights sharded(String component, Path folder, Path index) {
        Json j = Json.read(index);
        JsonNode map = j.root.get("weight_map");
        if (map == null || !map.isObject()) throw j.fail("weight_map", "missing or not an object");
        var shards = new LinkedHashMap<String, SafeTensors>();
        var entries = new LinkedHashMap<String, MappedWeights.Entry>();
        try {
            for (var f : map.properties()) {
                String name = f.getKey();
                if (!f.getValue().isTextual()) throw j.fail("weight_map." + name, "must be a file name");
                String file = f.getValue().textValue();
                if (file.isEmpty() || file.contains("/") || file.contains("\\") || file.startsWith(".") || !file.endsWith(".safetensors"))
                    throw j.fail("weight_map." + name, "names a bad shard file '" + file + "'");
                SafeTensors shard = shards.get(file);
                if (shard == null) {
                    Path p = folder.resolve(file);
                    if (!Files.isRegularFile(p)) throw new LoaderException(index + ": shard " + p + " is missing");
                    shard = SafeTensors.open(p);
                    shards.put(file, shard);
                }
                if (!shard.has(name)) throw new LoaderException(index + ": tensor '" + name + "' is not in shard " + shard.source());
                String key = component.startsWith("text_encoder") && name.startsWith("text_model.")
                        ? name.substring("text_model.".length()) : name;
                entries.put(key, MappedWeights.whole(shard, name));
            }
        } catch (RuntimeException e) {
            shards.values().forEach(SafeTensors::close);
            throw e;
        }
        return new MappedWeights(index.toString(), entries, List.copyOf(shards.values()),
                component.startsWith("text_encoder") ? "text_model." : null);
    }

    /** Components named in model_index.json (those stored as [null, null] left out). */
    public Map<String, ModelIndex.Component> components() {
        return index.components();
    }
}
