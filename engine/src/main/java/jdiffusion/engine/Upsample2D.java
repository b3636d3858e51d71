package jdiffusion.engine;

import jdiffusion.kernels.Resample;

/** diffusers Upsample2D with use_conv: nearest 2x, then a 3x3 conv ("conv"). */
final class Upsample2D {
    final String name;
    final Layers.Conv conv;

    Upsample2D(Params p, String prefix, int channels) {
        this.name = prefix + "upsample";
        this.conv = new Layers.Conv(p, prefix + "conv", channels, channels, 3, 1, 1);
    }

    /** x [n, c, h, w] -> [n, c, 2h, 2w] */
    Tensor forward(Activations a, Tensor x) {
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
        Tensor up = a.alloc(name, n, c, 2 * h, 2 * w); // [n, c, 2h, 2w]
        Resample.upsampleNearest2x(a.graph, x.buffer(), up.buffer(), n, c, h, w);
        return conv.forward(a, up);
    }
}
