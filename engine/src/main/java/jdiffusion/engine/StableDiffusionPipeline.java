package jdiffusion.engine;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.loader.ClipTokenizer;
import jdiffusion.loader.DiffusersModel;
import jdiffusion.loader.LoaderException;
import jdiffusion.loader.SafeTensors;
import jdiffusion.loader.TensorInfo;
import jdiffusion.loader.Weights;

/**
 * Text-to-image Stable Diffusion (diffusers' StableDiffusionPipeline) over a diffusers folder: CLIP tokenizer and text
 * encoder, UNet2DConditionModel with classifier-free guidance, a scheduler, and the AutoencoderKL decoder.
 * <pre>
 * try (var sd = StableDiffusionPipeline.load(Path.of("engine/tiny-sd"), StableDiffusionPipeline.Options.defaults())) {
 *     var result = sd.generate(StableDiffusionPipeline.Request.of("a red fox").withSteps(20).withSeed(42));
 *     ImageIO.write(result.images().get(0), "png", new File("fox.png"));
 * }
 * </pre>
 * Not thread-safe: one generate at a time per pipeline.
 */
public final class StableDiffusionPipeline implements AutoCloseable {

    /**
     * How to load: backend "auto" | "java" | "opencl" | "cuda"; precision; attention processor; scheduler name (null =
     * the model's own: pndm, ddim, euler, euler-karras, euler-a, dpm++2m, dpm++2m-karras); clipSkip (0 = last CLIP
     * layer); variant of the weight files (e.g. "fp16", null = plain).
     */
    public record Options(String backend, Precision precision, jdiffusion.kernels.Attention.Processor attention, String scheduler,
                          int clipSkip, String variant) {
        public Options {
            if (backend == null) backend = "auto";
            if (precision == null) precision = Precision.FP32;
            if (attention == null) attention = jdiffusion.kernels.Attention.Processor.FLASH;
            if (clipSkip < 0) throw new IllegalArgumentException("clipSkip must be >= 0, got " + clipSkip);
        }

        /** backend auto, fp32, flash attention, the model's scheduler, no clip skip, plain weights. */
        public static Options defaults() {
            return new Options("auto", Precision.FP32, jdiffusion.kernels.Attention.Processor.FLASH, null, 0, null);
        }

        public Options withBackend(String b) {
            return new Options(b, precision, attention, scheduler, clipSkip, variant);
        }

        public Options withPrecision(Precision p) {
            return new Options(backend, p, attention, scheduler, clipSkip, variant);
        }

        public Options withAttention(jdiffusion.kernels.Attention.Processor a) {
            return new Options(backend, precision, a, scheduler, clipSkip, variant);
        }

        public Options withScheduler(String s) {
            return new Options(backend, precision, attention, s, clipSkip, variant);
        }

        public Options withClipSkip(int c) {
            return new Options(backend, precision, attention, scheduler, c, variant);
        }

        public Options withVariant(String v) {
            return new Options(backend, precision, attention, scheduler, clipSkip, v);
        }
    }

    /** Called after every denoising step with the new latents [b, 4, h/f, w/f] (diffusers' callback_on_step_end). */
    @FunctionalInterface
    public interface StepListener {
        void onStep(int step, int steps, float timestep, float[] latents);

        /** Called once before the first step. */
        default void onStart(int steps) {
        }
    }

    /**
     * One generation. steps (50), guidanceScale (7.5; <= 1 turns classifier-free guidance off), seed (torch CPU
     * generator stream), imagesPerPrompt (1), width/height (0 = the model's sample size), eta (DDIM only).
     * Optional: latents (initial noise [n, 4, h/f, w/f], before init_noise_sigma scaling) given directly or as a
     * safetensors file (tensor "latents", or "latents_init"); promptEmbeds [2, 77, hidden] (uncond then cond, as
     * diffusers concatenates them) bypassing the tokenizer and text encoder; listener.
     */
    public record Request(String prompt, String negativePrompt, int steps, float guidanceScale, long seed, int imagesPerPrompt,
                          int width, int height, float eta, Path initialLatents, float[] latents, float[] promptEmbeds,
                          StepListener listener) {
        public static Request of(String prompt) {
            return new Request(prompt, "", 50, 7.5f, 0, 1, 0, 0, 0f, null, null, null, null);
        }

        public Request withPrompt(String p) {
            return new Request(p, negativePrompt, steps, guidanceScale, seed, imagesPerPrompt, width, height, eta, initialLatents, latents, promptEmbeds, listener);
        }

        public Request withNegativePrompt(String n) {
            return new Request(prompt, n, steps, guidanceScale, seed, imagesPerPrompt, width, height, eta, initialLatents, latents, promptEmbeds, listener);
        }

        public Request withSteps(int s) {
            return new Request(prompt, negativePrompt, s, guidanceScale, seed, imagesPerPrompt, width, height, eta, initialLatents, latents, promptEmbeds, listener);
        }

        public Request withGuidanceScale(float g) {
            return new Request(prompt, negativePrompt, steps, g, seed, imagesPerPrompt, width, height, eta, initialLatents, latents, promptEmbeds, listener);
        }

        public Request withSeed(long s) {
            return new Request(prompt, negativePrompt, steps, guidanceScale, s, imagesPerPrompt, width, height, eta, initialLatents, latents, promptEmbeds, listener);
        }

        public Request withImagesPerPrompt(int n) {
            return new Request(prompt, negativePrompt, steps, guidanceScale, seed, n, width, height, eta, initialLatents, latents, promptEmbeds, listener);
        }

        public Request withSize(int w, int h) {
            return new Request(prompt, negativePrompt, steps, guidanceScale, seed, imagesPerPrompt, w, h, eta, initialLatents, latents, promptEmbeds, listener);
        }

        public Request withEta(float e) {
            return new Request(prompt, negativePrompt, steps, guidanceScale, seed, imagesPerPrompt, width, height, e, initialLatents, latents, promptEmbeds, listener);
        }

        public Request withInitialLatents(Path file) {
            return new Request(prompt, negativePrompt, steps, guidanceScale, seed, imagesPerPrompt, width, height, eta, file, latents, promptEmbeds, listener);
        }

        public Request withLatents(float[] l) {
            return new Request(prompt, negativePrompt, steps, guidanceScale, seed, imagesPerPrompt, width, height, eta, initialLatents, l, promptEmbeds, listener);
        }

        public Request withPromptEmbeds(float[] e) {
            return new Request(prompt, negativePrompt, steps, guidanceScale, seed, imagesPerPrompt, width, height, eta, initialLatents, latents, e, listener);
        }

        public Request withListener(StepListener l) {
            return new Request(prompt, negativePrompt, steps, guidanceScale, seed, imagesPerPrompt, width, height, eta, initialLatents, latents, promptEmbeds, l);
        }
    }

    /**
     * Wall-clock seconds per stage. compile = JIT / kernel-cache time of the graphs first built during this call
     * (text encoder, UNet, VAE); firstStep = the first denoising step, which also builds the UNet graph; denoise = the
     * whole loop; decode excludes the VAE's compile.
     */
    public record Timings(String backend, String device, double compileSeconds, double encodeSeconds, double firstStepSeconds,
                          double denoiseSeconds, int steps, double decodeSeconds, double totalSeconds) {
        /** Steady-state seconds per step: the steps after the first (all of them when there is one). */
        public double secondsPerStep() {
            if (steps <= 1) return denoiseSeconds;
            return (denoiseSeconds - firstStepSeconds) / (steps - 1);
        }

        @Override
        public String toString() {
            return String.format(java.util.Locale.ROOT, "backend %s, device %s, compile %.2f s, first step %.2f s, %.4f s/step (%d steps), total %.2f s",
                    backend, device, compileSeconds, firstStepSeconds, secondsPerStep(), steps, totalSeconds);
        }
    }

    /** images (RGB), timings, the final latents [n, 4, h/f, w/f] and the decoded image [n, 3, h, w] (VAE output, unclamped). */
    public record Result(List<BufferedImage> images, Timings timings, float[] latents, float[] decoded) {
    }

    public final Path modelDir;
    public final Options options;
    public final Exec exec;
    public final UNet2DConditionModel unet;
    public final AutoencoderKL vae;
    /** Null when the model folder has no text encoder / tokenizer (then requests need promptEmbeds). */
    public final CLIPTextModel textEncoder;
    public final ClipTokenizer tokenizer;
    private final Path schedulerConfig;
    private final boolean ownsBackend;
    private final List<Weights> weights = new ArrayList<>();
    private final Set<String> builtGraphs = new HashSet<>();

    private StableDiffusionPipeline(Path modelDir, Options options, Backend backend, boolean ownsBackend) {
        this.modelDir = modelDir;
        this.options = options;
        this.ownsBackend = ownsBackend;
        this.exec = new Exec(backend, options.precision(), options.attention());
        UNet2DConditionModel u = null;
        AutoencoderKL v = null;
        CLIPTextModel t = null;
        ClipTokenizer tok = null;
        try {
            DiffusersModel m = DiffusersModel.open(modelDir);
            for (String part : List.of("unet", "vae", "scheduler"))
                if (!Files.isDirectory(modelDir.resolve(part)))
                    throw new LoaderException(modelDir + ": the model has no " + part + " folder (a Stable Diffusion pipeline needs unet, vae and scheduler)");
            this.schedulerConfig = modelDir.resolve("scheduler").resolve("scheduler_config.json");
            scheduler();                                                         // fail early on a bad scheduler name/config
            u = new UNet2DConditionModel(m.unetConfig(), open(m, "unet"), exec);
            v = new AutoencoderKL(m.vaeConfig(), open(m, "vae"), exec);
            if (Files.isDirectory(modelDir.resolve("text_encoder")) && Files.isDirectory(modelDir.resolve("tokenizer"))) {
                t = new CLIPTextModel(m.textEncoderConfig(), open(m, "text_encoder"), exec);
                tok = ClipTokenizer.load(m.tokenizerDir());
            }
        } catch (RuntimeException e) {
            for (AutoCloseable c : new AutoCloseable[]{t, v, u}) closeQuietly(c);
            weights.forEach(Weights::close);
            if (ownsBackend) backend.close();
            throw e;
        }
        this.unet = u;
        this.vae = v;
        this.textEncoder = t;
        this.tokenizer = tok;
    }

    private Weights open(DiffusersModel m, String component) {
        Weights w = m.weights(component, options.variant());
        weights.add(w);
        return w;
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c == null) return;
        try {
            c.close();
        } catch (Exception ignored) {
            // already failing
        }
    }

    /** Loads a diffusers folder (model_index.json, unet, vae, scheduler, text_encoder, tokenizer) on options.backend(). */
    public static StableDiffusionPipeline load(Path modelDir, Options options) {
        Options o = options == null ? Options.defaults() : options;
        Backend b = Backends.open(o.backend());
        return new StableDiffusionPipeline(modelDir, o, b, true);
    }

    /** Loads on a backend the caller owns (not closed with the pipeline); options.backend() is ignored. */
    public static StableDiffusionPipeline load(Path modelDir, Options options, Backend backend) {
        return new StableDiffusionPipeline(modelDir, options == null ? Options.defaults() : options, backend, false);
    }

    /**
     * A fresh scheduler of this pipeline's kind (schedulers are stateful): options.scheduler() is a name (null = the
     * model's), or a scheduler_config JSON file (a path, or a file name in the model's scheduler folder).
     */
    public Scheduler scheduler() {
        String s = options.scheduler();
        if (s != null && s.endsWith(".json")) {
            Path p = Path.of(s);
            if (!Files.isRegularFile(p)) p = schedulerConfig.resolveSibling(s);
            if (!Files.isRegularFile(p)) throw new LoaderException(s + ": scheduler config not found (nor in " + schedulerConfig.getParent() + ")");
            return Scheduler.load(null, p);
        }
        return Scheduler.load(s, schedulerConfig);
    }

    public Result generate(Request r) {
        long t0 = System.nanoTime();
        double compile = 0;
        // 0. check inputs
        int f = vae.scaleFactor();
        int sample = unet.config.sampleSize() != null ? unet.config.sampleSize() : 64;
        int width = r.width() > 0 ? r.width() : sample * f, height = r.height() > 0 ? r.height() : sample * f;
        if (width % 8 != 0 || height % 8 != 0)
            throw new IllegalArgumentException("width and height must be multiples of 8, got " + width + "x" + height);
        int lh = height / f, lw = width / f;
        if (lh % unet.sizeMultiple() != 0 || lw % unet.sizeMultiple() != 0)
            throw new IllegalArgumentException("width and height must be multiples of " + f * unet.sizeMultiple() + " for this model, got " + width + "x" + height);
        if (r.steps() < 1) throw new IllegalArgumentException("steps must be >= 1, got " + r.steps());
        if (r.imagesPerPrompt() < 1) throw new IllegalArgumentException("imagesPerPrompt must be >= 1, got " + r.imagesPerPrompt());
        int n = r.imagesPerPrompt();
        boolean cfg = r.guidanceScale() > 1f;
        int cross = unet.config.crossAttentionDim()[0];

        // 1. encode prompt: [uncond..., cond...] each repeated per image
        long te = System.nanoTime();
        float[][] embeds = encodePrompt(r, cross);                           // {uncond, cond}, each [seq, cross]
        int seq = embeds[1].length / cross;
        compile += newGraph("text", textEncoder == null || r.promptEmbeds() != null ? null : textEncoder::compileSeconds);
        int rows = cfg ? 2 * n : n;
        float[] context = new float[rows * seq * cross];                     // [rows, seq, cross]
        for (int i = 0; i < rows; i++) {
            float[] src = cfg && i < n ? embeds[0] : embeds[1];
            System.arraycopy(src, 0, context, i * seq * cross, seq * cross);
        }
        double encodeSeconds = (System.nanoTime() - te) / 1e9;

        // 2. timesteps
        Scheduler scheduler = scheduler();
        if (scheduler instanceof DDIMScheduler d) d.eta = r.eta();
        scheduler.setTimesteps(r.steps());
        float[] timesteps = scheduler.timesteps();

        // 3. latents
        int c = unet.config.inChannels();
        int perImage = c * lh * lw;
        float[] latents = initialLatents(r, n * perImage, "[" + n + ", " + c + ", " + lh + ", " + lw + "]");
        TorchRandom rng = new TorchRandom(r.seed());
        if (latents == null) {
            latents = new float[n * perImage];                               // [n, c, lh, lw]
            rng.randn(latents);
        }
        float sigma0 = scheduler.initNoiseSigma();
        for (int i = 0; i < latents.length; i++) latents[i] *= sigma0;

        // 4. denoising loop
        if (r.listener() != null) r.listener().onStart(timesteps.length);
        long td = System.nanoTime();
        double unetCompile = 0, firstStep = 0;
        for (int i = 0; i < timesteps.length; i++) {
            float t = timesteps[i];
            float[] scaled = scheduler.scaleModelInput(latents, t);          // [n, c, lh, lw]
            float[] in = scaled;
            if (cfg) {
                in = new float[2 * scaled.length];                           // [2n, c, lh, lw] = cat([scaled, scaled])
                System.arraycopy(scaled, 0, in, 0, scaled.length);
                System.arraycopy(scaled, 0, in, scaled.length, scaled.length);
            }
            float[] out = unet.forward(in, rows, lh, lw, new float[]{t}, context, seq); // [rows, c, lh, lw]
            if (i == 0) unetCompile = newGraph("unet " + rows + "x" + lh + "x" + lw + "x" + seq, unet::compileSeconds);
            float[] noise = out;
            if (cfg) {
                noise = new float[scaled.length];                            // uncond + g (cond - uncond)
                float g = r.guidanceScale();
                for (int k = 0; k < noise.length; k++) {
                    float u = out[k];
                    noise[k] = u + g * (out[scaled.length + k] - u);
                }
            }
            latents = scheduler.step(noise, t, latents, rng);
            if (i == 0) firstStep = (System.nanoTime() - td) / 1e9;
            if (r.listener() != null) r.listener().onStep(i, timesteps.length, t, latents);
        }
        compile += unetCompile;
        double denoiseSeconds = (System.nanoTime() - td) / 1e9;

        // 5. decode
        long tv = System.nanoTime();
        float scale = (float) vae.config.scalingFactor();
        float[] z = new float[latents.length];
        for (int i = 0; i < z.length; i++) z[i] = latents[i] / scale;
        float[] decoded = vae.decode(z, n, lh, lw);                          // [n, 3, height, width]
        double vaeCompile = newGraph("vae " + n + "x" + lh + "x" + lw, vae::compileSeconds);
        compile += vaeCompile;
        double decodeSeconds = (System.nanoTime() - tv) / 1e9 - vaeCompile;

        // 6. postprocess
        List<BufferedImage> images = Images.toImages(decoded, n, height, width);
        double total = (System.nanoTime() - t0) / 1e9;
        Timings timings = new Timings(exec.backend().name(), exec.backend().device(), compile, encodeSeconds, firstStep, denoiseSeconds,
                timesteps.length, decodeSeconds, total);
        return new Result(images, timings, latents, decoded);
    }

    /** {uncond, cond} text embeddings [seq, cross] each. */
    private float[][] encodePrompt(Request r, int cross) {
        if (r.promptEmbeds() != null) {
            float[] e = r.promptEmbeds();
            if (e.length == 0 || e.length % (2 * cross) != 0)
                throw new IllegalArgumentException("promptEmbeds has " + e.length + " values, expected [2, seq, " + cross + "] (uncond, cond)");
            int half = e.length / 2;
            return new float[][]{java.util.Arrays.copyOfRange(e, 0, half), java.util.Arrays.copyOfRange(e, half, e.length)};
        }
        if (textEncoder == null || tokenizer == null)
            throw new IllegalStateException(modelDir + " has no text_encoder/tokenizer: pass promptEmbeds");
        if (r.prompt() == null) throw new IllegalArgumentException("prompt is null");
        if (textEncoder.config.hiddenSize() != cross)
            throw new LoaderException(modelDir + ": text encoder hidden size " + textEncoder.config.hiddenSize() + " != unet cross_attention_dim " + cross);
        int len = Math.min(tokenizer.maxLength, textEncoder.config.maxPositionEmbeddings());
        int[] uncond = tokenizer.encodePadded(r.negativePrompt() == null ? "" : r.negativePrompt(), len);
        int[] cond = tokenizer.encodePadded(r.prompt(), len);
        int[] ids = new int[2 * len];                                        // [2, 77]
        System.arraycopy(uncond, 0, ids, 0, len);
        System.arraycopy(cond, 0, ids, len, len);
        float[] h = textEncoder.forward(ids, 2, options.clipSkip()).lastHiddenState(); // [2, 77, hidden]
        int half = h.length / 2;
        return new float[][]{java.util.Arrays.copyOfRange(h, 0, half), java.util.Arrays.copyOfRange(h, half, h.length)};
    }

    private float[] initialLatents(Request r, long expected, String shape) {
        float[] l = r.latents();
        String what = "latents";
        if (l == null && r.initialLatents() != null) {
            Path p = r.initialLatents();
            what = p.toString();
            try (SafeTensors st = SafeTensors.open(p)) {
                String name = st.has("latents") ? "latents" : st.has("latents_init") ? "latents_init" : null;
                if (name == null) throw new LoaderException(p + ": no tensor named 'latents' (has " + st.names() + ")");
                TensorInfo info = st.info(name);
                if (info.elements() != expected)
                    throw new LoaderException(p + ": tensor " + info + " does not match the latent shape " + shape);
                l = st.floats(name);
            }
        }
        if (l == null) return null;
        if (l.length != expected) throw new IllegalArgumentException(what + " has " + l.length + " values, expected " + shape);
        return l.clone();
    }

    /** The compile seconds of a graph the first time its key is seen, else 0. */
    private double newGraph(String key, java.util.function.DoubleSupplier seconds) {
        if (seconds == null || !builtGraphs.add(key)) return 0;
        return seconds.getAsDouble();
    }

    @Override
    public void close() {
        for (AutoCloseable c : new AutoCloseable[]{textEncoder, vae, unet}) closeQuietly(c);
        weights.forEach(Weights::close);
        weights.clear();
        if (ownsBackend) exec.backend().close();
    }
}
