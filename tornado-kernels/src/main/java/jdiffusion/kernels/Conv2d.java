package jdiffusion.kernels;

import java.lang.ref.SoftReference;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Convolution family (implicit GEMM on the GPU): 3x3 and 1x1, any stride and padding, NCHW.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 *
 * <p>A convolution is the GEMM out[co, col] = sum_r weight[co, r] * patch[r, col] + bias[co] with M = cOut,
 * N = n*hOut*wOut (col = (img, oy, ox)), K = cIn*kernel*kernel (r = (ci, ky, kx)); the im2col patch matrix is never
 * stored on the device: kernels gather it while loading their B tiles. Versions: (0) the Java reference ({@link Direct}:
 * a direct convolution over padded input planes, Vector API; without it, im2col panels packed tile by tile into the
 * shared {@link Gemm#run} driver); (1) {@code conv2d_tiled_f32/_f16} in
 * kernels/conv2d.cl, portable; (2) {@code conv2d_tc_f16/_tf32} in kernels/gemm.cu (the tensor-core GEMM core with
 * an im2col B loader), CUDA sm_80+ only; (3) {@code conv2d_mma_f16/_tf32} in kernels/gemm_mma.cu (version 3 of
 * {@link Gemm}: cp.async weights, register-gathered patches, split-K for the small-spatial 1280-channel convs);
 * (4) {@code conv2d_v3_f16/_tf32} in kernels/conv_mma.cu: the reduction reordered to r = (ky*k + kx)*cIn + ci over weights
 * permuted once per graph, at warmup ({@link TaskGraph#derived}), by {@code conv_taps_*}, so each k tile is one tap of consecutive channels and the patch gather is
 * per-tile index math plus strided plain loads. CUDA picks (4) when (3) applies and cIn is a multiple of the k tile
 * (32 halves / 16 floats); -Djdiffusion.conv.v3=false keeps (3). With -Djdiffusion.gemm.wgmma (default true) on a Hopper GPU (see
 * {@link Gemm}) (4)'s fp16 convs with cIn % 64 == 0 that run in one split take {@code conv2d_wgmma_f16} from
 * kernels/gemm_wgmma.cu instead (same arguments and weights; wgmma tensor cores, M = output pixels, N = cOut), and its
 * tf32 convs (F32 buffers of a tf32 graph) with cIn % 32 == 0 that run in one split {@code conv2d_wgmma_tf32}.
 * Strict fp32 on CUDA (F32 buffers, graph.tf32 off) runs (3) as {@code conv2d_mma_3xtf32}: gemm_mma.cu built with
 * -DJD_3XTF32, each fp32 operand split into two tf32 words and three tensor-core products accumulated in fp32
 * ("3xTF32": fp32-accurate emulation, not IEEE fp32 FMA order); (4) has no 3xTF32 build and is not used for it.
 * -Djdiffusion.fp32x3=false keeps strict fp32 on the SIMT kernels (see {@link Gemm}).
 *
 * <p>All conv kernels share one argument list: {@code (x, weight, bias, out, int n, int cIn, int h, int w, int cOut,
 * int kernel, int stride, int padding, int hOut, int wOut, int hasBias)}; without a bias the kernel gets
 * {@code hasBias=0} and {@code out} as a dummy bias buffer it never reads. Versions (3) and (4) take
 * {@code (..., ws, splits, kPer, res, hasRes, beta)}: split-K and the residual epilogue
 * {@code out = (conv + bias + res) * beta} (res NCHW like out; ResnetBlock2D's shortcut and 1 / output_scale_factor),
 * applied by the split-K reduction when there is one. The java backend runs (3)'s task layout (one split) for a
 * residual conv, so its reference is the fused math; other kernels are followed by an in-place {@code add_scaled}.
 */
public final class Conv2d {
    private Conv2d() {
    }

    public static final Kernel TILED_F32 = new Kernel("conv2d", "conv2d_tiled_f32", false, "", Conv2d::reference);
    public static final Kernel TILED_F16 = new Kernel("conv2d", "conv2d_tiled_f16", false, "-DJD_HALF", Conv2d::reference);
    public static final Kernel TILED_F32_LARGE = new Kernel("conv2d", "conv2d_tiled_f32", false, Gemm.LARGE_TILE, Conv2d::reference);
    public static final Kernel TILED_F16_LARGE = new Kernel("conv2d", "conv2d_tiled_f16", false, "-DJD_HALF " + Gemm.LARGE_TILE, Conv2d::reference);
    public static final Kernel TC_F16 = new Kernel("gemm", "conv2d_tc_f16", true, "", Conv2d::reference);
    public static final Kernel TC_TF32 = new Kernel("gemm", "conv2d_tc_tf32", true, "", Conv2d::reference);

    /** x [n, cIn, h, w], weight [cOut, cIn, kernel, kernel], bias [cOut] (may be null) -> out [n, cOut, hOut, wOut], hOut = (h + 2*padding - kernel) / stride + 1 (zero padding). */
    public static void conv2d(TaskGraph g, Buffer x, Buffer weight, Buffer bias, Buffer out, int n, int cIn, int h, int w, int cOut, int kernel, int stride, int padding) {
        conv2d(g, x, weight, bias, null, 1f, out, n, cIn, h, w, cOut, kernel, stride, padding);
    }

    /**
     * out = (conv2d(x) + bias + residual) * beta, residual [n, cOut, hOut, wOut] (not out itself; null: the plain conv):
     * the residual connection fused into the conv's epilogue where the backend can.
     */
    public static void conv2d(TaskGraph g, Buffer x, Buffer weight, Buffer bias, Buffer residual, float beta, Buffer out, int n, int cIn, int h, int w, int cOut,
                              int kernel, int stride, int padding) {
        String task = "conv2d[n=" + n + ",cIn=" + cIn + "," + h + "x" + w + ",cOut=" + cOut + ",k=" + kernel + ",s=" + stride + ",p=" + padding
                + (residual != null ? ",residual" : "") + "]";
        if (n < 1 || cIn < 1 || h < 1 || w < 1 || cOut < 1 || kernel < 1 || stride < 1 || padding < 0)
            throw new KernelException("task " + task + " in graph " + g.name + ": sizes, kernel and stride must be >= 1, padding >= 0");
        int hOut = (h + 2 * padding - kernel) / stride + 1, wOut = (w + 2 * padding - kernel) / stride + 1;
        if (h + 2 * padding < kernel || w + 2 * padding < kernel)
            throw new KernelException("task " + task + ": kernel " + kernel + " is larger than the padded input " + (h + 2 * padding) + "x" + (w + 2 * padding));
        long cols = (long) n * hOut * wOut, depth = (long) cIn * kernel * kernel;
        if (cols > Integer.MAX_VALUE || depth > Integer.MAX_VALUE)
            throw new KernelException("task " + task + ": implicit GEMM of " + cols + " columns x " + depth + " depth is too large");
        DType dt = out.dtype();
        Gemm.requireBuffer(task, "x", x, dt, (long) n * cIn * h * w);
        Gemm.requireBuffer(task, "weight", weight, dt, (long) cOut * depth);
        Gemm.requireBuffer(task, "out", out, dt, (long) n * cOut * hOut * wOut);
        if (bias != null) Gemm.requireBuffer(task, "bias", bias, dt, cOut);
        if (residual != null) Gemm.requireBuffer(task, "residual", residual, dt, (long) n * cOut * hOut * wOut);
        if (out == x || out == weight || (bias != null && out == bias) || out == residual)
            throw new KernelException("task " + task + ": output buffer " + out + " aliases an input");
        boolean v3 = v3(g, dt, cIn, cOut, cols, depth, weight);
        if (v3 || Gemm.mma(g, dt, cOut, (int) cols, (int) depth, weight, x)) {
            Gemm.Split sp = Gemm.splitPlan(g, 1, cOut, (int) cols, (int) depth, dt);
            if (v3) appendV3(g, task, x, weight, bias, residual, beta, out, n, cIn, h, w, cOut, kernel, stride, padding, sp);
            else appendMma(g, task, x, weight, bias, residual, beta, out, n, cIn, h, w, cOut, kernel, stride, padding, sp);
            return;
        }
        if (residual != null && Gemm.javaFused(g)) {
            appendMma(g, task, x, weight, bias, residual, beta, out, n, cIn, h, w, cOut, kernel, stride, padding, Gemm.split((int) depth, dt, 1));
            return;
        }
        Kernel k = select(g, dt, cOut, (int) cols, task);
        Launch launch = k.cudaOnly() ? Gemm.tcLaunch(cOut, (int) cols, 1) : Gemm.tiledLaunch(k, cOut, (int) cols, 1);
        g.task(task, k, launch, x, weight, bias == null ? out : bias, out, n, cIn, h, w, cOut, kernel, stride, padding, hOut, wOut, bias == null ? 0 : 1);
        if (residual != null) Elementwise.addScaled(g, out, residual, out, (long) n * cOut * hOut * wOut, beta);   // in place: out = (out + residual) * beta
    }

    public static final Kernel MMA_F16 = new Kernel("gemm_mma", "conv2d_mma_f16", true, "", Conv2d::mmaReference);
    public static final Kernel MMA_TF32 = new Kernel("gemm_mma", "conv2d_mma_tf32", true, "", Conv2d::mmaReference);
    /** Strict fp32 as 3xTF32 (see {@link Gemm}). */
    public static final Kernel MMA_3XTF32 = new Kernel("gemm_mma", "conv2d_mma_3xtf32", true, Gemm.X3_OPTIONS, Conv2d::mmaReference);

    public static final Kernel V3_F16 = new Kernel("conv_mma", "conv2d_v3_f16", true, "", Conv2d::v3Reference);
    public static final Kernel V3_TF32 = new Kernel("conv_mma", "conv2d_v3_tf32", true, "", Conv2d::v3Reference);
    public static final Kernel TAPS_F16 = new Kernel("conv_mma", "conv_taps_f16", true, "", Conv2d::tapsReference);
    public static final Kernel TAPS_F32 = new Kernel("conv_mma", "conv_taps_f32", true, "", Conv2d::tapsReference);

    /**
     * -Djdiffusion.conv.v3 (default true; read per graph built): kernels/conv_mma.cu on CUDA tensor cores (fp16, or tf32
     * graphs; strict fp32 stays on conv2d_mma_*) where cIn is a multiple of its k tile (32 halves / 16 floats), the weights
     * are 16-byte aligned and the permuted weights index in 32 bits. Unlike conv2d_mma_*, any cOut >= 1 (conv_out's 4).
     */
    static boolean v3(TaskGraph g, DType dt, int cIn, int cOut, long cols, long depth, Buffer weight) {
        if (!Boolean.parseBoolean(System.getProperty("jdiffusion.conv.v3", "true")) || !Gemm.v2() || !Gemm.TENSOR_CORES) return false;
        if (!g.backend.name().equals("cuda") || !(dt == DType.F16 || (dt == DType.F32 && g.tf32))) return false;
        return cIn % (dt == DType.F16 ? 32 : 16) == 0 && (long) cOut * depth < Integer.MAX_VALUE && cols >= Gemm.TC_MIN && Gemm.aligned(weight);
    }

    static void appendV3(TaskGraph g, String task, Buffer x, Buffer weight, Buffer bias, Buffer out, int n, int cIn, int h, int w, int cOut, int kernel,
                         int stride, int padding, Gemm.Split sp) {
        appendV3(g, task, x, weight, bias, null, 1f, out, n, cIn, h, w, cOut, kernel, stride, padding, sp);
    }

    /**
     * Appends conv_taps_* (kernel > 1: wt [cOut][kernel*kernel][cIn]), conv2d_v3_* and, when split along K, the reduction into
     * NCHW; the residual epilogue (residual null: none) runs in the conv or, with split-K, in the reduction (an argument of both).
     */
    static void appendV3(TaskGraph g, String task, Buffer x, Buffer weight, Buffer bias, Buffer residual, float beta, Buffer out, int n, int cIn, int h, int w,
                         int cOut, int kernel, int stride, int padding, Gemm.Split sp) {
        DType dt = out.dtype();
        int hOut = (h + 2 * padding - kernel) / stride + 1, wOut = (w + 2 * padding - kernel) / stride + 1, cols = n * hOut * wOut, taps = kernel * kernel;
        if (sp.splits() > 65535 || Gemm.cdiv(cOut, 128) > 65535)
            throw new KernelException("task " + task + ": grid of " + Gemm.cdiv(cOut, 128) + " x " + sp.splits() + " blocks exceeds CUDA limits");
        Buffer wt = weight;
        if (taps > 1)                                                                          // [cOut][taps][cIn], permuted once at warmup
            wt = g.derived(List.of("conv_taps", weight), task + "/taps", dt, (long) cOut * taps * cIn,
                    b -> g.task(task + "/taps", dt == DType.F16 ? TAPS_F16 : TAPS_F32, Launch.of1((long) cOut * taps * cIn, 256), weight, b, cOut, cIn, taps));
        Buffer ws = sp.splits() > 1 ? g.temp(task + "/splitK", DType.F32, (long) sp.splits() * cOut * cols) : out;
        Buffer bb = bias == null ? out : bias, res = residual == null ? out : residual;
        int hasBias = bias == null ? 0 : 1, hasRes = residual == null ? 0 : 1;
        Gemm.Wgmma wg = Gemm.wgmmaConv(g, dt, cIn, cOut, cols, sp, x, wt);
        if (wg != null) {                                  // -Djdiffusion.gemm.wgmma on Hopper: same arguments, one split, cIn % 64 (fp16) / 32 (tf32) == 0
            g.task(task, wg.conv(dt), wg.launch(cols, cOut, 1), x, wt, bb, out, n, cIn, h, w, cOut, kernel, stride, padding, hOut, wOut, hasBias, ws, 1, sp.kPer(),
                    res, hasRes, beta);
            return;
        }
        g.task(task, dt == DType.F16 ? V3_F16 : V3_TF32, Gemm.mmaLaunch(cOut, cols, sp.splits()), x, wt, bb, out, n, cIn, h, w, cOut, kernel, stride, padding,
                hOut, wOut, hasBias, ws, sp.splits(), sp.kPer(), res, hasRes, beta);
        if (sp.splits() > 1)
            g.task(task + "/reduce", dt == DType.F16 ? Gemm.REDUCE_F16 : Gemm.REDUCE_F32, Launch.of1((long) cOut * cols, 256), ws, bb, out, 1, cOut, cols,
                    sp.splits(), hasBias, 1f, hOut * wOut, res, hasRes, beta, 0);
    }

    /** Reference of conv_taps_*: wt [cOut][taps][cIn] = weight [cOut][cIn][taps]. */
    static void tapsReference(Object[] args) {
        Object weight = args[0], wt = args[1];
        int cOut = (Integer) args[2], cIn = (Integer) args[3], taps = (Integer) args[4];
        for (int co = 0; co < cOut; co++)
            for (int t = 0; t < taps; t++)
                for (int ci = 0; ci < cIn; ci++) {
                    int dst = (co * taps + t) * cIn + ci, src = (co * cIn + ci) * taps + t;
                    if (wt instanceof float[] f) f[dst] = ((float[]) weight)[src];
                    else ((short[]) wt)[dst] = ((short[]) weight)[src];
                }
    }

    /**
     * Reference of conv2d_v3_*: args[1] is wt [cOut][taps][cIn]; the convolution with the residual epilogue, or raw partial
     * sums over r = tap*cIn + ci per split into ws.
     */
    static void v3Reference(Object[] args) {
        int splits = (Integer) args[16], kPer = (Integer) args[17];
        Object x = args[0], wt = args[1];
        int n = (Integer) args[4], cIn = (Integer) args[5], h = (Integer) args[6], w = (Integer) args[7], cOut = (Integer) args[8];
        int ks = (Integer) args[9], stride = (Integer) args[10], pad = (Integer) args[11], hOut = (Integer) args[12], wOut = (Integer) args[13];
        int taps = ks * ks, hw = hOut * wOut, cols = n * hw, depth = cIn * taps;
        if (splits == 1) {
            Object[] plain = java.util.Arrays.copyOf(args, 15);
            Object weight = wt instanceof float[] f ? new float[f.length] : new short[((short[]) wt).length];
            tapsReference(new Object[]{wt, weight, cOut, taps, cIn});                          // [cOut][taps][cIn] -> [cOut][cIn][taps]
            plain[1] = weight;
            convolve(plain, (Integer) args[19] != 0 ? args[18] : null, (Float) args[20]);
            return;
        }
        float[] ws = (float[]) args[15];
        Parallel.range(splits * cOut, 1, (from, to) -> {
            for (int sc = from; sc < to; sc++) {
                int s = sc / cOut, co = sc % cOut, r0 = s * kPer, r1 = Math.min(depth, r0 + kPer);
                for (int col = 0; col < cols; col++) {
                    int img = col / hw, p = col % hw, iy0 = p / wOut * stride - pad, ix0 = p % wOut * stride - pad;
                    float sum = 0f;
                    for (int r = r0; r < r1; r++) {
                        int t = r / cIn, ci = r % cIn, iy = iy0 + t / ks, ix = ix0 + t % ks;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        sum += Gemm.load(wt, (long) co * depth + r) * Gemm.load(x, ((long) (img * cIn + ci) * h + iy) * w + ix);
                    }
                    ws[(int) ((long) sc * cols + col)] = sum;
                }
            }
        });
    }

    static void appendMma(TaskGraph g, String task, Buffer x, Buffer weight, Buffer bias, Buffer out, int n, int cIn, int h, int w, int cOut, int kernel,
                          int stride, int padding, Gemm.Split sp) {
        appendMma(g, task, x, weight, bias, null, 1f, out, n, cIn, h, w, cOut, kernel, stride, padding, sp);
    }

    /** Appends the version-3 implicit GEMM (kernels/gemm_mma.cu) with the residual epilogue and, when split along K, the reduction into NCHW. */
    static void appendMma(TaskGraph g, String task, Buffer x, Buffer weight, Buffer bias, Buffer residual, float beta, Buffer out, int n, int cIn, int h, int w,
                          int cOut, int kernel, int stride, int padding, Gemm.Split sp) {
        DType dt = out.dtype();
        int hOut = (h + 2 * padding - kernel) / stride + 1, wOut = (w + 2 * padding - kernel) / stride + 1, cols = n * hOut * wOut;
        if (sp.splits() > 65535 || Gemm.cdiv(cOut, 128) > 65535)
            throw new KernelException("task " + task + ": grid of " + Gemm.cdiv(cOut, 128) + " x " + sp.splits() + " blocks exceeds CUDA limits");
        Buffer ws = sp.splits() > 1 ? g.temp(task + "/splitK", DType.F32, (long) sp.splits() * cOut * cols) : out;
        Buffer bb = bias == null ? out : bias, res = residual == null ? out : residual;
        int hasBias = bias == null ? 0 : 1, hasRes = residual == null ? 0 : 1;
        g.task(task, dt == DType.F16 ? MMA_F16 : g.tf32 ? MMA_TF32 : MMA_3XTF32, Gemm.mmaLaunch(cOut, cols, sp.splits()), x, weight, bb, out, n, cIn, h, w, cOut, kernel, stride, padding,
                hOut, wOut, hasBias, ws, sp.splits(), sp.kPer(), res, hasRes, beta);
        if (sp.splits() > 1)
            g.task(task + "/reduce", dt == DType.F16 ? Gemm.REDUCE_F16 : Gemm.REDUCE_F32, Launch.of1((long) cOut * cols, 256), ws, bb, out, 1, cOut, cols,
                    sp.splits(), hasBias, 1f, hOut * wOut, res, hasRes, beta, 0);
    }

    /** Reference of conv2d_mma_*: the convolution with the residual epilogue when splits == 1, else raw partial sums per split into ws [splits][cOut][n*hOut*wOut]. */
    static void mmaReference(Object[] args) {
        int splits = (Integer) args[16], kPer = (Integer) args[17];
        if (splits == 1) {
            convolve(java.util.Arrays.copyOf(args, 15), (Integer) args[19] != 0 ? args[18] : null, (Float) args[20]);
            return;
        }
        Object x = args[0], weight = args[1];
        float[] ws = (float[]) args[15];
        int n = (Integer) args[4], cIn = (Integer) args[5], h = (Integer) args[6], w = (Integer) args[7], cOut = (Integer) args[8];
        int ks = (Integer) args[9], stride = (Integer) args[10], pad = (Integer) args[11], hOut = (Integer) args[12], wOut = (Integer) args[13];
        int hw = hOut * wOut, cols = n * hw, depth = cIn * ks * ks;
        Parallel.range(splits * cOut, 1, (from, to) -> {
            for (int sc = from; sc < to; sc++) {
                int s = sc / cOut, co = sc % cOut, r0 = s * kPer, r1 = Math.min(depth, r0 + kPer);
                for (int col = 0; col < cols; col++) {
                    int img = col / hw, p = col % hw, iy0 = p / wOut * stride - pad, ix0 = p % wOut * stride - pad;
                    float sum = 0f;
                    for (int r = r0; r < r1; r++) {
                        int ci = r / (ks * ks), ky = r / ks % ks, kx = r % ks, iy = iy0 + ky, ix = ix0 + kx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        sum += Gemm.load(weight, (long) co * depth + r) * Gemm.load(x, ((long) (img * cIn + ci) * h + iy) * w + ix);
                    }
                    ws[(int) ((long) sc * cols + col)] = sum;
                }
            }
        });
    }

    static Kernel select(TaskGraph g, DType dt, int m, int cols, String task) {
        Kernel gemm = Gemm.select(g, dt, m, cols, task);
        if (gemm == Gemm.TC_F16) return TC_F16;
        if (gemm == Gemm.TC_TF32) return TC_TF32;
        if (gemm == Gemm.TILED_F16_LARGE) return TILED_F16_LARGE;
        if (gemm == Gemm.TILED_F32_LARGE) return TILED_F32_LARGE;
        return dt == DType.F16 ? TILED_F16 : TILED_F32;
    }

    /** The reference of every conv kernel (same arguments as the device kernels). */
    static void reference(Object[] args) {
        convolve(args, null, 1f);
    }

    /**
     * The convolution of the common argument list (args[0..14]), with the residual epilogue when res != null: out = (conv +
     * bias + res) * beta. Runs {@link Direct} (Vector API) unless its vectors of output positions would be less than 3/4
     * used (outputs of a few positions, e.g. 4x4: 16 of 24 or 32 lanes), else the GEMM driver over im2col panels;
     * -Djdiffusion.conv.javaDirect=true / false forces one.
     */
    static void convolve(Object[] args, Object res, float beta) {
        String force = System.getProperty("jdiffusion.conv.javaDirect", "auto");
        boolean direct = Gemm.SIMD && (force.equals("true") || !force.equals("false")
                && Direct.lanesUsed((Integer) args[4], (Integer) args[12], (Integer) args[13], (Integer) args[6], (Integer) args[11], (Integer) args[10]) >= 0.75);
        if (direct) Direct.convolve(args, res, beta);
        else convolveGemm(args, res, beta);
    }

    /** The convolution through the shared GEMM driver (im2col panels per tile), without the Vector API (-Djdiffusion.gemm.simd=false). */
    static void convolveGemm(Object[] args, Object res, float beta) {
        Object x = args[0], weight = args[1], bias = args[2], out = args[3];
        int n = (Integer) args[4], cIn = (Integer) args[5], h = (Integer) args[6], w = (Integer) args[7], cOut = (Integer) args[8];
        int ks = (Integer) args[9], stride = (Integer) args[10], pad = (Integer) args[11], hOut = (Integer) args[12], wOut = (Integer) args[13];
        boolean hasBias = (Integer) args[14] != 0;
        int hw = hOut * wOut, depth = cIn * ks * ks, plane = h * w;
        float[] xf = x instanceof float[] f ? f : null;
        short[] xh = x instanceof short[] s ? s : null;
        Gemm.Pack patches = (bt, col0, cols, dst) -> {            // dst [cols][depth]: im2col rows of the columns col0..
            int[] base = new int[cols], iy0 = new int[cols], ix0 = new int[cols];
            for (int j = 0; j < cols; j++) {
                int col = col0 + j, img = col / hw, p = col % hw;
                base[j] = img * cIn * plane;
                iy0[j] = p / wOut * stride - pad;
                ix0[j] = p % wOut * stride - pad;
            }
            int r = 0;
            for (int ci = 0; ci < cIn; ci++)
                for (int ky = 0; ky < ks; ky++)
                    for (int kx = 0; kx < ks; kx++, r++)
                        for (int j = 0; j < cols; j++) {
                            int iy = iy0[j] + ky, ix = ix0[j] + kx;
                            float v = 0f;
                            if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                                int o = base[j] + ci * plane + iy * w + ix;
                                v = xf != null ? xf[o] : Float.float16ToFloat(xh[o]);
                            }
                            dst[j * depth + r] = v;
                        }
        };
        Gemm.Store store = (bt, row0, rows, col0, cols, tile) -> {
            for (int j = 0; j < cols; j++) {
                int col = col0 + j;
                long o = (long) (col / hw) * cOut * hw + col % hw;
                for (int i = 0; i < rows; i++) {
                    int co = row0 + i;
                    float v = tile[i * cols + j] + (hasBias ? Gemm.load(bias, co) : 0f);
                    if (res != null) v = (v + Gemm.load(res, o + (long) co * hw)) * beta;
                    Gemm.storeAt(out, o + (long) co * hw, v);
                }
            }
        };
        Gemm.run(1, cOut, n * hw, depth, Gemm.rows(weight, cOut, depth), patches, store);
    }

    // ---- Java reference (the interpreted engine): a direct convolution, no im2col matrix ----
    //
    // The input is copied once per call into zero-padded, stride-phase-split float planes xp[img][ci][py][px][hq][wq]
    // (xp[..][py][px][yq][xq] = padded x[yq*stride + py][xq*stride + px]), so that each tap (ky, kx) of a vector of
    // consecutive output positions of a row is one contiguous load at a fixed offset from the position's virtual index
    // q = oy * wq + ox. The output positions are covered by vectors of L lanes, either row by row (ceil(wOut / L) vectors
    // per row) or over the flattened virtual grid (ceil(hOut * wq / L) vectors; lanes with ox >= wOut computed and
    // dropped), whichever needs fewer. A work item is a group of output channels and a block of those vectors, across
    // images; items of a group run one after another, so a thread packs the group's weights once ([co / 4][r][co % 4],
    // zero rows past cOut). Its tile accumulates over the depth r = (ci, ky, kx) in blocks of about DEPTH terms (whole
    // input channels): per block fresh fp32 FMA chains over r in order (4 output channels x 2 vectors in registers, a
    // broadcast weight times a vector of inputs), added to the tile; then out = tile + bias (and (out + residual) * beta),
    // rounded to the output's dtype on store.

    /** The direct convolution (a nested class so that Conv2d loads without the jdk.incubator.vector module). */
    static final class Direct {
        private Direct() {
        }

        private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
        private static final int L = F.length();
        /** Output channels per work item (a multiple of 4). */
        static final int JAVA_CO = Math.max(4, Integer.getInteger("jdiffusion.conv.javaCo", 64) / 4 * 4);
        /** Vectors of output positions per work item (a multiple of 2). */
        static final int JAVA_VECTORS = Math.max(2, Integer.getInteger("jdiffusion.conv.javaVectors", 24) / 2 * 2);
        /** Most floats of packed weights per thread (fewer output channels per work item past it). */
        static final int JAVA_PACKED = 1 << 19;
        /** Depth (cIn * kernel^2 terms) per accumulation block, rounded down to whole input channels. */
        static final int JAVA_DEPTH = Math.max(1, Integer.getInteger("jdiffusion.conv.javaDepth", 288));

        /** One reusable buffer for the padded input planes (a soft reference: the collector may take it back). */
        private static final AtomicReference<SoftReference<float[]>> PLANES = new AtomicReference<>();

        private static float[] borrow(int length) {
            SoftReference<float[]> ref = PLANES.getAndSet(null);
            float[] a = ref == null ? null : ref.get();
            return a != null && a.length >= length ? a : new float[length];
        }

        private static void giveBack(float[] a) {
            SoftReference<float[]> old = PLANES.get();
            float[] o = old == null ? null : old.get();
            if (o == null || o.length < a.length) PLANES.compareAndSet(old, new SoftReference<>(a));
        }

        /** The fraction of the lanes of the output-position vectors that hold outputs (n images of hOut x wOut, padded width w + 2 pad). */
        static double lanesUsed(int n, int hOut, int wOut, int w, int pad, int stride) {
            int wq = (w + 2 * pad + stride - 1) / stride, per = Math.min(hOut * ((wOut + L - 1) / L), (hOut * wq + L - 1) / L);
            return (double) n * hOut * wOut / (roundUp(n * per, 2) * L);
        }

        static void convolve(Object[] args, Object res, float beta) {
            Object x = args[0], weight = args[1], bias = args[2], out = args[3];
            int n = (Integer) args[4], cIn = (Integer) args[5], h = (Integer) args[6], w = (Integer) args[7], cOut = (Integer) args[8];
            int ks = (Integer) args[9], stride = (Integer) args[10], pad = (Integer) args[11], hOut = (Integer) args[12], wOut = (Integer) args[13];
            boolean hasBias = (Integer) args[14] != 0;
            int taps = ks * ks, depth = cIn * taps, hw = hOut * wOut;
            int hq = (h + 2 * pad + stride - 1) / stride, wq = (w + 2 * pad + stride - 1) / stride, plane = hq * wq;
            int perCi = stride * stride * plane;
            long perImgL = (long) cIn * perCi;
            int slack = ((ks - 1) / stride + 1) * (wq + 1) + 2 * L;
            if (n * perImgL + slack > Integer.MAX_VALUE - 16)
                throw new KernelException("conv2d: padded input of " + n * perImgL + " floats is too large for the java backend");
            // vectors of output positions of all images: start[v] (index in xp of lane 0's virtual position), dst[v * L + lane]
            // (img * cOut * hw + oy * wOut + ox, or -1: dropped)
            int perRow = (wOut + L - 1) / L, rowWise = hOut * perRow, flat = (hOut * wq + L - 1) / L;
            int per = Math.min(rowWise, flat), nvec = n * per, nvecP = roundUp(nvec, 2);
            int[] start = new int[nvecP], dst = new int[nvecP * L];
            java.util.Arrays.fill(dst, -1);
            for (int img = 0, v = 0; img < n; img++)
                for (int u = 0; u < per; u++, v++) {
                    int oyRow = u / perRow, ox0 = u % perRow * L, q = rowWise <= flat ? oyRow * wq + ox0 : u * L;
                    start[v] = (int) (img * perImgL) + q;
                    for (int lane = 0; lane < L; lane++) {
                        int oy = rowWise <= flat ? oyRow : (q + lane) / wq, ox = rowWise <= flat ? ox0 + lane : (q + lane) % wq;
                        if (oy < hOut && ox < wOut) dst[v * L + lane] = img * cOut * hw + oy * wOut + ox;
                    }
                }
            int total = (int) (n * perImgL);
            float[] xp = borrow(total + slack);
            java.util.Arrays.fill(xp, total, total + slack, 0f);
            Parallel.range(n * cIn, 4, (p0, p1) -> {
                for (int pl = p0; pl < p1; pl++) prepare(x, pl * h * w, xp, pl * perCi, h, w, stride, pad, hq, wq);
            });
            int[] xo = new int[depth];                          // offset of tap r = (ci, ky, kx) from a virtual position in the planes
            for (int ci = 0, r = 0; ci < cIn; ci++)
                for (int ky = 0; ky < ks; ky++)
                    for (int kx = 0; kx < ks; kx++, r++)
                        xo[r] = ci * perCi + ((ky % stride) * stride + kx % stride) * plane + (ky / stride) * wq + kx / stride;
            float[] bf = hasBias ? Elementwise.floats(bias, 0, cOut) : null;
            Object rs = res;
            int cb = Math.min(roundUp(cOut, 4), Math.max(4, Math.min(JAVA_CO, JAVA_PACKED / depth / 4 * 4))), groups = (cOut + cb - 1) / cb;
            int vb = Math.min(JAVA_VECTORS, nvecP), blocks = (nvecP + vb - 1) / vb, pos = vb * L;
            int kc = Math.max(1, JAVA_DEPTH / taps) * taps;
            Parallel.range(groups * blocks, 1, (w0, w1) -> {
                Scratch sc = SCRATCH.get();
                if (sc.wp.length < cb * depth) sc.wp = new float[cb * depth];
                if (sc.tile.length < cb * pos) sc.tile = new float[cb * pos];
                float[] tile = sc.tile, part = sc.part, wp = sc.wp;
                int packed = -1;
                for (int item = w0; item < w1; item++) {
                    int grp = item / blocks, v0 = item % blocks * vb, v1 = Math.min(nvecP, v0 + vb);
                    int co0 = grp * cb, co1 = Math.min(cOut, co0 + cb);
                    if (packed != grp) {
                        pack(weight, co0, co1, depth, wp);
                        packed = grp;
                    }
                    java.util.Arrays.fill(tile, 0, cb * pos, 0f);
                    for (int r0 = 0; r0 < depth; r0 += kc) {
                        int r1 = Math.min(depth, r0 + kc);
                        for (int c4 = 0; c4 < co1 - co0; c4 += 4)
                            for (int v = v0; v < v1; v += 2)
                                micro4x2(wp, c4 * depth, xp, start[v], start[v + 1], xo, r0, r1, tile, c4 * pos + (v - v0) * L, pos, part);
                    }
                    for (int co = co0; co < co1; co++) {
                        float b = bf == null ? 0f : bf[co];
                        int t0 = (co - co0) * pos, o = co * hw;
                        for (int i = 0, di = v0 * L, end = (v1 - v0) * L; i < end; i++, di++) {
                            int d = dst[di];
                            if (d < 0) continue;
                            float val = tile[t0 + i] + b;
                            if (rs != null) val = (val + Gemm.load(rs, o + d)) * beta;
                            if (out instanceof float[] f) f[o + d] = val;
                            else ((short[]) out)[o + d] = Float.floatToFloat16(val);
                        }
                    }
                }
            });
            giveBack(xp);
        }

        /** wp[((co - co0) / 4 * depth + r) * 4 + (co - co0) % 4] = weight[co][r] for co in [co0, co1), zeros up to a multiple of 4. */
        static void pack(Object weight, int co0, int co1, int depth, float[] wp) {
            float[] f = weight instanceof float[] a ? a : null;
            short[] hw = f == null ? (short[]) weight : null;
            for (int c4 = 0; co0 + c4 < co1; c4 += 4) {
                int o = c4 * depth;
                if (f != null && co0 + c4 + 4 <= co1) {                       // four rows at once, written contiguously
                    int s0 = (co0 + c4) * depth, s1 = s0 + depth, s2 = s1 + depth, s3 = s2 + depth;
                    for (int r = 0; r < depth; r++, o += 4) {
                        wp[o] = f[s0 + r];
                        wp[o + 1] = f[s1 + r];
                        wp[o + 2] = f[s2 + r];
                        wp[o + 3] = f[s3 + r];
                    }
                    continue;
                }
                for (int r = 0; r < depth; r++, o += 4)
                    for (int c = 0; c < 4; c++) {
                        int co = co0 + c4 + c, src = co * depth + r;
                        wp[o + c] = co >= co1 ? 0f : f != null ? f[src] : Float.float16ToFloat(hw[src]);
                    }
            }
        }

        /** Per-thread buffers of the work items: packed weights, the tile, raw sums. */
        private static final class Scratch {
            float[] wp = new float[0], tile = new float[0], part = new float[8 * L];
        }

        private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

        private static int roundUp(int x, int m) {
            return (x + m - 1) / m * m;
        }

        /** The padded, stride-phase-split planes of one input channel: xp[dst + (py*stride + px)*hq*wq + yq*wq + xq]. */
        static void prepare(Object x, int src, float[] xp, int dst, int h, int w, int stride, int pad, int hq, int wq) {
            float[] xf = x instanceof float[] f ? f : null;
            short[] xh = xf == null ? (short[]) x : null;
            for (int py = 0; py < stride; py++)
                for (int px = 0; px < stride; px++, dst += hq * wq)
                    for (int yq = 0; yq < hq; yq++) {
                        int iy = yq * stride + py - pad, o = dst + yq * wq;
                        if (iy < 0 || iy >= h) {
                            java.util.Arrays.fill(xp, o, o + wq, 0f);
                            continue;
                        }
                        int s = src + iy * w;
                        if (stride == 1) {                      // [pad zeros][the row][zeros]
                            int left = Math.min(pad, wq), mid = Math.max(0, Math.min(w, wq - left));
                            java.util.Arrays.fill(xp, o, o + left, 0f);
                            if (xf != null) System.arraycopy(xf, s, xp, o + left, mid);
                            else for (int i = 0; i < mid; i++) xp[o + left + i] = Float.float16ToFloat(xh[s + i]);
                            java.util.Arrays.fill(xp, o + left + mid, o + wq, 0f);
                            continue;
                        }
                        for (int xq = 0; xq < wq; xq++) {
                            int ix = xq * stride + px - pad;
                            xp[o + xq] = ix < 0 || ix >= w ? 0f : xf != null ? xf[s + ix] : Float.float16ToFloat(xh[s + ix]);
                        }
                    }
        }

        /**
         * tile[to + c*pos + (0..2 vectors)] += sum over r in [r0, r1) of wp[wo + 4r + c] * (the vectors of xp at xo[r] + s0 and
         * xo[r] + s1) for the 4 output channels c (fp32 FMA chains over r in order, from zero). Small on purpose: C2 keeps its
         * 8 accumulators, 2 inputs and 4 weights in the 16 AVX registers (4 x 3 spills) and one weight index in a register.
         */
        static void micro4x2(float[] wp, int wo, float[] xp, int s0, int s1, int[] xo, int r0, int r1, float[] tile, int to, int pos, float[] part) {
            FloatVector z = FloatVector.zero(F);
            FloatVector a00 = z, a01 = z, a10 = z, a11 = z, a20 = z, a21 = z, a30 = z, a31 = z;
            for (int r = r0, wi = wo + 4 * r0; r < r1; r++, wi += 4) {
                int o = xo[r];
                FloatVector x0 = FloatVector.fromArray(F, xp, o + s0), x1 = FloatVector.fromArray(F, xp, o + s1);
                FloatVector y = FloatVector.broadcast(F, wp[wi]);
                a00 = x0.fma(y, a00);
                a01 = x1.fma(y, a01);
                y = FloatVector.broadcast(F, wp[wi + 1]);
                a10 = x0.fma(y, a10);
                a11 = x1.fma(y, a11);
                y = FloatVector.broadcast(F, wp[wi + 2]);
                a20 = x0.fma(y, a20);
                a21 = x1.fma(y, a21);
                y = FloatVector.broadcast(F, wp[wi + 3]);
                a30 = x0.fma(y, a30);
                a31 = x1.fma(y, a31);
            }
            // Raw sums into part first, then tile += part: were the tile read here, the compiler could hoist its loads above
            // the loop (nothing in the loop writes memory) and run out of vector registers.
            a00.intoArray(part, 0);
            a01.intoArray(part, L);
            a10.intoArray(part, 2 * L);
            a11.intoArray(part, 3 * L);
            a20.intoArray(part, 4 * L);
            a21.intoArray(part, 5 * L);
            a30.intoArray(part, 6 * L);
            a31.intoArray(part, 7 * L);
            for (int c = 0; c < 4; c++)
                for (int v = 0, t = to + c * pos; v < 2 * L; v += L)
                    FloatVector.fromArray(F, tile, t + v).add(FloatVector.fromArray(F, part, c * 2 * L + v)).intoArray(tile, t + v);
        }
    }
}
