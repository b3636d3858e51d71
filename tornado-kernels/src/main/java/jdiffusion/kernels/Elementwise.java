package jdiffusion.kernels;

/**
 * Pointwise family: activations, arithmetic with broadcast, casts.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 */
public final class Elementwise {
    private Elementwise() {
    }

    /** out = x * sigmoid(x). */
    public static void silu(TaskGraph g, Buffer x, Buffer out, long length) {
        throw new UnsupportedOperationException("Elementwise.silu is not written yet");
    }

    /** out = 0.5 x (1 + erf(x / sqrt 2)) (exact GELU). */
    public static void gelu(TaskGraph g, Buffer x, Buffer out, long length) {
        throw new UnsupportedOperationException("Elementwise.gelu is not written yet");
    }

    /** out = x * sigmoid(1.702 x) (CLIP's quick_gelu). */
    public static void quickGelu(TaskGraph g, Buffer x, Buffer out, long length) {
        throw new UnsupportedOperationException("Elementwise.quickGelu is not written yet");
    }

    /** x [rows, 2*cols] -> out [rows, cols] = x[:, :cols] * gelu(x[:, cols:]) (diffusers GEGLU: hidden, gate = proj(x).chunk(2)). */
    public static void geglu(TaskGraph g, Buffer x, Buffer out, int rows, int cols) {
        throw new UnsupportedOperationException("Elementwise.geglu is not written yet");
    }

    /** out = a + b. */
    public static void add(TaskGraph g, Buffer a, Buffer b, Buffer out, long length) {
        throw new UnsupportedOperationException("Elementwise.add is not written yet");
    }

    /** out = (a + b) * alpha (residual with output_scale_factor). */
    public static void addScaled(TaskGraph g, Buffer a, Buffer b, Buffer out, long length, float alpha) {
        throw new UnsupportedOperationException("Elementwise.addScaled is not written yet");
    }

    /** out = x * alpha. */
    public static void scale(TaskGraph g, Buffer x, Buffer out, long length, float alpha) {
        throw new UnsupportedOperationException("Elementwise.scale is not written yet");
    }

    /** x [outer, channels, inner]: out[o,c,i] = x[o,c,i] + (biasPerOuter ? bias[o*channels + c] : bias[c]) (conv bias, time embedding into ResnetBlock2D). */
    public static void addChannel(TaskGraph g, Buffer x, Buffer bias, Buffer out, int outer, int channels, int inner, boolean biasPerOuter) {
        throw new UnsupportedOperationException("Elementwise.addChannel is not written yet");
    }

    /** dst = src converted between F32 and F16 (round to nearest even). */
    public static void cast(TaskGraph g, Buffer src, Buffer dst, long length) {
        throw new UnsupportedOperationException("Elementwise.cast is not written yet");
    }
}
