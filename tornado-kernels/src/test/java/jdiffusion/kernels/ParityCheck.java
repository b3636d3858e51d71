package jdiffusion.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.SplittableRandom;

/** Helpers of the Norm/Elementwise/Softmax/Resample/Embedding/Attention tests: random data, runs on a backend, relative L2. */
final class ParityCheck {
    static final double F32 = 1e-5, F16 = 1e-2, ATTN_F32 = 1e-4;

    private ParityCheck() {
    }

    /** Appends the kernel(s) under test: inputs and outputs already live on the graph's backend. */
    @FunctionalInterface
    interface Op {
        void append(TaskGraph g, Buffer[] in, Buffer[] out);
    }

    static float[] random(long seed, int n, double lo, double hi) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (lo + (hi - lo) * r.nextDouble());
        return a;
    }

    /** The values an F16 buffer holds. */
    static float[] half(float[] a) {
        float[] h = new float[a.length];
        for (int i = 0; i < a.length; i++) h[i] = Float.float16ToFloat(Float.floatToFloat16(a[i]));
        return h;
    }

    static Buffer upload(Backend be, String what, DType dt, float[] data) {
        Buffer b = be.allocate(what, dt, Math.max(1, data.length));
        if (data.length > 0) be.write(b, data);
        return b;
    }

    /** Uploads inputs as dt, allocates outputs of outLens elements as dt, runs op as one graph, returns the outputs. */
    static float[][] run(Backend be, DType dt, boolean tf32, float[][] inputs, int[] outLens, Op op) {
        Buffer[] in = new Buffer[inputs.length], out = new Buffer[outLens.length];
        try (TaskGraph g = new TaskGraph("test", be, tf32)) {
            for (int i = 0; i < in.length; i++) in[i] = upload(be, "in" + i, dt, inputs[i]);
            for (int i = 0; i < out.length; i++) {
                out[i] = be.allocate("out" + i, dt, Math.max(1, outLens[i]));
                be.write(out[i], new float[(int) out[i].length()]);
            }
            op.append(g, in, out);
            g.warmup();
            g.execute();
            be.finish();
            float[][] res = new float[out.length][];
            for (int i = 0; i < out.length; i++) {
                res[i] = new float[outLens[i]];
                if (outLens[i] > 0) be.read(out[i], 0, res[i], 0, outLens[i]);
            }
            return res;
        } finally {
            for (Buffer b : in) if (b != null) b.close();
            for (Buffer b : out) if (b != null) b.close();
        }
    }

    static float[] run1(Backend be, DType dt, float[][] inputs, int outLen, Op op) {
        return run(be, dt, false, inputs, new int[]{outLen}, op)[0];
    }

    static double relL2(float[] got, double[] want) {
        double num = 0, den = 0;
        for (int i = 0; i < want.length; i++) {
            double d = got[i] - want[i];
            num += d * d;
            den += want[i] * want[i];
        }
        if (Double.isNaN(num)) return Double.POSITIVE_INFINITY;
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    static double relL2(float[] got, float[] want) {
        double[] w = new double[want.length];
        for (int i = 0; i < w.length; i++) w[i] = want[i];
        return relL2(got, w);
    }

    static void close(String what, float[] got, double[] want, double tol) {
        assertTrue(got.length == want.length, what + ": length " + got.length + " != " + want.length);
        double e = relL2(got, want);
        assertTrue(e <= tol, what + ": relative L2 error " + e + " > " + tol + " (first values got " + head(got) + ")");
    }

    static void close(String what, float[] got, float[] want, double tol) {
        double[] w = new double[want.length];
        for (int i = 0; i < w.length; i++) w[i] = want[i];
        close(what, got, w, tol);
    }

    static String head(float[] a) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < Math.min(4, a.length); i++) sb.append(i == 0 ? "" : ", ").append(a[i]);
        return sb.append(a.length > 4 ? ", ...]" : "]").toString();
    }

    static double tol(DType dt) {
        return dt == DType.F16 ? F16 : F32;
    }

    /** A CUDA backend or an OpenCL GPU among the test backends (enables the SD-size checks). */
    static boolean hasGpu(List<Backend> backends) {
        for (Backend b : backends)
            if (b.name().equals("cuda") || (b instanceof OpenClBackend o && o.gpu)) return true;
        return false;
    }

    static boolean isGpu(Backend b) {
        return b.name().equals("cuda") || (b instanceof OpenClBackend o && o.gpu);
    }
}
