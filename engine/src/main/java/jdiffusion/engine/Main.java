package jdiffusion.engine;

import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.KernelCache;
import jdiffusion.kernels.KernelException;
import jdiffusion.loader.Inspect;
import jdiffusion.loader.LoaderException;
import jdiffusion.loader.SafeTensors;
import jdiffusion.loader.SafeTensorsWriter;
import jdiffusion.loader.TensorInfo;
import jdiffusion.loader.UNetConfig;
import jdiffusion.loader.Weights;

/**
 * The command line: generate, run-unet, inspect, devices, cache. Exit codes: 0 ok, 1 a failure of the model files or
 * the device (one line on stderr; -Djdiffusion.debug=true adds the stack trace), 2 a usage error.
 */
public final class Main {
    static final String USAGE = """
            usage: sd <command> [options]

            commands:
              generate   text to image
                  --prompt TEXT            (required)
                  --negative-prompt TEXT   (default "")
                  --model DIR              diffusers folder (default: the bundled tiny model)
                  --steps N                (50)
                  --guidance G             classifier-free guidance scale (7.5; <= 1 turns it off)
                  --scheduler NAME         pndm | ddim | euler | euler-karras | euler-a | dpm++2m | dpm++2m-karras,
                                           or a scheduler_config .json file (default: the model's)
                  --seed N                 (0; torch CPU generator stream)
                  --batch N                images per prompt (1)
                  --width W --height H     multiples of 8 (default: the model's sample size)
                  --eta E                  DDIM noise (0)
                  --attention vanilla | chunked | flash        (flash)
                  --precision fp32 | tf32 | fp16              (fp32)
                  --backend auto | java | opencl | cuda        (auto)
                  --clip-skip N            (0)
                  --latents FILE           initial noise (safetensors tensor "latents")
                  --out FILE               (out.png; several images: out-0.png, out-1.png...)
              run-unet   one UNet forward: --inputs IN.safetensors (sample, timestep, encoder_hidden_states)
                         --out OUT.safetensors (tensor "out") [--model DIR --backend --precision --attention]
              inspect PATH    what a model folder / .safetensors / .onnx holds
              devices         backends and devices found
              cache --stats | --clear    the kernel cache
              --help
            """;

    private static final Set<String> GENERATE = Set.of("model", "prompt", "negative-prompt", "steps", "guidance", "scheduler", "seed",
            "batch", "width", "height", "eta", "attention", "precision", "backend", "clip-skip", "latents", "out");
    private static final Set<String> RUN_UNET = Set.of("model", "inputs", "out", "backend", "precision", "attention");

    /** A usage error (exit code 2). */
    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs one command; returns the exit code. */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        boolean debug = Boolean.getBoolean("jdiffusion.debug");
        try {
            if (args.length == 0) throw new UsageException("no command given");
            String cmd = args[0];
            String[] rest = Arrays.copyOfRange(args, 1, args.length);
            if (Arrays.asList(rest).contains("--help") || Arrays.asList(rest).contains("-h")) cmd = "--help";
            switch (cmd) {
                case "--help", "-h", "help" -> out.print(USAGE);
                case "generate" -> generate(options(rest, GENERATE), out, err);
                case "run-unet" -> runUnet(options(rest, RUN_UNET), out);
                case "inspect" -> {
                    if (rest.length != 1 || rest[0].startsWith("--")) throw new UsageException("inspect takes one PATH");
                    out.print(Inspect.report(Path.of(rest[0])));
                }
                case "devices" -> {
                    if (rest.length != 0) throw new UsageException("devices takes no options");
                    out.print(Backends.describe());
                }
                case "cache" -> cache(rest, out);
                default -> throw new UsageException("unknown command '" + cmd + "'");
            }
            return 0;
        } catch (UsageException e) {
            err.println("sd: " + e.getMessage());
            err.println("run 'sd --help' for usage");
            return 2;
        } catch (IllegalArgumentException e) {
            err.println("sd: " + e.getMessage());
            if (debug) e.printStackTrace(err);
            return 2;
        } catch (LoaderException | KernelException | UncheckedIOException | IllegalStateException e) {
            err.println("sd: " + e.getMessage());
            if (debug) e.printStackTrace(err);
            return 1;
        } catch (LinkageError e) {
            err.println("sd: " + e + " (the JVM needs --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector; engine/sd passes them)");
            if (debug) e.printStackTrace(err);
            return 1;
        } catch (RuntimeException | OutOfMemoryError e) {
            err.println("sd: internal error: " + e + (debug ? "" : " (-Djdiffusion.debug=true for the stack trace)"));
            if (debug) e.printStackTrace(err);
            return 1;
        }
    }

    /** --key value pairs, every key in {@code known}. */
    static Map<String, String> options(String[] args, Set<String> known) {
        Map<String, String> o = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) throw new UsageException("unexpected argument '" + a + "'");
            String key = a.substring(2), value;
            int eq = key.indexOf('=');
            if (eq >= 0) {
                value = key.substring(eq + 1);
                key = key.substring(0, eq);
            } else {
                if (i + 1 >= args.length) throw new UsageException("option --" + key + " needs a value");
                value = args[++i];
            }
            if (!known.contains(key)) throw new UsageException("unknown option --" + key);
            if (o.put(key, value) != null) throw new UsageException("option --" + key + " given twice");
        }
        return o;
    }

    static int intOption(Map<String, String> o, String key, int def) {
        String v = o.get(key);
        if (v == null) return def;
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + key + " needs an integer, got '" + v + "'");
        }
    }

    static long longOption(Map<String, String> o, String key, long def) {
        String v = o.get(key);
        if (v == null) return def;
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + key + " needs an integer, got '" + v + "'");
        }
    }

    static float floatOption(Map<String, String> o, String key, float def) {
        String v = o.get(key);
        if (v == null) return def;
        try {
            float f = Float.parseFloat(v.trim());
            if (!Float.isFinite(f)) throw new NumberFormatException();
            return f;
        } catch (NumberFormatException e) {
            throw new UsageException("--" + key + " needs a number, got '" + v + "'");
        }
    }

    static Path model(Map<String, String> o) {
        String m = o.get("model");
        if (m != null) return Path.of(m);
        String home = System.getProperty("jdiffusion.home");
        if (home == null) throw new UsageException("no --model given (and no bundled model: -Djdiffusion.home is not set)");
        return Path.of(home, "engine", "tiny-sd");
    }

    /** The pipeline options of a command line. */
    static StableDiffusionPipeline.Options pipelineOptions(Map<String, String> o) {
        String backend = o.getOrDefault("backend", "auto").toLowerCase(Locale.ROOT);
        if (!List.of("auto", "java", "opencl", "cuda").contains(backend))
            throw new UsageException("--backend must be auto, java, opencl or cuda, got '" + backend + "'");
        Precision precision;
        try {
            precision = Precision.parse(o.getOrDefault("precision", "fp32"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--precision: " + e.getMessage());
        }
        jdiffusion.kernels.Attention.Processor attention = switch (o.getOrDefault("attention", "flash").toLowerCase(Locale.ROOT)) {
            case "vanilla" -> jdiffusion.kernels.Attention.Processor.VANILLA;
            case "chunked", "memory-efficient", "sliced" -> jdiffusion.kernels.Attention.Processor.CHUNKED;
            case "flash" -> jdiffusion.kernels.Attention.Processor.FLASH;
            default -> throw new UsageException("--attention must be vanilla, chunked or flash, got '" + o.get("attention") + "'");
        };
        String scheduler = o.get("scheduler");
        if (scheduler != null && !scheduler.endsWith(".json")) {
            try {
                Scheduler.className(scheduler);
            } catch (IllegalArgumentException e) {
                throw new UsageException("--scheduler: " + e.getMessage());
            }
        }
        int clipSkip = intOption(o, "clip-skip", 0);
        if (clipSkip < 0) throw new UsageException("--clip-skip must be >= 0");
        return new StableDiffusionPipeline.Options(backend, precision, attention, scheduler, clipSkip, null);
    }

    /** The request of a command line (listener not set). */
    static StableDiffusionPipeline.Request request(Map<String, String> o) {
        String prompt = o.get("prompt");
        if (prompt == null) throw new UsageException("generate needs --prompt");
        int steps = intOption(o, "steps", 50), batch = intOption(o, "batch", 1);
        int width = intOption(o, "width", 0), height = intOption(o, "height", 0);
        if (steps < 1) throw new UsageException("--steps must be >= 1, got " + steps);
        if (batch < 1) throw new UsageException("--batch must be >= 1, got " + batch);
        if (width < 0 || height < 0 || width % 8 != 0 || height % 8 != 0)
            throw new UsageException("--width and --height must be positive multiples of 8, got " + width + "x" + height);
        var r = StableDiffusionPipeline.Request.of(prompt)
                .withNegativePrompt(o.getOrDefault("negative-prompt", ""))
                .withSteps(steps)
                .withGuidanceScale(floatOption(o, "guidance", 7.5f))
                .withSeed(longOption(o, "seed", 0))
                .withImagesPerPrompt(batch)
                .withSize(width, height)
                .withEta(floatOption(o, "eta", 0f));
        if (o.containsKey("latents")) r = r.withInitialLatents(Path.of(o.get("latents")));
        return r;
    }

    private static void generate(Map<String, String> o, PrintStream out, PrintStream err) {
        var request = request(o).withListener(new ProgressBar(err));
        var options = pipelineOptions(o);
        Path model = model(o);
        Path file = Path.of(o.getOrDefault("out", "out.png"));
        long t0 = System.nanoTime();
        try (var sd = StableDiffusionPipeline.load(model, options)) {
            double load = (System.nanoTime() - t0) / 1e9;
            err.printf("loaded %s on %s (%s) in %.2f s; scheduler %s%n", model, sd.exec.backend().name(), sd.exec.backend().device(), load, sd.scheduler().name());
            var result = sd.generate(request);
            List<java.awt.image.BufferedImage> images = result.images();
            for (int i = 0; i < images.size(); i++) {
                Path p = Images.numbered(file, i, images.size());
                Images.writePng(images.get(i), p);
                out.println("wrote " + p);
            }
            err.println(result.timings());
        }
    }

    private static void runUnet(Map<String, String> o, PrintStream out) {
        if (!o.containsKey("inputs")) throw new UsageException("run-unet needs --inputs IN.safetensors");
        if (!o.containsKey("out")) throw new UsageException("run-unet needs --out OUT.safetensors");
        var options = pipelineOptions(o);
        Path model = model(o);
        Path inputs = Path.of(o.get("inputs")), outFile = Path.of(o.get("out"));
        if (!Files.isRegularFile(inputs)) throw new LoaderException(inputs + ": no such file");
        UNetConfig config = UNetConfig.load(model.resolve("unet").resolve("config.json"));
        float[] sample, timesteps, ehs;
        long[] sampleShape, ehsShape;
        try (SafeTensors in = SafeTensors.open(inputs)) {
            for (String name : List.of("sample", "timestep", "encoder_hidden_states"))
                if (!in.has(name)) throw new LoaderException(inputs + ": tensor '" + name + "' is missing (has " + in.names() + ")");
            TensorInfo s = in.info("sample"), e = in.info("encoder_hidden_states"), t = in.info("timestep");
            sampleShape = s.shape();
            ehsShape = e.shape();
            if (sampleShape.length != 4) throw new LoaderException(inputs + ": tensor sample " + s + " must be [batch, channels, height, width]");
            if (ehsShape.length != 3 || ehsShape[0] != sampleShape[0])
                throw new LoaderException(inputs + ": tensor encoder_hidden_states " + e + " must be [" + sampleShape[0] + ", seq, cross_attention_dim]");
            if (t.elements() != 1 && t.elements() != sampleShape[0])
                throw new LoaderException(inputs + ": tensor timestep " + t + " must hold one value or one per batch item");
            sample = in.floats("sample");
            timesteps = in.floats("timestep");
            ehs = in.floats("encoder_hidden_states");
        }
        Backend backend = Backends.open(options.backend());
        try (backend;
             Weights w = jdiffusion.loader.DiffusersModel.open(model).weights("unet");
             var unet = new UNet2DConditionModel(config, w, new Exec(backend, options.precision(), options.attention()))) {
            int b = (int) sampleShape[0], h = (int) sampleShape[2], wd = (int) sampleShape[3];
            long t0 = System.nanoTime();
            float[] result = unet.forward(sample, b, h, wd, timesteps, ehs, (int) ehsShape[1]); // [b, out, h, w]
            double seconds = (System.nanoTime() - t0) / 1e9;
            new SafeTensorsWriter().metadata("format", "pt").add("out", result, b, config.outChannels(), h, wd).write(outFile);
            out.printf(Locale.ROOT, "wrote %s: out [%d, %d, %d, %d] (%s, compile %.2f s, total %.2f s)%n", outFile, b, config.outChannels(), h, wd,
                    backend.name(), unet.compileSeconds(), seconds);
        }
    }

    private static void cache(String[] rest, PrintStream out) {
        if (rest.length != 1) throw new UsageException("cache takes --stats or --clear");
        KernelCache c = KernelCache.defaultCache();
        switch (rest[0]) {
            case "--stats" -> out.print(c.describe());
            case "--clear" -> {
                c.clear();
                out.println("cleared " + (c.dir == null ? "nothing (cache off)" : c.dir));
            }
            default -> throw new UsageException("unknown option " + rest[0] + " (cache takes --stats or --clear)");
        }
    }
}
