package jdiffusion.loader;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/**
 * diffusers UNet2DConditionModel config.json, with diffusers' defaults for missing keys. Per-block "int or list"
 * arguments are expanded to one entry per down block (index = down block; up block i uses entry n-1-i, the mid block
 * the last entry), as diffusers does. numAttentionHeads is null unless the file sets it.
 */
public record UNetConfig(
        String className,
        Integer sampleSize,
        int inChannels,
        int outChannels,
        boolean centerInputSample,
        boolean flipSinToCos,
        int freqShift,
        List<String> downBlockTypes,
        String midBlockType, // may be null (no mid block)
        List<String> upBlockTypes,
        boolean[] onlyCrossAttention,
        int[] blockOutChannels,
        int[] layersPerBlock,
        int downsamplePadding,
        double midBlockScaleFactor,
        String actFn,
        int normNumGroups,
        double normEps,
        int[] crossAttentionDim,
        int[] transformerLayersPerBlock,
        int[] reverseTransformerLayersPerBlock, // null unless set (index = up block)
        int[] attentionHeadDim, // null entries impossible here; see heads()
        int[] numAttentionHeads, // null unless set
        boolean dualCrossAttention,
        boolean useLinearProjection,
        boolean upcastAttention,
        String classEmbedType,
        String additionEmbedType,
        Integer numClassEmbeds,
        String resnetTimeScaleShift,
        boolean resnetSkipTimeAct,
        double resnetOutScaleFactor,
        String timeEmbeddingType,
        Integer timeEmbeddingDim,
        String timeEmbeddingActFn,
        String timestepPostAct,
        Integer timeCondProjDim,
        int convInKernel,
        int convOutKernel,
        String attentionType,
        Boolean midBlockOnlyCrossAttention,
        String crossAttentionNorm,
        Integer encoderHidDim,
        String encoderHidDimType) {

    /** Sanity bounds for hostile configs (SD/SDXL use at most 4 blocks, 2560 channels, 10 transformer layers). */
    static final int MAX_BLOCKS = 16, MAX_CHANNELS = 1 << 16, MAX_LAYERS = 256;

    public static UNetConfig load(Path configJson) {
        return of(Json.read(configJson));
    }

    public static UNetConfig parse(String json, String source) {
        return of(Json.parse(json.getBytes(StandardCharsets.UTF_8), source));
    }

    static UNetConfig of(Json j) {
        List<String> down = j.strings("down_block_types",
                List.of("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"));
        List<String> up = j.strings("up_block_types",
                List.of("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"));
        int n = down.size();
        if (n == 0 || n > MAX_BLOCKS) throw j.fail("down_block_types", "has " + n + " blocks (1.." + MAX_BLOCKS + " allowed)");
        if (up.size() != n) throw j.fail("up_block_types", "has " + up.size() + " blocks but down_block_types has " + n);
        int[] channels = j.ints("block_out_channels", new int[]{320, 640, 1280, 1280});
        if (channels.length != n)
            throw j.fail("block_out_channels", "has " + channels.length + " entries but there are " + n + " down blocks");
        j.range("block_out_channels", channels, 1, MAX_CHANNELS);
        int[] layers = j.intPerBlock("layers_per_block", 2, n);
        j.range("layers_per_block", layers, 1, MAX_LAYERS);
        int[] transformerLayers = j.intPerBlock("transformer_layers_per_block", 1, n);
        j.range("transformer_layers_per_block", transformerLayers, 1, MAX_LAYERS);
        int[] reverseTransformerLayers = j.intPerBlockOrNull("reverse_transformer_layers_per_block", n);
        if (reverseTransformerLayers != null) j.range("reverse_transformer_layers_per_block", reverseTransformerLayers, 1, MAX_LAYERS);
        int[] headDim = j.intPerBlock("attention_head_dim", 8, n);
        j.range("attention_head_dim", headDim, 1, MAX_CHANNELS);
        int[] heads = j.intPerBlockOrNull("num_attention_heads", n);
        if (heads != null) j.range("num_attention_heads", heads, 1, MAX_CHANNELS);
        int[] cross = j.intPerBlock("cross_attention_dim", 1280, n);
        j.range("cross_attention_dim", cross, 1, MAX_CHANNELS);
        int groups = j.integer("norm_num_groups", 32);
        j.range("norm_num_groups", groups, 1, MAX_CHANNELS);
        var c = new UNetConfig(
                j.string("_class_name", "UNet2DConditionModel"),
                j.integerOrNull("sample_size"),
                j.integer("in_channels", 4),
                j.integer("out_channels", 4),
                j.bool("center_input_sample", false),
                j.bool("flip_sin_to_cos", true),
                j.integer("freq_shift", 0),
                down,
                j.has("mid_block_type") || !j.root.has("mid_block_type") ? j.string("mid_block_type", "UNetMidBlock2DCrossAttn") : null,
                up,
                j.boolPerBlock("only_cross_attention", false, n),
                channels,
                layers,
                j.integer("downsample_padding", 1),
                j.number("mid_block_scale_factor", 1),
                j.string("act_fn", "silu"),
                groups,
                j.number("norm_eps", 1e-5),
                cross,
                transformerLayers,
                reverseTransformerLayers,
                headDim,
                heads,
                j.bool("dual_cross_attention", false),
                j.bool("use_linear_projection", false),
                j.bool("upcast_attention", false),
                j.string("class_embed_type", null),
                j.string("addition_embed_type", null),
                j.integerOrNull("num_class_embeds"),
                j.string("resnet_time_scale_shift", "default"),
                j.bool("resnet_skip_time_act", false),
                j.number("resnet_out_scale_factor", 1.0),
                j.string("time_embedding_type", "positional"),
                j.integerOrNull("time_embedding_dim"),
                j.string("time_embedding_act_fn", null),
                j.string("timestep_post_act", null),
                j.integerOrNull("time_cond_proj_dim"),
                j.integer("conv_in_kernel", 3),
                j.integer("conv_out_kernel", 3),
                j.string("attention_type", "default"),
                j.has("mid_block_only_cross_attention") ? j.bool("mid_block_only_cross_attention", false) : null,
                j.string("cross_attention_norm", null),
                j.integerOrNull("encoder_hid_dim"),
                j.string("encoder_hid_dim_type", null));
        j.range("in_channels", c.inChannels, 1, MAX_CHANNELS);
        j.range("out_channels", c.outChannels, 1, MAX_CHANNELS);
        j.range("conv_in_kernel", c.convInKernel, 1, 15);
        j.range("conv_out_kernel", c.convOutKernel, 1, 15);
        if (c.sampleSize != null) j.range("sample_size", c.sampleSize, 1, 1 << 16);
        if (c.timeEmbeddingDim != null) j.range("time_embedding_dim", c.timeEmbeddingDim, 1, MAX_CHANNELS);
        for (int i = 0; i < n; i++) {
            if (channels[i] % groups != 0)
                throw j.fail("norm_num_groups", groups + " does not divide block_out_channels[" + i + "]=" + channels[i]);
            if (c.hasAttention(i) && channels[i] % c.heads(i) != 0)
                throw j.fail(heads != null ? "num_attention_heads" : "attention_head_dim",
                        c.heads(i) + " heads do not divide block_out_channels[" + i + "]=" + channels[i]);
        }
        return c;
    }

    public int blocks() {
        return downBlockTypes.size();
    }

    /** Whether down block i (and so up block n-1-i's mirror in SD layouts) has cross-attention transformers. */
    public boolean hasAttention(int downBlock) {
        return downBlockTypes.get(downBlock).contains("CrossAttn");
    }

    public boolean upHasAttention(int upBlock) {
        return upBlockTypes.get(upBlock).contains("CrossAttn");
    }

    public boolean midHasAttention() {
        return midBlockType != null && midBlockType.contains("CrossAttn");
    }

    /**
     * Attention heads of down block i, resolved as diffusers does: num_attention_heads if set, otherwise
     * attention_head_dim - which, by diffusers' famous naming bug, IS the number of heads (SD1.x: 8 heads of
     * 40/80/160 dims; SD2.x: [5,10,20,20] heads of 64 dims).
     */
    public int heads(int downBlock) {
        return numAttentionHeads != null ? numAttentionHeads[downBlock] : attentionHeadDim[downBlock];
    }

    /** Dimension of one head in down block i: channels / heads. */
    public int headDim(int downBlock) {
        return blockOutChannels[downBlock] / heads(downBlock);
    }

    public int upHeads(int upBlock) {
        return heads(blocks() - 1 - upBlock);
    }

    public int upHeadDim(int upBlock) {
        return upChannels(upBlock) / upHeads(upBlock);
    }

    public int midHeads() {
        return heads(blocks() - 1);
    }

    public int midHeadDim() {
        return blockOutChannels[blocks() - 1] / midHeads();
    }

    /** Output channels of up block i (block_out_channels reversed). */
    public int upChannels(int upBlock) {
        return blockOutChannels[blocks() - 1 - upBlock];
    }

    /** Resnets in up block i: reversed layers_per_block + 1. */
    public int upLayers(int upBlock) {
        return layersPerBlock[blocks() - 1 - upBlock] + 1;
    }

    public int upTransformerLayers(int upBlock) {
        return reverseTransformerLayersPerBlock != null ? reverseTransformerLayersPerBlock[upBlock]
                : transformerLayersPerBlock[blocks() - 1 - upBlock];
    }

    public int midTransformerLayers() {
        return transformerLayersPerBlock[blocks() - 1];
    }

    public int upCrossAttentionDim(int upBlock) {
        return crossAttentionDim[blocks() - 1 - upBlock];
    }

    public int midCrossAttentionDim() {
        return crossAttentionDim[blocks() - 1];
    }

    /** Width of the timestep embedding MLP: time_embedding_dim or 4 * block_out_channels[0]. */
    public int timeEmbedDim() {
        return timeEmbeddingDim != null ? timeEmbeddingDim : 4 * blockOutChannels[0];
    }
}
