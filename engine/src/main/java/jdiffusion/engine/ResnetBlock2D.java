package jdiffusion.engine;

import jdiffusion.kernels.Elementwise;

/**
 * diffusers ResnetBlock2D (time_embedding_norm "default", SiLU): norm1 + SiLU, conv1, + time_emb_proj(SiLU(temb)) per
 * channel, norm2 + SiLU, conv2, + shortcut (conv_shortcut 1x1 when channels change), divided by output_scale_factor
 * (the last two in conv2's epilogue, see {@link Layers#fuse()}).
 */
final class ResnetBlock2D {
    final String name;
    final int in, out;
    final Layers.GroupNorm norm1, norm2;
    final Layers.Conv conv1, conv2, convShortcut;
    final Layers.Linear timeEmbProj;
    final float outputScaleFactor;

    /** tembChannels 0: no time embedding (the VAE's resnets). */
    ResnetBlock2D(Params p, String prefix, int in, int out, int tembChannels, int groups, float eps, float outputScaleFactor) {
        this.name = prefix.substring(0, prefix.length() - 1);
        this.in = in;
        this.out = out;
        this.norm1 = new Layers.GroupNorm(p, prefix + "norm1", groups, in, eps);
        this.conv1 = new Layers.Conv(p, prefix + "conv1", in, out, 3, 1, 1);
        this.timeEmbProj = tembChannels > 0 ? new Layers.Linear(p, prefix + "time_emb_proj", tembChannels, out, true) : null;
        this.norm2 = new Layers.GroupNorm(p, prefix + "norm2", groups, out, eps);
        this.conv2 = new Layers.Conv(p, prefix + "conv2", out, out, 3, 1, 1);
        this.convShortcut = in != out ? new Layers.Conv(p, prefix + "conv_shortcut", in, out, 1, 1, 0) : null;
        this.outputScaleFactor = outputScaleFactor;
    }

    /** x [n, in, h, w], tembAct = SiLU(temb) [n, tembChannels] (null without time embedding) -> [n, out, h, w] */
    Tensor forward(Activations a, Tensor x, Tensor tembAct) {
        int n = x.dim(0), hw = x.inner(2);
        Tensor h = norm1.forward(a, x, true); // [n, in, h, w]
        h = conv1.forward(a, h);              // [n, out, h, w]
        if (timeEmbProj != null) {
            Tensor t = timeEmbProj.forward(a, tembAct); // [n, out]
            Tensor ht = a.alloc(name + ".temb_add", h.shape());
            Elementwise.addChannel(a.graph, h.buffer(), t.buffer(), ht.buffer(), n, out, hw, true);
            h = ht;
        }
        h = norm2.forward(a, h, true);        // [n, out, h, w]
        Tensor shortcut = convShortcut == null ? x : convShortcut.forward(a, x); // [n, out, h, w]
        return conv2.forward(a, h, shortcut, 1f / outputScaleFactor);           // (shortcut + conv2(h)) / output_scale_factor, [n, out, h, w]
    }
}
