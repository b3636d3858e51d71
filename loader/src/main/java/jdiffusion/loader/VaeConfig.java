package jdiffusion.loader;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/** diffusers AutoencoderKL config.json, with diffusers' defaults for missing keys. */
public record VaeConfig(
        String className,
        int inChannels,
        int outChannels,
        List<String> downBlockTypes,
        List<String> upBlockTypes,
        int[] blockOutChannels,
        int layersPerBlock,
        String actFn,
        int latentChannels,
        int normNumGroups,
        int sampleSize,
        double scalingFactor,
        Double shiftFactor, // null unless set (SD3/Flux VAEs)
        double[] latentsMean, // null unless set
        double[] latentsStd, // null unless set
        boolean forceUpcast,
        boolean useQuantConv,
        boolean usePostQuantConv,
        boolean midBlockAddAttention) {

    public static VaeConfig load(Path configJson) {
        return of(Json.read(configJson));
    }

    public static VaeConfig parse(String json, String source) {
        return of(Json.parse(json.getBytes(StandardCharsets.UTF_8), source));
    }

    static VaeConfig of(Json j) {
        List<String> down = j.strings("down_block_types", List.of("DownEncoderBlock2D"));
        List<String> up = j.strings("up_block_types", List.of("UpDecoderBlock2D"));
        int n = down.size();
        if (n == 0 || n > UNetConfig.MAX_BLOCKS) throw j.fail("down_block_types", "has " + n + " blocks (1.." + UNetConfig.MAX_BLOCKS + " allowed)");
        if (up.size() != n) throw j.fail("up_block_types", "has " + up.size() + " blocks but down_block_types has " + n);
        int[] channels = j.ints("block_out_channels", new int[]{64});
        if (channels.length != n)
            throw j.fail("block_out_channels", "has " + channels.length + " entries but there are " + n + " down blocks");
        j.range("block_out_channels", channels, 1, UNetConfig.MAX_CHANNELS);
        var c = new VaeConfig(
                j.string("_class_name", "AutoencoderKL"),
                j.integer("in_channels", 3),
                j.integer("out_channels", 3),
                down, up, channels,
                j.integer("layers_per_block", 1),
                j.string("act_fn", "silu"),
                j.integer("latent_channels", 4),
                j.integer("norm_num_groups", 32),
                j.integer("sample_size", 32),
                j.number("scaling_factor", 0.18215),
                j.numberOrNull("shift_factor"),
                j.numbers("latents_mean"),
                j.numbers("latents_std"),
                j.bool("force_upcast", true),
                j.bool("use_quant_conv", true),
                j.bool("use_post_quant_conv", true),
                j.bool("mid_block_add_attention", true));
        j.range("in_channels", c.inChannels, 1, UNetConfig.MAX_CHANNELS);
        j.range("out_channels", c.outChannels, 1, UNetConfig.MAX_CHANNELS);
        j.range("layers_per_block", c.layersPerBlock, 1, UNetConfig.MAX_LAYERS);
        j.range("latent_channels", c.latentChannels, 1, UNetConfig.MAX_CHANNELS);
        j.range("norm_num_groups", c.normNumGroups, 1, UNetConfig.MAX_CHANNELS);
        j.range("sample_size", c.sampleSize, 1, 1 << 16);
        for (int i = 0; i < n; i++)
            if (channels[i] % c.normNumGroups != 0)
                throw j.fail("norm_num_groups", c.normNumGroups + " does not divide block_out_channels[" + i + "]=" + channels[i]);
        return c;
    }

    public int blocks() {
        return downBlockTypes.size();
    }

    /** Output channels of decoder up block i (block_out_channels reversed). */
    public int upChannels(int upBlock) {
        return blockOutChannels[blocks() - 1 - upBlock];
    }
}
