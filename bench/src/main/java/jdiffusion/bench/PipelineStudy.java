package jdiffusion.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import jdiffusion.engine.AutoencoderKL;
import jdiffusion.engine.CLIPTextModel;
import jdiffusion.engine.Precision;
import jdiffusion.engine.RandomWeights;
import jdiffusion.engine.StableDiffusionPipeline;
import jdiffusion.engine.UNet2DConditionModel;
import jdiffusion.kernels.Attention;
import jdiffusion.loader.SafeTensorsWriter;
import jdiffusion.loader.SingleFileCheckpoint;
import jdiffusion.loader.TensorType;

/**
 * Whole text-to-image pipeline at SD1.5's size through the public API, end to end: tokenizer, CLIP text encoder, 50
 * denoising steps of the UNet (classifier-free guidance: UNet batch 2 x images), PNDM, VAE decode to 512x512 RGB.
 * The model folder is SD1.5-shaped with random weights (bundled sd15 configs, the real CLIP tokenizer files of the tiny
 * fixture, fp16 safetensors written once by this tool; no checkpoint download is possible here), so the images are noise
 * but every kernel does the work of the real model.
 * Usage: PipelineStudy [--backend cuda] [--precision fp16] [--attention flash] [--images 1,8] [--steps 50]
 *        [--model /tmp/jd-sd15-random] [--out DIR]   (-Dtiny.sd: the tiny fixture folder with tokenizer/)
 * Each configuration runs twice: the first call builds and compiles every task graph (text encoder, UNet, VAE), the
 * second is timed stage by stage (StableDiffusionPipeline.Timings). Writes pipeline.md and pipeline.csv under --out.
 */
public final class PipelineStudy {
    private PipelineStudy() {
    }

    record Row(String backend, String device, String precision, String attention, int images, int steps, double compile, double encode,
               double perStep, double denoise, double decode, double total, String status) {
        double imagesPerSecond() {
            return total > 0 ? images / total : 0;
        }
    }

    public static void main(String[] args) throws IOException {
        Map<String, String> o = new java.util.HashMap<>(Map.of("backend", "cuda", "precision", "fp16", "attention", "flash", "images", "1,8",
                "steps", "50", "model", "/tmp/jd-sd15-random", "out", "."));
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--") || !o.containsKey(args[i].substring(2)))
                throw new IllegalArgumentException("unknown option " + args[i] + " (known: " + o.keySet() + ")");
            o.put(args[i].substring(2), args[i + 1]);
        }
        Path model = Path.of(o.get("model")), out = Path.of(o.get("out"));
        Files.createDirectories(out);
        long t0 = System.nanoTime();
        boolean wrote = writeModel(model);
        System.out.printf(Locale.ROOT, "pipeline: model %s %s (%.1f s)%n", model, wrote ? "written" : "reused", (System.nanoTime() - t0) / 1e9);
        int steps = Integer.parseInt(o.get("steps"));
        List<Row> rows = new ArrayList<>();
        for (String backend : o.get("backend").split(","))
            for (String precision : o.get("precision").split(","))
                for (String attention : o.get("attention").split(","))
                    rows.addAll(run(model, backend, Precision.parse(precision), Attention.Processor.valueOf(attention.toUpperCase(Locale.ROOT)),
                            o.get("images").split(","), steps));
        Files.writeString(out.resolve("pipeline.csv"), csv(rows), StandardCharsets.UTF_8);
        Files.writeString(out.resolve("pipeline.md"), markdown(rows, o), StandardCharsets.UTF_8);
        System.out.print(markdown(rows, o));
    }

    static List<Row> run(Path model, String backend, Precision precision, Attention.Processor attention, String[] images, int steps) {
        List<Row> rows = new ArrayList<>();
        StableDiffusionPipeline.Options opt = StableDiffusionPipeline.Options.defaults().withBackend(backend).withPrecision(precision).withAttention(attention);
        String p = precision.name().toLowerCase(Locale.ROOT), a = attention.name().toLowerCase(Locale.ROOT);
        try (StableDiffusionPipeline pipe = StableDiffusionPipeline.load(model, opt)) {
            for (String s : images) {
                int n = Integer.parseInt(s.trim());
                StableDiffusionPipeline.Request r = StableDiffusionPipeline.Request.of("a photograph of an astronaut riding a horse")
                        .withImagesPerPrompt(n).withSize(512, 512).withSeed(0);
                try {
                    double compile = pipe.generate(r.withSteps(2)).timings().compileSeconds();   // builds every graph of this batch
                    StableDiffusionPipeline.Timings t = pipe.generate(r.withSteps(steps)).timings();
                    rows.add(new Row(t.backend(), t.device(), p, a, n, steps, compile, t.encodeSeconds(), t.secondsPerStep(), t.denoiseSeconds(),
                            t.decodeSeconds(), t.totalSeconds(), "ok"));
                    System.out.printf(Locale.ROOT, "pipeline: %s %s %s %d image(s): %s%n", backend, p, a, n, t);
                } catch (RuntimeException e) {
                    String why = e.getClass().getSimpleName() + ": " + e.getMessage();
                    rows.add(new Row(backend, "", p, a, n, steps, 0, 0, 0, 0, 0, 0, why.replace('\n', ' ')));
                    System.out.printf(Locale.ROOT, "pipeline: %s %s %s %d image(s) failed: %s%n", backend, p, a, n, why);
                }
            }
        } catch (RuntimeException e) {
            rows.add(new Row(backend, "", p, a, 0, steps, 0, 0, 0, 0, 0, 0, ("load failed: " + e).replace('\n', ' ')));
            System.out.println("pipeline: " + backend + " load failed: " + e);
        }
        return rows;
    }

    /** Writes the SD1.5-shaped random-weight model folder unless a complete one is there; true when written. */
    static boolean writeModel(Path dir) throws IOException {
        Path done = dir.resolve(".complete");
        if (Files.exists(done)) return false;
        Path tiny = Path.of(System.getProperty("tiny.sd", "engine/tiny-sd"));
        if (!Files.isDirectory(tiny.resolve("tokenizer")))
            throw new IOException("no tokenizer folder under " + tiny + " (set -Dtiny.sd to the tiny fixture, e.g. engine/tiny-sd)");
        for (String c : List.of("unet", "vae", "text_encoder", "tokenizer", "scheduler")) Files.createDirectories(dir.resolve(c));
        Files.copy(tiny.resolve("model_index.json"), dir.resolve("model_index.json"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        try (var files = Files.list(tiny.resolve("tokenizer"))) {
            for (Path f : files.toList()) Files.copy(f, dir.resolve("tokenizer").resolve(f.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        Files.writeString(dir.resolve("scheduler/scheduler_config.json"), SingleFileCheckpoint.bundledText("sd15", "scheduler"));
        Files.writeString(dir.resolve("unet/config.json"), SingleFileCheckpoint.bundledText("sd15", "unet"));
        Files.writeString(dir.resolve("vae/config.json"), SingleFileCheckpoint.bundledText("sd15", "vae"));
        Files.writeString(dir.resolve("text_encoder/config.json"), SingleFileCheckpoint.bundledText("sd15", "text_encoder"));
        write(UNet2DConditionModel.parameterShapes(SingleFileCheckpoint.bundledUNet("sd15")), 1, dir.resolve("unet/diffusion_pytorch_model.safetensors"));
        write(AutoencoderKL.parameterShapes(SingleFileCheckpoint.bundledVae("sd15")), 2, dir.resolve("vae/diffusion_pytorch_model.safetensors"));
        write(CLIPTextModel.parameterShapes(SingleFileCheckpoint.bundledTextEncoder("sd15")), 3, dir.resolve("text_encoder/model.safetensors"));
        Files.writeString(done, Instant.now() + "\n");
        return true;
    }

    /** Every tensor of shapes as F16, values of RandomWeights(seed), generated one tensor at a time. */
    private static void write(Map<String, long[]> shapes, long seed, Path file) {
        RandomWeights w = new RandomWeights(shapes, seed);
        SafeTensorsWriter sw = new SafeTensorsWriter().metadata("format", "pt");
        String[] current = {null};
        float[][] values = {null};
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            String name = e.getKey();
            sw.add(name, TensorType.F16, e.getValue(), (first, dst, count) -> {
                if (!name.equals(current[0])) {
                    values[0] = w.floats(name);
                    current[0] = name;
                }
                System.arraycopy(values[0], (int) first, dst, 0, count);
            });
        }
        sw.write(file);
    }

    static String csv(List<Row> rows) {
        StringBuilder sb = new StringBuilder("backend,device,precision,attention,images,steps,compile_s,encode_s,s_per_step,denoise_s,decode_s,total_s,images_per_s,status\n");
        for (Row r : rows)
            sb.append(String.format(Locale.ROOT, "%s,\"%s\",%s,%s,%d,%d,%.3f,%.4f,%.5f,%.3f,%.4f,%.3f,%.3f,\"%s\"%n", r.backend(), r.device(), r.precision(),
                    r.attention(), r.images(), r.steps(), r.compile(), r.encode(), r.perStep(), r.denoise(), r.decode(), r.total(), r.imagesPerSecond(),
                    r.status().replace("\"", "'")));
        return sb.toString();
    }

    static String markdown(List<Row> rows, Map<String, String> o) {
        StringBuilder sb = new StringBuilder("# Whole pipeline at SD1.5 size (512x512, random weights)\n\n");
        sb.append("- Date: ").append(Instant.now()).append('\n');
        sb.append("- Device: ").append(rows.stream().map(Row::device).filter(d -> !d.isEmpty()).findFirst().orElse("-")).append('\n');
        sb.append("- Options: ").append(o).append('\n');
        sb.append("- One call of StableDiffusionPipeline.generate (tokenize, CLIP text encoder, ").append(o.get("steps"))
                .append(" PNDM steps with classifier-free guidance = UNet batch 2 x images, VAE decode, RGB), after a 2-step call that built every graph; ")
                .append("encode = prompt to embeddings, s/step = steady-state denoising step (UNet + scheduler + guidance), decode = VAE + conversion to images.\n\n");
        sb.append("| backend | precision | attention | images | compile s | encode s | s/step | denoise s | decode s | total s | images/s | status |\n");
        sb.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for (Row r : rows)
            sb.append(String.format(Locale.ROOT, "| %s | %s | %s | %d | %.2f | %.3f | %.4f | %.2f | %.3f | %.2f | %.2f | %s |%n", r.backend(), r.precision(), r.attention(),
                    r.images(), r.compile(), r.encode(), r.perStep(), r.denoise(), r.decode(), r.total(), r.imagesPerSecond(), r.status()));
        return sb.toString();
    }
}
