package jdiffusion.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

import jdiffusion.kernels.Attention;
import jdiffusion.kernels.Attention.Processor;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.Buffer;
import jdiffusion.kernels.DType;
import jdiffusion.kernels.DeviceOutOfMemoryException;
import jdiffusion.kernels.Kernel;
import jdiffusion.kernels.TaskGraph;

/**
 * Times the three attention processors at SD1.5 UNet shapes (8 heads; seq 4096/1024/256/64 with head dims 40/80/160/160,
 * self-attention, plus cross-attention over 77 text tokens) per backend, dtype and batch; prints ms per call and the
 * effective TFLOP/s (4 * batch * heads * seqQ * seqK * headDim flops) and the kernels the call ran (TF32 FLASH on CUDA:
 * flash_attn_tf32_mma unless -Djdiffusion.attention.tf32mma=false), "OOM" when the device cannot hold the call.
 * Compare with torch.nn.functional.scaled_dot_product_attention on the same shapes.
 * <p>
 * Knobs: -Dbench.backend=auto|cuda|opencl|java, -Dbench.batches=2,4,8,16,32, -Dbench.dtypes=F16,F32,TF32,
 * -Dbench.processors=VANILLA,CHUNKED,FLASH, -Dbench.iters=10, -Dbench.cross=true.
 */
public final class AttentionBench {
    private AttentionBench() {
    }

    record Shape(String name, int seqQ, int seqK, int headDim) {
    }

    public static void main(String[] args) {
        String backendName = System.getProperty("bench.backend", "auto");
        int[] batches = ints(System.getProperty("bench.batches", "2,4,8,16,32"));
        String[] dtypes = System.getProperty("bench.dtypes", "F16,F32,TF32").split(",");
        String[] processors = System.getProperty("bench.processors", "VANILLA,CHUNKED,FLASH").split(",");
        int iters = Integer.getInteger("bench.iters", 10);
        int heads = 8;
        List<Shape> shapes = new ArrayList<>(List.of(new Shape("down64", 4096, 4096, 40), new Shape("down32", 1024, 1024, 80),
                new Shape("down16", 256, 256, 160), new Shape("mid8", 64, 64, 160)));
        if (Boolean.parseBoolean(System.getProperty("bench.cross", "true")))
            shapes.addAll(List.of(new Shape("cross64", 4096, 77, 40), new Shape("cross32", 1024, 77, 80), new Shape("cross16", 256, 77, 160)));
        try (Backend be = Backends.open(backendName)) {
            System.out.println("# attention on " + be.name() + ": " + be.device());
            System.out.printf(Locale.ROOT, "%-8s %5s %5s %5s %4s %-5s %-8s %10s %8s  %s%n", "shape", "batch", "seqQ", "seqK", "d", "dtype", "proc", "ms", "TFLOP/s", "kernels");
            for (Shape s : shapes)
                for (String dt : dtypes)
                    for (String p : processors)
                        for (int batch : batches) {
                            String result = run(be, s, batch, heads, dt.trim(), Processor.valueOf(p.trim()), iters);
                            System.out.printf(Locale.ROOT, "%-8s %5d %5d %5d %4d %-5s %-8s %s%n", s.name, batch, s.seqQ, s.seqK, s.headDim, dt.trim(), p.trim(), result);
                        }
        }
    }

    static String run(Backend be, Shape s, int batch, int heads, String dtype, Processor p, int iters) {
        DType dt = dtype.equals("F16") ? DType.F16 : DType.F32;
        boolean tf32 = dtype.equals("TF32");
        long hd = (long) heads * s.headDim;
        List<Buffer> owned = new ArrayList<>();
        try (TaskGraph g = new TaskGraph("attention-bench", be, tf32)) {
            Buffer q = fill(be, owned, "q", dt, batch * s.seqQ * hd, 1);
            Buffer k = fill(be, owned, "k", dt, batch * s.seqK * hd, 2);
            Buffer v = fill(be, owned, "v", dt, batch * s.seqK * hd, 3);
            Buffer out = be.allocate("out", dt, batch * s.seqQ * hd);
            owned.add(out);
            Attention.attention(g, p, q, k, v, out, batch, heads, s.seqQ, s.seqK, s.headDim, (float) (1 / Math.sqrt(s.headDim)), false);
            g.warmup();
            g.execute();
            be.finish();
            long t0 = System.nanoTime();
            for (int i = 0; i < iters; i++) g.execute();
            be.finish();
            double ms = (System.nanoTime() - t0) / 1e6 / iters;
            double flops = 4.0 * batch * heads * s.seqQ * s.seqK * s.headDim;
            String kernels = String.join("+", g.kernels().stream().map(Kernel::name).toList());
            return String.format(Locale.ROOT, "%10.3f %8.2f  %s", ms, flops / (ms * 1e-3) / 1e12, kernels);
        } catch (DeviceOutOfMemoryException e) {
            return String.format(Locale.ROOT, "%10s %8s", "OOM", "-");
        } finally {
            for (Buffer b : owned) b.close();
        }
    }

    static Buffer fill(Backend be, List<Buffer> owned, String what, DType dt, long n, long seed) {
        Buffer b = be.allocate(what, dt, n);
        owned.add(b);
        SplittableRandom r = new SplittableRandom(seed);
        float[] chunk = new float[(int) Math.min(n, 1 << 20)];
        for (long o = 0; o < n; o += chunk.length) {
            int len = (int) Math.min(chunk.length, n - o);
            for (int i = 0; i < len; i++) chunk[i] = (float) (r.nextDouble() * 2 - 1);
            be.write(b, o, chunk, 0, len);
        }
        return b;
    }

    static int[] ints(String csv) {
        String[] parts = csv.split(",");
        int[] out = new int[parts.length];
        for (int i = 0; i < parts.length; i++) out[i] = Integer.parseInt(parts[i].trim());
        return out;
    }
}
