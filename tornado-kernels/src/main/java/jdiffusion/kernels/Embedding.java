package jdiffusion.kernels;

/**
 * Embedding family: sinusoidal timestep embedding and token lookup.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 */
public final class Embedding {
    private Embedding() {
    }

    /** diffusers get_timestep_embedding: half = dim/2, freq[i] = exp(-ln(maxPeriod) * i / (half - downscaleFreqShift)), e = t * freq; out [n, dim] = [sin e, cos e] (or [cos e, sin e] when flipSinToCos), zero pad when dim is odd. */
    public static void timestep(TaskGraph g, Buffer timesteps, Buffer out, int n, int dim, boolean flipSinToCos, float downscaleFreqShift, float maxPeriod) {
        throw new UnsupportedOperationException("Embedding.timestep is not written yet");
    }

    /** ids I32 [n], table [vocab, dim] -> out [n, dim] = table[ids[i]]; an id outside [0, vocab) is a KernelException on the java backend and a zero row on devices. */
    public static void gather(TaskGraph g, Buffer ids, Buffer table, Buffer out, int n, int dim, int vocab) {
        throw new UnsupportedOperationException("Embedding.gather is not written yet");
    }
}
