package jdiffusion.kernels;

/**
 * Layout family: nearest 2x upsample, channel concat, batched transpose.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 */
public final class Resample {
    private Resample() {
    }

    /** x [n, c, h, w] -> out [n, c, 2h, 2w], out[.., y, x] = x[.., y/2, x/2]. */
    public static void upsampleNearest2x(TaskGraph g, Buffer x, Buffer out, int n, int c, int h, int w) {
        throw new UnsupportedOperationException("Resample.upsampleNearest2x is not written yet");
    }

    /** a [n, ca, hw], b [n, cb, hw] -> out [n, ca + cb, hw] (torch.cat dim=1). */
    public static void concatChannels(TaskGraph g, Buffer a, Buffer b, Buffer out, int n, int ca, int cb, int hw) {
        throw new UnsupportedOperationException("Resample.concatChannels is not written yet");
    }

    /** x [batch, rows, cols] -> out [batch, cols, rows]. */
    public static void transpose(TaskGraph g, Buffer x, Buffer out, int batch, int rows, int cols) {
        throw new UnsupportedOperationException("Resample.transpose is not written yet");
    }
}
