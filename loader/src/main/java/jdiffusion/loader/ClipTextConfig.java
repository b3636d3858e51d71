package jdiffusion.loader;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** transformers CLIPTextConfig (text_encoder/config.json), with transformers' defaults for missing keys. */
public record ClipTextConfig(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int projectionDim,
        int numHiddenLayers,
        int numAttentionHeads,
        int maxPositionEmbeddings,
        String hiddenAct, // "quick_gelu" (SD1.x, OpenAI CLIP) or "gelu" (SD2.x, OpenCLIP)
        double layerNormEps,
        int padTokenId,
        int bosTokenId,
        int eosTokenId) {

    public static ClipTextConfig load(Path configJson) {
        return of(Json.read(configJson));
    }

    public static ClipTextConfig parse(String json, String source) {
        return of(Json.parse(json.getBytes(StandardCharsets.UTF_8), source));
    }

    static ClipTextConfig of(Json j) {
        var c = new ClipTextConfig(
                j.integer("vocab_size", 49408),
                j.integer("hidden_size", 512),
                j.integer("intermediate_size", 2048),
                j.integer("projection_dim", 512),
                j.integer("num_hidden_layers", 12),
                j.integer("num_attention_heads", 8),
                j.integer("max_position_embeddings", 77),
                j.string("hidden_act", "quick_gelu"),
                j.number("layer_norm_eps", 1e-5),
                j.integer("pad_token_id", 1),
                j.integer("bos_token_id", 49406),
                j.integer("eos_token_id", 49407));
        j.range("vocab_size", c.vocabSize, 1, 1 << 24);
        j.range("hidden_size", c.hiddenSize, 1, UNetConfig.MAX_CHANNELS);
        j.range("intermediate_size", c.intermediateSize, 1, 1 << 18);
        j.range("projection_dim", c.projectionDim, 1, UNetConfig.MAX_CHANNELS);
        j.range("num_hidden_layers", c.numHiddenLayers, 1, 1024);
        j.range("num_attention_heads", c.numAttentionHeads, 1, UNetConfig.MAX_CHANNELS);
        j.range("max_position_embeddings", c.maxPositionEmbeddings, 1, 1 << 20);
        if (c.hiddenSize % c.numAttentionHeads != 0)
            throw j.fail("num_attention_heads", c.numAttentionHeads + " does not divide hidden_size " + c.hiddenSize);
        return c;
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }
}
