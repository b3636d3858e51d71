package jdiffusion.engine;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.kernels.Elementwise;
import jdiffusion.kernels.Gemm;

/**
 * diffusers Transformer2DModel (continuous input): GroupNorm (eps 1e-6), proj_in, BasicTransformerBlocks over the h*w
 * tokens, proj_out, + residual. proj_in/proj_out are 1x1 convs ([c, c, 1, 1]) or, with use_linear_projection, Linear
 * layers ([c, c]); both run as a GEMM on the token layout since a 1x1 conv is a linear map per position. proj_out's
 * GEMM writes [b, c, h, w] and adds the residual itself (Gemm.linearToChannels, see {@link Layers#fuse()}).
 */
final class Transformer2DModel {
    final String name;
    final int channels, inner;
    final Layers.GroupNorm norm;
    final Layers.Linear projIn, projOut;
    final List<BasicTransformerBlock> transformerBlocks = new ArrayList<>();

    Transformer2DModel(Params p, String prefix, int heads, int dimHead, int channels, int layers, int crossDim, int groups,
                       boolean useLinearProjection, boolean upcastAttention) {
        this.name = prefix.substring(0, prefix.length() - 1);
        this.channels = channels;
        this.inner = heads * dimHead;
        this.norm = new Layers.GroupNorm(p, prefix + "norm", groups, channels, 1e-6f);
        this.projIn = new Layers.Linear(p, prefix + "proj_in", channels, inner, true, !useLinearProjection);
        for (int i = 0; i < layers; i++)
            transformerBlocks.add(new BasicTransformerBlock(p, prefix + "transformer_blocks." + i + ".", inner, heads, dimHead, crossDim, upcastAttention));
        this.projOut = new Layers.Linear(p, prefix + "proj_out", inner, channels, true, !useLinearProjection);
    }

    /** x [b, c, h, w], encoderHiddenStates [b, seq, crossDim] -> [b, c, h, w] */
    Tensor forward(Activations a, Tensor x, Tensor encoderHiddenStates) {
        int b = x.dim(0), hw = x.inner(2);
        Tensor h = norm.forward(a, x, false);                         // [b, c, h, w]
        h = Layers.transpose(a, name + ".tokens", h, b, channels, hw); // [b, hw, c]
        h = projIn.forward(a, h);                                      // [b, hw, inner]
        for (BasicTransformerBlock block : transformerBlocks) h = block.forward(a, h, encoderHiddenStates);
        return projOut.forwardToChannels(a, h, x, 1f);                 // x + proj_out(h) transposed back to [b, c, h, w]
    }

    /** diffusers BasicTransformerBlock (layer_norm): self-attention, cross-attention, GEGLU feed-forward, each pre-normed with a residual. */
    static final class BasicTransformerBlock {
        final String name;
        final Layers.LayerNorm norm1, norm2, norm3;
        final Attention attn1, attn2;
        final FeedForward ff;

        BasicTransformerBlock(Params p, String prefix, int dim, int heads, int dimHead, int crossDim, boolean upcast) {
            this.name = prefix.substring(0, prefix.length() - 1);
            this.norm1 = new Layers.LayerNorm(p, prefix + "norm1", dim, 1e-5f);
            this.attn1 = new Attention(p, prefix + "attn1.", dim, dim, heads, dimHead, false, upcast);
            this.norm2 = new Layers.LayerNorm(p, prefix + "norm2", dim, 1e-5f);
            this.attn2 = new Attention(p, prefix + "attn2.", dim, crossDim, heads, dimHead, false, upcast);
            this.norm3 = new Layers.LayerNorm(p, prefix + "norm3", dim, 1e-5f);
            this.ff = new FeedForward(p, prefix + "ff.", dim, 4 * dim);
        }

        /** h [b, seq, dim], context [b, seqK, crossDim] -> [b, seq, dim]; each residual add in the epilogue of to_out / net.2 (see {@link Layers#fuse()}). */
        Tensor forward(Activations a, Tensor h, Tensor context) {
            h = attn1.forward(a, norm1.forward(a, h), null, h);    // h + attn1(norm1(h))
            h = attn2.forward(a, norm2.forward(a, h), context, h); // h + attn2(norm2(h), context)
            return ff.forward(a, norm3.forward(a, h), h);          // h + ff(norm3(h))
        }
    }

    /**
     * diffusers FeedForward with GEGLU: net.0.proj (dim -> 2*inner), x * gelu(gate), net.2 (inner -> dim). With
     * {@link Layers#fuse()} (and inner % 8 == 0) net.0.proj's rows are uploaded in {@link Gemm#gegluInterleave}'s order
     * and the GEGLU is computed in the GEMM's epilogue ({@link Gemm#linearGeglu}): the [b, seq, 2*inner] projection is never stored.
     */
    static final class FeedForward {
        final String name;
        final int inner;
        final boolean interleaved;
        final Layers.Linear proj, out;

        FeedForward(Params p, String prefix, int dim, int inner) {
            this.name = prefix + "net.0";
            this.inner = inner;
            this.interleaved = Layers.fuse() && inner % 8 == 0;
            String proj = prefix + "net.0.proj";
            this.proj = interleaved
                    ? new Layers.Linear(proj, p.get(proj + ".weight", w -> Gemm.gegluInterleave(w, inner, dim), 2 * inner, dim),
                    p.get(proj + ".bias", b -> Gemm.gegluInterleave(b, inner, 1), 2 * inner), dim, 2 * inner)
                    : new Layers.Linear(p, proj, dim, 2 * inner, true);
            this.out = new Layers.Linear(p, prefix + "net.2", inner, dim, true);
        }

        /** x [b, seq, dim], residual [b, seq, dim] -> residual + net.2(geglu(net.0.proj(x))), [b, seq, dim] */
        Tensor forward(Activations a, Tensor x, Tensor residual) {
            int rows = Math.toIntExact(x.elements() / proj.in());
            Tensor g = a.alloc(name + ".geglu", x.dim(0), x.dim(1), inner); // [b, seq, inner]
            if (interleaved) {
                if (x.dim(-1) != proj.in()) throw new IllegalArgumentException(proj.name() + ": input " + x + " does not end in " + proj.in());
                Gemm.linearGeglu(a.graph, x.buffer(), proj.weight().buffer(), proj.bias().buffer(), g.buffer(), rows, inner, proj.in());
            } else {
                Tensor hg = proj.forward(a, x);                     // [b, seq, 2*inner]
                Elementwise.geglu(a.graph, hg.buffer(), g.buffer(), rows, inner);
            }
            return out.forward(a, g, residual, 1f);                 // [b, seq, dim]
        }
    }
}
