package jdiffusion.bench;

import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

import jdiffusion.engine.Exec;
import jdiffusion.engine.Precision;
import jdiffusion.engine.RandomWeights;
import jdiffusion.engine.StableDiffusionPipeline;
import jdiffusion.engine.UNet2DConditionModel;
import jdiffusion.kernels.Attention;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.loader.SingleFileCheckpoint;
import jdiffusion.loader.UNetConfig;

/**
 * Interpreted speed (kernels run as their Java references on all cores, Vector API where the family uses it): one
 * SD1.5-shaped UNet2DConditionModel step on the JVM with deterministic random weights (the bundled SD1.5 unet config,
 * fp32, flash attention, 77 text tokens of width 768) at UNet batch 1 and 2 (2 = classifier-free guidance), then the
 * bundled tiny pipeline end to end. Prints model build time, first forward (task-graph build + warm-up + one step),
 * ms per timed step and the GFLOP/s that means ({@link UNetFlops}).
 * <pre>
 * InterpretedBench [--latent 64] [--batch 1,2] [--steps 1] [--seq 77] [--seed 0] [--attention flash|chunked|vanilla]
 *                  [--backend java] [--pipeline-steps 10 (0 = skip the tiny pipeline)] [--no-unet]
 * </pre>
 * The java backend uses every core (-Djdiffusion.threads=N to change); unless given, -Djdiffusion.engine.graphs=1
 * (one batch's activations at a time).
 */
public final class InterpretedBench {
    private InterpretedBench() {
    }

    record Options(int latent, int[] batches, int steps, int seq, long seed, Attention.Processor attention, String backend,
                   int pipelineSteps, boolean unet) {
        static Options parse(String... args) {
            int latent = 64, steps = 1, seq = 77, pipelineSteps = 10;
            int[] batches = {1, 2};
            long seed = 0;
            Attention.Processor attention = Attention.Processor.FLASH;
            String backend = "java";
            boolean unet = true;
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (a.equals("--no-unet")) {
                    unet = false;
                    continue;
                }
                if (i + 1 >= args.length) throw new IllegalArgumentException(a + " needs a value");
                String v = args[++i];
                switch (a) {
                    case "--latent" -> latent = positive(a, v);
                    case "--batch" -> batches = Arrays.stream(v.split(",")).mapToInt(s -> positive(a, s.trim())).toArray();
                    case "--steps" -> steps = positive(a, v);
                    case "--seq" -> seq = positive(a, v);
                    case "--seed" -> seed = Long.parseLong(v);
                    case "--attention" -> attention = Attention.Processor.valueOf(v.toUpperCase(Locale.ROOT));
                    case "--backend" -> backend = v;
                    case "--pipeline-steps" -> pipelineSteps = Integer.parseInt(v);
                    default -> throw new IllegalArgumentException("unknown option " + a
                            + " (--latent N --batch 1,2 --steps N --seq N --seed N --attention flash --backend java --pipeline-steps N --no-unet)");
                }
            }
            if (latent % 8 != 0) throw new IllegalArgumentException("--latent " + latent + " must be a multiple of 8 (SD1.5 downsamples 3 times)");
            return new Options(latent, batches, steps, seq, seed, attention, backend, pipelineSteps, unet);
        }

        private static int positive(String option, String v) {
            int n = Integer.parseInt(v);
            if (n < 1) throw new IllegalArgumentException(option + " must be >= 1, got " + v);
            return n;
        }
    }

    /** Worker threads of the java backend (jdiffusion.threads, default every core). */
    static int allCores() {
        return jdiffusion.kernels.Parallel.threads();
    }

    public static void main(String[] args) {
        if (System.getProperty("jdiffusion.engine.graphs") == null) System.setProperty("jdiffusion.engine.graphs", "1");
        Options o = Options.parse(args);
        System.out.printf(Locale.ROOT, "# InterpretedBench: %d cores, %d java-backend threads, JVM %s, max heap %d MiB%n",
                Runtime.getRuntime().availableProcessors(), allCores(), Runtime.version(), Runtime.getRuntime().maxMemory() >> 20);
        if (o.unet()) unetSteps(o);
        if (o.pipelineSteps() > 0) tinyPipeline(o);
    }

    static void unetSteps(Options o) {
        UNetConfig config = SingleFileCheckpoint.bundledUNet("sd15");
        int cross = config.crossAttentionDim()[0], in = config.inChannels();
        int hw = o.latent();
        System.out.printf(Locale.ROOT, "# SD1.5 UNet2DConditionModel (bundled sd15 unet config), random weights seed %d, fp32, %s attention, latents %dx%d (%dx%d image), text %d x %d%n",
                o.seed(), o.attention().name().toLowerCase(Locale.ROOT), hw, hw, 8 * hw, 8 * hw, o.seq(), cross);
        try (Backend be = Backends.open(o.backend())) {
            System.out.println("# backend " + be.name() + ": " + be.device());
            long t0 = System.nanoTime();
            try (UNet2DConditionModel unet = new UNet2DConditionModel(config, new RandomWeights(UNet2DConditionModel.parameterShapes(config), o.seed()),
                    new Exec(be, Precision.FP32, o.attention()))) {
                double buildS = (System.nanoTime() - t0) / 1e9;
                System.out.printf(Locale.ROOT, "model build (random weights generated + uploaded): %.1f s, weights %.2f GiB%n", buildS, unet.weightBytes() / (double) (1L << 30));
                System.out.printf(Locale.ROOT, "%-6s %-9s %12s %12s %10s %10s %10s %12s%n", "batch", "latent", "first_s", "compile_s", "ms/step", "ms/sample", "GFLOP", "GFLOP/s");
                for (int batch : o.batches()) {
                    SplittableRandom r = new SplittableRandom(o.seed() + batch);
                    float[] sample = random(r, batch * in * hw * hw, 1);      // [batch, 4, hw, hw]
                    float[] context = random(r, batch * o.seq() * cross, 1);  // [batch, seq, 768]
                    float[] t = {981f};
                    long f0 = System.nanoTime();
                    float[] out = unet.forward(sample, batch, hw, hw, t, context, o.seq());
                    double firstS = (System.nanoTime() - f0) / 1e9;
                    check(out, batch);
                    double[] ms = new double[o.steps()];
                    for (int s = 0; s < o.steps(); s++) {
                        long s0 = System.nanoTime();
                        out = unet.forward(sample, batch, hw, hw, new float[]{981f - 20 * (s + 1)}, context, o.seq());
                        ms[s] = (System.nanoTime() - s0) / 1e6;
                        check(out, batch);
                    }
                    Arrays.sort(ms);
                    double median = ms[ms.length / 2];
                    double gflop = UNetFlops.forward(config, batch, hw, hw, o.seq()) / 1e9;
                    System.out.printf(Locale.ROOT, "%-6d %-9s %12.1f %12.2f %10.0f %10.0f %10.1f %12.2f   (median of %d timed steps, min %.0f ms, max %.0f ms; device bytes %.2f GiB)%n",
                            batch, hw + "x" + hw, firstS, unet.compileSeconds(), median, median / batch, gflop, gflop / (median / 1e3),
                            ms.length, ms[0], ms[ms.length - 1], be.allocatedBytes() / (double) (1L << 30));
                }
            }
        }
    }

    static void tinyPipeline(Options o) {
        var tiny = PipelineBench.tinySd();
        System.out.println("# tiny pipeline end to end: " + tiny + ", backend " + o.backend() + ", fp32, " + o.pipelineSteps() + " steps, CFG 7.5 (UNet batch 2), model's size");
        long l0 = System.nanoTime();
        try (StableDiffusionPipeline sd = StableDiffusionPipeline.load(tiny, StableDiffusionPipeline.Options.defaults().withBackend(o.backend()).withAttention(o.attention()))) {
            double loadS = (System.nanoTime() - l0) / 1e9;
            var request = StableDiffusionPipeline.Request.of("a photo of an astronaut riding a horse").withSteps(o.pipelineSteps()).withSeed(o.seed());
            long g0 = System.nanoTime();
            var first = sd.generate(request);
            double firstS = (System.nanoTime() - g0) / 1e9;
            double[] s = new double[3];
            StableDiffusionPipeline.Timings last = null;
            for (int i = 0; i < s.length; i++) {
                long g = System.nanoTime();
                last = sd.generate(request).timings();
                s[i] = (System.nanoTime() - g) / 1e9;
            }
            Arrays.sort(s);
            System.out.printf(Locale.ROOT, "load %.2f s; first generate (builds the graphs) %.2f s [%s]%n", loadS, firstS, first.timings());
            System.out.printf(Locale.ROOT, "generate, %d steps, end to end: median %.3f s (min %.3f, max %.3f over %d runs) [%s]%n",
                    o.pipelineSteps(), s[1], s[0], s[2], s.length, last);
        }
    }

    private static float[] random(SplittableRandom r, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * scale);
        return v;
    }

    private static void check(float[] out, int batch) {
        for (float v : out)
            if (!Float.isFinite(v)) {
                System.out.println("WARNING: non-finite UNet output at batch " + batch);
                return;
            }
    }
}
