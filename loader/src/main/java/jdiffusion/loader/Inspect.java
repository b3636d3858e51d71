package jdiffusion.loader;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * A readable report of what a model path holds: a diffusers folder (components, classes, parameter counts, dtypes,
 * tensors), a .safetensors file (an original single-file checkpoint is shown as its diffusers components), or an .onnx
 * file (opset, nodes, op types, inputs/outputs, initializers under their parameter names).
 * Knobs: -Djdiffusion.inspect.tensors=20 (tensors listed per component; -1 lists all).
 */
public final class Inspect {
    static final int TENSORS = Integer.getInteger("jdiffusion.inspect.tensors", 20);

    private Inspect() {}

    public static String report(Path path) {
        return report(path, TENSORS);
    }

    /** {@code tensors}: how many tensors to list per component, -1 for all. */
    public static String report(Path path, int tensors) {
        StringBuilder out = new StringBuilder();
        String name = path.getFileName() == null ? "" : path.getFileName().toString().toLowerCase(Locale.ROOT);
        if (Files.isDirectory(path)) {
            if (Files.isRegularFile(path.resolve("model_index.json"))) diffusers(out, path, tensors);
            else component(out, path, tensors);
        } else if (!Files.isRegularFile(path)) {
            throw new LoaderException(path + ": no such file or folder");
        } else if (name.endsWith(".onnx")) {
            try (OnnxModel m = OnnxModel.open(path)) {
                onnx(out, m, tensors);
            }
        } else if (name.endsWith(".safetensors")) {
            safetensors(out, path, tensors);
        } else {
            throw new LoaderException(path + ": can't inspect; expected a diffusers folder, a .safetensors or an .onnx file");
        }
        return out.toString();
    }

    // ---- diffusers folders ----

    private static void diffusers(StringBuilder out, Path dir, int tensors) {
        DiffusersModel model = DiffusersModel.open(dir);
        ModelIndex index = model.index();
        out.append("diffusers pipeline ").append(dir).append(": ").append(index.className())
                .append(index.diffusersVersion() == null ? "" : " (diffusers " + index.diffusersVersion() + ")").append('\n');
        long total = 0;
        Map<String, long[]> dtypes = new TreeMap<>();
        List<String> listings = new ArrayList<>();
        for (var e : index.components().entrySet()) {
            String comp = e.getKey();
            String cls = e.getValue().library() + "." + e.getValue().className();
            out.append(String.format(Locale.ROOT, "  %-16s %-40s ", comp, cls));
            Path folder = dir.resolve(comp);
            if (!Files.isDirectory(folder)) {
                out.append("folder missing\n");
                continue;
            }
            if (comp.startsWith("tokenizer")) {
                try {
                    ClipTokenizer t = ClipTokenizer.load(folder);
                    out.append(t).append('\n');
                } catch (LoaderException x) {
                    out.append("unreadable: ").append(x.getMessage()).append('\n');
                }
                continue;
            }
            if (!hasWeights(folder)) {
                out.append("configs ").append(files(folder, ".json")).append('\n');
                continue;
            }
            try (Weights w = model.weights(comp)) {
                Stats s = stats(w);
                total += s.params;
                s.dtypes.forEach((k, v) -> {
                    long[] a = dtypes.computeIfAbsent(k, x -> new long[2]);
                    a[0] += v[0];
                    a[1] += v[1];
                });
                out.append(String.format(Locale.ROOT, "%,d parameters in %d tensors %s (%s)%n",
                        s.params, w.names().size(), dtypeText(s.dtypes), Path.of(w.source()).getFileName()));
                StringBuilder l = new StringBuilder();
                tensorList(l, comp, w, tensors);
                listings.add(l.toString());
            } catch (LoaderException x) {
                out.append("weights unreadable: ").append(x.getMessage()).append('\n');
            }
            Path onnx = folder.resolve("model.onnx");
            if (Files.isRegularFile(onnx)) {
                try (OnnxModel m = OnnxModel.open(onnx)) {
                    out.append(String.format(Locale.ROOT, "  %-16s also %s: opset %s, %d nodes, %d parameters%n",
                            "", dir.relativize(onnx), m.opset, m.nodeCount, m.names().size()));
                } catch (LoaderException x) {
                    out.append("  ").append(" ".repeat(16)).append(" also model.onnx, unreadable: ").append(x.getMessage()).append('\n');
                }
            }
        }
        out.append(String.format(Locale.ROOT, "total: %,d parameters %s%n", total, dtypeText(dtypes)));
        for (String l : listings) out.append(l);
    }

    private static boolean hasWeights(Path folder) {
        try (Stream<Path> s = Files.list(folder)) {
            return s.anyMatch(p -> {
                String n = p.getFileName().toString();
                return n.endsWith(".safetensors") || n.endsWith(".safetensors.index.json") || n.endsWith(".bin");
            });
        } catch (IOException e) {
            return false;
        }
    }

    private static List<String> files(Path folder, String suffix) {
        try (Stream<Path> s = Files.list(folder)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(suffix)).sorted().toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    /** A component folder on its own (unet/, vae/, text_encoder/...): its weights and configs. */
    private static void component(StringBuilder out, Path folder, int tensors) {
        List<String> st = files(folder, ".safetensors");
        if (st.isEmpty() && Files.isRegularFile(folder.resolve("model.onnx"))) {
            try (OnnxModel m = OnnxModel.open(folder.resolve("model.onnx"))) {
                onnx(out, m, tensors);
            }
            return;
        }
        if (st.isEmpty()) {
            if (Files.isRegularFile(folder.resolve("vocab.json"))) {
                out.append(ClipTokenizer.load(folder)).append('\n');
                return;
            }
            throw new LoaderException(folder + ": no model_index.json, .safetensors or model.onnx to inspect");
        }
        out.append("folder ").append(folder).append(": configs ").append(files(folder, ".json")).append('\n');
        for (String f : st) safetensors(out, folder.resolve(f), tensors);
    }

    // ---- single files ----

    private static void safetensors(StringBuilder out, Path file, int tensors) {
        boolean compVis;
        try (SafeTensors st = SafeTensors.open(file)) {
            compVis = st.names().stream().anyMatch(n -> n.startsWith(SingleFileCheckpoint.UNET)
                    || n.startsWith(SingleFileCheckpoint.VAE) || n.startsWith("cond_stage_model."));
            if (!compVis) {
                out.append(String.format(Locale.ROOT, "safetensors %s: %,d bytes, %d tensors%n", file, st.fileSize(), st.names().size()));
                if (!st.metadata().isEmpty()) out.append("  metadata ").append(abbreviate(st.metadata().toString(), 300)).append('\n');
                Stats s = stats(st);
                out.append(String.format(Locale.ROOT, "  %,d parameters %s%n", s.params, dtypeText(s.dtypes)));
                tensorList(out, "tensors", st, tensors);
                return;
            }
        }
        try (SingleFileCheckpoint ck = SingleFileCheckpoint.open(file)) {
            out.append("single-file checkpoint ").append(file).append(" (original CompVis keys, ")
                    .append(ck.openClip() ? "OpenCLIP text encoder: SD2.x" : "CLIP text encoder: SD1.x").append(")\n");
            long total = 0;
            String[] comps = {"unet", "vae", "text_encoder"};
            Weights[] ws = {ck.unet(), ck.vae(), ck.textEncoder()};
            for (int i = 0; i < 3; i++) {
                Stats s = stats(ws[i]);
                total += s.params;
                out.append(String.format(Locale.ROOT, "  %-16s %,d parameters in %d tensors %s%n", comps[i], s.params,
                        ws[i].names().size(), dtypeText(s.dtypes)));
            }
            List<String> un = ck.unmapped();
            out.append(String.format(Locale.ROOT, "  unmapped keys: %d%s%n", un.size(),
                    un.isEmpty() ? "" : " " + abbreviate(un.subList(0, Math.min(8, un.size())).toString(), 400)));
            out.append(String.format(Locale.ROOT, "total: %,d parameters%n", total));
            for (int i = 0; i < 3; i++) tensorList(out, comps[i], ws[i], tensors);
        }
    }

    private static void onnx(StringBuilder out, OnnxModel m, int tensors) {
        out.append("onnx ").append(m.file).append(": ir ").append(m.irVersion).append(", producer ").append(m.producer)
                .append(", opset ").append(m.opset).append('\n');
        if (!m.metadata.isEmpty()) out.append("  metadata ").append(abbreviate(m.metadata.toString(), 300)).append('\n');
        out.append(String.format(Locale.ROOT, "  %d nodes; op types %s%n", m.nodeCount, m.opTypes));
        for (OnnxModel.Port p : m.inputs) out.append("  input  ").append(p).append('\n');
        for (OnnxModel.Port p : m.outputs) out.append("  output ").append(p).append('\n');
        Stats s = stats(m);
        out.append(String.format(Locale.ROOT, "  %d initializers -> %d parameters (%,d values) %s%s%n", m.initializerCount,
                m.names().size(), s.params, dtypeText(s.dtypes), m.strippedPrefix.isEmpty() ? "" : ", wrapper prefix '" + m.strippedPrefix + "' stripped"));
        if (!m.unmapped.isEmpty())
            out.append("  unmapped initializers: ").append(m.unmapped.size()).append(' ')
                    .append(abbreviate(m.unmapped.subList(0, Math.min(8, m.unmapped.size())).toString(), 400)).append('\n');
        int n = 0, limit = tensors < 0 ? Integer.MAX_VALUE : tensors;
        out.append("parameters:\n");
        for (String name : m.names()) {
            if (n++ == limit) {
                out.append("  ... ").append(m.names().size() - limit).append(" more\n");
                break;
            }
            TensorInfo i = m.info(name);
            out.append("  ").append(name).append(' ').append(i.type()).append(' ').append(Arrays.toString(i.shape()))
                    .append("  <- ").append(m.origin(name)).append('\n');
        }
    }

    // ---- shared ----

    private record Stats(long params, Map<String, long[]> dtypes) {}

    /** Parameter count and, per dtype, {tensors, values}. Unreadable dtypes of a safetensors file count by name. */
    private static Stats stats(Weights w) {
        long params = 0;
        Map<String, long[]> dtypes = new TreeMap<>();
        for (String name : w.names()) {
            String dtype;
            long elements;
            if (w instanceof SafeTensors st) {
                dtype = st.dtype(name);
                elements = 1;
                for (long d : st.shape(name)) elements *= d;
            } else {
                TensorInfo i = w.info(name);
                dtype = i.type().name();
                elements = i.elements();
            }
            params += elements;
            long[] a = dtypes.computeIfAbsent(dtype, x -> new long[2]);
            a[0]++;
            a[1] += elements;
        }
        return new Stats(params, dtypes);
    }

    private static String dtypeText(Map<String, long[]> dtypes) {
        List<String> parts = new ArrayList<>();
        dtypes.forEach((k, v) -> parts.add(String.format(Locale.ROOT, "%s: %d tensors, %,d values", k, v[0], v[1])));
        return "{" + String.join("; ", parts) + "}";
    }

    private static void tensorList(StringBuilder out, String title, Weights w, int tensors) {
        int limit = tensors < 0 ? Integer.MAX_VALUE : tensors;
        if (limit == 0) return;
        out.append(title).append(":\n");
        int n = 0;
        for (String name : w.names()) {
            if (n++ == limit) {
                out.append("  ... ").append(w.names().size() - limit).append(" more (-Djdiffusion.inspect.tensors=-1 lists all)\n");
                break;
            }
            String dtype;
            long[] shape;
            if (w instanceof SafeTensors st) {
                dtype = st.dtype(name);
                shape = st.shape(name);
            } else {
                TensorInfo i = w.info(name);
                dtype = i.type().name();
                shape = i.shape();
            }
            out.append("  ").append(name).append(' ').append(dtype).append(' ').append(Arrays.toString(shape)).append('\n');
        }
    }

    private static String abbreviate(String s, int max) {
        return s.length() > max ? s.substring(0, max) + "..." : s;
    }
}
