package jdiffusion.engine;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.loader.VaeConfig;

/** diffusers' VAE Encoder: conv_in, DownEncoderBlock2D x n (Downsample2D with padding 0), mid_block, conv_norm_out + SiLU, conv_out (2 x latent channels: mean and logvar). */
final class Encoder {
    final Layers.Conv convIn, convOut;
    final List<UNetBlocks.DownBlock2D> downBlocks = new ArrayList<>();
    final UNetBlocks.UNetMidBlock2D midBlock;
    final Layers.GroupNorm convNormOut;

    Encoder(Params p, String prefix, VaeConfig c) {
        int[] ch = c.blockOutChannels();
        int n = ch.length, groups = c.normNumGroups();
        float eps = 1e-6f;
        convIn = new Layers.Conv(p, prefix + "conv_in", c.inChannels(), ch[0], 3, 1, 1);
        int out = ch[0];
        for (int i = 0; i < n; i++) {
            int in = out;
            out = ch[i];
            downBlocks.add(new UNetBlocks.DownBlock2D(p, prefix + "down_blocks." + i + ".", in, out, c.layersPerBlock(), 0, groups, eps, i < n - 1, 0, null));
        }
        midBlock = new UNetBlocks.UNetMidBlock2D(p, prefix + "mid_block.", ch[n - 1], groups, eps, c.midBlockAddAttention());
        convNormOut = new Layers.GroupNorm(p, prefix + "conv_norm_out", groups, ch[n - 1], eps);
        convOut = new Layers.Conv(p, prefix + "conv_out", ch[n - 1], 2 * c.latentChannels(), 3, 1, 1);
    }

    /** image [b, in, H, W] -> moments [b, 2*latent, H/f, W/f] */
    Tensor forward(Activations a, Tensor x) {
        x = convIn.forward(a, x);                                           // [b, c0, H, W]
        for (UNetBlocks.DownBlock2D block : downBlocks) x = block.forward(a, x, null, null, new ArrayList<>()); // [b, ci, H/2^i, W/2^i]
        x = midBlock.forward(a, x);
        x = convNormOut.forward(a, x, true);
        return convOut.forward(a, x);                                       // [b, 2*latent, h, w]
    }
}
