package jdiffusion.kernels;

import static jdiffusion.kernels.Elementwise.load;
import static jdiffusion.kernels.Elementwise.need;
import static jdiffusion.kernels.Elementwise.opt;
import static jdiffusion.kernels.Elementwise.sameFloat;
import static jdiffusion.kernels.Elementwise.store;

/**
 * Row softmax family (numerically stable: max subtracted, fp32 accumulation).
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 * Kernel softmax (kernels/softmax.cl): one work group of 256 per row, local-memory max and sum; x may equal out.
 */
public final class Softmax {
    private Softmax() {
    }

    static final int GROUP = 256;

    /** out[r, :] = softmax(scale * x[r, :]); when causal, columns j > (r % cols) are masked out (self-attention with seqQ == seqK == cols). */
    public static void softmax(TaskGraph g, Buffer x, Buffer out, int rows, int cols, float scale, boolean causal) {
        sameFloat("softmax", x, out);
        need("softmax", "x", x, (long) rows * cols);
        need("softmax", "out", out, (long) rows * cols);
        if (rows == 0 || cols == 0) return;
        g.task("softmax", new Kernel("softmax", "softmax", false, opt(x), Softmax::softmaxRef),
                new Launch(new long[]{(long) rows * GROUP}, new long[]{GROUP}), x, out, rows, cols, scale, causal ? 1 : 0);
    }

    /** args: x, out, rows, cols, scale, causal. */
    static void softmaxRef(Object[] a) {
        int rows = (Integer) a[2], cols = (Integer) a[3];
        float scale = (Float) a[4];
        boolean causal = (Integer) a[5] != 0;
        Parallel.range(rows, 16, (r0, r1) -> {
            float[] v = new float[cols];
            for (int r = r0; r < r1; r++) {
                load(a[0], r * cols, v, cols);
                row(v, 0, causal ? r % cols + 1 : cols, cols, scale);
                store(v, a[1], r * cols, cols);
            }
        });
    }

    /** In place on v[off, off+cols): softmax of scale*v over the first {@code valid} entries, zeros after them. */
    static void row(float[] v, int off, int valid, int cols, float scale) {
        float m = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < valid; j++) m = Math.max(m, scale * v[off + j]);
        double s = 0;
        for (int j = 0; j < valid; j++) {
            float e = (float) Math.exp(scale * v[off + j] - m);
            v[off + j] = e;
            s += e;
        }
        float inv = 1f / (float) s;
        for (int j = 0; j < valid; j++) v[off + j] *= inv;
        for (int j = valid; j < cols; j++) v[off + j] = 0f;
    }
}
