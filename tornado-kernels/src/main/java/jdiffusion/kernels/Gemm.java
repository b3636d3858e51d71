package jdiffusion.kernels;

import java.util.Arrays;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * GEMM family: fp32, TF32 (graph.tf32) and fp16-in/fp32-accumulate; tensor cores (mma.sync) on CUDA.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 *
 * <p>Versions, llm.c style: (0) the Java reference below ({@link #reference}: cache-blocked, multi-threaded,
 * Vector API micro-kernel with a scalar fallback; fp16 is read as float, accumulated in fp32 and rounded once);
 * (1) {@code gemm_tiled_f32/_f16} in kernels/gemm.cl: local-memory tiles with register blocking, portable
 * OpenCL/CUDA; (2) {@code gemm_tc_f16/_tf32} in kernels/gemm.cu: mma.sync tensor cores, CUDA sm_80+ only;
 * (3) {@code gemm_mma_f16/_tf32} in kernels/gemm_mma.cu: cp.async 3-stage pipeline, ldmatrix from swizzled shared
 * memory, split-K with a reduction task when the output tiles fill less than a wave (checked on the CPU by
 * src/test/cuda/gemm_mma_emulator.cpp). CUDA picks (3) when K is a multiple of 8 halves / 4 floats, else (2);
 * -Djdiffusion.gemm.v2=false keeps (2). Version-3 kernels take seven more arguments: {@code (..., ws, splits, kPer, res, hasRes, beta, outHw)}
 * (split-K, the residual epilogue and the channels-first output below; the GEGLU kernels the first three only).
 * (4) -Djdiffusion.gemm.wgmma (default true): {@code gemm_wgmma_f16} in kernels/gemm_wgmma.cu, Hopper wgmma tensor cores
 * (sm_90a, compute capability 9.0 only), the version-3 arguments and epilogue, for the fp16 transB GEMMs with K % 64 == 0,
 * never split along K (2.2-3x faster than version 3 on the SD1.5 shapes on an H100; bench/cuda/wgmma_check.sh); with
 * it the fp16 GEGLU runs {@code gemm_wgmma_geglu_f16} (1.7-1.8x) and Conv2d's one-split fp16 version-4 convs
 * with cIn % 64 == 0 {@code conv2d_wgmma_f16} (2.0-2.8x conv2d_v3_f16), both from the same module. TF32 graphs (F32
 * buffers, {@code graph.tf32}) take the module's TF32 kernels alike (K % 32 == 0, cIn % 32 == 0, one split):
 * {@code gemm_wgmma_tf32} (1.3-2.9x gemm_mma_tf32 with its split plan), {@code gemm_wgmma_geglu_tf32} (2.0-2.2x) and
 * {@code conv2d_wgmma_tf32} (2.0-3.3x conv2d_v3_tf32; bench/cuda/wgmma_tf32_check.sh).
 *
 * <p>Strict fp32 on CUDA (F32 buffers, {@code graph.tf32} off) runs {@code gemm_mma_3xtf32} (and Conv2d's
 * {@code conv2d_mma_3xtf32}): the version-3 kernels built with -DJD_3XTF32, which split each fp32 operand into
 * {@code big = tf32(x)} and {@code small = tf32(x - big)} and accumulate {@code As*Bb + Ab*Bs + Ab*Bb} in fp32 on TF32
 * tensor cores. This "3xTF32" is an fp32-accurate emulation (relative error ~1e-7, well within the fp32 tolerance of
 * 1e-5 rel L2), not IEEE fp32 FMA order: results differ from a SIMT fp32 GEMM in the last bits. Where version 3 does
 * not apply (K not a multiple of 4, unaligned buffers, min(m, n) < tcMin) strict fp32 stays on the SIMT tiled kernels.
 * -Djdiffusion.fp32x3=false (read per graph built) keeps strict fp32 on the SIMT kernels everywhere;
 * -Djdiffusion.fp32x3.minBlocks (1) is the kernels' __launch_bounds__ minimum blocks per SM (1: ~205 registers, no
 * spills, one block per SM; 2: 128 registers with ~300 bytes spilled). Each stage's 6 mmas per tile go into a zeroed
 * stage sum that is added to the accumulators in fp32, since the tensor cores round their fp32 sums toward zero.
 *
 * <p>All GEMM kernels share one argument list (device kernels and Java reference alike):
 * {@code (a, b, bias, c, int batch, int m, int n, int k, int transB, int hasBias, float alpha)} computing
 * {@code c[i] = alpha * a[i] . op(b[i]) + bias} with a [m,k], b [n,k] (transB=1) or [k,n] (transB=0), bias [n],
 * c [m,n], row-major, batches contiguous. Without a bias the kernel gets {@code hasBias=0} and {@code c} as a
 * dummy bias buffer it never reads.
 *
 * <p>Fused epilogues (-Djdiffusion.fuse in the engine decides whether it asks for them): a residual,
 * {@code c = (alpha * a . op(b) + bias + residual) * beta} ({@link #linear(TaskGraph, Buffer, Buffer, Buffer, Buffer, float, Buffer, int, int, int)},
 * {@link #matmul(TaskGraph, Buffer, Buffer, Buffer, float, Buffer, int, int, int, int, boolean, float)}), and GEGLU,
 * {@code out = value * gelu(gate)} straight from the accumulators of net.0.proj ({@link #linearGeglu}, weights in
 * {@link #gegluInterleave}'s order); and a channels-first output for token rows ({@link #linearToChannels}: proj_out,
 * its transpose back to [b, c, h, w] and the residual). The version-3 kernels compute them in their epilogue (and in the split-K reduce
 * kernels); the java backend runs the same task layout through the kernels' Java references (one split), so the fused
 * math is what the JVM computes too; elsewhere (OpenCL, CUDA shapes version 3 does not take) the GEMM is followed by
 * an in-place {@code add_scaled} or by {@code geglu_interleaved}: the same values up to fp16 rounding of the product.
 */
public final class Gemm {
    private Gemm() {
    }

    /** Tuning knobs (system properties). */
    static final boolean TENSOR_CORES = Boolean.parseBoolean(System.getProperty("jdiffusion.gemm.tensorCores", "true"));
    static final int TC_MIN = Integer.getInteger("jdiffusion.gemm.tcMin", 32);
    static final String TILE = System.getProperty("jdiffusion.gemm.tile", "auto");
    static final int JAVA_TILE = Integer.getInteger("jdiffusion.gemm.javaTile", 64);
    static final int JAVA_KBLOCK = Integer.getInteger("jdiffusion.gemm.javaKBlock", 512);
    static final boolean SIMD = Boolean.parseBoolean(System.getProperty("jdiffusion.gemm.simd", "true"))
            && ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();

    static final String LARGE_TILE = "-DTILE_M=128 -DTILE_N=128 -DREG_M=8 -DREG_N=8";
    public static final Kernel TILED_F32 = new Kernel("gemm", "gemm_tiled_f32", false, "", Gemm::reference);
    public static final Kernel TILED_F16 = new Kernel("gemm", "gemm_tiled_f16", false, "-DJD_HALF", Gemm::reference);
    public static final Kernel TILED_F32_LARGE = new Kernel("gemm", "gemm_tiled_f32", false, LARGE_TILE, Gemm::reference);
    public static final Kernel TILED_F16_LARGE = new Kernel("gemm", "gemm_tiled_f16", false, "-DJD_HALF " + LARGE_TILE, Gemm::reference);
    /** A few rows against a large weight (time_emb_proj): one work group per output column (kernels/gemm.cl). */
    public static final Kernel SKINNY_F32 = new Kernel("gemm", "gemm_skinny_f32", false, "", Gemm::reference);
    public static final Kernel SKINNY_F16 = new Kernel("gemm", "gemm_skinny_f16", false, "-DJD_HALF", Gemm::reference);
    /** gemm_skinny: at most this many rows (its SK_MAXM), work items per column (SK_GROUP); -Djdiffusion.gemm.skinny=false turns it off. */
    static final int SKINNY_MAX_M = 16, SKINNY_GROUP = 64;
    static final boolean SKINNY = Boolean.parseBoolean(System.getProperty("jdiffusion.gemm.skinny", "true"));
    public static final Kernel TC_F16 = new Kernel("gemm", "gemm_tc_f16", true, "", Gemm::reference);
    public static final Kernel TC_TF32 = new Kernel("gemm", "gemm_tc_tf32", true, "", Gemm::reference);

    /** out[m,n] = x[m,k] . weight[n,k]^T + bias[n] (PyTorch Linear layout; bias may be null). */
    public static void linear(TaskGraph g, Buffer x, Buffer weight, Buffer bias, Buffer out, int m, int n, int k) {
        linear(g, x, weight, bias, null, 1f, out, m, n, k);
    }

    /**
     * out[m,n] = (x[m,k] . weight[n,k]^T + bias[n] + residual[m,n]) * beta: a Linear followed by a residual connection
     * (and an output scale), fused into the GEMM's epilogue where the backend can; residual null: the plain Linear.
     */
    public static void linear(TaskGraph g, Buffer x, Buffer weight, Buffer bias, Buffer residual, float beta, Buffer out, int m, int n, int k) {
        String task = "linear[m=" + m + ",n=" + n + ",k=" + k + (residual != null ? ",residual" : "") + "]";
        gemm(g, task, x, weight, bias, residual, beta, out, 1, m, n, k, true, 1f);
    }

    /** c[i] (m x n) = alpha * a[i] (m x k) . (transB ? b[i] (n x k)^T : b[i] (k x n)) for i in [0, batch), contiguous batches. */
    public static void matmul(TaskGraph g, Buffer a, Buffer b, Buffer c, int batch, int m, int n, int k, boolean transB, float alpha) {
        matmul(g, a, b, null, 1f, c, batch, m, n, k, transB, alpha);
    }

    /** c[i] = (alpha * a[i] . op(b[i]) + residual[i]) * beta, residual [batch, m, n] (null: the plain matmul). */
    public static void matmul(TaskGraph g, Buffer a, Buffer b, Buffer residual, float beta, Buffer c, int batch, int m, int n, int k, boolean transB, float alpha) {
        String task = "matmul[batch=" + batch + ",m=" + m + ",n=" + n + ",k=" + k + (transB ? ",transB" : "") + (residual != null ? ",residual" : "") + "]";
        gemm(g, task, a, b, null, residual, beta, c, batch, m, n, k, transB, alpha);
    }

    /**
     * out[img, n, p] = ((x[img*hw + p, k] . weight[n,k]^T + bias[n]) + residual[img, n, p]) * beta for img < images, p < hw: a
     * Linear over token rows written back channels-first ([images, hw, n] transposed to [images, n, hw]) with a residual
     * in that layout (null: none), e.g. Transformer2DModel's proj_out + transpose + residual. Version 3 (CUDA) and the java
     * backend do it in the GEMM's epilogue; elsewhere: the Linear into a temp, Resample.transpose, add_scaled in place.
     */
    public static void linearToChannels(TaskGraph g, Buffer x, Buffer weight, Buffer bias, Buffer residual, float beta, Buffer out, int images, int hw, int n, int k) {
        String task = "linear_to_channels[images=" + images + ",hw=" + hw + ",n=" + n + ",k=" + k + (residual != null ? ",residual" : "") + "]";
        if (images < 1 || hw < 1 || n < 1 || k < 1) throw new KernelException("task " + task + " in graph " + g.name + ": dimensions must be >= 1");
        long rows = (long) images * hw;
        if (rows > Integer.MAX_VALUE) throw new KernelException("task " + task + ": " + rows + " rows");
        int m = (int) rows;
        DType dt = out.dtype();
        requireBuffer(task, "x", x, dt, rows * k);
        requireBuffer(task, "weight", weight, dt, (long) n * k);
        requireBuffer(task, "out", out, dt, rows * n);
        if (bias != null) requireBuffer(task, "bias", bias, dt, n);
        if (residual != null) requireBuffer(task, "residual", residual, dt, rows * n);
        if (out == x || out == weight || out == bias || out == residual) throw new KernelException("task " + task + ": output buffer " + out + " aliases an input");
        if (mma(g, dt, m, n, k, x, weight) || javaFused(g)) {
            appendMma(g, task, x, weight, bias, residual, beta, hw, out, 1, m, n, k, true, 1f, javaFused(g) ? split(k, dt, 1) : splitPlan(g, 1, m, n, k, dt));
            return;
        }
        Buffer tokens = g.temp(task + "/tokens", dt, rows * n);                     // [images, hw, n]
        gemm(g, task, x, weight, bias, null, 1f, tokens, 1, m, n, k, true, 1f);
        Resample.transpose(g, tokens, out, images, hw, n);                          // [images, n, hw]
        if (residual != null) Elementwise.addScaled(g, out, residual, out, rows * n, beta);
    }

    /**
     * diffusers' GEGLU on the output of net.0.proj without storing it: out[m, inner] = h * gelu(gate) where [h, gate] =
     * x[m,k] . weight^T + bias, weight [2*inner, k] and bias [2*inner] uploaded in {@link #gegluInterleave}'s row order
     * (inner % 8 == 0). Version 3 (CUDA) and the java backend fuse it into the GEMM; elsewhere the GEMM writes the
     * permuted [m, 2*inner] into a temp and {@link Elementwise#gegluInterleaved} finishes.
     */
    public static void linearGeglu(TaskGraph g, Buffer x, Buffer weight, Buffer bias, Buffer out, int m, int inner, int k) {
        String task = "linear_geglu[m=" + m + ",inner=" + inner + ",k=" + k + "]";
        if (m < 1 || inner < 1 || k < 1) throw new KernelException("task " + task + " in graph " + g.name + ": dimensions must be >= 1");
        if (inner % 8 != 0) throw new KernelException("task " + task + ": inner " + inner + " is not a multiple of 8 (the interleaved GEGLU layout)");
        DType dt = out.dtype();
        int n = 2 * inner;
        requireBuffer(task, "x", x, dt, (long) m * k);
        requireBuffer(task, "weight", weight, dt, (long) n * k);
        requireBuffer(task, "out", out, dt, (long) m * inner);
        if (bias != null) requireBuffer(task, "bias", bias, dt, n);
        if (out == x || out == weight || out == bias) throw new KernelException("task " + task + ": output buffer " + out + " aliases an input");
        if (mma(g, dt, m, n, k, x, weight) || javaFused(g)) {
            appendMmaGeglu(g, task, x, weight, bias, out, 1, m, n, k, true, 1f, javaFused(g) ? split(k, dt, 1) : splitPlan(g, 1, m, n, k, dt));
            return;
        }
        Buffer proj = g.temp(task + "/proj", dt, (long) m * n);                    // [m, 2*inner], permuted columns
        gemm(g, task, x, weight, bias, null, 1f, proj, 1, m, n, k, true, 1f);
        Elementwise.gegluInterleaved(g, proj, out, m, inner);
    }

    /**
     * Host-side row permutation of net.0.proj's weight [2*inner][cols] (cols = in_features; bias: cols = 1) for
     * {@link #linearGeglu}: row 16*q + r is hidden unit 8*q + r for r < 8, else gate unit 8*q + r - 8 (the source row
     * inner + 8*q + r - 8). inner % 8 == 0.
     */
    public static float[] gegluInterleave(float[] w, int inner, int cols) {
        if (inner % 8 != 0 || w.length != 2L * inner * cols)
            throw new IllegalArgumentException("GEGLU interleave: " + w.length + " values are not [2*" + inner + "][" + cols + "] with inner % 8 == 0");
        float[] out = new float[w.length];
        for (int row = 0; row < 2 * inner; row++) {
            int q = row >> 4, r = row & 15, src = r < 8 ? 8 * q + r : inner + 8 * q + r - 8;
            System.arraycopy(w, src * cols, out, row * cols, cols);
        }
        return out;
    }

    /** The java backend takes the version-3 task layout (one split) for fused epilogues: their references are the fused math. */
    static boolean javaFused(TaskGraph g) {
        return g.backend instanceof JavaBackend;
    }

    /** Selects the kernel for the backend, dtype, precision and shape, validates, and appends the launch (and the residual epilogue). */
    static void gemm(TaskGraph g, String task, Buffer a, Buffer b, Buffer bias, Buffer residual, float beta, Buffer c, int batch, int m, int n, int k,
                     boolean transB, float alpha) {
        if (batch < 1 || m < 1 || n < 1 || k < 1)
            throw new KernelException("task " + task + " in graph " + g.name + ": dimensions must be >= 1");
        DType dt = c.dtype();
        requireBuffer(task, "a", a, dt, (long) batch * m * k);
        requireBuffer(task, "b", b, dt, (long) batch * n * k);
        requireBuffer(task, "c", c, dt, (long) batch * m * n);
        if (bias != null) requireBuffer(task, "bias", bias, dt, n);
        if (residual != null) requireBuffer(task, "residual", residual, dt, (long) batch * m * n);
        if (c == a || c == b || (bias != null && c == bias) || c == residual)
            throw new KernelException("task " + task + ": output buffer " + c + " aliases an input");
        if (mma(g, dt, m, n, k, a, b) || (residual != null && javaFused(g))) {
            Split sp = javaFused(g) ? split(k, dt, 1) : splitPlan(g, batch, m, n, k, dt);
            appendMma(g, task, a, b, bias, residual, beta, c, batch, m, n, k, transB, alpha, sp);
            return;
        }
        Kernel kernel = skinny(dt, m, n, k, transB) ? (dt == DType.F16 ? SKINNY_F16 : SKINNY_F32) : select(g, dt, m, n, task);
        Launch launch = kernel == SKINNY_F16 || kernel == SKINNY_F32 ? new Launch(new long[]{(long) n * SKINNY_GROUP, batch}, new long[]{SKINNY_GROUP, 1})
                : kernel.cudaOnly() ? tcLaunch(m, n, batch) : tiledLaunch(kernel, m, n, batch);
        g.task(task, kernel, launch, a, b, bias == null ? c : bias, c, batch, m, n, k, transB ? 1 : 0, bias == null ? 0 : 1, alpha);
        if (residual != null) Elementwise.addScaled(g, c, residual, c, (long) batch * m * n, beta);   // in place: c = (c + residual) * beta
    }

    // ---------------------------------------------------------------------------------------------------------
    // Version 3: kernels/gemm_mma.cu (cp.async pipeline, ldmatrix, split-K), CUDA only; the fallback is version 2.

    public static final Kernel MMA_F16 = new Kernel("gemm_mma", "gemm_mma_f16", true, "", Gemm::mmaReference);
    public static final Kernel MMA_TF32 = new Kernel("gemm_mma", "gemm_mma_tf32", true, "", Gemm::mmaReference);
    static final String X3_OPTIONS = "-DJD_3XTF32 -DGM_3X_MIN_BLOCKS=" + Math.max(1, Math.min(2, Integer.getInteger("jdiffusion.fp32x3.minBlocks", 1)));
    /** Strict fp32 as 3xTF32 on tensor cores (see the class comment). */
    public static final Kernel MMA_3XTF32 = new Kernel("gemm_mma", "gemm_mma_3xtf32", true, X3_OPTIONS, Gemm::mmaReference);
    public static final Kernel REDUCE_F16 = new Kernel("gemm_mma", "gemm_splitk_reduce_f16", true, "", Gemm::reduceReference);
    public static final Kernel REDUCE_F32 = new Kernel("gemm_mma", "gemm_splitk_reduce_f32", true, "", Gemm::reduceReference);
    /** GEGLU epilogue ({@link #linearGeglu}): c [batch][m][n/2]; same arguments as the version-3 GEMM without the residual three. */
    public static final Kernel MMA_GEGLU_F16 = new Kernel("gemm_mma", "gemm_mma_geglu_f16", true, "", Gemm::mmaGegluReference);
    public static final Kernel MMA_GEGLU_TF32 = new Kernel("gemm_mma", "gemm_mma_geglu_tf32", true, "", Gemm::mmaGegluReference);
    public static final Kernel MMA_GEGLU_3XTF32 = new Kernel("gemm_mma", "gemm_mma_geglu_3xtf32", true, X3_OPTIONS, Gemm::mmaGegluReference);
    public static final Kernel REDUCE_GEGLU_F16 = new Kernel("gemm_mma", "gemm_splitk_geglu_f16", true, "", Gemm::reduceGegluReference);
    public static final Kernel REDUCE_GEGLU_F32 = new Kernel("gemm_mma", "gemm_splitk_geglu_f32", true, "", Gemm::reduceGegluReference);

    /** -Djdiffusion.gemm.v2=false: the version-2 tensor-core kernels (gemm.cu) only. Read per graph built. */
    static boolean v2() {
        return Boolean.parseBoolean(System.getProperty("jdiffusion.gemm.v2", "true"));
    }

    /** -Djdiffusion.fp32x3 (default true): strict fp32 on CUDA as 3xTF32 on tensor cores; false: the SIMT kernels. Read per graph built. */
    public static boolean fp32x3() {
        return Boolean.parseBoolean(System.getProperty("jdiffusion.fp32x3", "true"));
    }

    /** The version-3 kernel for the output dtype and the graph's precision: fp16, TF32, or strict fp32 as 3xTF32. */
    static Kernel mmaKernel(TaskGraph g, DType dt) {
        return dt == DType.F16 ? MMA_F16 : g.tf32 ? MMA_TF32 : MMA_3XTF32;
    }

    /** Split-K plan: {@code splits} blocks along k, each {@code kPer} elements (a multiple of the k tile). */
    record Split(int splits, int kPer) {
    }

    static int cdiv(long a, long b) {
        return (int) ((a + b - 1) / b);
    }

    /** Version 3 applies: CUDA tensor cores, rows of A (and B) in whole 16-byte chunks on 16-byte aligned buffers. */
    static boolean mma(TaskGraph g, DType dt, int m, int n, int k, Buffer a, Buffer b) {
        if (!v2() || !TENSOR_CORES || !g.backend.name().equals("cuda") || Math.min(m, n) < TC_MIN) return false;
        if (!(dt == DType.F16 || (dt == DType.F32 && (g.tf32 || fp32x3())))) return false;
        return k % (dt == DType.F16 ? 8 : 4) == 0 && aligned(a) && aligned(b);
    }

    static boolean aligned(Buffer b) {
        return !(b instanceof CudaBackend.CudaBuffer cb) || cb.ptr % 16 == 0;
    }

    /**
     * Splits K when the output tiles fill less than one wave of the GPU (2 blocks per SM) and K is long: as many splits
     * as fit one wave, at least 8 k tiles each, at most -Djdiffusion.gemm.maxSplits (16), and a workspace of at most
     * -Djdiffusion.gemm.splitKMiB (64) MiB. -Djdiffusion.gemm.splits=n forces n (1 = off); -Djdiffusion.gemm.splitK=false turns it off.
     */
    static Split splitPlan(TaskGraph g, int batch, int m, int n, int k, DType dt) {
        int ktiles = cdiv(k, dt == DType.F16 ? 32 : 16);
        long blocks = (long) batch * cdiv(m, 128) * cdiv(n, 128), outputs = (long) batch * m * n;
        int forced = Integer.getInteger("jdiffusion.gemm.splits", 0);
        long s = 1;
        if (forced > 0) s = forced;
        else if (Boolean.parseBoolean(System.getProperty("jdiffusion.gemm.splitK", "true"))) {
            int sms = g.backend instanceof CudaBackend cb ? cb.info.smCount() : 132;
            if (blocks < sms) s = Math.min(2L * sms / blocks, Math.min(Integer.getInteger("jdiffusion.gemm.maxSplits", 16), ktiles / 8));
            s = Math.min(s, ((long) Integer.getInteger("jdiffusion.gemm.splitKMiB", 64) << 20) / (4 * outputs));
        }
        return split(k, dt, Math.min(s, 65535 / batch));
    }

    /** About {@code splits} splits of whole k tiles (32 halves or 16 floats); recounted so that none is empty. */
    static Split split(int k, DType dt, long splits) {
        int kt = dt == DType.F16 ? 32 : 16, ktiles = cdiv(k, kt);
        int per = cdiv(ktiles, Math.max(1, Math.min(splits, ktiles)));
        return new Split(cdiv(ktiles, per), per * kt);
    }

    /** Version-3 tensor-core kernels: 256 threads per 128x128 output tile, batch x splits in dimension 2. */
    static Launch mmaLaunch(int m, int n, int z) {
        return new Launch(new long[]{cdiv(n, 128) * 256L, cdiv(m, 128), z}, new long[]{256, 1, 1});
    }

    /** Appends the version-3 GEMM (and the split-K reduction when sp.splits() > 1). */
    static void appendMma(TaskGraph g, String task, Buffer a, Buffer b, Buffer bias, Buffer c, int batch, int m, int n, int k, boolean transB, float alpha, Split sp) {
        appendMma(g, task, a, b, bias, null, 1f, c, batch, m, n, k, transB, alpha, sp);
    }

    /**
     * Appends the version-3 GEMM with the residual epilogue (residual null: none) and, when sp.splits() > 1, the split-K
     * reduction, which then applies bias and residual: the residual is an argument of both tasks, so the graph's liveness
     * plan keeps it until the reduction has read it.
     */
    static void appendMma(TaskGraph g, String task, Buffer a, Buffer b, Buffer bias, Buffer residual, float beta, Buffer c, int batch, int m, int n, int k,
                          boolean transB, float alpha, Split sp) {
        appendMma(g, task, a, b, bias, residual, beta, 0, c, batch, m, n, k, transB, alpha, sp);
    }

    /** As above; outHw > 0 (batch 1, m a multiple of it): c and residual channels-first [m / outHw][n][outHw] (see {@link #linearToChannels}). */
    static void appendMma(TaskGraph g, String task, Buffer a, Buffer b, Buffer bias, Buffer residual, float beta, int outHw, Buffer c, int batch, int m, int n,
                          int k, boolean transB, float alpha, Split sp) {
        if (outHw > 0 && (batch != 1 || m % outHw != 0)) throw new KernelException("task " + task + ": channels-first output needs batch 1 and m % " + outHw + " == 0");
        DType dt = c.dtype();
        Buffer bb = bias == null ? c : bias, res = residual == null ? c : residual;
        int hasBias = bias == null ? 0 : 1, hasRes = residual == null ? 0 : 1;
        Wgmma wg = wgmma(g, dt, batch, m, n, k, transB, a, b);
        if (wg != null) {                                  // same arguments, never split: the Hopper kernel instead
            g.task(task, wg.kernel(dt), wg.launch(m, n, batch), a, b, bb, c, batch, m, n, k, 1, hasBias, alpha, c, 1, k, res, hasRes, beta, outHw);
            return;
        }
        checkGrid(task, batch, m, sp);
        Buffer ws = sp.splits() > 1 ? g.temp(task + "/splitK", DType.F32, (long) sp.splits() * batch * m * n) : c;
        g.task(task, mmaKernel(g, dt), mmaLaunch(m, n, batch * sp.splits()), a, b, bb, c, batch, m, n, k, transB ? 1 : 0, hasBias, alpha,
                ws, sp.splits(), sp.kPer(), res, hasRes, beta, outHw);
        if (sp.splits() > 1)
            g.task(task + "/reduce", dt == DType.F16 ? REDUCE_F16 : REDUCE_F32, Launch.of1((long) batch * m * n, 256), ws, bb, c, batch, m, n, sp.splits(), hasBias, alpha, 0,
                    res, hasRes, beta, outHw);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Version 4 (opt-in, -Djdiffusion.gemm.wgmma=true): kernels/gemm_wgmma.cu, Hopper wgmma tensor cores (sm_90a).

    /**
     * A tile configuration of {@code gemm_wgmma_f16} (kernels/gemm_wgmma.cu, see its header): {@code warpgroups} x 64 rows
     * by {@code bn} columns per block of 128 x {@code warpgroups} threads, {@code stages} cp.async stages of 64 k,
     * {@code drain}: each k tile's wgmmas finish before the next k tile's start (loads run stages - 1 k tiles ahead instead of
     * stages - 2), {@code minBlocks}: its __launch_bounds__ minimum of blocks per SM. The module is compiled for sm_90a
     * (-DJD_ARCH_SUFFIX=a) and launched with {@link #smemBytes} of dynamic shared memory (-DJD_SMEM). Its arguments are
     * gemm_mma_f16's, so the Java reference is too. The same module (same options) holds {@code geglu}:
     * {@code gemm_wgmma_geglu_f16} (gemm_mma_geglu_f16's arguments and reference, bn a multiple of 16) and {@code conv}:
     * {@code conv2d_wgmma_f16} (conv2d_v3_f16's arguments and reference; rows = output pixels, columns = cOut), and the TF32
     * versions for the F32 buffers of a tf32 graph: {@code kernelTf32} = {@code gemm_wgmma_tf32}, {@code gegluTf32} =
     * {@code gemm_wgmma_geglu_tf32}, {@code convTf32} = {@code conv2d_wgmma_tf32} (the arguments and references of
     * gemm_mma_tf32 / gemm_mma_geglu_tf32 / conv2d_v3_tf32; k tiles of 32 floats; same tiles, launch and shared memory).
     */
    record Wgmma(int bn, int warpgroups, int stages, boolean drain, int minBlocks, Kernel kernel, Kernel geglu, Kernel conv, Kernel kernelTf32,
                 Kernel gegluTf32, Kernel convTf32) {
        Wgmma(int bn, int warpgroups, int stages, boolean drain, int minBlocks) {
            this(bn, warpgroups, stages, drain, minBlocks, options(bn, warpgroups, stages, drain, minBlocks));
        }

        private Wgmma(int bn, int warpgroups, int stages, boolean drain, int minBlocks, String options) {
            this(bn, warpgroups, stages, drain, minBlocks, new Kernel("gemm_wgmma", "gemm_wgmma_f16", true, options, Gemm::mmaReference),
                    new Kernel("gemm_wgmma", "gemm_wgmma_geglu_f16", true, options, Gemm::mmaGegluReference),
                    new Kernel("gemm_wgmma", "conv2d_wgmma_f16", true, options, Conv2d::v3Reference),
                    new Kernel("gemm_wgmma", "gemm_wgmma_tf32", true, options, Gemm::mmaReference),
                    new Kernel("gemm_wgmma", "gemm_wgmma_geglu_tf32", true, options, Gemm::mmaGegluReference),
                    new Kernel("gemm_wgmma", "conv2d_wgmma_tf32", true, options, Conv2d::v3Reference));
        }

        /** The GEMM kernel for the buffers' dtype: fp16, or F32 (TF32). */
        Kernel kernel(DType dt) {
            return dt == DType.F16 ? kernel : kernelTf32;
        }

        /** The GEGLU GEMM kernel for the buffers' dtype: fp16, or F32 (TF32). */
        Kernel geglu(DType dt) {
            return dt == DType.F16 ? geglu : gegluTf32;
        }

        /** The conv kernel for the buffers' dtype: fp16, or F32 (TF32). */
        Kernel conv(DType dt) {
            return dt == DType.F16 ? conv : convTf32;
        }

        static String options(int bn, int warpgroups, int stages, boolean drain, int minBlocks) {
            return "-DGW_BN=" + bn + " -DGW_WG=" + warpgroups + " -DGW_STAGES=" + stages + " -DGW_DRAIN=" + (drain ? 1 : 0) + " -DGW_MINB=" + minBlocks
                    + " -DJD_SMEM=" + smemBytes(bn, warpgroups, stages) + " -DJD_ARCH_SUFFIX=a";
        }

        int bm() {
            return 64 * warpgroups;
        }

        int threads() {
            return 128 * warpgroups;
        }

        /** gw_smem_bytes of gemm_wgmma.cu: the stages or the epilogue's fp32 tile (row- or column-major), + 1 KiB for alignment. */
        static int smemBytes(int bn, int warpgroups, int stages) {
            int bm = 64 * warpgroups;
            return Math.max(stages * (bm + bn) * 128, Math.max(bm * (bn + 8) * 4, bn * (bm + 4) * 4)) + 1024;
        }

        /** Output tiles: batch x ceil(m / bm) x ceil(n / bn). */
        long tiles(int m, int n, int batch) {
            return (long) batch * cdiv(m, bm()) * cdiv(n, bn);
        }

        /** One block of 128 x warpgroups threads per output tile, 1-D grid. */
        Launch launch(int m, int n, int batch) {
            return new Launch(new long[]{tiles(m, n, batch) * threads(), 1, 1}, new long[]{threads(), 1, 1});
        }
    }

    /** 128 x 160 tiles, 3 stages, drain, two blocks per SM: the best or within 5% of the best tile on every SD1.5 shape measured. */
    static final Wgmma WGMMA_128X160 = new Wgmma(160, 2, 3, true, 2);
    /** 128 x 128 tiles, otherwise alike: for N that 128 divides better than 160. */
    static final Wgmma WGMMA_128X128 = new Wgmma(128, 2, 3, true, 2);

    /**
     * -Djdiffusion.gemm.wgmma (default true since every tornado-kernels and engine test passed with it on the H100,
     * 2026-11-26): fp16 GEMMs, GEGLU GEMMs and one-split convs that fit the kernels of gemm_wgmma.cu run on them on sm_90
     * GPUs; GEMMs never split K there (the few-tile shapes that version 3 splits, e.g. 1232 x 320 x 768, ran 1.4x faster
     * unsplit on wgmma). Read per graph built.
     */
    static boolean wgmmaEnabled() {
        return Boolean.parseBoolean(System.getProperty("jdiffusion.gemm.wgmma", "true"));
    }

    /**
     * The gemm_wgmma_f16 / gemm_wgmma_tf32 configuration for this GEMM, or null where it does not apply: the switch off, not
     * the CUDA backend on a compute capability 9.0 GPU (sm_90a code runs on nothing else), neither fp16 nor the F32 buffers of
     * a tf32 graph (strict fp32 stays on 3xTF32), not transB, K not a multiple of the k tile (64 halves / 32 floats), A / B
     * not 16-byte aligned, or more tiles than a 1-D grid takes. GEGLU ({@link #appendMmaGeglu}) takes the same
     * configuration: its tiles (160 or 128 columns) hold whole 16-column groups.
     */
    static Wgmma wgmma(TaskGraph g, DType dt, int batch, int m, int n, int k, boolean transB, Buffer a, Buffer b) {
        if (!wgmmaEnabled() || !wgmmaType(g, dt) || !transB || k % wgmmaKTile(dt) != 0 || !aligned(a) || !aligned(b)) return null;
        if (!hopper(g)) return null;
        Wgmma w = wgmmaConfig(m, n);
        return w.tiles(m, n, batch) > Integer.MAX_VALUE ? null : w;
    }

    /** The element types of gemm_wgmma.cu: fp16, and F32 buffers of a tf32 graph (TF32 tensor cores; not strict fp32). */
    static boolean wgmmaType(TaskGraph g, DType dt) {
        return dt == DType.F16 || (dt == DType.F32 && g.tf32);
    }

    /** The wgmma kernels' k tile: one 128-byte swizzle row, 64 halves or 32 floats (a conv's cIn must be a multiple of it). */
    static int wgmmaKTile(DType dt) {
        return dt == DType.F16 ? 64 : 32;
    }

    /** The CUDA backend on a compute capability 9.0 GPU (sm_90a code runs on nothing else). */
    static boolean hopper(TaskGraph g) {
        return g.backend instanceof CudaBackend cb && cb.info.ccMajor() == 9 && cb.info.ccMinor() == 0;
    }

    /**
     * The conv2d_wgmma_f16 / conv2d_wgmma_tf32 configuration for a version-4 conv ({@link Conv2d#appendV3}: M = cols output
     * pixels, N = cOut, K = taps * cIn), or null where it does not apply: the switch off, not Hopper, neither fp16 nor a tf32
     * graph's F32, split-K (the planner's choice for the few-tile 8x8 convs, which stay on conv2d_v3_*), cIn not a multiple
     * of the k tile (64 halves / 32 floats: a k tile is one tap),
     * x or the tap-major weights wt not 16-byte aligned, or more tiles than a 1-D grid takes. Tile as for a GEMM of
     * cols x cOut (128 x 160 for cOut 320 / 640 / 1280).
     */
    static Wgmma wgmmaConv(TaskGraph g, DType dt, int cIn, int cOut, int cols, Split sp, Buffer x, Buffer wt) {
        if (!wgmmaEnabled() || !wgmmaType(g, dt) || sp.splits() != 1 || cIn % wgmmaKTile(dt) != 0 || !aligned(x) || !aligned(wt) || !hopper(g)) return null;
        Wgmma w = wgmmaConfig(cols, cOut);
        return w.tiles(cols, cOut, 1) > Integer.MAX_VALUE ? null : w;
    }

    /**
     * Tile choice (measured on an H100 with bench/cuda/wgmma_check.sh, whose pick() mirrors this): 128 x 160 unless 128
     * columns pad N less (N = 320, 640, 1280, 2560 all take 160).
     */
    static Wgmma wgmmaConfig(int m, int n) {
        return cdiv(n, 160) * 160L <= cdiv(n, 128) * 128L ? WGMMA_128X160 : WGMMA_128X128;
    }

    /** The version-3 GEGLU GEMM: c [batch][m][n/2] from the permuted [n] columns (n = 2*inner), split-K reduced by gemm_splitk_geglu_*. */
    static void appendMmaGeglu(TaskGraph g, String task, Buffer a, Buffer b, Buffer bias, Buffer c, int batch, int m, int n, int k, boolean transB, float alpha, Split sp) {
        DType dt = c.dtype();
        Buffer bb = bias == null ? c : bias;
        int hasBias = bias == null ? 0 : 1;
        Wgmma wg = wgmma(g, dt, batch, m, n, k, transB, a, b);
        if (wg != null) {                                  // same arguments, never split: the Hopper kernel instead
            g.task(task, wg.geglu(dt), wg.launch(m, n, batch), a, b, bb, c, batch, m, n, k, 1, hasBias, alpha, c, 1, k);
            return;
        }
        checkGrid(task, batch, m, sp);
        Buffer ws = sp.splits() > 1 ? g.temp(task + "/splitK", DType.F32, (long) sp.splits() * batch * m * n) : c;
        Kernel kernel = dt == DType.F16 ? MMA_GEGLU_F16 : g.tf32 ? MMA_GEGLU_TF32 : MMA_GEGLU_3XTF32;
        g.task(task, kernel, mmaLaunch(m, n, batch * sp.splits()), a, b, bb, c, batch, m, n, k, transB ? 1 : 0, hasBias, alpha, ws, sp.splits(), sp.kPer());
        if (sp.splits() > 1)
            g.task(task + "/reduce", dt == DType.F16 ? REDUCE_GEGLU_F16 : REDUCE_GEGLU_F32, Launch.of1((long) batch * m * (n / 2), 256), ws, bb, c, batch, m, n,
                    sp.splits(), hasBias, alpha);
    }

    static void checkGrid(String task, int batch, int m, Split sp) {
        if ((long) batch * sp.splits() > 65535 || cdiv(m, 128) > 65535)
            throw new KernelException("task " + task + ": grid of " + cdiv(m, 128) + " x " + batch + "*" + sp.splits() + " blocks exceeds CUDA limits");
    }

    /** Reference of gemm_mma_*: the GEMM with the residual epilogue when splits == 1, else raw partial sums per split into ws [splits][batch][m][n]. */
    static void mmaReference(Object[] args) {
        if ((Integer) args[12] == 1) gemmReference(args, (Integer) args[15] != 0 ? args[14] : null, (Float) args[16], (Integer) args[17]);
        else partials(args);
    }

    /** Reference of gemm_mma_geglu_*: c [batch][m][n/2] = value * gelu(gate) over the permuted columns when splits == 1, else raw partial sums. */
    static void mmaGegluReference(Object[] args) {
        if ((Integer) args[12] != 1) {
            partials(args);
            return;
        }
        Object a = args[0], b = args[1], bias = args[2], c = args[3];
        int batch = (Integer) args[4], m = (Integer) args[5], n = (Integer) args[6], k = (Integer) args[7], inner = n / 2;
        boolean transB = (Integer) args[8] != 0, hasBias = (Integer) args[9] != 0;
        float alpha = (Float) args[10];
        Store store = (bt, row0, rows, col0, cols, tile) -> {     // col0 and cols are whole 16-column groups
            for (int i = 0; i < rows; i++) {
                long o = ((long) bt * m + row0 + i) * inner + col0 / 2;
                for (int q = 0; q < cols; q += 16)
                    for (int r = 0; r < 8; r++) {
                        int cv = col0 + q + r;
                        float v = alpha * tile[i * cols + q + r] + (hasBias ? load(bias, cv) : 0f);
                        float gate = alpha * tile[i * cols + q + r + 8] + (hasBias ? load(bias, cv + 8) : 0f);
                        storeAt(c, o + q / 2 + r, v * Elementwise.geluRef(gate));
                    }
            }
        };
        run(batch, m, n, k, rows(a, m, k), transB ? rows(b, n, k) : columns(b, k, n), store, 16);
    }

    /** Raw partial sums of the version-3 GEMM argument list (splits > 1) into ws [splits][batch][m][n]. */
    static void partials(Object[] args) {
        int splits = (Integer) args[12], kPer = (Integer) args[13];
        Object a = args[0], b = args[1];
        float[] ws = (float[]) args[11];
        int batch = (Integer) args[4], m = (Integer) args[5], n = (Integer) args[6], k = (Integer) args[7];
        boolean transB = (Integer) args[8] != 0;
        long mn = (long) m * n;
        Parallel.range(splits * batch, 1, (from, to) -> {
            for (int zs = from; zs < to; zs++) {
                int s = zs / batch, bt = zs % batch, k0 = s * kPer, k1 = Math.min(k, k0 + kPer);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        float sum = 0f;
                        for (int p = k0; p < k1; p++)
                            sum += load(a, (bt * (long) m + i) * k + p) * load(b, transB ? (bt * (long) n + j) * k + p : (bt * (long) k + p) * n + j);
                        ws[(int) (zs * mn + i * (long) n + j)] = sum;
                    }
            }
        });
    }

    /**
     * Reference of gemm_splitk_reduce_*: c = alpha * sum of the splits + bias, then (c + res) * beta when hasRes; hw > 0
     * writes the conv's NCHW layout (bias per row, res NCHW like c); else outHw > 0 the GEMM's channels-first layout.
     */
    static void reduceReference(Object[] args) {
        float[] ws = (float[]) args[0];
        Object bias = args[1], c = args[2], res = args[10];
        int batch = (Integer) args[3], m = (Integer) args[4], n = (Integer) args[5], splits = (Integer) args[6];
        boolean hasBias = (Integer) args[7] != 0, hasRes = (Integer) args[11] != 0;
        float alpha = (Float) args[8], beta = (Float) args[12];
        int hw = (Integer) args[9], outHw = (Integer) args[13];
        long total = (long) batch * m * n;
        for (long i = 0; i < total; i++) {
            float s = 0f;
            for (int q = 0; q < splits; q++) s += ws[(int) (q * total + i)];
            int col = (int) (i % n), row = (int) (i / n % m);
            float v = alpha * s + (hasBias ? load(bias, hw == 0 ? col : row) : 0f);
            long o = hw > 0 ? (long) (col / hw) * m * hw + (long) row * hw + col % hw : outHw > 0 ? outIndex(row, col, n, outHw) : i;
            if (hasRes) v = (v + load(res, o)) * beta;
            storeAt(c, o, v);
        }
    }

    /** Reference of gemm_splitk_geglu_*: c [batch][m][n/2] = value * gelu(gate), value and gate summed over the splits from the permuted columns. */
    static void reduceGegluReference(Object[] args) {
        float[] ws = (float[]) args[0];
        Object bias = args[1], c = args[2];
        int batch = (Integer) args[3], m = (Integer) args[4], n = (Integer) args[5], splits = (Integer) args[6], inner = n / 2;
        boolean hasBias = (Integer) args[7] != 0;
        float alpha = (Float) args[8];
        long total = (long) batch * m * inner, wsTotal = (long) batch * m * n;
        for (long i = 0; i < total; i++) {
            long r = i / inner;
            int j = (int) (i - r * inner), cv = (j >> 3 << 4) + (j & 7);
            long o = r * n + cv;
            float v = 0f, gate = 0f;
            for (int q = 0; q < splits; q++) {
                v += ws[(int) (q * wsTotal + o)];
                gate += ws[(int) (q * wsTotal + o + 8)];
            }
            v = alpha * v + (hasBias ? load(bias, cv) : 0f);
            gate = alpha * gate + (hasBias ? load(bias, cv + 8) : 0f);
            storeAt(c, i, v * Elementwise.geluRef(gate));
        }
    }

    /** gemm_skinny applies: transB, at most SKINNY_MAX_M rows, and enough columns and depth to fill the device (the time_emb_proj shape). */
    static boolean skinny(DType dt, int m, int n, int k, boolean transB) {
        return SKINNY && transB && m <= SKINNY_MAX_M && n >= 64 && k >= 128 && (dt == DType.F16 || dt == DType.F32);
    }

    static Kernel select(TaskGraph g, DType dt, int m, int n, String task) {
        String backend = g.backend.name();
        boolean tc = TENSOR_CORES && backend.equals("cuda") && Math.min(m, n) >= TC_MIN;
        boolean large = switch (TILE) {
            case "128" -> true;
            case "64" -> false;
            default -> backend.equals("cuda") && (long) m * n >= 256L * 256;
        };
        return switch (dt) {
            case F16 -> tc ? TC_F16 : large ? TILED_F16_LARGE : TILED_F16;
            case F32 -> tc && g.tf32 ? TC_TF32 : large ? TILED_F32_LARGE : TILED_F32;
            case I32 -> throw new KernelException("task " + task + ": GEMM needs F32 or F16 buffers, not I32");
        };
    }

    /** Tiled kernels: groups of (TILE_N/REG_N) x (TILE_M/REG_M) = 16 x 16 work items, one group per output tile, batch in dimension 2. */
    static Launch tiledLaunch(Kernel kernel, int m, int n, int batch) {
        int tile = kernel.options().contains("TILE_M=128") ? 128 : 64;
        return Launch.of3(Launch.cover(n, tile) / tile * 16, Launch.cover(m, tile) / tile * 16, batch, 16, 16, 1);
    }

    /** Tensor-core kernels: 256 threads (8 warps) per 128x128 output tile, batch in dimension 2. */
    static Launch tcLaunch(int m, int n, int batch) {
        return new Launch(new long[]{(n + 127L) / 128 * 256, (m + 127L) / 128, batch}, new long[]{256, 1, 1});
    }

    static void requireBuffer(String task, String what, Buffer buf, DType dtype, long elements) {
        if (buf == null) throw new KernelException("task " + task + ": buffer " + what + " is null");
        if (buf.dtype() != dtype)
            throw new KernelException("task " + task + ": buffer " + what + " " + buf + " is " + buf.dtype() + ", expected " + dtype + " like the output");
        if (buf.length() < elements)
            throw new KernelException("task " + task + ": buffer " + what + " " + buf + " has " + buf.length() + " elements, needs " + elements);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Java reference (the interpreted engine).

    /** Packs {@code rows} rows starting at {@code row0} of one operand of batch {@code batch} as floats, k-contiguous: dst[rows][k]. */
    interface Pack {
        void pack(int batch, int row0, int rows, float[] dst);
    }

    /** Writes a finished tile: tile[rows][cols] (plain dot products) for output rows row0.. and columns col0.. of batch. */
    interface Store {
        void store(int batch, int row0, int rows, int col0, int cols, float[] tile);
    }

    /** The reference of every GEMM kernel (same arguments as the device kernels). */
    static void reference(Object[] args) {
        gemmReference(args, null, 1f, 0);
    }

    /** Index in c of element (row, col) of an [m][n] result written channels-first, [m / outHw][n][outHw]. */
    static long outIndex(int row, int col, int n, int outHw) {
        return ((long) (row / outHw) * n + col) * outHw + row % outHw;
    }

    /**
     * The GEMM of the common argument list (args[0..10]) with the residual epilogue when res != null: c = (alpha * a . op(b)
     * + bias + res) * beta; outHw > 0 (batch 1): c and res channels-first, [m / outHw][n][outHw].
     */
    static void gemmReference(Object[] args, Object res, float beta, int outHw) {
        Object a = args[0], b = args[1], bias = args[2], c = args[3];
        int batch = (Integer) args[4], m = (Integer) args[5], n = (Integer) args[6], k = (Integer) args[7];
        boolean transB = (Integer) args[8] != 0, hasBias = (Integer) args[9] != 0;
        float alpha = (Float) args[10];
        Pack packA = rows(a, m, k);
        Pack packB = transB ? rows(b, n, k) : columns(b, k, n);
        long mn = (long) m * n;
        Store store = (bt, row0, rows, col0, cols, tile) -> {
            for (int i = 0; i < rows; i++) {
                long o = bt * mn + (long) (row0 + i) * n + col0;
                for (int j = 0; j < cols; j++) {
                    float v = alpha * tile[i * cols + j] + (hasBias ? load(bias, col0 + j) : 0f);
                    long oc = outHw > 0 ? outIndex(row0 + i, col0 + j, n, outHw) : o + j;
                    if (res != null) v = (v + load(res, oc)) * beta;
                    storeAt(c, oc, v);
                }
            }
        };
        run(batch, m, n, k, packA, packB, store);
    }

    static float load(Object array, long i) {
        return array instanceof float[] f ? f[(int) i] : Float.float16ToFloat(((short[]) array)[(int) i]);
    }

    static void storeAt(Object array, long i, float v) {
        if (array instanceof float[] f) f[(int) i] = v;
        else ((short[]) array)[(int) i] = Float.floatToFloat16(v);
    }

    /** Operand stored row-major as [batch][rows][k]: rows are already k-contiguous. */
    static Pack rows(Object array, int rowsTotal, int k) {
        long stride = (long) rowsTotal * k;
        if (array instanceof float[] f) return new FloatRows(f, stride, k);
        short[] h = (short[]) array;
        return (bt, row0, rows, dst) -> {
            int o = (int) (bt * stride + (long) row0 * k);
            for (int i = 0, len = rows * k; i < len; i++) dst[i] = Float.float16ToFloat(h[o + i]);
        };
    }

    /** rows() of a float[]: the rows are read in place where the driver can (interleaved straight from the operand). */
    record FloatRows(float[] f, long stride, int k) implements Pack {
        int offset(int batch, int row0) {
            return (int) (batch * stride + (long) row0 * k);
        }

        @Override
        public void pack(int batch, int row0, int rows, float[] dst) {
            System.arraycopy(f, offset(batch, row0), dst, 0, rows * k);
        }
    }

    /** Operand stored row-major as [batch][k][cols]: packs columns col0.. transposed to k-contiguous rows. */
    static Pack columns(Object array, int k, int colsTotal) {
        long stride = (long) k * colsTotal;
        return (bt, col0, cols, dst) -> {
            int base = (int) (bt * stride) + col0;
            if (array instanceof float[] f) {
                for (int p = 0; p < k; p++) {
                    int o = base + p * colsTotal;
                    for (int j = 0; j < cols; j++) dst[j * k + p] = f[o + j];
                }
            } else {
                short[] h = (short[]) array;
                for (int p = 0; p < k; p++) {
                    int o = base + p * colsTotal;
                    for (int j = 0; j < cols; j++) dst[j * k + p] = Float.float16ToFloat(h[o + j]);
                }
            }
        };
    }

    private static final class Scratch {
        float[] a = new float[0], b = new float[0], tile = new float[0], ai = new float[0], bi = new float[0];
        int bBatch = -1, bCol = -1;
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /**
     * The blocked GEMM driver: the output is cut into JAVA_TILE x JAVA_TILE tiles handed out over all cores (row tiles
     * innermost); a tile packs its A rows and B rows (k-contiguous floats; the B panel, an im2col gather for convs, is
     * reused across consecutive tiles of a column band), multiplies them k-block by k-block with the micro-kernel, and
     * hands the plain dot products to {@code store}. With the Vector API the packed panels are interleaved first
     * ({@link Simd#interleave}) so that the micro-kernel streams each operand from one index.
     */
    static void run(int batch, int m, int n, int k, Pack a, Pack b, Store store) {
        run(batch, m, n, k, a, b, store, 1);
    }

    /** As above with the tile size rounded up to a multiple of {@code colMultiple}, so that column tiles start at multiples of it. */
    static void run(int batch, int m, int n, int k, Pack a, Pack b, Store store, int colMultiple) {
        int tile = cdiv(Math.max(4, JAVA_TILE), colMultiple) * colMultiple;
        int tm = (m + tile - 1) / tile, tn = (n + tile - 1) / tile;
        long tiles = (long) batch * tm * tn;
        if (tiles > Integer.MAX_VALUE) throw new KernelException("GEMM of " + tiles + " tiles is too large for the java backend");
        int grain = (long) tile * tile * k < 1 << 16 ? 8 : 1;
        Parallel.range((int) tiles, grain, (from, to) -> {
            Scratch s = SCRATCH.get();
            s.bBatch = -1;
            if (s.a.length < tile * k) s.a = new float[tile * k];
            if (s.b.length < tile * k) s.b = new float[tile * k];
            int tileP = cdiv(tile, 4) * 4;
            if (s.tile.length < tileP * tileP) s.tile = new float[tileP * tileP];
            if (SIMD) {
                int kp = cdiv(k, Simd.L) * Simd.L;
                if (s.ai.length < tileP * kp) s.ai = new float[tileP * kp];
                if (s.bi.length < tileP * kp) s.bi = new float[tileP * kp];
            }
            for (int t = from; t < to; t++) {
                int bt = t / (tm * tn), in = t / tm % tn, im = t % tm;
                int row0 = im * tile, rows = Math.min(tile, m - row0);
                int col0 = in * tile, cols = Math.min(tile, n - col0);
                if (s.bBatch != bt || s.bCol != col0) {
                    if (SIMD && b instanceof FloatRows fb) Simd.interleave(fb.f(), fb.offset(bt, col0), cols, k, 2, s.bi);
                    else {
                        b.pack(bt, col0, cols, s.b);
                        if (SIMD) Simd.interleave(s.b, 0, cols, k, 2, s.bi);
                    }
                    s.bBatch = bt;
                    s.bCol = col0;
                }
                if (SIMD) {
                    if (a instanceof FloatRows fa) Simd.interleave(fa.f(), fa.offset(bt, row0), rows, k, 4, s.ai);
                    else {
                        a.pack(bt, row0, rows, s.a);
                        Simd.interleave(s.a, 0, rows, k, 4, s.ai);
                    }
                    Simd.multiply(s.ai, s.bi, s.tile, rows, cols, k);
                } else {
                    a.pack(bt, row0, rows, s.a);
                    Arrays.fill(s.tile, 0, rows * cols, 0f);
                    multiply(s.a, s.b, s.tile, rows, cols, k);
                }
                store.store(bt, row0, rows, col0, cols, s.tile);
            }
            s.bBatch = -1;
        });
    }

    /** Without the Vector API: tile[i][j] += sum_p a[i][p] * b[j][p] for a [rows][k], b [cols][k], k-blocked for the caches. */
    static void multiply(float[] a, float[] b, float[] tile, int rows, int cols, int k) {
        int kb = Math.max(64, JAVA_KBLOCK);
        for (int p0 = 0; p0 < k; p0 += kb) {
            int p1 = Math.min(k, p0 + kb);
            int i = 0;
            for (; i + 4 <= rows; i += 4) {
                int j = 0;
                for (; j + 2 <= cols; j += 2) micro4x2(a, b, tile, i, j, cols, k, p0, p1);
                for (; j < cols; j++)
                    for (int ii = i; ii < i + 4; ii++) tile[ii * cols + j] += dotScalar(a, ii * k, b, j * k, p0, p1);
            }
            for (; i < rows; i++)
                for (int j = 0; j < cols; j++) tile[i * cols + j] += dotScalar(a, i * k, b, j * k, p0, p1);
        }
    }

    static float dotScalar(float[] a, int ao, float[] b, int bo, int p0, int p1) {
        float s = 0f;
        for (int p = p0; p < p1; p++) s = Math.fma(a[ao + p], b[bo + p], s);
        return s;
    }

    /** Scalar fallback micro-kernel: 4 rows of a against 2 rows of b. */
    static void micro4x2(float[] a, float[] b, float[] tile, int i, int j, int cols, int k, int p0, int p1) {
        int a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k, b0 = j * k, b1 = b0 + k;
        float c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;
        for (int p = p0; p < p1; p++) {
            float x0 = b[b0 + p], x1 = b[b1 + p], y;
            y = a[a0 + p]; c00 += y * x0; c01 += y * x1;
            y = a[a1 + p]; c10 += y * x0; c11 += y * x1;
            y = a[a2 + p]; c20 += y * x0; c21 += y * x1;
            y = a[a3 + p]; c30 += y * x0; c31 += y * x1;
        }
        int o = i * cols + j;
        tile[o] += c00; tile[o + 1] += c01; o += cols;
        tile[o] += c10; tile[o + 1] += c11; o += cols;
        tile[o] += c20; tile[o + 1] += c21; o += cols;
        tile[o] += c30; tile[o + 1] += c31;
    }

    /** Vector API micro-kernels (a nested class so that Gemm loads without the jdk.incubator.vector module). */
    static final class Simd {
        static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
        static final int L = S.length();

        /**
         * src [rows][k] (k-contiguous, from element off) into dst [ceil(rows / g)][ceil(k / L)][g][L]: for each group of g
         * rows, one vector of each row per k step, zero past the last row and past k. The micro-kernel then reads g rows from
         * one index.
         */
        static void interleave(float[] src, int off, int rows, int k, int g, float[] dst) {
            int steps = (k + L - 1) / L, full = k / L, groups = (rows + g - 1) / g;
            for (int q = 0; q < groups; q++)
                for (int r = 0; r < g; r++) {
                    int row = q * g + r, o = (q * steps * g + r) * L;
                    if (row >= rows) {
                        for (int st = 0; st < steps; st++, o += g * L) Arrays.fill(dst, o, o + L, 0f);
                        continue;
                    }
                    int src0 = off + row * k, st = 0;
                    for (; st < full; st++, o += g * L) FloatVector.fromArray(S, src, src0 + st * L).intoArray(dst, o);
                    if (st < steps) {
                        int tail = k - st * L;
                        System.arraycopy(src, src0 + st * L, dst, o, tail);
                        Arrays.fill(dst, o + tail, o + L, 0f);
                    }
                }
        }

        /**
         * tile[i][j] = sum_p a[i][p] * b[j][p] (tile overwritten, [rows][cols]) from the interleaved panels ai (groups of 4
         * rows) and bi (groups of 2 rows), k-blocked as {@link Gemm#multiply}: per k block fp32 lanes over p (lane = p mod
         * L), reduced and added to the tile.
         */
        static void multiply(float[] ai, float[] bi, float[] tile, int rows, int cols, int k) {
            int steps = (k + L - 1) / L, kbs = Math.max(64, JAVA_KBLOCK) / L;
            int rowsP = (rows + 3) / 4 * 4, colsP = (cols + 1) / 2 * 2;
            Arrays.fill(tile, 0, rowsP * colsP, 0f);
            for (int s0 = 0; s0 < steps; s0 += kbs) {
                int n = Math.min(kbs, steps - s0);
                for (int i = 0; i < rowsP; i += 4)
                    for (int j = 0; j < colsP; j += 2)
                        micro4x2i(ai, (i * steps + 4 * s0) * L, bi, (j * steps + 2 * s0) * L, n, tile, i * colsP + j, colsP);
            }
            if (colsP != cols)                                  // [rows][colsP] -> [rows][cols]
                for (int i = 1; i < rows; i++) System.arraycopy(tile, i * colsP, tile, i * cols, cols);
        }

        /** 4 rows of ai (from pa) against 2 rows of bi (from pb) over n k steps; tile[o + r * stride + c] += the 8 dot products. */
        static void micro4x2i(float[] ai, int pa, float[] bi, int pb, int n, float[] tile, int o, int stride) {
            var z = FloatVector.zero(S);
            var c00 = z; var c01 = z; var c10 = z; var c11 = z; var c20 = z; var c21 = z; var c30 = z; var c31 = z;
            for (int st = 0; st < n; st++, pa += 4 * L, pb += 2 * L) {
                var x0 = FloatVector.fromArray(S, bi, pb);
                var x1 = FloatVector.fromArray(S, bi, pb + L);
                var y = FloatVector.fromArray(S, ai, pa);
                c00 = y.fma(x0, c00); c01 = y.fma(x1, c01);
                y = FloatVector.fromArray(S, ai, pa + L);
                c10 = y.fma(x0, c10); c11 = y.fma(x1, c11);
                y = FloatVector.fromArray(S, ai, pa + 2 * L);
                c20 = y.fma(x0, c20); c21 = y.fma(x1, c21);
                y = FloatVector.fromArray(S, ai, pa + 3 * L);
                c30 = y.fma(x0, c30); c31 = y.fma(x1, c31);
            }
            var add = VectorOperators.ADD;
            tile[o] += c00.reduceLanes(add); tile[o + 1] += c01.reduceLanes(add); o += stride;
            tile[o] += c10.reduceLanes(add); tile[o + 1] += c11.reduceLanes(add); o += stride;
            tile[o] += c20.reduceLanes(add); tile[o + 1] += c21.reduceLanes(add); o += stride;
            tile[o] += c30.reduceLanes(add); tile[o + 1] += c31.reduceLanes(add);
        }
    }
}
