package jdiffusion.kernels;

import java.util.EnumMap;
import java.util.Map;
import java.util.WeakHashMap;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
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
 * dims that are multiples of 4; -Djdiffusion.attention.tf32flash=v1 keeps the older one) else flash_attn_tf32_mma
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
     * ("v1"). v2 is the default since it passed the H100's CUDA tests (2026-11-26; TF32 batch-16 UNet step 177.8 -> 163.5 ms).
     */
    static final boolean TF32_V2 = !"v1".equalsIgnoreCase(System.getProperty("jdiffusion.attention.tf32flash", "v2"));
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
        boolean v2 = kernel.equals("flash_attn_f16_v2") || kernel.equals("flash_attn_tf32_v2");
        if (v2 && !(Gemm.aligned(q) && Gemm.aligned(k) && Gemm.aligned(v) && Gemm.aligned(out))) {   // cp.async needs 16-byte aligned rows
            kernel = kernel.equals("flash_attn_tf32_v2") ? "flash_attn_tf32_mma" : mmaConfig(d) != null ? "flash_attn_f16_mma" : "flash_attn";
            v2 = false;
        }
        if (v2) {   // kernels/flash_mma.cu: {padded dim, keys per tile, row tiles per warp, warps}
            boolean tf32 = kernel.equals("flash_attn_tf32_v2");
            int[] c = tf32 ? tf32V2Config(d) : flashV2Config(d);
            int rowsPerBlock = 16 * c[2] * c[3];
            g.task(kernel, new Kernel("flash_mma", kernel, true, tf32 ? tf32V2Options(d) : v2Options(d), Attention::flashRef),
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
        return "-DFM_TF32 " + flashMmaOptions(tf32V2Config(d));
    }

    /** Compile options of flash_attn_f16_v2 for head dim d (flashV2Config(d) must not be null). */
    static String v2Options(int d) {
        return flashMmaOptions(flashV2Config(d));
    }

    /** kernels/flash_mma.cu's defines for a config {padded dim, keys per tile, row tiles per warp, warps}. */
    private static String flashMmaOptions(int[] c) {
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
    //
    // The references work on tiles held in cache: a work item is one (batch, head) and a block of query rows, run against
    // K/V tiles of keysPerTile(d) keys. Its vectors run along the query rows: Q is transposed once per item to qT[c][r],
    // the score tile is sT[j][r] = scale * sum_c k[j][c] qT[c][r] (a broadcast key element times a vector of rows, fp32
    // FMA over the head dim in order), the softmax statistics are per lane (= per row), and the accumulator
    // oT[c][r] += v[j][c] sT[j][r] (fp32 FMA over the keys in order). K and V are read in place, never copied.
    // Exponentials are exp() below (inline FMAs, within 1 ulp of Math.exp). FLASH keeps a running max and sum per row
    // (online softmax; each tile's sum in fp32 lanes, the running sum in double), rescales the accumulator when the max
    // grows and divides by the sum at the end; VANILLA / CHUNKED round scores and probabilities to the buffer's dtype
    // between their tasks, as their kernels do.

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /** Query rows per work item of the Java references (rounded up to 2 vectors). */
    static final int JAVA_ROWS = Math.max(1, Integer.getInteger("jdiffusion.attention.javaRows", 32));
    /** Keys x head dim of one K/V tile of the Java references. */
    static final int JAVA_TILE = Math.max(64, Integer.getInteger("jdiffusion.attention.javaTile", 4096));

    /** Keys per K/V tile of the Java references for head dim d: a multiple of 4 in [32, 128]. */
    static int keysPerTile(int d) {
        return Math.max(32, Math.min(128, JAVA_TILE / d / 4 * 4));
    }

    private static final float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f, ROUND = 12582912f, EXP_MIN = -87.33654f;

    /**
     * exp(x) for x <= 0 lane-wise (the softmax exponentials: scores minus their running max), within 1 ulp of
     * (float) Math.exp(x) over [-80, 0] (measured over 1M points, mean 0.09 ulp), 0 below -87.3 and for -inf. Cephes' expf:
     * x = n ln2 + r (n = round(x log2e), ln2 in two parts), e^r = 1 + r + r^2 P(r) with P of degree 5, 2^n from the
     * exponent bits.
     * Inline FMAs instead of VectorOperators.EXP, which calls out to a math library once per vector.
     */
    static FloatVector exp(FloatVector x) {
        FloatVector xc = x.max(EXP_MIN);
        FloatVector t = xc.fma(FloatVector.broadcast(F, LOG2E), FloatVector.broadcast(F, ROUND));    // n in the low mantissa bits
        FloatVector n = t.sub(ROUND);
        FloatVector r = n.fma(FloatVector.broadcast(F, -LN2_HI), xc);
        r = n.fma(FloatVector.broadcast(F, -LN2_LO), r);
        FloatVector p = FloatVector.broadcast(F, 1.9875691500E-4f);
        p = p.fma(r, FloatVector.broadcast(F, 1.3981999507E-3f));
        p = p.fma(r, FloatVector.broadcast(F, 8.3334519073E-3f));
        p = p.fma(r, FloatVector.broadcast(F, 4.1665795894E-2f));
        p = p.fma(r, FloatVector.broadcast(F, 1.6666665459E-1f));
        p = p.fma(r, FloatVector.broadcast(F, 5.0000001201E-1f));
        p = p.fma(r.mul(r), r).add(1f);
        IntVector e = t.reinterpretAsInts().sub(Float.floatToRawIntBits(ROUND) - 127).lanewise(VectorOperators.LSHL, 23);
        return p.mul(e.reinterpretAsFloats()).blend(0f, x.compare(VectorOperators.LT, EXP_MIN));
    }

    private static int len(Object arr) {
        return java.lang.reflect.Array.getLength(arr);
    }

    private static int roundUp(int x, int m) {
        return (x + m - 1) / m * m;
    }

    /** Query rows per work item for up to {@code rows} rows: a multiple of 2 vectors. */
    private static int rowBlock(int rows) {
        return roundUp(Math.min(JAVA_ROWS, rows), 2 * L);
    }

    /** Per-thread working set of a work item of rp query rows (rp a multiple of 2 vectors): qT, the score tile, the accumulator. */
    private static final class Tiles {
        final int rp, d, tk;
        final float[] qT, sT, oT, m, f, ts, row;
        final double[] l;

        Tiles(int rp, int d) {
            this.rp = rp;
            this.d = d;
            this.tk = keysPerTile(d);
            qT = new float[d * rp];
            sT = new float[tk * rp];
            oT = new float[d * rp];
            m = new float[rp];
            f = new float[rp];
            ts = new float[rp];
            row = new float[Math.max(d, tk)];
            l = new double[rp];
        }

        /** qT[c][r] = element c of the nr rows at qo, qo + stride, ...; rows nr..rp zero. */
        void loadQ(float[] qf, int qo, int stride, int nr) {
            for (int r = 0; r < nr; r++)
                for (int c = 0, o = qo + r * stride; c < d; c++) qT[c * rp + r] = qf[o + c];
            if (nr < rp)
                for (int c = 0; c < d; c++) java.util.Arrays.fill(qT, c * rp + nr, c * rp + rp, 0f);
        }
    }

    /**
     * sT[j][0..rp) = scale * sum over c < d of k[ko + j * stride + c] * qT[c][0..rp) for keys j < n (rp a multiple of 2
     * vectors; fp32 FMA over c in order).
     */
    static void scoreTile(float[] kf, int ko, int stride, int n, float[] qT, int d, int rp, float[] sT, float scale) {
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            int k0 = ko + j * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride, s0 = j * rp;
            for (int rv = 0; rv < rp; rv += 2 * L) {
                FloatVector z = FloatVector.zero(F);
                FloatVector a00 = z, a01 = z, a10 = z, a11 = z, a20 = z, a21 = z, a30 = z, a31 = z;
                for (int c = 0, qo = rv; c < d; c++, qo += rp) {
                    FloatVector x0 = FloatVector.fromArray(F, qT, qo), x1 = FloatVector.fromArray(F, qT, qo + L);
                    FloatVector y = FloatVector.broadcast(F, kf[k0 + c]);
                    a00 = x0.fma(y, a00);
                    a01 = x1.fma(y, a01);
                    y = FloatVector.broadcast(F, kf[k1 + c]);
                    a10 = x0.fma(y, a10);
                    a11 = x1.fma(y, a11);
                    y = FloatVector.broadcast(F, kf[k2 + c]);
                    a20 = x0.fma(y, a20);
                    a21 = x1.fma(y, a21);
                    y = FloatVector.broadcast(F, kf[k3 + c]);
                    a30 = x0.fma(y, a30);
                    a31 = x1.fma(y, a31);
                }
                int o = s0 + rv;
                a00.mul(scale).intoArray(sT, o);
                a01.mul(scale).intoArray(sT, o + L);
                o += rp;
                a10.mul(scale).intoArray(sT, o);
                a11.mul(scale).intoArray(sT, o + L);
                o += rp;
                a20.mul(scale).intoArray(sT, o);
                a21.mul(scale).intoArray(sT, o + L);
                o += rp;
                a30.mul(scale).intoArray(sT, o);
                a31.mul(scale).intoArray(sT, o + L);
            }
        }
        for (; j < n; j++) {
            int k0 = ko + j * stride;
            for (int rv = 0; rv < rp; rv += 2 * L) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0;
                for (int c = 0, qo = rv; c < d; c++, qo += rp) {
                    FloatVector y = FloatVector.broadcast(F, kf[k0 + c]);
                    a0 = FloatVector.fromArray(F, qT, qo).fma(y, a0);
                    a1 = FloatVector.fromArray(F, qT, qo + L).fma(y, a1);
                }
                a0.mul(scale).intoArray(sT, j * rp + rv);
                a1.mul(scale).intoArray(sT, j * rp + rv + L);
            }
        }
    }

    /**
     * oT[c][0..rp) += sum over keys j < n of v[vo + j * stride + c] * sT[j][0..rp) for c < d (rp a multiple of 2 vectors;
     * fp32 FMA over j in order).
     */
    static void pvTile(float[] vf, int vo, int stride, int n, float[] sT, int rp, float[] oT, int d) {
        int c = 0;
        for (; c + 4 <= d; c += 4)
            for (int rv = 0; rv < rp; rv += 2 * L) {
                int o0 = c * rp + rv, o1 = o0 + rp, o2 = o1 + rp, o3 = o2 + rp;
                FloatVector a00 = FloatVector.fromArray(F, oT, o0), a01 = FloatVector.fromArray(F, oT, o0 + L);
                FloatVector a10 = FloatVector.fromArray(F, oT, o1), a11 = FloatVector.fromArray(F, oT, o1 + L);
                FloatVector a20 = FloatVector.fromArray(F, oT, o2), a21 = FloatVector.fromArray(F, oT, o2 + L);
                FloatVector a30 = FloatVector.fromArray(F, oT, o3), a31 = FloatVector.fromArray(F, oT, o3 + L);
                for (int j = 0, v = vo + c, so = rv; j < n; j++, v += stride, so += rp) {
                    FloatVector p0 = FloatVector.fromArray(F, sT, so), p1 = FloatVector.fromArray(F, sT, so + L);
                    FloatVector y = FloatVector.broadcast(F, vf[v]);
                    a00 = p0.fma(y, a00);
                    a01 = p1.fma(y, a01);
                    y = FloatVector.broadcast(F, vf[v + 1]);
                    a10 = p0.fma(y, a10);
                    a11 = p1.fma(y, a11);
                    y = FloatVector.broadcast(F, vf[v + 2]);
                    a20 = p0.fma(y, a20);
                    a21 = p1.fma(y, a21);
                    y = FloatVector.broadcast(F, vf[v + 3]);
                    a30 = p0.fma(y, a30);
                    a31 = p1.fma(y, a31);
                }
                a00.intoArray(oT, o0);
                a01.intoArray(oT, o0 + L);
                a10.intoArray(oT, o1);
                a11.intoArray(oT, o1 + L);
                a20.intoArray(oT, o2);
                a21.intoArray(oT, o2 + L);
                a30.intoArray(oT, o3);
                a31.intoArray(oT, o3 + L);
            }
        for (; c < d; c++)
            for (int rv = 0; rv < rp; rv += 2 * L) {
                int o0 = c * rp + rv;
                FloatVector a0 = FloatVector.fromArray(F, oT, o0), a1 = FloatVector.fromArray(F, oT, o0 + L);
                for (int j = 0, v = vo + c, so = rv; j < n; j++, v += stride, so += rp) {
                    FloatVector y = FloatVector.broadcast(F, vf[v]);
                    a0 = FloatVector.fromArray(F, sT, so).fma(y, a0);
                    a1 = FloatVector.fromArray(F, sT, so + L).fma(y, a1);
                }
                a0.intoArray(oT, o0);
                a1.intoArray(oT, o0 + L);
            }
    }

    /**
     * In place on v[off, off + cols): softmax over the first {@code valid} entries (max subtracted, the sum in double), zeros
     * after them; v has room for cols rounded up to the vector length.
     */
    static void softmaxRow(float[] v, int off, int valid, int cols) {
        int vp = roundUp(valid, L);
        java.util.Arrays.fill(v, off + valid, off + vp, Float.NEGATIVE_INFINITY);
        FloatVector mx = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < vp; j += L) mx = mx.max(FloatVector.fromArray(F, v, off + j));
        FloatVector mv = FloatVector.broadcast(F, mx.reduceLanes(VectorOperators.MAX));
        double sum = 0;
        for (int j0 = 0; j0 < vp; j0 += 256) {            // fp32 lanes over 256 entries at a time, the blocks summed in double
            int j1 = Math.min(vp, j0 + 256);
            FloatVector acc = FloatVector.zero(F);
            for (int j = j0; j < j1; j += L) {
                FloatVector e = exp(FloatVector.fromArray(F, v, off + j).sub(mv));
                e.intoArray(v, off + j);
                acc = acc.add(e);
            }
            for (int i = 0; i < L; i++) sum += acc.lane(i);   // in lane order, not reduceLanes' (its order differs interpreted and compiled)
        }
        FloatVector inv = FloatVector.broadcast(F, 1f / (float) sum);
        for (int j = 0; j < vp; j += L) FloatVector.fromArray(F, v, off + j).mul(inv).intoArray(v, off + j);
        java.util.Arrays.fill(v, off + valid, off + Math.max(valid, cols), 0f);
    }

    /** src[so, so + n) into a float[] or fp16 short[] (round to nearest even) from element off. */
    private static void storeRow(float[] src, int so, Object arr, int off, int n) {
        if (arr instanceof float[] f) System.arraycopy(src, so, f, off, n);
        else {
            short[] h = (short[]) arr;
            for (int i = 0; i < n; i++) h[off + i] = Float.floatToFloat16(src[so + i]);
        }
    }

    /** n elements of a float[] or fp16 short[] from element off into dst[so, so + n). */
    private static void loadRow(Object arr, int off, float[] dst, int so, int n) {
        if (arr instanceof float[] f) System.arraycopy(f, off, dst, so, n);
        else {
            short[] h = (short[]) arr;
            for (int i = 0; i < n; i++) dst[so + i] = Float.float16ToFloat(h[off + i]);
        }
    }

    /** args: q, k, s, bhCount, heads, seqQ, seqK, D, scale, q0, rows: s [bh][rows][seqK] = scale q k^T for query rows q0... */
    static void scoresRef(Object[] a) {
        int bhCount = (Integer) a[3], heads = (Integer) a[4], seqQ = (Integer) a[5], seqK = (Integer) a[6], d = (Integer) a[7];
        float scale = (Float) a[8];
        int q0 = (Integer) a[9], rows = (Integer) a[10], hd = heads * d;
        float[] qf = floats(a[0], 0, len(a[0])), kf = floats(a[1], 0, len(a[1]));
        int rp = rowBlock(rows), blocks = (rows + rp - 1) / rp;
        Parallel.range(bhCount * blocks, 1, (w0, w1) -> {
            Tiles t = new Tiles(rp, d);
            for (int w = w0; w < w1; w++) {
                int bh = w / blocks, r0 = w % blocks * rp, nr = Math.min(rp, rows - r0), b = bh / heads, h = bh % heads;
                t.loadQ(qf, (b * seqQ + q0 + r0) * hd + h * d, hd, nr);
                for (int j0 = 0; j0 < seqK; j0 += t.tk) {
                    int n = Math.min(t.tk, seqK - j0);
                    scoreTile(kf, (b * seqK + j0) * hd + h * d, hd, n, t.qT, d, rp, t.sT, scale);
                    for (int r = 0; r < nr; r++) {
                        for (int j = 0; j < n; j++) t.row[j] = t.sT[j * rp + r];
                        storeRow(t.row, 0, a[2], (bh * rows + r0 + r) * seqK + j0, n);
                    }
                }
            }
        });
    }

    /** args: s, rowsTotal, rows, seqK, q0, causal (in place). */
    static void softmaxRef(Object[] a) {
        int rowsTotal = (Integer) a[1], rows = (Integer) a[2], seqK = (Integer) a[3], q0 = (Integer) a[4];
        boolean causal = (Integer) a[5] != 0;
        Parallel.range(rowsTotal, 8, (r0, r1) -> {
            float[] row = new float[roundUp(seqK, L)];
            for (int r = r0; r < r1; r++) {
                int i = q0 + r % rows;
                loadRow(a[0], r * seqK, row, 0, seqK);
                softmaxRow(row, 0, causal ? Math.min(seqK, i + 1) : seqK, seqK);
                storeRow(row, 0, a[0], r * seqK, seqK);
            }
        });
    }

    /** args: p, v, out, bhCount, heads, seqQ, seqK, D, q0, rows. */
    static void pvRef(Object[] a) {
        int bhCount = (Integer) a[3], heads = (Integer) a[4], seqQ = (Integer) a[5], seqK = (Integer) a[6], d = (Integer) a[7];
        int q0 = (Integer) a[8], rows = (Integer) a[9], hd = heads * d;
        float[] vf = floats(a[1], 0, len(a[1]));
        int rp = rowBlock(rows), blocks = (rows + rp - 1) / rp;
        Parallel.range(bhCount * blocks, 1, (w0, w1) -> {
            Tiles t = new Tiles(rp, d);
            for (int w = w0; w < w1; w++) {
                int bh = w / blocks, r0 = w % blocks * rp, nr = Math.min(rp, rows - r0), b = bh / heads, h = bh % heads;
                java.util.Arrays.fill(t.oT, 0f);
                java.util.Arrays.fill(t.sT, 0f);
                for (int j0 = 0; j0 < seqK; j0 += t.tk) {
                    int n = Math.min(t.tk, seqK - j0);
                    for (int r = 0; r < nr; r++) {
                        loadRow(a[0], (bh * rows + r0 + r) * seqK + j0, t.row, 0, n);
                        for (int j = 0; j < n; j++) t.sT[j * rp + r] = t.row[j];
                    }
                    pvTile(vf, (b * seqK + j0) * hd + h * d, hd, n, t.sT, rp, t.oT, d);
                }
                for (int r = 0; r < nr; r++) {
                    for (int c = 0; c < d; c++) t.row[c] = t.oT[c * rp + r];
                    storeRow(t.row, 0, a[2], (b * seqQ + q0 + r0 + r) * hd + h * d, d);
                }
            }
        });
    }

    /**
     * args: q, k, v, out, bhCount, heads, seqQ, seqK, D, scale, causal. Work items of one (batch, head) and a block of
     * query rows, in parallel; per K/V tile: the scores, the online softmax update (running max, rescaled accumulator and
     * sum) and P V; out = accumulator / sum.
     */
    static void flashRef(Object[] a) {
        int bhCount = (Integer) a[4], heads = (Integer) a[5], seqQ = (Integer) a[6], seqK = (Integer) a[7], d = (Integer) a[8];
        float scale = (Float) a[9];
        boolean causal = (Integer) a[10] != 0;
        int hd = heads * d;
        float[] qf = floats(a[0], 0, len(a[0])), kf = floats(a[1], 0, len(a[1])), vf = floats(a[2], 0, len(a[2]));
        int rp = rowBlock(seqQ), blocks = (seqQ + rp - 1) / rp;
        Parallel.range(bhCount * blocks, 1, (w0, w1) -> {
            Tiles t = new Tiles(rp, d);
            float[] sT = t.sT, oT = t.oT, m = t.m, f = t.f, ts = t.ts;
            double[] l = t.l;
            for (int w = w0; w < w1; w++) {
                int bh = w / blocks, i0 = w % blocks * rp, nr = Math.min(rp, seqQ - i0), b = bh / heads, h = bh % heads;
                int keyEnd = causal ? Math.min(seqK, i0 + nr) : seqK;
                t.loadQ(qf, (b * seqQ + i0) * hd + h * d, hd, nr);
                java.util.Arrays.fill(oT, 0f);
                java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
                java.util.Arrays.fill(l, 0);
                for (int j0 = 0; j0 < keyEnd; j0 += t.tk) {
                    int n = Math.min(t.tk, keyEnd - j0), ko = (b * seqK + j0) * hd + h * d;
                    scoreTile(kf, ko, hd, n, t.qT, d, rp, sT, scale);
                    if (causal)                                        // key j0 + j is hidden from rows i0 + r < j0 + j
                        for (int j = 0; j < n; j++) {
                            int hidden = Math.min(rp, j0 + j - i0);
                            if (hidden > 0) java.util.Arrays.fill(sT, j * rp, j * rp + hidden, Float.NEGATIVE_INFINITY);
                        }
                    boolean rescale = false;
                    for (int rv = 0; rv < rp; rv += L) {
                        FloatVector mOld = FloatVector.fromArray(F, m, rv), mNew = mOld;
                        for (int j = 0, so = rv; j < n; j++, so += rp) mNew = mNew.max(FloatVector.fromArray(F, sT, so));
                        FloatVector sum = FloatVector.zero(F);
                        for (int j = 0, so = rv; j < n; j++, so += rp) {
                            FloatVector e = exp(FloatVector.fromArray(F, sT, so).sub(mNew));
                            e.intoArray(sT, so);
                            sum = sum.add(e);
                        }
                        sum.intoArray(ts, rv);
                        mNew.intoArray(m, rv);
                        if (j0 > 0) {                                  // (the first tile starts from zero, whatever its max)
                            FloatVector fac = exp(mOld.sub(mNew));
                            fac.intoArray(f, rv);
                            rescale |= fac.compare(VectorOperators.NE, 1f).anyTrue();
                        }
                    }
                    if (j0 == 0)
                        for (int r = 0; r < rp; r++) l[r] = ts[r];
                    else
                        for (int r = 0; r < rp; r++) l[r] = l[r] * f[r] + ts[r];
                    if (rescale)
                        for (int c = 0; c < d; c++)
                            for (int rv = 0, o = c * rp; rv < rp; rv += L, o += L)
                                FloatVector.fromArray(F, oT, o).mul(FloatVector.fromArray(F, f, rv)).intoArray(oT, o);
                    pvTile(vf, ko, hd, n, sT, rp, oT, d);
                }
                float[] row = t.row;
                for (int r = 0; r < nr; r++) {
                    float inv = (float) (1.0 / l[r]);
                    for (int c = 0; c < d; c++) row[c] = oT[c * rp + r] * inv;
                    storeRow(row, 0, a[3], (b * seqQ + i0 + r) * hd + h * d, d);
                }
            }
        });
    }
}
