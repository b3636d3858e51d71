package jdiffusion.kernels;

/**
 * Normalisation family: GroupNorm (with optional fused SiLU) and LayerNorm; statistics in fp32 for every dtype.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 */
public final class Norm {
    private Norm() {
    }

    /** x [n, c, hw]: per (sample, group of c/groups channels) mean and biased variance, y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c], then SiLU when silu. */
    public static void groupNorm(TaskGraph g, Buffer x, Buffer gamma, Buffer beta, Buffer out, int n, int c, int hw, int groups, float eps, boolean silu) {
        throw new UnsupportedOperationException("Norm.groupNorm is not written yet");
    }

    /** x [rows, cols]: per row y = (x - mean) / sqrt(var + eps) * gamma[col] + beta[col]. */
    public static void layerNorm(TaskGraph g, Buffer x, Buffer gamma, Buffer beta, Buffer out, int rows, int cols, float eps) {
        throw new UnsupportedOperationException("Norm.layerNorm is not written yet");
    }
}
