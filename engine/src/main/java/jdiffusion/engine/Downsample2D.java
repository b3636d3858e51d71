package jdiffusion.engine;

/**
 * diffusers Downsample2D with use_conv: a 3x3 stride-2 conv ("conv"). padding 1 (the UNet) is the plain conv; padding 0
 * (the VAE encoder) pads only right and bottom by one before the conv, which equals a 4x4 stride-2 padding-1 conv whose
 * first kernel row and column are zero, so the checkpoint's 3x3 kernel is embedded in a 4x4 one at load time.
 */
final class Downsample2D {
    final Layers.Conv conv;

    Downsample2D(Params p, String prefix, int channels, int padding) {
        String name = prefix + "conv";
        if (padding == 1) {
            conv = new Layers.Conv(p, name, channels, channels, 3, 2, 1);
        } else if (padding == 0) {
            Tensor w = p.get(name + ".weight", Downsample2D::embed4x4, channels, channels, 3, 3);
            conv = new Layers.Conv(name, new Tensor(w.buffer(), new int[]{channels, channels, 4, 4}), p.get(name + ".bias", channels), channels, channels, 4, 2, 1);
        } else {
            throw new IllegalArgumentException(prefix + ": downsample_padding " + padding + " is not supported (0 or 1)");
        }
    }

    /** [cOut, cIn, 3, 3] -> [cOut, cIn, 4, 4] with the 3x3 taps at rows/cols 1..3. */
    private static float[] embed4x4(float[] w3) {
        int planes = w3.length / 9;
        float[] w4 = new float[planes * 16];
        for (int p = 0; p < planes; p++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) w4[p * 16 + (y + 1) * 4 + x + 1] = w3[p * 9 + y * 3 + x];
        return w4;
    }

    /** x [n, c, h, w] -> [n, c, h/2, w/2] (h, w even) */
    Tensor forward(Activations a, Tensor x) {
        return conv.forward(a, x);
    }
}
