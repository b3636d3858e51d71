package jdiffusion.loader;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ConfigTest {
    static final Path TINY = SafeTensorsTest.TINY;

    @TempDir
    Path tmp;

    @Test
    void tinyUNet() {
        UNetConfig c = UNetConfig.load(TINY.resolve("unet/config.json"));
        assertEquals("UNet2DConditionModel", c.className());
        assertEquals(32, c.sampleSize());
        assertArrayEquals(new int[]{32, 64}, c.blockOutChannels());
        assertEquals(List.of("DownBlock2D", "CrossAttnDownBlock2D"), c.downBlockTypes());
        assertEquals(List.of("CrossAttnUpBlock2D", "UpBlock2D"), c.upBlockTypes());
        assertEquals("UNetMidBlock2DCrossAttn", c.midBlockType());
        assertArrayEquals(new int[]{2, 2}, c.layersPerBlock());
        assertArrayEquals(new int[]{32, 32}, c.crossAttentionDim());
        assertArrayEquals(new int[]{8, 8}, c.attentionHeadDim());
        assertNull(c.numAttentionHeads());
        assertFalse(c.useLinearProjection());
        assertFalse(c.upcastAttention());
        assertTrue(c.flipSinToCos());
        assertEquals(0, c.freqShift());
        assertEquals(1e-5, c.normEps());
        assertEquals(32, c.normNumGroups());
        assertEquals("silu", c.actFn());
        assertEquals("positional", c.timeEmbeddingType());
        assertEquals("default", c.resnetTimeScaleShift());
        assertNull(c.classEmbedType());
        assertEquals(128, c.timeEmbedDim());
        assertFalse(c.hasAttention(0));
        assertTrue(c.hasAttention(1));
        assertTrue(c.upHasAttention(0));
        assertTrue(c.midHasAttention());
        assertEquals(8, c.heads(1));
        assertEquals(8, c.headDim(1));
        assertEquals(8, c.midHeads());
        assertEquals(8, c.midHeadDim());
        assertEquals(64, c.upChannels(0));
        assertEquals(3, c.upLayers(0));
        assertEquals(1, c.upTransformerLayers(0));
    }

    @Test
    void sd15AndSd2HeadResolution() {
        UNetConfig sd15 = SingleFileCheckpoint.bundledUNet("sd15");
        assertEquals(8, sd15.heads(0));
        assertEquals(40, sd15.headDim(0));
        assertEquals(160, sd15.headDim(2));
        assertEquals(160, sd15.midHeadDim());
        assertEquals(8, sd15.upHeads(3));
        assertEquals(40, sd15.upHeadDim(3));
        assertArrayEquals(new int[]{768, 768, 768, 768}, sd15.crossAttentionDim());
        assertEquals(1280, sd15.timeEmbedDim());
        UNetConfig sd2 = UNetConfig.parse("""
                {"attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": true,
                 "upcast_attention": true, "sample_size": 96, "transformer_layers_per_block": [1, 2, 3, 4],
                 "only_cross_attention": [false, true, false, false], "some_future_key": {"x": [1]}}""", "sd2.json");
        assertArrayEquals(new int[]{5, 10, 20, 20}, sd2.attentionHeadDim());
        assertEquals(5, sd2.heads(0));
        assertEquals(64, sd2.headDim(0));
        assertEquals(64, sd2.headDim(3));
        assertEquals(20, sd2.midHeads());
        assertEquals(5, sd2.upHeads(3));
        assertEquals(64, sd2.upHeadDim(1));
        assertTrue(sd2.useLinearProjection());
        assertTrue(sd2.upcastAttention());
        assertEquals(4, sd2.midTransformerLayers());
        assertEquals(4, sd2.upTransformerLayers(0));
        assertEquals(1, sd2.upTransformerLayers(3));
        assertArrayEquals(new boolean[]{false, true, false, false}, sd2.onlyCrossAttention());
        assertEquals(1024, sd2.upCrossAttentionDim(0));
        // defaults of diffusers for everything missing
        assertEquals(List.of("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"), sd2.downBlockTypes());
        assertArrayEquals(new int[]{320, 640, 1280, 1280}, sd2.blockOutChannels());
        assertEquals(4, sd2.inChannels());
        assertEquals(3, sd2.convInKernel());
        // num_attention_heads wins over attention_head_dim when set
        UNetConfig heads = UNetConfig.parse("{\"num_attention_heads\": [5, 10, 20, 20], \"attention_head_dim\": 64}", "x");
        assertEquals(10, heads.heads(1));
        assertEquals(64, heads.headDim(1));
        assertEquals(64, heads.attentionHeadDim()[1]);
        // no mid block when set to null explicitly
        assertNull(UNetConfig.parse("{\"mid_block_type\": null}", "x").midBlockType());
        assertFalse(UNetConfig.parse("{\"mid_block_type\": null}", "x").midHasAttention());
    }

    static void bad(String json, String... expected) {
        var e = assertThrows(LoaderException.class, () -> UNetConfig.parse(json, "unet/config.json"));
        assertTrue(e.getMessage().startsWith("unet/config.json"), e.getMessage());
        for (String s : expected) assertTrue(e.getMessage().contains(s), "'" + s + "' not in " + e.getMessage());
    }

    @Test
    void badUNetConfigs() {
        bad("{\"in_channels\": \"4\"}", "'in_channels'", "must be an int");
        bad("{\"in_channels\": 4.5}", "'in_channels'");
        bad("{\"in_channels\": 99999999999}", "'in_channels'");
        bad("{\"in_channels\": 0}", "'in_channels'", "sane range");
        bad("{\"layers_per_block\": 2000000000}", "'layers_per_block[0]'", "sane range");
        bad("{\"down_block_types\": [" + "\"DownBlock2D\",".repeat(40) + "\"DownBlock2D\"]}", "'down_block_types'", "41 blocks");
        bad("{\"block_out_channels\": [320, 640]}", "'block_out_channels'", "2 entries");
        bad("{\"block_out_channels\": 320}", "'block_out_channels'", "list of ints");
        bad("{\"down_block_types\": [], \"up_block_types\": []}", "'down_block_types'", "0 blocks");
        bad("{\"down_block_types\": [1]}", "'down_block_types'", "list of strings");
        bad("{\"up_block_types\": [\"UpBlock2D\"]}", "'up_block_types'");
        bad("{\"attention_head_dim\": [8, 8]}", "'attention_head_dim'", "2 entries but there are 4 blocks");
        bad("{\"attention_head_dim\": 7}", "'attention_head_dim'", "do not divide");
        bad("{\"attention_head_dim\": 0}", "'attention_head_dim[0]'", "sane range");
        bad("{\"norm_num_groups\": 7}", "'norm_num_groups'", "does not divide");
        bad("{\"use_linear_projection\": \"yes\"}", "'use_linear_projection'", "true or false");
        bad("{\"norm_eps\": \"1e-5\"}", "'norm_eps'", "number");
        bad("{\"transformer_layers_per_block\": [[1], [2], [3], [4]]}", "'transformer_layers_per_block[0]'");
        bad("{\"only_cross_attention\": 1}", "'only_cross_attention'");
        bad("[1, 2]", "not a JSON object");
        bad("{\"in_channels\": 4", "not valid JSON");
        bad("", "not");
        assertEquals(4, UNetConfig.parse("{\"in_channels\": 4.0}", "x").inChannels());
    }

    @Test
    void vae() {
        VaeConfig c = VaeConfig.load(TINY.resolve("vae/config.json"));
        assertArrayEquals(new int[]{32, 64}, c.blockOutChannels());
        assertEquals(4, c.latentChannels());
        assertEquals(0.18215, c.scalingFactor());
        assertNull(c.shiftFactor());
        assertNull(c.latentsMean());
        assertTrue(c.forceUpcast());
        assertTrue(c.useQuantConv());
        assertTrue(c.usePostQuantConv());
        assertTrue(c.midBlockAddAttention());
        assertEquals(2, c.layersPerBlock());
        assertEquals(64, c.sampleSize());
        assertEquals(64, c.upChannels(0));
        VaeConfig sd15 = SingleFileCheckpoint.bundledVae("sd15");
        assertArrayEquals(new int[]{128, 256, 512, 512}, sd15.blockOutChannels());
        assertEquals(0.18215, sd15.scalingFactor());
        VaeConfig sd3 = VaeConfig.parse("{\"scaling_factor\": 1.5305, \"shift_factor\": 0.0609, \"latent_channels\": 16,"
                + " \"use_quant_conv\": false, \"use_post_quant_conv\": false, \"mid_block_add_attention\": false}", "x");
        assertEquals(0.0609, sd3.shiftFactor());
        assertFalse(sd3.useQuantConv());
        assertFalse(sd3.midBlockAddAttention());
        assertEquals(16, sd3.latentChannels());
        var e = assertThrows(LoaderException.class, () -> VaeConfig.parse("{\"scaling_factor\": null, \"latent_channels\": []}", "vae/config.json"));
        assertTrue(e.getMessage().contains("vae/config.json") && e.getMessage().contains("'latent_channels'"), e.getMessage());
    }

    @Test
    void clipText() {
        ClipTextConfig c = ClipTextConfig.load(TINY.resolve("text_encoder/config.json"));
        assertEquals(32, c.hiddenSize());
        assertEquals(37, c.intermediateSize());
        assertEquals(5, c.numHiddenLayers());
        assertEquals(4, c.numAttentionHeads());
        assertEquals(8, c.headDim());
        assertEquals(77, c.maxPositionEmbeddings());
        assertEquals("quick_gelu", c.hiddenAct());
        assertEquals(49408, c.vocabSize());
        assertEquals(0, c.bosTokenId());
        assertEquals(2, c.eosTokenId());
        assertEquals(1, c.padTokenId());
        assertEquals(32, c.projectionDim());
        ClipTextConfig sd2 = SingleFileCheckpoint.bundledTextEncoder("sd21");
        assertEquals("gelu", sd2.hiddenAct());
        assertEquals(23, sd2.numHiddenLayers());
        assertEquals(64, sd2.headDim());
        ClipTextConfig dflt = ClipTextConfig.parse("{}", "x");
        assertEquals(49407, dflt.eosTokenId());
        assertEquals(512, dflt.hiddenSize());
        var e = assertThrows(LoaderException.class, () -> ClipTextConfig.parse("{\"hidden_size\": 30, \"num_attention_heads\": 4}", "te.json"));
        assertTrue(e.getMessage().contains("'num_attention_heads'"), e.getMessage());
    }

    @Test
    void schedulers() {
        SchedulerConfig pndm = SchedulerConfig.load(TINY.resolve("scheduler/scheduler_config.json"));
        assertEquals("PNDMScheduler", pndm.className());
        assertEquals(0.00085, pndm.betaStart());
        assertEquals(0.012, pndm.betaEnd());
        assertEquals("scaled_linear", pndm.betaSchedule());
        assertTrue(pndm.skipPrkSteps());
        assertFalse(pndm.setAlphaToOne());
        assertEquals(1, pndm.stepsOffset());
        assertEquals("leading", pndm.timestepSpacing());
        assertNull(pndm.trainedBetas());
        SchedulerConfig ddim = SchedulerConfig.load(TINY.resolve("scheduler/scheduler_config_ddim.json"));
        assertEquals("DDIMScheduler", ddim.className());
        assertFalse(ddim.clipSample());
        assertEquals(1.0, ddim.clipSampleRange());
        assertFalse(ddim.thresholding());
        assertEquals(0.995, ddim.dynamicThresholdingRatio());
        assertFalse(ddim.rescaleBetasZeroSnr());
        assertFalse(ddim.setAlphaToOne());
        SchedulerConfig euler = SchedulerConfig.load(TINY.resolve("scheduler/scheduler_config_euler.json"));
        assertEquals("EulerDiscreteScheduler", euler.className());
        assertEquals("zero", euler.finalSigmasType());
        assertEquals("linear", euler.interpolationType());
        assertEquals("discrete", euler.timestepType());
        assertFalse(euler.useKarrasSigmas());
        assertNull(euler.sigmaMin());
        assertEquals("leading", euler.timestepSpacing());
        assertEquals(pndm, SchedulerConfig.load(TINY.resolve("scheduler/scheduler_config_pndm.json")));
        SchedulerConfig dpm = SchedulerConfig.parse("""
                {"_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": true, "algorithm_type": "sde-dpmsolver++",
                 "solver_order": 3, "lower_order_final": false, "lambda_min_clipped": -Infinity, "trained_betas": null}""", "dpm.json");
        assertTrue(dpm.useKarrasSigmas());
        assertEquals(3, dpm.solverOrder());
        assertEquals("sde-dpmsolver++", dpm.algorithmType());
        assertEquals("midpoint", dpm.solverType());
        assertFalse(dpm.lowerOrderFinal());
        assertEquals(Double.NEGATIVE_INFINITY, dpm.lambdaMinClipped());
        assertEquals("linspace", dpm.timestepSpacing());
        assertEquals("linear", dpm.betaSchedule());
        SchedulerConfig ddimDefaults = SchedulerConfig.parse("{\"_class_name\": \"DDIMScheduler\"}", "x");
        assertTrue(ddimDefaults.setAlphaToOne());
        assertTrue(ddimDefaults.clipSample());
        assertEquals("leading", ddimDefaults.timestepSpacing());
        assertEquals("linspace", SchedulerConfig.parse("{\"_class_name\": \"EulerAncestralDiscreteScheduler\"}", "x").timestepSpacing());
        SchedulerConfig trained = SchedulerConfig.parse("{\"num_train_timesteps\": 3, \"trained_betas\": [0.1, 0.2, 0.3]}", "x");
        assertArrayEquals(new double[]{0.1, 0.2, 0.3}, trained.trainedBetas());
        var e = assertThrows(LoaderException.class, () -> SchedulerConfig.parse("{\"trained_betas\": [0.1]}", "s.json"));
        assertTrue(e.getMessage().contains("s.json") && e.getMessage().contains("'trained_betas'"), e.getMessage());
        e = assertThrows(LoaderException.class, () -> SchedulerConfig.parse("{\"beta_start\": \"0.1\"}", "s.json"));
        assertTrue(e.getMessage().contains("'beta_start'"), e.getMessage());
        SchedulerConfig sd21 = SingleFileCheckpoint.bundledScheduler("sd21");
        assertEquals("v_prediction", sd21.predictionType());
    }

    @Test
    void modelIndex() throws IOException {
        ModelIndex m = ModelIndex.load(TINY.resolve("model_index.json"));
        assertEquals("StableDiffusionPipeline", m.className());
        assertEquals(new ModelIndex.Component("diffusers", "UNet2DConditionModel"), m.components().get("unet"));
        assertEquals(new ModelIndex.Component("transformers", "CLIPTokenizer"), m.components().get("tokenizer"));
        assertEquals(List.of("scheduler", "text_encoder", "tokenizer", "unet", "vae"), List.copyOf(m.components().keySet()));
        assertFalse(m.has("safety_checker"));
        assertEquals("false", m.options().get("requires_safety_checker"));
        Path bad = tmp.resolve("model_index.json");
        Files.writeString(bad, "{\"unet\": [\"diffusers\"]}");
        var e = assertThrows(LoaderException.class, () -> ModelIndex.load(bad));
        assertTrue(e.getMessage().contains(bad.toString()) && e.getMessage().contains("'unet'"), e.getMessage());
        var missing = assertThrows(LoaderException.class, () -> ModelIndex.load(tmp.resolve("none.json")));
        assertTrue(missing.getMessage().contains("none.json"), missing.getMessage());
    }
}
