package jdiffusion.kernels;

/**
 * Convolution family (implicit GEMM on the GPU): 3x3 and 1x1, any stride and padding, NCHW.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 */
public final class Conv2d {
    private Conv2d() {
    }

    /** x [n, cIn, h, w], weight [cOut, cIn, kernel, kernel], bias [cOut] (may be null) -> out [n, cOut, hOut, wOut], hOut = (h + 2*padding - kernel) / stride + 1 (zero padding). */
    public static void conv2d(TaskGraph g, Buffer x, Buffer weight, Buffer bias, Buffer out, int n, int cIn, int h, int w, int cOut, int kernel, int stride, int padding) {
        throw new UnsupportedOperationException("Conv2d.conv2d is not written yet");
    }
}
