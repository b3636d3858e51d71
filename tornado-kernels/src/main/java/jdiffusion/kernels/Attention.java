package jdiffusion.kernels;

import java.util.EnumMap;
import java.util.Map;
import java.util.WeakHashMap;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import static jdiffusion.kernels.Elementwise.floats;
import static jdiffusion.kernels.Elementwise.load;
import static jdiffusion.kernels.Elementwise.need;
import static jdiffusion.kernels.Elementwise.opt;
import static jdiffusion.kernels.Elementwise.sameFloat;
import static jdiffusion.kernels.Elementwise.store;

/**
 * Attention family, the pluggable processors of diffusers' set_attn_processor: VANILLA materialises softmax(QK^T) per
 * (batch, head); CHUNKED does the same over query slices so the score buffer stays bounded (memory-efficient); FLASH is a
 * tiled online softmax (running max, running sum, rescaled accumulator) that never materialises seqQ x seqK.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 * <p>
 * Kernels: attn_scores, attn_softmax, attn_pv, flash_attn (kernels/attention.cl) and, on CUDA for fp16,
 * flash_attn_f16_mma (kernels/attention.cu, tensor cores). The score workspace [batch*heads, rows, seqK] (dtype of q)
 * is one TaskGraph.scratch buffer per graph and dtype, grown when a larger call comes. A causal mask hides keys j > i
 * (top-left aligned, as torch's is_causal). Knobs: -Djdiffusion.attention.chunk (query rows per CHUNKED slice; default
 * sized so one slice of scores is at most -Djdiffusion.attention.chunkBytes, 64 MiB), -Djdiffusion.attention.mma=false
 * (CUDA: use the portable FLASH kernel).
 */
public final class Attention {
    private Attention() {
    }

    public enum Processor { VANILLA, CHUNKED, FLASH }

    static final int TS = 16, SOFTMAX_GROUP = 256, FLASH_ROWS = 64, MAX_Z = 65535;
    static final boolean MMA = Boolean.parseBoolean(System.getProperty("jdiffusion.attention.mma", "true"));
    /** Static shared memory a CUDA block may use without opting in. */
    static final int SMEM_LIMIT = 48 * 1024;

    private static final Map<TaskGraph, Map<DType, Buffer>> SCORES = new WeakHashMap<>();

    /** q [batch, seqQ, heads*headDim], k and v [batch, seqK, heads*headDim] (the to_q/to_k/to_v outputs, heads not split) -> out [batch, seqQ, heads*headDim] = softmax(scale q k^T (+ causal mask)) v per head. Workspace comes from TaskGraph.scratch. */
    public static void attention(TaskGraph g, Processor processor, Buffer q, Buffer k, Buffer v, Buffer out, int batch, int heads, int seqQ, int seqK, int headDim, float scale, boolean causal) {
        sameFloat("attention", q, k, v, out);
        if (batch <= 0 || heads <= 0 || seqQ <= 0 || seqK <= 0 || headDim <= 0)
            throw new KernelException("attention: empty shape batch " + batch + ", heads " + heads + ", seqQ " + seqQ + ", seqK " + seqK + ", headDim " + headDim);
        long hd = (long) heads * headDim;
        need("attention", "q", q, batch * seqQ * hd);
        need("attention", "k", k, batch * seqK * hd);
        need("attention", "v", v, batch * seqK * hd);
        need("attention", "out", out, batch * seqQ * hd);
        int bh = batch * heads;
        switch (processor) {
            case VANILLA -> {
                Buffer s = scores(g, q.dtype(), (long) bh * seqQ * seqK);
                slice(g, q, k, v, out, s, bh, heads, seqQ, seqK, headDim, scale, causal, 0, seqQ);
            }
            case CHUNKED -> {
                int chunk = chunkRows(bh, seqQ, seqK, q.dtype());
                Buffer s = scores(g, q.dtype(), (long) bh * chunk * seqK);
                for (int q0 = 0; q0 < seqQ; q0 += chunk)
                    slice(g, q, k, v, out, s, bh, heads, seqQ, seqK, headDim, scale, causal, q0, Math.min(chunk, seqQ - q0));
            }
            case FLASH -> flash(g, q, k, v, out, bh, heads, seqQ, seqK, headDim, scale, causal);
        }
    }

    /** Query rows per CHUNKED slice: the property, else as many as keep [bh, rows, seqK] within CHUNK_BYTES. */
    public static int chunkRows(int bh, int seqQ, int seqK, DType dtype) {
        int fixed = Integer.getInteger("jdiffusion.attention.chunk", 0);
        long rows = fixed > 0 ? fixed : Long.getLong("jdiffusion.attention.chunkBytes", 64L << 20) / ((long) bh * seqK * dtype.bytes);
        return (int) Math.max(1, Math.min(seqQ, rows));
    }

    private static Buffer scores(TaskGraph g, DType dtype, long length) {
        synchronized (SCORES) {
            Map<DType, Buffer> m = SCORES.computeIfAbsent(g, x -> new EnumMap<>(DType.class));
            Buffer b = m.get(dtype);
            if (b == null || b.length() < length) {
                b = g.scratch("attention.scores", dtype, length);  // DeviceOutOfMemoryException when it does not fit
                m.put(dtype, b);
            }
            return b;
        }
    }

    /** Scores, softmax and P V for query rows [q0, q0 + rows) through the workspace s [bh, rows, seqK]. */
    private static void slice(TaskGraph g, Buffer q, Buffer k, Buffer v, Buffer out, Buffer s, int bh, int heads, int seqQ, int seqK, int d, float scale, boolean causal, int q0, int rows) {
        String o = opt(q);
        long z = Math.min(bh, MAX_Z);
        g.task("attn_scores", new Kernel("attention", "attn_scores", false, o, Attention::scoresRef),
                new Launch(new long[]{Launch.cover(seqK, TS), Launch.cover(rows, TS), z}, new long[]{TS, TS, 1}),
                q, k, s, bh, heads, seqQ, seqK, d, scale, q0, rows);
        int rowsTotal = bh * rows;
        g.task("attn_softmax", new Kernel("attention", "attn_softmax", false, o, Attention::softmaxRef),
                new Launch(new long[]{(long) rowsTotal * SOFTMAX_GROUP}, new long[]{SOFTMAX_GROUP}),
                s, rowsTotal, rows, seqK, q0, causal ? 1 : 0);
        g.task("attn_pv", new Kernel("attention", "attn_pv", false, o, Attention::pvRef),
                new Launch(new long[]{Launch.cover(d, TS), Launch.cover(rows, TS), z}, new long[]{TS, TS, 1}),
                s, v, out, bh, heads, seqQ, seqK, d, q0, rows);
    }

    private static void flash(TaskGraph g, Buffer q, Buffer k, Buffer v, Buffer out, int bh, int heads, int seqQ, int seqK, int d, float scale, boolean causal) {
        int[] mma = "cuda".equals(g.backend.name()) && q.dtype() == DType.F16 && MMA ? mmaConfig(d) : null;
        if (mma != null) {
            int dp = mma[0], bk = mma[1], nw = mma[2], rowsPerBlock = 16 * nw;
            String options = "-DDP=" + dp + " -DBK=" + bk + " -DNW=" + nw + " -DVEC8=" + (d % 8 == 0 ? 1 : 0);
            g.task("flash_attn_f16_mma", new Kernel("attention", "flash_attn_f16_mma", true, options, Attention::flashRef),
                    new Launch(new long[]{(long) bh * 32 * nw, Launch.cover(seqQ, rowsPerBlock) / rowsPerBlock}, new long[]{32L * nw, 1}),
                    q, k, v, out, bh, heads, seqQ, seqK, d, scale, causal ? 1 : 0);
            return;
        }
        int fbk = (int) Math.max(1, Math.min(64, 4096 / d));   // K and V tiles: 2 * fbk * d floats <= 32 KiB of local memory
        String options = (opt(q) + " -DHEAD_DIM=" + d + " -DFBK=" + fbk + " -DFBQ=" + FLASH_ROWS).trim();
        g.task("flash_attn", new Kernel("attention", "flash_attn", false, options, Attention::flashRef),
                new Launch(new long[]{(long) bh * FLASH_ROWS, Launch.cover(seqQ, FLASH_ROWS) / FLASH_ROWS}, new long[]{FLASH_ROWS, 1}),
                q, k, v, out, bh, heads, seqQ, seqK, d, scale, causal ? 1 : 0);
    }

    /** {padded head dim, keys per tile, warps} of flash_attn_f16_mma for head dim d within SMEM_LIMIT, or null. */
    public static int[] mmaConfig(int d) {
        int dp = (d + 15) / 16 * 16;
        for (int nw : new int[]{4, 2})
            for (int bk : new int[]{64, 32, 16})
                if (2L * (16L * nw * (dp + 8) + (long) bk * (dp + 8) + (long) dp * (bk + 8)) <= SMEM_LIMIT) return new int[]{dp, bk, nw};
        return null;
    }

    // ---- Java references (same arguments as the kernels) ----

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        int i = 0;
        float s = 0f;
        if (n >= F.length()) {
            FloatVector acc = FloatVector.zero(F);
            for (; i <= n - F.length(); i += F.length())
                acc = FloatVector.fromArray(F, a, ao + i).fma(FloatVector.fromArray(F, b, bo + i), acc);
            s = acc.reduceLanes(VectorOperators.ADD);
        }
        for (; i < n; i++) s += a[ao + i] * b[bo + i];
        return s;
    }

    /** y[yo..] += alpha * x[xo..] over n. */
    static void axpy(float alpha, float[] x, int xo, float[] y, int yo, int n) {
        int i = 0;
        if (n >= F.length()) {
            FloatVector av = FloatVector.broadcast(F, alpha);
            for (; i <= n - F.length(); i += F.length())
                FloatVector.fromArray(F, x, xo + i).fma(av, FloatVector.fromArray(F, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += alpha * x[xo + i];
    }

    private static int len(Object arr) {
        return java.lang.reflect.Array.getLength(arr);
    }

    /** args: q, k, s, bhCount, heads, seqQ, seqK, D, scale, q0, rows. */
    static void scoresRef(Object[] a) {
        int bhCount = (Integer) a[3], heads = (Integer) a[4], seqQ = (Integer) a[5], seqK = (Integer) a[6], d = (Integer) a[7];
        float scale = (Float) a[8];
        int q0 = (Integer) a[9], rows = (Integer) a[10], hd = heads * d;
        float[] qf = floats(a[0], 0, len(a[0])), kf = floats(a[1], 0, len(a[1]));
        Parallel.range(bhCount * rows, 4, (w0, w1) -> {
            float[] row = new float[seqK];
            for (int w = w0; w < w1; w++) {
                int bh = w / rows, r = w % rows, b = bh / heads, h = bh % heads;
                int qo = (b * seqQ + q0 + r) * hd + h * d;
                for (int j = 0; j < seqK; j++) row[j] = dot(qf, qo, kf, (b * seqK + j) * hd + h * d, d) * scale;
                store(row, a[2], w * seqK, seqK);
            }
        });
    }

    /** args: s, rowsTotal, rows, seqK, q0, causal (in place). */
    static void softmaxRef(Object[] a) {
        int rowsTotal = (Integer) a[1], rows = (Integer) a[2], seqK = (Integer) a[3], q0 = (Integer) a[4];
        boolean causal = (Integer) a[5] != 0;
        Parallel.range(rowsTotal, 8, (r0, r1) -> {
            float[] row = new float[seqK];
            for (int r = r0; r < r1; r++) {
                int i = q0 + r % rows;
                load(a[0], r * seqK, row, seqK);
                Softmax.row(row, 0, causal ? Math.min(seqK, i + 1) : seqK, seqK, 1f);
                store(row, a[0], r * seqK, seqK);
            }
        });
    }

    /** args: p, v, out, bhCount, heads, seqQ, seqK, D, q0, rows. */
    static void pvRef(Object[] a) {
        int bhCount = (Integer) a[3], heads = (Integer) a[4], seqQ = (Integer) a[5], seqK = (Integer) a[6], d = (Integer) a[7];
        int q0 = (Integer) a[8], rows = (Integer) a[9], hd = heads * d;
        float[] vf = floats(a[1], 0, len(a[1]));
        Parallel.range(bhCount * rows, 4, (w0, w1) -> {
            float[] p = new float[seqK], acc = new float[d];
            for (int w = w0; w < w1; w++) {
                int bh = w / rows, r = w % rows, b = bh / heads, h = bh % heads;
                load(a[0], w * seqK, p, seqK);
                java.util.Arrays.fill(acc, 0f);
                for (int j = 0; j < seqK; j++) if (p[j] != 0f) axpy(p[j], vf, (b * seqK + j) * hd + h * d, acc, 0, d);
                store(acc, a[2], (b * seqQ + q0 + r) * hd + h * d, d);
            }
        });
    }

    /** args: q, k, v, out, bhCount, heads, seqQ, seqK, D, scale, causal; one (batch, head, query) row per step, in parallel. */
    static void flashRef(Object[] a) {
        int bhCount = (Integer) a[4], heads = (Integer) a[5], seqQ = (Integer) a[6], seqK = (Integer) a[7], d = (Integer) a[8];
        float scale = (Float) a[9];
        boolean causal = (Integer) a[10] != 0;
        int hd = heads * d;
        float[] qf = floats(a[0], 0, len(a[0])), kf = floats(a[1], 0, len(a[1])), vf = floats(a[2], 0, len(a[2]));
        Parallel.range(bhCount * seqQ, 4, (w0, w1) -> {
            float[] row = new float[seqK], acc = new float[d];
            for (int w = w0; w < w1; w++) {
                int bh = w / seqQ, i = w % seqQ, b = bh / heads, h = bh % heads;
                int qo = (b * seqQ + i) * hd + h * d, valid = causal ? Math.min(seqK, i + 1) : seqK;
                for (int j = 0; j < valid; j++) row[j] = dot(qf, qo, kf, (b * seqK + j) * hd + h * d, d) * scale;
                Softmax.row(row, 0, valid, seqK, 1f);
                java.util.Arrays.fill(acc, 0f);
                for (int j = 0; j < valid; j++) axpy(row[j], vf, (b * seqK + j) * hd + h * d, acc, 0, d);
                store(acc, a[3], qo, d);
            }
        });
    }
}
