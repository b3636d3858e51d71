package jdiffusion.kernels;

/**
 * Row softmax family (numerically stable: max subtracted, fp32 accumulation).
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 */
public final class Softmax {
    private Softmax() {
    }

    /** out[r, :] = softmax(scale * x[r, :]); when causal, columns j > (r % cols) are masked out (self-attention with seqQ == seqK == cols). */
    public static void softmax(TaskGraph g, Buffer x, Buffer out, int rows, int cols, float scale, boolean causal) {
        throw new UnsupportedOperationException("Softmax.softmax is not written yet");
    }
}
