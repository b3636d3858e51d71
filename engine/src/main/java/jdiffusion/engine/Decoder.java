package jdiffusion.engine;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.loader.VaeConfig;

/** diffusers' VAE Decoder: conv_in, mid_block, UpDecoderBlock2D x n (layers_per_block + 1 resnets each), conv_norm_out + SiLU, conv_out. */
final class Decoder {
    final Layers.Conv convIn, convOut;
    final UNetBlocks.UNetMidBlock2D midBlock;
    final List<UNetBlocks.UpDecoderBlock2D> upBlocks = new ArrayList<>();
    final Layers.GroupNorm convNormOut;

    Decoder(Params p, String prefix, VaeConfig c) {
        int[] ch = c.blockOutChannels();
        int n = ch.length, groups = c.normNumGroups();
        float eps = 1e-6f;
        convIn = new Layers.Conv(p, prefix + "conv_in", c.latentChannels(), ch[n - 1], 3, 1, 1);
        midBlock = new UNetBlocks.UNetMidBlock2D(p, prefix + "mid_block.", ch[n - 1], groups, eps, c.midBlockAddAttention());
        int out = ch[n - 1];
        for (int i = 0; i < n; i++) {
            int prev = out;
            out = c.upChannels(i);
            upBlocks.add(new UNetBlocks.UpDecoderBlock2D(p, prefix + "up_blocks." + i + ".", prev, out, c.layersPerBlock() + 1, groups, eps, i < n - 1));
        }
        convNormOut = new Layers.GroupNorm(p, prefix + "conv_norm_out", groups, ch[0], eps);
        convOut = new Layers.Conv(p, prefix + "conv_out", ch[0], c.outChannels(), 3, 1, 1);
    }

    /** z [b, latent, h, w] -> image [b, out, h*f, w*f] */
    Tensor forward(Activations a, Tensor z) {
        Tensor x = convIn.forward(a, z);                                  // [b, c_last, h, w]
        x = midBlock.forward(a, x);
        for (UNetBlocks.UpDecoderBlock2D block : upBlocks) x = block.forward(a, x); // [b, ci, 2h', 2w']
        x = convNormOut.forward(a, x, true);
        return convOut.forward(a, x);                                     // [b, out, H, W]
    }
}
