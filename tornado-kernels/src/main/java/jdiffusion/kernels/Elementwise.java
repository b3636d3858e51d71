package jdiffusion.kernels;

/**
 * Pointwise family: activations, arithmetic with broadcast, casts.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 * Device kernels (kernels/elementwise.cl) are grid-stride loops over 64-bit indices, so lengths past 2^31 work;
 * fp16 buffers are converted to fp32, computed, and rounded back to nearest even.
 */
public final class Elementwise {
    private Elementwise() {
    }

    static final int GROUP = 256;
    /** Most work groups of a grid-stride launch (keeps every launch dimension inside 32 bits on every backend). */
    static final long MAX_GROUPS = 1L << 20;

    /** out = x * sigmoid(x). */
    public static void silu(TaskGraph g, Buffer x, Buffer out, long length) {
        map(g, "silu", x, out, length, v -> v / (1f + (float) Math.exp(-v)));
    }

    /** out = 0.5 x (1 + erf(x / sqrt 2)) (exact GELU). */
    public static void gelu(TaskGraph g, Buffer x, Buffer out, long length) {
        map(g, "gelu", x, out, length, Elementwise::geluRef);
    }

    /** out = x * sigmoid(1.702 x) (CLIP's quick_gelu). */
    public static void quickGelu(TaskGraph g, Buffer x, Buffer out, long length) {
        map(g, "quick_gelu", x, out, length, v -> v / (1f + (float) Math.exp(-1.702f * v)));
    }

    /** x [rows, 2*cols] -> out [rows, cols] = x[:, :cols] * gelu(x[:, cols:]) (diffusers GEGLU: hidden, gate = proj(x).chunk(2)). */
    public static void geglu(TaskGraph g, Buffer x, Buffer out, int rows, int cols) {
        sameFloat("geglu", x, out);
        need("geglu", "x", x, 2L * rows * cols);
        need("geglu", "out", out, (long) rows * cols);
        g.task("geglu", new Kernel("elementwise", "geglu", false, opt(x), a -> gegluRef(a, false)), planes(rows, cols), x, out, rows, cols);
    }

    /**
     * GEGLU over {@link Gemm#gegluInterleave}'s column order: x [rows, 2*cols] in groups of 16 columns (8 hidden units,
     * then their 8 gates) -> out [rows, cols] = hidden * gelu(gate) (cols % 8 == 0). The unfused tail of {@link Gemm#linearGeglu}.
     */
    public static void gegluInterleaved(TaskGraph g, Buffer x, Buffer out, int rows, int cols) {
        sameFloat("geglu_interleaved", x, out);
        if (cols % 8 != 0) throw new KernelException("geglu_interleaved: cols " + cols + " is not a multiple of 8");
        need("geglu_interleaved", "x", x, 2L * rows * cols);
        need("geglu_interleaved", "out", out, (long) rows * cols);
        g.task("geglu_interleaved", new Kernel("elementwise", "geglu_interleaved", false, opt(x), a -> gegluRef(a, true)), planes(rows, cols), x, out, rows, cols);
    }

    /** Reference of geglu / geglu_interleaved (args x, out, rows, cols): the hidden unit of output column j sits at j, its gate at
     * cols + j, or (interleaved) at (j / 8) * 16 + j % 8 and 8 further. */
    private static void gegluRef(Object[] a, boolean interleaved) {
        int rs = (Integer) a[2], cs = (Integer) a[3];
        float[] xf = floats(a[0], 0, 2 * rs * cs);
        float[] o = new float[rs * cs];
        int gate = interleaved ? 8 : cs;
        Parallel.range(rs, 16, (r0, r1) -> {
            for (int r = r0; r < r1; r++)
                for (int j = 0; j < cs; j++) {
                    int v = r * 2 * cs + (interleaved ? (j >> 3 << 4) + (j & 7) : j);
                    o[r * cs + j] = xf[v] * geluRef(xf[v + gate]);
                }
        });
        store(o, a[1], 0, o.length);
    }

    /** out = a + b. */
    public static void add(TaskGraph g, Buffer a, Buffer b, Buffer out, long length) {
        addScaled(g, "add", a, b, out, length, 1f);
    }

    /** out = (a + b) * alpha (residual with output_scale_factor). */
    public static void addScaled(TaskGraph g, Buffer a, Buffer b, Buffer out, long length, float alpha) {
        addScaled(g, "add_scaled", a, b, out, length, alpha);
    }

    private static void addScaled(TaskGraph g, String what, Buffer a, Buffer b, Buffer out, long length, float alpha) {
        sameFloat(what, a, b, out);
        need(what, "a", a, length);
        need(what, "b", b, length);
        need(what, "out", out, length);
        Kernel k = new Kernel("elementwise", "add_scaled", false, opt(a), args -> {
            int n = (int) (long) (Long) args[3];
            float s = (Float) args[4];
            if (args[0] instanceof float[] x && args[1] instanceof float[] y && args[2] instanceof float[] o) {
                Parallel.range(n, 1 << 14, (i0, i1) -> {
                    for (int i = i0; i < i1; i++) o[i] = (x[i] + y[i]) * s;
                });
            } else {
                short[] x = (short[]) args[0], y = (short[]) args[1], o = (short[]) args[2];
                Parallel.range(n, 1 << 14, (i0, i1) -> {
                    for (int i = i0; i < i1; i++)
                        o[i] = Float.floatToFloat16((Float.float16ToFloat(x[i]) + Float.float16ToFloat(y[i])) * s);
                });
            }
        });
        g.task(what, k, stride(length), a, b, out, length, alpha);
    }

    /** out = x * alpha. */
    public static void scale(TaskGraph g, Buffer x, Buffer out, long length, float alpha) {
        sameFloat("scale", x, out);
        need("scale", "x", x, length);
        need("scale", "out", out, length);
        Kernel k = new Kernel("elementwise", "scale", false, opt(x), args -> {
            int n = (int) (long) (Long) args[2];
            float s = (Float) args[3];
            if (args[0] instanceof float[] xs && args[1] instanceof float[] o) {
                Parallel.range(n, 1 << 14, (i0, i1) -> {
                    for (int i = i0; i < i1; i++) o[i] = xs[i] * s;
                });
            } else {
                short[] xs = (short[]) args[0], o = (short[]) args[1];
                Parallel.range(n, 1 << 14, (i0, i1) -> {
                    for (int i = i0; i < i1; i++) o[i] = Float.floatToFloat16(Float.float16ToFloat(xs[i]) * s);
                });
            }
        });
        g.task("scale", k, stride(length), x, out, length, alpha);
    }

    /** x [outer, channels, inner]: out[o,c,i] = x[o,c,i] + (biasPerOuter ? bias[o*channels + c] : bias[c]) (conv bias, time embedding into ResnetBlock2D). */
    public static void addChannel(TaskGraph g, Buffer x, Buffer bias, Buffer out, int outer, int channels, int inner, boolean biasPerOuter) {
        sameFloat("add_channel", x, bias, out);
        long n = (long) outer * channels * inner;
        need("add_channel", "x", x, n);
        need("add_channel", "out", out, n);
        need("add_channel", "bias", bias, biasPerOuter ? (long) outer * channels : channels);
        Kernel k = new Kernel("elementwise", "add_channel", false, opt(x), a -> {
            int cs = (Integer) a[4], in = (Integer) a[5];
            boolean per = (Integer) a[6] != 0;
            int total = (int) (long) (Long) a[3], planes = total / Math.max(1, in);
            float[] bf = floats(a[1], 0, java.lang.reflect.Array.getLength(a[1]));
            Parallel.range(planes, 4, (p0, p1) -> {
                float[] row = new float[in];
                for (int p = p0; p < p1; p++) {
                    float b = bf[per ? p : p % cs];
                    load(a[0], p * in, row, in);
                    for (int i = 0; i < in; i++) row[i] += b;
                    store(row, a[2], p * in, in);
                }
            });
        });
        g.task("add_channel", k, planes((long) outer * channels, inner), x, bias, out, n, channels, inner, biasPerOuter ? 1 : 0);
    }

    /** dst = src converted between F32 and F16 (round to nearest even). */
    public static void cast(TaskGraph g, Buffer src, Buffer dst, long length) {
        sameFloat("cast", src);
        sameFloat("cast", dst);
        need("cast", "src", src, length);
        need("cast", "dst", dst, length);
        String options = ((src.dtype() == DType.F16 ? "-DJD_SRC_F16=1 " : "") + (dst.dtype() == DType.F16 ? "-DJD_DST_F16=1" : "")).trim();
        Kernel k = new Kernel("elementwise", "cast", false, options, a -> {
            int n = (int) (long) (Long) a[2];
            Parallel.range(n, 1 << 14, (i0, i1) -> {
                float[] tmp = new float[Math.min(4096, i1 - i0)];
                for (int i = i0; i < i1; i += tmp.length) {
                    int m = Math.min(tmp.length, i1 - i);
                    load(a[0], i, tmp, m);
                    store(tmp, a[1], i, m);
                }
            });
        });
        g.task("cast", k, stride(length), src, dst, length);
    }

    // ---- shared helpers of the families in this package (references and launch checks) ----

    @FunctionalInterface
    interface FloatOp {
        float apply(float x);
    }

    private static void map(TaskGraph g, String name, Buffer x, Buffer out, long length, FloatOp op) {
        sameFloat(name, x, out);
        need(name, "x", x, length);
        need(name, "out", out, length);
        Kernel k = new Kernel("elementwise", name, false, opt(x), a -> {
            int n = (int) (long) (Long) a[2];
            if (a[0] instanceof float[] xs && a[1] instanceof float[] o) {
                Parallel.range(n, 1 << 13, (i0, i1) -> {
                    for (int i = i0; i < i1; i++) o[i] = op.apply(xs[i]);
                });
            } else {
                short[] xs = (short[]) a[0], o = (short[]) a[1];
                Parallel.range(n, 1 << 13, (i0, i1) -> {
                    for (int i = i0; i < i1; i++) o[i] = Float.floatToFloat16(op.apply(Float.float16ToFloat(xs[i])));
                });
            }
        });
        g.task(name, k, stride(length), x, out, length);
    }

    /** A 1-D grid-stride launch covering n items (capped at MAX_GROUPS groups; kernels loop). */
    /** Plane kernels (prelude.h's PLANE_SETUP: geglu, add_channel, upsample_nearest2x, concat_channels, group_norm_apply): a work group per (plane, chunk of PLANE_CHUNK positions). */
    static Launch planes(long planes, int positions) {
        long chunks = Math.max(1, (positions + PLANE_CHUNK - 1L) / PLANE_CHUNK);
        return new Launch(new long[]{Math.max(1, planes) * chunks * GROUP}, new long[]{GROUP});
    }

    /** Positions per work group of the plane kernels (prelude.h's PLANE_CHUNK). */
    static final int PLANE_CHUNK = 2048;

    static Launch stride(long n) {
        long groups = Math.max(1, Math.min(MAX_GROUPS, (n + GROUP - 1) / GROUP));
        return new Launch(new long[]{groups * GROUP}, new long[]{GROUP});
    }

    /** Build options selecting the fp16 variant of a portable kernel. */
    static String opt(Buffer b) {
        return b.dtype() == DType.F16 ? "-DJD_F16=1" : "";
    }

    /** All buffers are F32, or all are F16. */
    static void sameFloat(String kernel, Buffer... bs) {
        DType t = bs[0].dtype();
        for (Buffer b : bs) {
            if (b.dtype() != DType.F32 && b.dtype() != DType.F16)
                throw new KernelException(kernel + ": buffer " + b + " is " + b.dtype() + ", expected F32 or F16");
            if (b.dtype() != t) throw new KernelException(kernel + ": buffers mix " + t + " and " + b.dtype() + " (" + b + ")");
        }
    }

    static void need(String kernel, String arg, Buffer b, long elements) {
        if (elements < 0) throw new KernelException(kernel + ": negative size " + elements + " for " + arg);
        if (b.length() < elements)
            throw new KernelException(kernel + ": " + arg + " holds " + b.length() + " elements, the launch needs " + elements);
    }

    /** n elements of a float[] or fp16 short[] from element off into dst[0..n). */
    static void load(Object arr, int off, float[] dst, int n) {
        if (arr instanceof float[] f) System.arraycopy(f, off, dst, 0, n);
        else {
            short[] h = (short[]) arr;
            for (int i = 0; i < n; i++) dst[i] = Float.float16ToFloat(h[off + i]);
        }
    }

    /** src[0..n) into a float[] or fp16 short[] (round to nearest even) from element off. */
    static void store(float[] src, Object arr, int off, int n) {
        if (arr instanceof float[] f) System.arraycopy(src, 0, f, off, n);
        else {
            short[] h = (short[]) arr;
            for (int i = 0; i < n; i++) h[off + i] = Float.floatToFloat16(src[i]);
        }
    }

    /** The float[] itself, or a float copy of [off, off+n) of an fp16 array (converted in parallel). */
    static float[] floats(Object arr, int off, int n) {
        if (arr instanceof float[] f && off == 0) return f;
        float[] out = new float[n];
        if (arr instanceof float[] f) System.arraycopy(f, off, out, 0, n);
        else {
            short[] h = (short[]) arr;
            Parallel.range(n, 1 << 14, (i0, i1) -> {
                for (int i = i0; i < i1; i++) out[i] = Float.float16ToFloat(h[off + i]);
            });
        }
        return out;
    }

    static float geluRef(float x) {
        return (float) (0.5 * x * (1.0 + erf(x * 0.7071067811865476)));
    }

    // erf in double: a table of erf and its derivative every 1/64 on [0, 4], a 4th-order Taylor step from the nearest
    // point (error < 1e-11), and Laplace's continued fraction for erfc beyond 4.
    private static final int ERF_STEPS = 64, ERF_POINTS = 4 * ERF_STEPS + 1;
    private static final double[] ERF_TABLE = new double[ERF_POINTS];
    private static final double TWO_OVER_SQRT_PI = 1.1283791670955126;

    static {
        for (int i = 0; i < ERF_POINTS; i++) ERF_TABLE[i] = erfSlow((double) i / ERF_STEPS);
    }

    /** The error function, accurate to about 1e-11 (absolute). */
    public static double erf(double x) {
        double a = Math.abs(x);
        double r;
        if (a >= 4.0) r = 1.0 - erfcFraction(a);
        else {
            int i = (int) Math.round(a * ERF_STEPS);
            double x0 = (double) i / ERF_STEPS, h = a - x0;
            double d = TWO_OVER_SQRT_PI * Math.exp(-x0 * x0);
            r = ERF_TABLE[i] + d * (h - x0 * h * h + (2 * x0 * x0 - 1) / 3 * h * h * h + (3 * x0 - 2 * x0 * x0 * x0) / 6 * h * h * h * h);
        }
        return x < 0 ? -r : r;
    }

    /** erf by its Maclaurin series (|x| <= 3) or the continued fraction; for the table and for tests. */
    static double erfSlow(double x) {
        double a = Math.abs(x);
        double r;
        if (a > 3.0) r = 1.0 - erfcFraction(a);
        else {
            double sum = 0, term = a; // term = (-1)^n x^(2n+1) / n!
            for (int n = 0; n < 200; n++) {
                double t = term / (2 * n + 1);
                sum += t;
                if (Math.abs(t) < 1e-18 * Math.abs(sum)) break;
                term *= -a * a / (n + 1);
            }
            r = TWO_OVER_SQRT_PI * sum;
        }
        return x < 0 ? -r : r;
    }

    /** erfc(x) for x >= 3: exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))). */
    private static double erfcFraction(double x) {
        double f = x;
        for (int n = 120; n >= 1; n--) f = x + (n / 2.0) / f;
        return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
    }
}
