package jdiffusion.engine;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.kernels.Resample;

/** The UNet's and the VAE's blocks, under diffusers' names; each registers its resnets/attentions/samplers under the checkpoint's prefixes. */
final class UNetBlocks {
    private UNetBlocks() {
    }

    /** Cross-attention settings a block's Transformer2DModels share. */
    record CrossAttn(int heads, int layers, int crossDim, int groups, boolean useLinearProjection, boolean upcastAttention) {
    }

    /** diffusers DownBlock2D, and CrossAttnDownBlock2D when {@code attn} is given: (resnet, attention?) x layers, then an optional Downsample2D. */
    static final class DownBlock2D {
        final List<ResnetBlock2D> resnets = new ArrayList<>();
        final List<Transformer2DModel> attentions = new ArrayList<>();
        final Downsample2D downsampler;

        DownBlock2D(Params p, String prefix, int in, int out, int layers, int temb, int groups, float eps, boolean addDownsample, int downsamplePadding, CrossAttn attn) {
            for (int i = 0; i < layers; i++) {
                resnets.add(new ResnetBlock2D(p, prefix + "resnets." + i + ".", i == 0 ? in : out, out, temb, groups, eps, 1f));
                if (attn != null)
                    attentions.add(new Transformer2DModel(p, prefix + "attentions." + i + ".", attn.heads(), out / attn.heads(), out, attn.layers(), attn.crossDim(), attn.groups(), attn.useLinearProjection(), attn.upcastAttention()));
            }
            downsampler = addDownsample ? new Downsample2D(p, prefix + "downsamplers.0.", out, downsamplePadding) : null;
        }

        /** x [b, in, h, w] -> [b, out, h/2, w/2] (or h, w without downsampler); every intermediate output is pushed to skips. */
        Tensor forward(Activations a, Tensor x, Tensor tembAct, Tensor context, List<Tensor> skips) {
            for (int i = 0; i < resnets.size(); i++) {
                x = resnets.get(i).forward(a, x, tembAct);                     // [b, out, h, w]
                if (!attentions.isEmpty()) x = attentions.get(i).forward(a, x, context);
                skips.add(x);
            }
            if (downsampler != null) {
                x = downsampler.forward(a, x);                                  // [b, out, h/2, w/2]
                skips.add(x);
            }
            return x;
        }
    }

    /** diffusers UNetMidBlock2DCrossAttn: resnets.0, then (attentions.i, resnets.i+1) per layer. */
    static final class UNetMidBlock2DCrossAttn {
        final List<ResnetBlock2D> resnets = new ArrayList<>();
        final List<Transformer2DModel> attentions = new ArrayList<>();

        UNetMidBlock2DCrossAttn(Params p, String prefix, int channels, int temb, int groups, float eps, float outputScaleFactor, CrossAttn attn) {
            resnets.add(new ResnetBlock2D(p, prefix + "resnets.0.", channels, channels, temb, groups, eps, outputScaleFactor));
            attentions.add(new Transformer2DModel(p, prefix + "attentions.0.", attn.heads(), channels / attn.heads(), channels, attn.layers(), attn.crossDim(), attn.groups(), attn.useLinearProjection(), attn.upcastAttention()));
            resnets.add(new ResnetBlock2D(p, prefix + "resnets.1.", channels, channels, temb, groups, eps, outputScaleFactor));
        }

        /** x [b, c, h, w] -> [b, c, h, w] */
        Tensor forward(Activations a, Tensor x, Tensor tembAct, Tensor context) {
            x = resnets.get(0).forward(a, x, tembAct);
            for (int i = 0; i < attentions.size(); i++) {
                x = attentions.get(i).forward(a, x, context);
                x = resnets.get(i + 1).forward(a, x, tembAct);
            }
            return x;
        }
    }

    /**
     * diffusers UpBlock2D, and CrossAttnUpBlock2D when {@code attn} is given: per layer, concat the last skip on channels,
     * resnet, attention?; then an optional Upsample2D. Resnet j takes (j == 0 ? prevOut : out) + (j == last ? in : out) channels.
     */
    static final class UpBlock2D {
        final List<ResnetBlock2D> resnets = new ArrayList<>();
        final List<Transformer2DModel> attentions = new ArrayList<>();
        final Upsample2D upsampler;
        final String name;

        UpBlock2D(Params p, String prefix, int in, int prevOut, int out, int layers, int temb, int groups, float eps, boolean addUpsample, CrossAttn attn) {
            this.name = prefix.substring(0, prefix.length() - 1);
            for (int j = 0; j < layers; j++) {
                int skip = j == layers - 1 ? in : out;
                int resIn = j == 0 ? prevOut : out;
                resnets.add(new ResnetBlock2D(p, prefix + "resnets." + j + ".", resIn + skip, out, temb, groups, eps, 1f));
                if (attn != null)
                    attentions.add(new Transformer2DModel(p, prefix + "attentions." + j + ".", attn.heads(), out / attn.heads(), out, attn.layers(), attn.crossDim(), attn.groups(), attn.useLinearProjection(), attn.upcastAttention()));
            }
            upsampler = addUpsample ? new Upsample2D(p, prefix + "upsamplers.0.", out) : null;
        }

        /** x [b, prevOut, h, w] -> [b, out, 2h, 2w] (or h, w without upsampler); pops one skip per resnet. */
        Tensor forward(Activations a, Tensor x, Tensor tembAct, Tensor context, List<Tensor> skips) {
            for (int j = 0; j < resnets.size(); j++) {
                Tensor skip = skips.removeLast();
                int b = x.dim(0), ca = x.dim(1), cb = skip.dim(1);
                if (skip.dim(2) != x.dim(2) || skip.dim(3) != x.dim(3))
                    throw new IllegalArgumentException(name + ": skip " + skip + " does not match " + x + " (latent size must be a multiple of the total downsampling)");
                Tensor cat = a.alloc(name + ".cat" + j, b, ca + cb, x.dim(2), x.dim(3)); // [b, ca + cb, h, w]
                Resample.concatChannels(a.graph, x.buffer(), skip.buffer(), cat.buffer(), b, ca, cb, x.inner(2));
                x = resnets.get(j).forward(a, cat, tembAct);                              // [b, out, h, w]
                if (!attentions.isEmpty()) x = attentions.get(j).forward(a, x, context);
            }
            return upsampler == null ? x : upsampler.forward(a, x);                      // [b, out, 2h, 2w]
        }
    }

    /** diffusers UNetMidBlock2D as the VAE uses it: resnets.0, attentions.0 (single head, group_norm, residual), resnets.1; no time embedding. */
    static final class UNetMidBlock2D {
        final List<ResnetBlock2D> resnets = new ArrayList<>();
        final Attention attention;

        UNetMidBlock2D(Params p, String prefix, int channels, int groups, float eps, boolean addAttention) {
            resnets.add(new ResnetBlock2D(p, prefix + "resnets.0.", channels, channels, 0, groups, eps, 1f));
            if (addAttention) {
                String ap = prefix + "attentions.0.";
                Layers.GroupNorm gn = new Layers.GroupNorm(p, ap + "group_norm", groups, channels, eps);
                attention = new Attention(p, ap.substring(0, ap.length() - 1), ap + "to_q", ap + "to_k", ap + "to_v", ap + "to_out.0",
                        channels, channels, 1, channels, true, true, false, gn, 1f);
            } else {
                attention = null;
            }
            resnets.add(new ResnetBlock2D(p, prefix + "resnets.1.", channels, channels, 0, groups, eps, 1f));
        }

        /** x [b, c, h, w] -> [b, c, h, w] */
        Tensor forward(Activations a, Tensor x) {
            x = resnets.get(0).forward(a, x, null);
            if (attention != null) x = attention.forwardSpatial(a, x);
            return resnets.get(1).forward(a, x, null);
        }
    }

    /** diffusers UpDecoderBlock2D: resnets (no skips, no time embedding), then an optional Upsample2D. */
    static final class UpDecoderBlock2D {
        final List<ResnetBlock2D> resnets = new ArrayList<>();
        final Upsample2D upsampler;

        UpDecoderBlock2D(Params p, String prefix, int in, int out, int layers, int groups, float eps, boolean addUpsample) {
            for (int j = 0; j < layers; j++)
                resnets.add(new ResnetBlock2D(p, prefix + "resnets." + j + ".", j == 0 ? in : out, out, 0, groups, eps, 1f));
            upsampler = addUpsample ? new Upsample2D(p, prefix + "upsamplers.0.", out) : null;
        }

        /** x [b, in, h, w] -> [b, out, 2h, 2w] (or h, w without upsampler) */
        Tensor forward(Activations a, Tensor x) {
            for (ResnetBlock2D r : resnets) x = r.forward(a, x, null);
            return upsampler == null ? x : upsampler.forward(a, x);
        }
    }
}
