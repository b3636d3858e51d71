package jdiffusion.engine;

import jdiffusion.kernels.DType;

/**
 * diffusers' Attention block: owns to_q / to_k / to_v / to_out.0 (and, for the VAE's mid-block attention, group_norm,
 * a residual connection and rescale_output_factor); the math is the kernel family {@link jdiffusion.kernels.Attention}
 * run with the Exec's processor (VANILLA, CHUNKED or FLASH), as diffusers swaps AttnProcessor / AttnProcessor2_0.
 * Also serves CLIP's self-attention (q_proj / k_proj / v_proj / out_proj, causal).
 */
final class Attention {
    final String name;
    final Layers.Linear toQ, toK, toV, toOut;
    final Layers.GroupNorm groupNorm;
    final int queryDim, heads, dimHead;
    final float scale, rescaleOutputFactor;
    /** attention math in fp32 for fp16 runs (upcast_attention / upcast_softmax). */
    final boolean upcast;
    final boolean causal;

    /** UNet cross/self attention: to_q, to_k, to_v without bias; crossDim == queryDim for self-attention. */
    Attention(Params p, String prefix, int queryDim, int crossDim, int heads, int dimHead, boolean bias, boolean upcast) {
        this(p, prefix, prefix + "to_q", prefix + "to_k", prefix + "to_v", prefix + "to_out.0", queryDim, crossDim, heads, dimHead, bias, upcast, false, null, 1f);
    }

    Attention(Params p, String name, String q, String k, String v, String out, int queryDim, int crossDim, int heads, int dimHead,
              boolean bias, boolean upcast, boolean causal, Layers.GroupNorm groupNorm, float rescaleOutputFactor) {
        int inner = heads * dimHead;
        this.name = name;
        this.queryDim = queryDim;
        this.heads = heads;
        this.dimHead = dimHead;
        this.toQ = new Layers.Linear(p, q, queryDim, inner, bias);
        this.toK = new Layers.Linear(p, k, crossDim, inner, bias);
        this.toV = new Layers.Linear(p, v, crossDim, inner, bias);
        this.toOut = new Layers.Linear(p, out, inner, queryDim, true);
        this.scale = (float) (1.0 / Math.sqrt(dimHead));
        this.upcast = upcast;
        this.causal = causal;
        this.groupNorm = groupNorm;
        this.rescaleOutputFactor = rescaleOutputFactor;
    }

    /** x [b, seqQ, queryDim], context [b, seqK, crossDim] (null: self-attention) -> [b, seqQ, queryDim] */
    Tensor forward(Activations a, Tensor x, Tensor context) {
        return forward(a, x, context, null);
    }

    /** As above, plus residual [b, seqQ, queryDim] (null: none) added by to_out (in its GEMM's epilogue, see {@link Layers#fuse()}). */
    Tensor forward(Activations a, Tensor x, Tensor context, Tensor residual) {
        Tensor o = attend(a, x, context);
        return residual == null ? toOut.forward(a, o) : toOut.forward(a, o, residual, 1f); // [b, seqQ, queryDim]
    }

    /** The heads' output before to_out: x [b, seqQ, queryDim], context [b, seqK, crossDim] (null: self) -> [b, seqQ, heads*dimHead] */
    Tensor attend(Activations a, Tensor x, Tensor context) {
        Tensor kv = context == null ? x : context;
        int b = x.dim(0), seqQ = x.dim(1), seqK = kv.dim(1);
        if (kv.dim(0) != b) throw new IllegalArgumentException(name + ": query batch " + x + " and context batch " + kv + " differ");
        Tensor q = toQ.forward(a, x);   // [b, seqQ, inner]
        Tensor k = toK.forward(a, kv);  // [b, seqK, inner]
        Tensor v = toV.forward(a, kv);  // [b, seqK, inner]
        DType math = upcast ? DType.F32 : q.dtype();
        Tensor q32 = Layers.cast(a, name + ".q_f32", q, math);
        Tensor k32 = Layers.cast(a, name + ".k_f32", k, math);
        Tensor v32 = Layers.cast(a, name + ".v_f32", v, math);
        Tensor o = a.alloc(name + ".attn", math, b, seqQ, heads * dimHead); // [b, seqQ, inner]
        jdiffusion.kernels.Attention.attention(a.graph, a.exec.attention(), q32.buffer(), k32.buffer(), v32.buffer(), o.buffer(), b, heads, seqQ, seqK, dimHead, scale, causal);
        return Layers.cast(a, name + ".attn_cast", o, q.dtype());
    }

    /** The VAE's spatial form: x [b, c, h, w] -> group_norm -> attention over the h*w positions -> + x, / rescale_output_factor (to_out writes [b, c, h, w] and adds x itself). */
    Tensor forwardSpatial(Activations a, Tensor x) {
        int b = x.dim(0), c = x.dim(1), hw = x.inner(2);
        Tensor n = groupNorm == null ? x : groupNorm.forward(a, x, false); // [b, c, h, w]
        Tensor t = Layers.transpose(a, name + ".tokens", n, b, c, hw);     // [b, hw, c]
        return toOut.forwardToChannels(a, attend(a, t, null), x, 1f / rescaleOutputFactor); // (x + to_out(...) transposed) / rescale, [b, c, h, w]
    }
}
