package jdiffusion.kernels;

import static jdiffusion.kernels.Elementwise.need;
import static jdiffusion.kernels.Elementwise.opt;
import static jdiffusion.kernels.Elementwise.sameFloat;
import static jdiffusion.kernels.Elementwise.store;

/**
 * Embedding family: sinusoidal timestep embedding and token lookup.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 * Kernels timestep_embedding and gather_rows in kernels/embedding.cl. The timesteps buffer may be F32, F16 or I32.
 */
public final class Embedding {
    private Embedding() {
    }

    /** diffusers get_timestep_embedding: half = dim/2, freq[i] = exp(-ln(maxPeriod) * i / (half - downscaleFreqShift)), e = t * freq; out [n, dim] = [sin e, cos e] (or [cos e, sin e] when flipSinToCos), zero pad when dim is odd. */
    public static void timestep(TaskGraph g, Buffer timesteps, Buffer out, int n, int dim, boolean flipSinToCos, float downscaleFreqShift, float maxPeriod) {
        sameFloat("timestep_embedding", out);
        need("timestep_embedding", "timesteps", timesteps, n);
        need("timestep_embedding", "out", out, (long) n * dim);
        String options = (opt(out) + switch (timesteps.dtype()) {
            case F32 -> "";
            case F16 -> " -DJD_TS_F16=1";
            case I32 -> " -DJD_TS_I32=1";
        }).trim();
        float negLog = (float) -Math.log(maxPeriod);
        g.task("timestep_embedding", new Kernel("embedding", "timestep_embedding", false, options, Embedding::timestepRef),
                Elementwise.stride((long) n * dim), timesteps, out, n, dim, flipSinToCos ? 1 : 0, downscaleFreqShift, negLog);
    }

    /** ids I32 [n], table [vocab, dim] -> out [n, dim] = table[ids[i]]; an id outside [0, vocab) is a KernelException on the java backend and a zero row on devices. */
    public static void gather(TaskGraph g, Buffer ids, Buffer table, Buffer out, int n, int dim, int vocab) {
        if (ids.dtype() != DType.I32) throw new KernelException("gather_rows: ids " + ids + " must be I32, not " + ids.dtype());
        sameFloat("gather_rows", table, out);
        need("gather_rows", "ids", ids, n);
        need("gather_rows", "table", table, (long) vocab * dim);
        need("gather_rows", "out", out, (long) n * dim);
        g.task("gather_rows", new Kernel("embedding", "gather_rows", false, opt(out), Embedding::gatherRef),
                Elementwise.stride((long) n * dim), ids, table, out, n, dim, vocab);
    }

    /** The embedding of one timestep into e[0, dim), in fp32 operations in the order diffusers uses. */
    static void timestepRow(float t, float[] e, int dim, boolean flip, float shift, float negLogMaxPeriod) {
        int half = dim / 2;
        for (int k = 0; k < half; k++) {
            float x = negLogMaxPeriod * k;
            x = x / ((float) half - shift);
            float arg = t * (float) Math.exp(x);
            float s = (float) Math.sin(arg), c = (float) Math.cos(arg);
            e[k] = flip ? c : s;
            e[half + k] = flip ? s : c;
        }
        if (dim % 2 == 1) e[dim - 1] = 0f;
    }

    /** args: timesteps, out, n, dim, flip, shift, negLogMaxPeriod. */
    static void timestepRef(Object[] a) {
        int n = (Integer) a[2], dim = (Integer) a[3];
        boolean flip = (Integer) a[4] != 0;
        float shift = (Float) a[5], negLog = (Float) a[6];
        float[] e = new float[dim];
        for (int r = 0; r < n; r++) {
            float t = switch (a[0]) {
                case float[] f -> f[r];
                case short[] h -> Float.float16ToFloat(h[r]);
                case int[] i -> (float) i[r];
                default -> throw new KernelException("timestep_embedding: unsupported timesteps array");
            };
            timestepRow(t, e, dim, flip, shift, negLog);
            store(e, a[1], r * dim, dim);
        }
    }

    /** args: ids, table, out, n, dim, vocab. */
    static void gatherRef(Object[] a) {
        int[] ids = (int[]) a[0];
        int n = (Integer) a[3], dim = (Integer) a[4], vocab = (Integer) a[5];
        for (int r = 0; r < n; r++)
            if (ids[r] < 0 || ids[r] >= vocab)
                throw new KernelException("gather_rows: id " + ids[r] + " at position " + r + " is outside the table of " + vocab + " rows");
        Parallel.range(n, 8, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                if (a[1] instanceof float[] t) System.arraycopy(t, ids[r] * dim, (float[]) a[2], r * dim, dim);
                else System.arraycopy((short[]) a[1], ids[r] * dim, (short[]) a[2], r * dim, dim);
            }
        });
    }
}
