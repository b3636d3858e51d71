package jdiffusion.bench;

import jdiffusion.loader.UNetConfig;

/**
 * FLOPs of one UNet2DConditionModel forward, counted from its config the way the engine builds it (2 FLOPs per
 * multiply-add): every convolution (conv_in, resnet conv1/conv2/conv_shortcut, down/up samplers, conv_out), every
 * linear layer (time_embedding, time_emb_proj, proj_in/proj_out, to_q/to_k/to_v/to_out, GEGLU feed-forward) and the
 * attention products (QK^T and PV: 4 x seqQ x seqK x inner per sample). Norms, activations, adds and the softmax are
 * left out (well under 1% of the total at SD shapes).
 */
final class UNetFlops {
    private UNetFlops() {
    }

    /** sample [batch, in, height, width], text context [batch, seq, cross_attention_dim]. */
    static double forward(UNetConfig c, int batch, int height, int width, int seq) {
        int n = c.blocks();
        int[] ch = c.blockOutChannels();
        int temb = c.timeEmbedDim();
        double f = linear(batch, ch[0], temb) + linear(batch, temb, temb);          // time_embedding linear_1, linear_2
        f += conv(batch, c.inChannels(), ch[0], c.convInKernel(), height, width);   // conv_in
        int out = ch[0];
        for (int i = 0; i < n; i++) {                                                 // down_blocks
            int h = height >> i, w = width >> i;
            int in = out;
            out = ch[i];
            for (int j = 0; j < c.layersPerBlock()[i]; j++) {
                f += resnet(batch, j == 0 ? in : out, out, temb, h, w);
                if (c.hasAttention(i)) f += transformer(batch, out, c.transformerLayersPerBlock()[i], c.crossAttentionDim()[i], h * w, seq);
            }
            if (i < n - 1) f += conv(batch, out, out, 3, h / 2, w / 2);               // downsamplers.0, stride 2
        }
        int hm = height >> (n - 1), wm = width >> (n - 1), cm = ch[n - 1];           // mid_block
        f += 2 * resnet(batch, cm, cm, temb, hm, wm) + transformer(batch, cm, c.midTransformerLayers(), c.midCrossAttentionDim(), hm * wm, seq);
        out = cm;
        for (int i = 0; i < n; i++) {                                                 // up_blocks
            int h = height >> (n - 1 - i), w = width >> (n - 1 - i);
            int prevOut = out;
            out = c.upChannels(i);
            int in = ch[Math.max(n - 2 - i, 0)];
            int layers = c.upLayers(i);
            for (int j = 0; j < layers; j++) {
                int skip = j == layers - 1 ? in : out;
                f += resnet(batch, (j == 0 ? prevOut : out) + skip, out, temb, h, w);
                if (c.upHasAttention(i)) f += transformer(batch, out, c.upTransformerLayers(i), c.upCrossAttentionDim(i), h * w, seq);
            }
            if (i < n - 1) f += conv(batch, out, out, 3, 2 * h, 2 * w);               // upsamplers.0 conv after nearest 2x
        }
        return f + conv(batch, ch[0], c.outChannels(), c.convOutKernel(), height, width); // conv_out
    }

    /** ResnetBlock2D: conv1, time_emb_proj, conv2, conv_shortcut (1x1) when channels change. */
    static double resnet(int b, int in, int out, int temb, int h, int w) {
        double f = conv(b, in, out, 3, h, w) + linear(b, temb, out) + conv(b, out, out, 3, h, w);
        return in != out ? f + conv(b, in, out, 1, h, w) : f;
    }

    /** Transformer2DModel over hw tokens of width c (inner = c): proj_in, BasicTransformerBlocks, proj_out. */
    static double transformer(int b, int c, int layers, int cross, int hw, int seq) {
        long rows = (long) b * hw;
        double block = 4 * linear(rows, c, c) + 4.0 * rows * hw * c                  // attn1: to_q/k/v/out, QK^T + PV
                + 2 * linear(rows, c, c) + 2 * linear((long) b * seq, cross, c) + 4.0 * rows * seq * c // attn2
                + linear(rows, c, 8 * c) + linear(rows, 4 * c, c);                   // ff: GEGLU proj (2 x 4c), net.2
        return 2 * linear(rows, c, c) + layers * block;
    }

    /** out [rows, n] = x [rows, k] . W^T */
    static double linear(long rows, int k, int n) {
        return 2.0 * rows * k * n;
    }

    /** Output h x w (stride folded in by the caller). */
    static double conv(int b, int in, int out, int kernel, int h, int w) {
        return 2.0 * b * h * w * out * in * kernel * kernel;
    }
}
