package jdiffusion.kernels;

/**
 * Attention family, the pluggable processors of diffusers' set_attn_processor: VANILLA materialises softmax(QK^T) per
 * (batch, head); CHUNKED does the same over query slices so the score buffer stays bounded (memory-efficient); FLASH is a
 * tiled online softmax (running max, running sum, rescaled accumulator) that never materialises seqQ x seqK.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 */
public final class Attention {
    private Attention() {
    }

    public enum Processor { VANILLA, CHUNKED, FLASH }

    /** q [batch, seqQ, heads*headDim], k and v [batch, seqK, heads*headDim] (the to_q/to_k/to_v outputs, heads not split) -> out [batch, seqQ, heads*headDim] = softmax(scale q k^T (+ causal mask)) v per head. Workspace comes from TaskGraph.scratch. */
    public static void attention(TaskGraph g, Processor processor, Buffer q, Buffer k, Buffer v, Buffer out, int batch, int heads, int seqQ, int seqK, int headDim, float scale, boolean causal) {
        throw new UnsupportedOperationException("Attention.attention is not written yet");
    }
}
