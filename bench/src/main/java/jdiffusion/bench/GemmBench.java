package jdiffusion.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.Buffer;
import jdiffusion.kernels.Conv2d;
import jdiffusion.kernels.DType;
import jdiffusion.kernels.Elementwise;
import jdiffusion.kernels.Gemm;
import jdiffusion.kernels.TaskGraph;

/**
 * Achieved FLOP rate of the GEMM and convolution kernels at Stable Diffusion 1.5 shapes (batch 2 = classifier-free
 * guidance at 512x512, latents 64x64), per backend and precision (fp32, tf32, fp16).
 * Usage: GemmBench [backends, default java,opencl,cuda] [--quick] [--precisions fp32,tf32,fp16]
 * (-Djdiffusion.bench.seconds=1.0 time per shape). Backends that do not open are skipped.
 * On CUDA, fp16 and tf32 run twice: "old" = the version-2 tensor-core kernels (gemm.cu, -Djdiffusion.gemm.v2=false) and
 * "new" = version 3 (gemm_mma.cu: cp.async, ldmatrix, split-K; "+splitK" when the shape took the reduction task).
 * Conv rows compare conv2d_mma_* ("old", -Djdiffusion.conv.v3=false) with conv2d_v3_* of conv_mma.cu ("new", the default).
 * Then, on CUDA, the fused epilogues at UNet batch 16 ("unfused" = GEMM/conv + add or geglu task, as -Djdiffusion.fuse=false
 * records them; "fused" = Gemm.linearGeglu / the residual in the GEMM or conv epilogue).
 */
public final class GemmBench {
    static final double SECONDS = Double.parseDouble(System.getProperty("jdiffusion.bench.seconds", "1.0"));

    /** kind: "linear" {m,n,k}, "matmul" {batch,m,n,k,transB}, "conv" {n,cIn,h,w,cOut,kernel,stride,padding}. */
    record Shape(String name, String kind, int... d) {
        double flops() {
            return switch (kind) {
                case "linear" -> 2.0 * d[0] * d[1] * d[2];
                case "matmul" -> 2.0 * d[0] * d[1] * d[2] * d[3];
                default -> {
                    int ho = (d[2] + 2 * d[7] - d[5]) / d[6] + 1, wo = (d[3] + 2 * d[7] - d[5]) / d[6] + 1;
                    yield 2.0 * d[0] * ho * wo * d[4] * d[1] * d[5] * d[5];
                }
            };
        }
    }

    static final List<Shape> SHAPES = List.of(
            new Shape("attn1 to_q/k/v 64x64", "linear", 2 * 4096, 320, 320),
            new Shape("ff geglu proj 64x64", "linear", 2 * 4096, 2560, 320),
            new Shape("ff out 64x64", "linear", 2 * 4096, 320, 1280),
            new Shape("attn to_q 32x32", "linear", 2 * 1024, 640, 640),
            new Shape("attn to_q 16x16", "linear", 2 * 256, 1280, 1280),
            new Shape("attn2 to_k (text)", "linear", 2 * 77, 320, 768),
            new Shape("time_emb linear_2", "linear", 2, 1280, 1280),
            new Shape("QK^T 64x64 8 heads", "matmul", 16, 4096, 4096, 40, 1),
            new Shape("PV 64x64 8 heads", "matmul", 16, 4096, 40, 4096, 0),
            new Shape("QK^T cross 64x64", "matmul", 16, 4096, 77, 40, 1),
            new Shape("conv 320->320 64x64", "conv", 2, 320, 64, 64, 320, 3, 1, 1),
            new Shape("conv 320->320 64x64 b16", "conv", 16, 320, 64, 64, 320, 3, 1, 1),
            new Shape("conv 960->320 64x64", "conv", 2, 960, 64, 64, 320, 3, 1, 1),
            new Shape("conv 640->640 32x32", "conv", 2, 640, 32, 32, 640, 3, 1, 1),
            new Shape("conv 1920->640 32x32", "conv", 2, 1920, 32, 32, 640, 3, 1, 1),
            new Shape("conv 2560->1280 16x16", "conv", 2, 2560, 16, 16, 1280, 3, 1, 1),
            new Shape("conv 1280->1280 16x16", "conv", 2, 1280, 16, 16, 1280, 3, 1, 1),
            new Shape("conv 1280->1280 8x8", "conv", 2, 1280, 8, 8, 1280, 3, 1, 1),
            new Shape("conv_in 4->320 64x64", "conv", 2, 4, 64, 64, 320, 3, 1, 1),
            new Shape("downsample 320 s2 64x64", "conv", 2, 320, 64, 64, 320, 3, 2, 1),
            new Shape("conv_shortcut 1x1 320->640 32x32", "conv", 2, 320, 32, 32, 640, 1, 1, 0));

    static final List<String> QUICK = List.of("attn1 to_q/k/v 64x64", "attn to_q 16x16", "PV 64x64 8 heads", "conv 640->640 32x32", "conv 1280->1280 8x8",
            "conv 320->320 64x64", "conv 320->320 64x64 b16");

    /** Fusion rows: kind "geglu" {m, inner, k}, "linear" {m, n, k} + residual, "conv" {n,cIn,h,w,cOut,kernel,stride,padding} + residual. */
    static final List<Shape> FUSED = List.of(
            new Shape("ff net.0 + geglu 64x64 b16", "geglu", 16 * 4096, 1280, 320),
            new Shape("ff net.0 + geglu 16x16 b16", "geglu", 16 * 256, 5120, 1280),
            new Shape("ff net.0 + geglu mid 8x8 b2", "geglu", 2 * 64, 5120, 1280),
            new Shape("to_out + residual 64x64 b16", "linear", 16 * 4096, 320, 320),
            new Shape("net.2 + residual 32x32 b16", "linear", 16 * 1024, 640, 2560),
            new Shape("conv2 + shortcut 320 64x64 b16", "conv", 16, 320, 64, 64, 320, 3, 1, 1),
            new Shape("conv2 + shortcut 1280 8x8 b16", "conv", 16, 1280, 8, 8, 1280, 3, 1, 1));

    public static void main(String[] args) {
        String backends = "java,opencl,cuda";
        String precisions = "fp32,tf32,fp16";
        boolean quick = false;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--quick")) quick = true;
            else if (args[i].equals("--precisions")) precisions = args[++i];
            else backends = args[i];
        }
        for (String name : backends.split(",")) {
            Backend be;
            try {
                be = Backends.open(name.trim());
            } catch (RuntimeException e) {
                System.out.println(name + ": not available (" + e.getMessage() + ")");
                continue;
            }
            try (be) {
                System.out.println("== " + be.name() + ": " + be.device());
                for (String p : precisions.split(",")) {
                    boolean tf32 = p.equals("tf32");
                    DType dt = p.equals("fp16") ? DType.F16 : DType.F32;
                    if (tf32 && !be.name().equals("cuda")) continue; // tf32 = exact fp32 elsewhere
                    for (Shape s : SHAPES) {
                        if (quick && !QUICK.contains(s.name())) continue;
                        boolean java = be.name().equals("java");
                        if (be.name().equals("cuda") && !p.equals("fp32")) {
                            boolean conv = s.kind().equals("conv");
                            String knob = conv ? "jdiffusion.conv.v3" : "jdiffusion.gemm.v2"; // conv: old = conv2d_mma, new = conv2d_v3
                            String before = System.getProperty(knob);
                            Timing old, neu;
                            try {
                                System.setProperty(knob, "false");
                                old = time(be, dt, tf32, s);
                                System.setProperty(knob, "true");
                                neu = time(be, dt, tf32, s);
                            } finally {
                                if (before == null) System.clearProperty(knob);
                                else System.setProperty(knob, before);
                            }
                            System.out.printf(Locale.ROOT, "%-8s %-5s %-34s old %9.3f ms %7.2f TFLOP/s | new %9.3f ms %7.2f TFLOP/s  x%.2f  %s%n", be.name(), p, s.name(),
                                    old.seconds() * 1e3, s.flops() / old.seconds() / 1e12, neu.seconds() * 1e3, s.flops() / neu.seconds() / 1e12,
                                    old.seconds() / neu.seconds(), neu.kernels());
                            continue;
                        }
                        double seconds = time(be, dt, tf32, s).seconds();
                        System.out.printf(Locale.ROOT, "%-8s %-5s %-34s %10.3f ms  %9.2f %s%n", be.name(), p, s.name(), seconds * 1e3,
                                s.flops() / seconds / (java ? 1e9 : 1e12), java ? "GFLOP/s" : "TFLOP/s");
                    }
                }
                if (be.name().equals("cuda"))
                    for (String p : precisions.split(","))
                        for (Shape s : FUSED) {
                            if (quick && !s.name().contains("64x64")) continue;
                            DType dt = p.equals("fp16") ? DType.F16 : DType.F32;
                            Timing plain = timeFusion(be, dt, p.equals("tf32"), s, false), fused = timeFusion(be, dt, p.equals("tf32"), s, true);
                            System.out.printf(Locale.ROOT, "%-8s %-5s %-34s unfused %9.3f ms | fused %9.3f ms  x%.2f  %s | %s%n", be.name(), p, s.name(),
                                    plain.seconds() * 1e3, fused.seconds() * 1e3, plain.seconds() / fused.seconds(), plain.kernels(), fused.kernels());
                        }
            }
        }
    }

    /** Seconds per execution of the shape's graph, and the kernels it launched (names, "+" joined). */
    record Timing(double seconds, String kernels) {
    }

    /** Seconds per launch: one warm-up execution, then repeated executions for about SECONDS. */
    static Timing time(Backend be, DType dt, boolean tf32, Shape s) {
        List<Buffer> buffers = new ArrayList<>();
        try (TaskGraph g = new TaskGraph("bench " + s.name(), be, tf32)) {
            int[] d = s.d();
            switch (s.kind()) {
                case "linear" -> Gemm.linear(g, buf(be, buffers, dt, (long) d[0] * d[2]), buf(be, buffers, dt, (long) d[1] * d[2]),
                        buf(be, buffers, dt, d[1]), buf(be, buffers, dt, (long) d[0] * d[1]), d[0], d[1], d[2]);
                case "matmul" -> Gemm.matmul(g, buf(be, buffers, dt, (long) d[0] * d[1] * d[3]), buf(be, buffers, dt, (long) d[0] * d[2] * d[3]),
                        buf(be, buffers, dt, (long) d[0] * d[1] * d[2]), d[0], d[1], d[2], d[3], d[4] != 0, 0.158f);
                default -> {
                    int ho = (d[2] + 2 * d[7] - d[5]) / d[6] + 1, wo = (d[3] + 2 * d[7] - d[5]) / d[6] + 1;
                    Conv2d.conv2d(g, buf(be, buffers, dt, (long) d[0] * d[1] * d[2] * d[3]), buf(be, buffers, dt, (long) d[4] * d[1] * d[5] * d[5]),
                            buf(be, buffers, dt, d[4]), buf(be, buffers, dt, (long) d[0] * d[4] * ho * wo), d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
                }
            }
            return run(be, g);
        } finally {
            for (Buffer b : buffers) b.close();
        }
    }

    /** Seconds per execution of a fusion row: fused (one task, or GEMM + split-K reduction) or as the unfused engine records it. */
    static Timing timeFusion(Backend be, DType dt, boolean tf32, Shape s, boolean fused) {
        List<Buffer> buffers = new ArrayList<>();
        try (TaskGraph g = new TaskGraph("bench fusion " + s.name(), be, tf32)) {
            int[] d = s.d();
            switch (s.kind()) {
                case "geglu" -> {
                    Buffer x = buf(be, buffers, dt, (long) d[0] * d[2]), w = buf(be, buffers, dt, 2L * d[1] * d[2]), b = buf(be, buffers, dt, 2L * d[1]);
                    Buffer out = buf(be, buffers, dt, (long) d[0] * d[1]);
                    if (fused) Gemm.linearGeglu(g, x, w, b, out, d[0], d[1], d[2]);
                    else {
                        Buffer hg = buf(be, buffers, dt, 2L * d[0] * d[1]);
                        Gemm.linear(g, x, w, b, hg, d[0], 2 * d[1], d[2]);
                        Elementwise.geglu(g, hg, out, d[0], d[1]);
                    }
                }
                case "linear" -> {
                    Buffer x = buf(be, buffers, dt, (long) d[0] * d[2]), w = buf(be, buffers, dt, (long) d[1] * d[2]), b = buf(be, buffers, dt, d[1]);
                    Buffer res = buf(be, buffers, dt, (long) d[0] * d[1]), out = buf(be, buffers, dt, (long) d[0] * d[1]);
                    if (fused) Gemm.linear(g, x, w, b, res, 1f, out, d[0], d[1], d[2]);
                    else {
                        Buffer y = buf(be, buffers, dt, (long) d[0] * d[1]);
                        Gemm.linear(g, x, w, b, y, d[0], d[1], d[2]);
                        Elementwise.add(g, y, res, out, (long) d[0] * d[1]);
                    }
                }
                default -> {
                    int ho = (d[2] + 2 * d[7] - d[5]) / d[6] + 1, wo = (d[3] + 2 * d[7] - d[5]) / d[6] + 1;
                    long outLen = (long) d[0] * d[4] * ho * wo;
                    Buffer x = buf(be, buffers, dt, (long) d[0] * d[1] * d[2] * d[3]), w = buf(be, buffers, dt, (long) d[4] * d[1] * d[5] * d[5]);
                    Buffer b = buf(be, buffers, dt, d[4]), res = buf(be, buffers, dt, outLen), out = buf(be, buffers, dt, outLen);
                    if (fused) Conv2d.conv2d(g, x, w, b, res, 1f, out, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
                    else {
                        Buffer y = buf(be, buffers, dt, outLen);
                        Conv2d.conv2d(g, x, w, b, y, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
                        Elementwise.add(g, res, y, out, outLen);
                    }
                }
            }
            return run(be, g);
        } finally {
            for (Buffer b : buffers) b.close();
        }
    }

    /** Warm-up, then repeated executions for about SECONDS; the graph's kernels "+"-joined. */
    static Timing run(Backend be, TaskGraph g) {
        g.warmup();
        g.execute();
        be.finish();
        int reps = 0;
        long t0 = System.nanoTime(), t;
        do {
            g.execute();
            if (++reps % 4 == 0 || be.name().equals("java")) be.finish();
            t = System.nanoTime();
        } while (t - t0 < SECONDS * 1e9 || reps < 2);
        be.finish();
        StringBuilder names = new StringBuilder();
        for (var task : g.tasks()) names.append(names.isEmpty() ? "" : "+").append(task.kernel().name());
        return new Timing((System.nanoTime() - t0) / 1e9 / reps, names.toString());
    }

    static Buffer buf(Backend be, List<Buffer> all, DType dt, long length) {
        Buffer b = be.allocate("bench", dt, length);
        all.add(b);
        SplittableRandom r = new SplittableRandom(length);
        float[] chunk = new float[(int) Math.min(length, 1 << 20)];
        for (long o = 0; o < length; o += chunk.length) {
            int n = (int) Math.min(chunk.length, length - o);
            for (int i = 0; i < n; i++) chunk[i] = (float) (r.nextDouble() - 0.5);
            be.write(b, o, chunk, 0, n);
        }
        return b;
    }
}
