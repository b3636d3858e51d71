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
 * Kernels: attn_scores, attn_softmax, attn_pv, flash_attn (kernels/attention.cl) and, on CUDA, the tensor-core FLASH
 * kernels: flash_attn_f16_v2 (kernels/flash_mma.cu; cp.async double-buffered K/V, ldmatrix, 32 query rows per warp up to
 * head dim 64; head dims that are multiples of 8, 16-byte aligned buffers; -Djdiffusion.attention.f16flash=v1 keeps the
 * older one) else attention.cu's flash_attn_f16_mma for fp16, and flash_attn_tf32_v2 (the same design on m16n8k8 TF32, head
 * dims that are multiples of 4; opt-in with -Djdiffusion.attention.tf32flash=v2 until checked on a GPU) else flash_attn_tf32_mma
 * for fp32 buffers of a graph with
 * TaskGraph.tf32 set (operands rounded to tf32, softmax and accumulation in fp32). Strict fp32 (tf32 off) FLASH on CUDA runs
 * flash_attn_3xtf32_mma (flash_attn_tf32_mma built with -DFA_3XTF32): both products in "3xTF32", each fp32 operand
 * split into big = tf32(x) and small = tf32(x - big) and As*Bb + Ab*Bs + Ab*Bb accumulated in fp32 on the tensor cores,
 * softmax in fp32 as before: an fp32-accurate emulation (~1e-7 relative), not IEEE fp32 FMA order;
 * -Djdiffusion.fp32x3=false (see {@link Gemm#fp32x3}) keeps the portable flash_attn for strict fp32.
 * VANILLA / CHUNKED on CUDA run their two products on tensor cores too (attn_scores_mma_f16/_tf32, attn_pv_mma_f16/_tf32,
 * same score buffer and attn_softmax); strict fp32 keeps attn_scores / attn_pv. The score workspace [batch*heads, rows, seqK] (dtype of q)
 * is a TaskGraph.temp per call, which the graph's liveness plan shares between calls (without arena: one scratch
 * buffer per graph and dtype, grown when a larger call comes). A causal mask hides keys j > i
 * (top-left aligned, as torch's is_causal). Knobs: -Djdiffusion.attention.chunk (query rows per CHUNKED slice; default
 * sized so one slice of scores is at most -Djdiffusion.attention.chunkBytes, 64 MiB), -Djdiffusion.attention.mma=false
 * (CUDA fp16: the portable kernels for FLASH, VANILLA and CHUNKED), -Djdiffusion.attention.tf32mma=false (CUDA TF32: the
 * same), -Djdiffusion.attention.vanillaMma=false (CUDA: the portable attn_scores / attn_pv for VANILLA and CHUNKED only),
 * -Djdiffusion.attention.tf32Warps (warps per flash_attn_tf32_mma block, 16 query rows each; default 4).
 */
public final class Attention {
    private Attention() {
    }

    public enum Processor { VANILLA, CHUNKED, FLASH }

    static final int TS = 16, SOFTMAX_GROUP = 256, FLASH_ROWS = 64, MAX_Z = 65535;
    static final boolean MMA = Boolean.parseBoolean(System.getProperty("jdiffusion.attention.mma", "true"));
    static final boolean TF32_MMA = Boolean.parseBoolean(System.getProperty("jdiffusion.attention.tf32mma", "true"));
    static final boolean VANILLA_MMA = Boolean.parseBoolean(System.getProperty("jdiffusion.attention.vanillaMma", "true"));
    static final int TF32_WARPS = Math.max(1, Math.min(8, Integer.getInteger("jdiffusion.attention.tf32Warps", 4)));
    /** CUDA fp16 FLASH: flash_attn_f16_v2 (kernels/flash_mma.cu; "v2", default) or attention.cu's flash_attn_f16_mma ("v1"). */
    static final boolean F16_V2 = !"v1".equalsIgnoreCase(System.getProperty("jdiffusion.attention.f16flash", "v2"));
    /**
     * CUDA TF32 FLASH: flash_attn_tf32_v2 (kernels/flash_mma.cu with -DFM_TF32; "v2") or attention.cu's flash_attn_tf32_mma
     * ("v1", the default until v2 has passed on a GPU: it passes the CPU warp emulator and ptxas, not yet a device).
     */
    static final boolean TF32_V2 = "v2".equalsIgnoreCase(System.getProperty("jdiffusion.attention.tf32flash", "v1"));
    /** m16 row tiles per warp of flash_attn_f16_v2 (1 or 2; 0 = by head dim: 2 up to 64, else 1). */
    static final int V2_RM = Integer.getInteger("jdiffusion.attention.v2rm", 0);
    /** Largest padded head dim whose Q fragments flash_attn_tf32_mma keeps in registers (160: 245 registers, no spills). */
    static final int TF32_QREG_MAX = 160, TF32_MAX_DIM = 256;
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
        if (g.arena) return g.temp("attention.scores", dtype, length);
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
        String mma = vanillaMma(g.backend, q.dtype(), g.tf32);
        if (mma != null) {
            String options = "-DFA_NO_F16 -DFA_NO_TF32";
            long rowBlocks = Launch.cover(rows, 64) / 64;
            g.task("attn_scores_mma_" + mma, new Kernel("attention", "attn_scores_mma_" + mma, true, options, Attention::scoresRef),
                    new Launch(new long[]{Launch.cover(seqK, 64) / 64 * 128, rowBlocks, z}, new long[]{128, 1, 1}),
                    q, k, s, bh, heads, seqQ, seqK, d, scale, q0, rows);
            softmaxTask(g, o, s, bh * rows, rows, seqK, q0, causal);
            g.task("attn_pv_mma_" + mma, new Kernel("attention", "attn_pv_mma_" + mma, true, options, Attention::pvRef),
                    new Launch(new long[]{Launch.cover(d, 64) / 64 * 128, rowBlocks, z}, new long[]{128, 1, 1}),
                    s, v, out, bh, heads, seqQ, seqK, d, q0, rows);
            return;
        }
        g.task("attn_scores", new Kernel("attention", "attn_scores", false, o, Attention::scoresRef),
                new Launch(new long[]{Launch.cover(seqK, TS), Launch.cover(rows, TS), z}, new long[]{TS, TS, 1}),
                q, k, s, bh, heads, seqQ, seqK, d, scale, q0, rows);
        softmaxTask(g, o, s, bh * rows, rows, seqK, q0, causal);
        g.task("attn_pv", new Kernel("attention", "attn_pv", false, o, Attention::pvRef),
                new Launch(new long[]{Launch.cover(d, TS), Launch.cover(rows, TS), z}, new long[]{TS, TS, 1}),
                s, v, out, bh, heads, seqQ, seqK, d, q0, rows);
    }

    private static void softmaxTask(TaskGraph g, String o, Buffer s, int rowsTotal, int rows, int seqK, int q0, boolean causal) {
        g.task("attn_softmax", new Kernel("attention", "attn_softmax", false, o, Attention::softmaxRef),
                new Launch(new long[]{(long) rowsTotal * SOFTMAX_GROUP}, new long[]{SOFTMAX_GROUP}),
                s, rowsTotal, rows, seqK, q0, causal ? 1 : 0);
    }

    /** VANILLA / CHUNKED on tensor cores: "f16" (fp16 buffers), "tf32" (fp32 buffers of a TF32 graph) on CUDA, else null (attention.cl). */
    public static String vanillaMma(Backend backend, DType dtype, boolean tf32) {
        if (!"cuda".equals(backend.name()) || !VANILLA_MMA) return null;
        if (dtype == DType.F16 && MMA) return "f16";
        if (dtype == DType.F32 && tf32 && TF32_MMA) return "tf32";
        return null;
    }

    private static void flash(TaskGraph g, Buffer q, Buffer k, Buffer v, Buffer out, int bh, int heads, int seqQ, int seqK, int d, float scale, boolean causal) {
        String kernel = flashKernel(g.backend, q.dtype(), g.tf32, d);
        if (kernel.equals("flash_attn_f16_v2") && !(Gemm.aligned(q) && Gemm.aligned(k) && Gemm.aligned(v) && Gemm.aligned(out)))
            kernel = mmaConfig(d) != null ? "flash_attn_f16_mma" : "flash_attn";   // cp.async needs 16-byte aligned rows
        if (kernel.equals("flash_attn_tf32_v2") && !(Gemm.aligned(q) && Gemm.aligned(k) && Gemm.aligned(v) && Gemm.aligned(out)))
            kernel = "flash_attn_tf32_mma";
        if (kernel.equals("flash_attn_tf32_v2")) {
            int[] c = tf32V2Config(d);
            int rowsPerBlock = 16 * c[2] * c[3];
            g.task(kernel, new Kernel("flash_mma", kernel, true, tf32V2Options(d), Attention::flashRef),
                    new Launch(new long[]{(long) bh * 32 * c[3], Launch.cover(seqQ, rowsPerBlock) / rowsPerBlock}, new long[]{32L * c[3], 1}),
                    q, k, v, out, bh, heads, seqQ, seqK, d, scale, causal ? 1 : 0);
            return;
        }
        if (kernel.equals("flash_attn_f16_v2")) {
            int[] c = flashV2Config(d);
            int rowsPerBlock = 16 * c[2] * c[3];
            g.task("flash_attn_f16_v2", new Kernel("flash_mma", "flash_attn_f16_v2", true, v2Options(d), Attention::flashRef),
                    new Launch(new long[]{(long) bh * 32 * c[3], Launch.cover(seqQ, rowsPerBlock) / rowsPerBlock}, new long[]{32L * c[3], 1}),
                    q, k, v, out, bh, heads, seqQ, seqK, d, scale, causal ? 1 : 0);
            return;
        }
        if (kernel.equals("flash_attn_f16_mma")) {
            int nw = mmaConfig(d)[2], rowsPerBlock = 16 * nw;
            g.task(kernel, new Kernel("attention", kernel, true, f16Options(d), Attention::flashRef),
                    new Launch(new long[]{(long) bh * 32 * nw, Launch.cover(seqQ, rowsPerBlock) / rowsPerBlock}, new long[]{32L * nw, 1}),
                    q, k, v, out, bh, heads, seqQ, seqK, d, scale, causal ? 1 : 0);
            return;
        }
        if (kernel.equals("flash_attn_tf32_mma") || kernel.equals("flash_attn_3xtf32_mma")) {
            int nw = tf32MmaConfig(d)[2], rowsPerBlock = 16 * nw;
            String options = kernel.equals("flash_attn_tf32_mma") ? tf32Options(d) : x3Options(d);
            g.task(kernel, new Kernel("attention", kernel, true, options, Attention::flashRef),
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

    /** Compile options of flash_attn_f16_mma for head dim d (mmaConfig(d) must not be null). */
    static String f16Options(int d) {
        int[] c = mmaConfig(d);
        return "-DDP=" + c[0] + " -DBK=" + c[1] + " -DNW=" + c[2] + " -DVEC8=" + (d % 8 == 0 ? 1 : 0) + " -DFA_NO_TF32";
    }

    /**
     * {padded head dim (multiple of 16), keys per tile, m16 row tiles per warp, warps} of flash_attn_f16_v2 for head dim d, or
     * null when it does not apply (d % 8 != 0: its cp.async moves 16-byte rows). Two K/V stages (2 * 2 * keys * (dp + 8)
     * halves) within SMEM_LIMIT, and the Q tile (16 * rm * warps rows) fits one stage. Row tiles: 2 up to dp 64 (211
     * registers at 48, 244 at 64), 1 past it (255 registers at 80 with 2), or -Djdiffusion.attention.v2rm.
     */
    public static int[] flashV2Config(int d) {
        if (d <= 0 || d % 8 != 0) return null;
        int dp = (d + 15) / 16 * 16, nw = 4;
        int rm = V2_RM == 1 || V2_RM == 2 ? V2_RM : dp <= 64 ? 2 : 1;
        for (int bk : new int[]{64, 32, 16})
            if (2L * 2 * bk * (dp + 8) * 2 <= SMEM_LIMIT && 16 * rm * nw <= 2 * bk) return new int[]{dp, bk, rm, nw};
        return null;
    }

    /**
     * {padded head dim (multiple of 8), keys per tile, m16 row tiles per warp, warps} of flash_attn_tf32_v2 for head dim d,
     * or null when it does not apply (d % 4 != 0: 16-byte cp.async rows; past 160, where its register-resident Q and
     * accumulators would spill: flash_attn_tf32_mma). Two K/V stages (2 * 2 * keys * (dp + 4) words) within SMEM_LIMIT;
     * 2 row tiles up to dp 48 (217 registers at 40; 254 and spills at 80), else 1 (220 registers at 160).
     */
    public static int[] tf32V2Config(int d) {
        if (d <= 0 || d % 4 != 0 || d > 160) return null;
        int dp = (d + 7) / 8 * 8, nw = 4, rm = dp <= 48 ? 2 : 1;
        for (int bk : new int[]{64, 32, 16})
            if (2L * 2 * bk * (dp + 4) * 4 <= SMEM_LIMIT) return new int[]{dp, bk, rm, nw};
        return null;
    }

    /** Compile options of flash_attn_tf32_v2 for head dim d (tf32V2Config(d) must not be null). */
    static String tf32V2Options(int d) {
        int[] c = tf32V2Config(d);
        return "-DFM_TF32 -DDP=" + c[0] + " -DBK=" + c[1] + " -DRM=" + c[2] + " -DNW=" + c[3];
    }

    /** Compile options of flash_attn_f16_v2 for head dim d (flashV2Config(d) must not be null). */
    static String v2Options(int d) {
        int[] c = flashV2Config(d);
        return "-DDP=" + c[0] + " -DBK=" + c[1] + " -DRM=" + c[2] + " -DNW=" + c[3];
    }

    /** Compile options of flash_attn_tf32_mma for head dim d (tf32MmaConfig(d) must not be null). */
    static String tf32Options(int d) {
        int[] c = tf32MmaConfig(d);
        return "-DFA_NO_F16 -DTDP=" + c[0] + " -DTBK=" + c[1] + " -DTNW=" + c[2] + " -DTQREG=" + c[3] + " -DVEC4=" + (d % 4 == 0 ? 1 : 0);
    }

    /** Largest padded head dim whose raw fp32 Q fragments flash_attn_3xtf32_mma keeps in registers (64: 255 registers, no spills). */
    static final int X3_QREG_MAX = 64;

    /**
     * Compile options of flash_attn_3xtf32_mma (strict fp32) for head dim d (tf32MmaConfig(d) must not be null): as tf32Options
     * with -DFA_3XTF32, Q re-read per tile past X3_QREG_MAX, and at most 32 keys per tile past it (8 past 200) so the split
     * P fragments fit: no spills at 40, 64, 80, 160, 256 (ptxas, sm_90).
     */
    static String x3Options(int d) {
        int[] c = tf32MmaConfig(d);
        int bk = c[0] > 200 ? 8 : c[0] > X3_QREG_MAX ? Math.min(c[1], 32) : c[1];
        return "-DFA_NO_F16 -DFA_3XTF32 -DTDP=" + c[0] + " -DTBK=" + bk + " -DTNW=" + c[2] + " -DTQREG=" + (c[0] <= X3_QREG_MAX ? 1 : 0)
                + " -DVEC4=" + (d % 4 == 0 ? 1 : 0);
    }

    /** The kernel the FLASH processor runs for these buffers (16-byte aligned on CUDA): flash_attn_f16_v2, flash_attn_f16_mma, flash_attn_tf32_v2, flash_attn_tf32_mma, flash_attn_3xtf32_mma (strict fp32) or flash_attn. */
    public static String flashKernel(Backend backend, DType dtype, boolean tf32, int headDim) {
        boolean cuda = "cuda".equals(backend.name());
        if (cuda && dtype == DType.F16 && MMA && F16_V2 && flashV2Config(headDim) != null) return "flash_attn_f16_v2";
        if (cuda && dtype == DType.F16 && MMA && mmaConfig(headDim) != null) return "flash_attn_f16_mma";
        if (cuda && dtype == DType.F32 && tf32 && TF32_MMA && TF32_V2 && tf32V2Config(headDim) != null) return "flash_attn_tf32_v2";
        if (cuda && dtype == DType.F32 && tf32 && TF32_MMA && tf32MmaConfig(headDim) != null) return "flash_attn_tf32_mma";
        if (cuda && dtype == DType.F32 && !tf32 && TF32_MMA && Gemm.fp32x3() && tf32MmaConfig(headDim) != null) return "flash_attn_3xtf32_mma";
        return "flash_attn";
    }

    /**
     * {padded head dim (multiple of 8), keys per tile, warps, Q fragments in registers (1) or re-read per tile (0)} of
     * flash_attn_tf32_mma for head dim d, K and V tiles (2 * keys * (dp + 4) words) within SMEM_LIMIT; null past 256.
     */
    public static int[] tf32MmaConfig(int d) {
        int dp = (d + 7) / 8 * 8;
        if (d <= 0 || dp > TF32_MAX_DIM) return null;
        for (int bk : new int[]{64, 32, 16})
            if (2L * bk * (dp + 4) * 4 <= SMEM_LIMIT) return new int[]{dp, bk, TF32_WARPS, dp <= TF32_QREG_MAX ? 1 : 0};
        return null;
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
