package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import jdiffusion.kernels.Attention.Processor;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.JavaBackend;
import jdiffusion.loader.DiffusersModel;
import jdiffusion.loader.LoaderException;
import jdiffusion.loader.TensorInfo;
import jdiffusion.loader.UNetConfig;
import jdiffusion.loader.Weights;
import org.junit.jupiter.api.Test;

class UNet2DConditionModelTest {
    static final String SD15 = """
            {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
             "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false, "cross_attention_dim": 768,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
             "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}""";
    static final String SD21 = """
            {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": [5, 10, 20, 20],
             "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false, "cross_attention_dim": 1024,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "downsample_padding": 1, "dual_cross_attention": false, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
             "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4,
             "sample_size": 96, "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
             "use_linear_projection": true, "upcast_attention": true}""";

    static final Map<String, float[]> REF = Fixtures.reference("unet_io");

    static DiffusersModel tiny() {
        return DiffusersModel.open(Fixtures.tinySd());
    }

    static float[] run(UNet2DConditionModel unet, float[] timesteps) {
        return unet.forward(REF.get("sample"), 2, 32, 32, timesteps, REF.get("encoder_hidden_states"), 77);
    }

    @Test
    void matchesDiffusersOnJavaBackendWithEveryProcessor() {
        DiffusersModel m = tiny();
        try (Backend java = new JavaBackend(); Weights w = m.weights("unet")) {
            for (Processor proc : Processor.values()) {
                try (UNet2DConditionModel unet = new UNet2DConditionModel(m.unetConfig(), w, new Exec(java, Precision.FP32, proc))) {
                    float[] out = run(unet, REF.get("timestep"));
                    Fixtures.assertClose("unet java fp32 " + proc + " vs out (sdpa)", out, REF.get("out_sdpa"), 1e-4);
                    Fixtures.assertClose("unet java fp32 " + proc + " vs out_vanilla", out, REF.get("out_vanilla"), 1e-4);
                    Fixtures.assertClose("unet java fp32 " + proc + " vs out_fp64ref", out, REF.get("out_fp64ref"), 1e-4);
                    // replay of the same graph with a new timestep (the 0-dim timestep_scalar broadcast to the batch)
                    Fixtures.assertClose("unet java fp32 " + proc + " replay t=500", run(unet, REF.get("timestep_scalar")), REF.get("out_t500"), 1e-4);
                }
            }
        }
    }

    @Test
    void everyBackendAndPrecision() {
        DiffusersModel m = tiny();
        List<Backend> backends = Backends.forTests();
        try (Weights w = m.weights("unet")) {
            for (Backend b : backends) {
                float[] fp32 = null;
                for (Processor proc : Processor.values()) {
                    try (UNet2DConditionModel unet = new UNet2DConditionModel(m.unetConfig(), w, new Exec(b, Precision.FP32, proc))) {
                        fp32 = run(unet, REF.get("timestep"));
                        Fixtures.assertClose("unet " + b.name() + " fp32 " + proc, fp32, REF.get("out"), 1e-4);
                    }
                }
                for (Precision p : List.of(Precision.TF32, Precision.FP16)) {
                    for (Processor proc : p == Precision.FP16 ? List.of(Processor.values()) : List.of(Processor.FLASH)) {
                        try (UNet2DConditionModel unet = new UNet2DConditionModel(m.unetConfig(), w, new Exec(b, p, proc))) {
                            Fixtures.assertClose("unet " + b.name() + " " + p + " " + proc + " vs fp32", run(unet, REF.get("timestep")), fp32, 1e-2);
                        }
                    }
                }
            }
        } finally {
            for (Backend b : backends) b.close();
        }
    }

    @Test
    void upcastAttentionInFp16() {
        DiffusersModel m = tiny();
        UNetConfig c = m.unetConfig();
        UNetConfig up = UNetConfig.parse(readConfig().replace("\"upcast_attention\": false", "\"upcast_attention\": true"), "tiny upcast");
        assertTrue(up.upcastAttention() && !c.upcastAttention());
        try (Backend java = new JavaBackend(); Weights w = m.weights("unet");
             UNet2DConditionModel unet = new UNet2DConditionModel(up, w, new Exec(java, Precision.FP16, Processor.VANILLA))) {
            Fixtures.assertClose("unet java fp16 upcast_attention", run(unet, REF.get("timestep")), REF.get("out"), 1e-2);
        }
    }

    static String readConfig() {
        try {
            return java.nio.file.Files.readString(Fixtures.tinySd().resolve("unet/config.json"));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void tinyParameterShapesEqualTheCheckpoint() {
        DiffusersModel m = tiny();
        Map<String, long[]> shapes = UNet2DConditionModel.parameterShapes(m.unetConfig());
        try (Weights w = m.weights("unet")) {
            assertEquals(new TreeMap<>(w.names().stream().collect(java.util.stream.Collectors.toMap(n -> n, n -> 0))).keySet(), new TreeMap<>(shapes).keySet());
            for (String n : w.names()) assertArrayEquals(n, w.info(n).shape(), shapes.get(n));
        }
    }

    static void assertArrayEquals(String name, long[] expected, long[] actual) {
        if (!Arrays.equals(expected, actual)) throw new AssertionError(name + ": " + Arrays.toString(actual) + " != checkpoint " + Arrays.toString(expected));
    }

    static long count(Map<String, long[]> shapes) {
        long n = 0;
        for (long[] s : shapes.values()) n += Arrays.stream(s).reduce(1, (x, y) -> x * y);
        return n;
    }

    @Test
    void sd15AndSd21ParameterShapes() {
        Map<String, long[]> sd15 = UNet2DConditionModel.parameterShapes(UNetConfig.parse(SD15, "sd15"));
        assertEquals(686, sd15.size());
        assertEquals(859_520_964L, count(sd15));
        assertArrayEquals("attn2.to_k", new long[]{320, 768}, sd15.get("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"));
        assertArrayEquals("proj_in", new long[]{320, 320, 1, 1}, sd15.get("down_blocks.0.attentions.0.proj_in.weight"));
        Map<String, long[]> sd21 = UNet2DConditionModel.parameterShapes(UNetConfig.parse(SD21, "sd21"));
        assertEquals(686, sd21.size());
        assertEquals(865_910_724L, count(sd21));
        assertArrayEquals("proj_in linear", new long[]{320, 320}, sd21.get("down_blocks.0.attentions.0.proj_in.weight"));
    }

    @Test
    void randomWeightsRun() {
        DiffusersModel m = tiny();
        Map<String, long[]> shapes = UNet2DConditionModel.parameterShapes(m.unetConfig());
        try (Backend java = new JavaBackend(); RandomWeights w = new RandomWeights(shapes, 42);
             UNet2DConditionModel unet = new UNet2DConditionModel(m.unetConfig(), w, new Exec(java, Precision.FP32, Processor.FLASH))) {
            float[] a = run(unet, REF.get("timestep"));
            for (float v : a) assertTrue(Float.isFinite(v));
            assertEquals(Arrays.toString(new RandomWeights(shapes, 42).floats("conv_in.weight")), Arrays.toString(w.floats("conv_in.weight")));
        }
    }

    /** The SD1.5 and SD2.1 layouts (4 blocks, 3 downsamplers, per-block heads, linear projection, upcast) at small widths, with random weights: every processor and fp16 agree. */
    @Test
    void sdShapedConfigsRunWithRandomWeights() {
        String sd15 = SD15.replace("[320, 640, 1280, 1280]", "[32, 32, 64, 64]").replace("\"cross_attention_dim\": 768", "\"cross_attention_dim\": 48");
        String sd21 = SD21.replace("[320, 640, 1280, 1280]", "[32, 64, 64, 128]").replace("[5, 10, 20, 20]", "[2, 4, 4, 8]")
                .replace("\"cross_attention_dim\": 1024", "\"cross_attention_dim\": 48").replace("\"layers_per_block\": 2", "\"layers_per_block\": 1, \"transformer_layers_per_block\": 2");
        java.util.SplittableRandom r = new java.util.SplittableRandom(7);
        float[] sample = new float[2 * 4 * 16 * 24], ehs = new float[2 * 77 * 48];
        for (int i = 0; i < sample.length; i++) sample[i] = (float) r.nextGaussian();
        for (int i = 0; i < ehs.length; i++) ehs[i] = (float) r.nextGaussian();
        try (Backend java = new JavaBackend()) {
            for (String json : List.of(sd15, sd21)) {
                UNetConfig c = UNetConfig.parse(json, "sd-shaped");
                try (RandomWeights w = new RandomWeights(UNet2DConditionModel.parameterShapes(c), 1)) {
                    float[] ref = null;
                    for (Processor proc : Processor.values()) {
                        try (UNet2DConditionModel unet = new UNet2DConditionModel(c, w, new Exec(java, Precision.FP32, proc))) {
                            float[] out = unet.forward(sample, 2, 16, 24, new float[]{981, 1}, ehs, 77);
                            if (ref == null) ref = out;
                            else Fixtures.assertClose("sd-shaped " + c.useLinearProjection() + " " + proc, out, ref, 1e-5);
                        }
                    }
                    try (UNet2DConditionModel unet = new UNet2DConditionModel(c, w, new Exec(java, Precision.FP16, Processor.FLASH))) {
                        Fixtures.assertClose("sd-shaped " + c.useLinearProjection() + " fp16", unet.forward(sample, 2, 16, 24, new float[]{981, 1}, ehs, 77), ref, 1e-2);
                    }
                }
            }
        }
    }

    @Test
    void missingOrMisshapedWeightNamesTheTensor() {
        DiffusersModel m = tiny();
        String name = "up_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight";
        try (Backend java = new JavaBackend(); Weights w = m.weights("unet")) {
            Exec exec = new Exec(java, Precision.FP32, Processor.FLASH);
            LoaderException missing = assertThrows(LoaderException.class,
                    () -> new UNet2DConditionModel(m.unetConfig(), Fixtures.tampered(w, name, i -> null), exec));
            assertTrue(missing.getMessage().contains(name) && missing.getMessage().contains("missing"), missing.getMessage());
            LoaderException shape = assertThrows(LoaderException.class,
                    () -> new UNet2DConditionModel(m.unetConfig(), Fixtures.tampered(w, name, i -> new TensorInfo(i.name(), i.type(), new long[]{64, 33})), exec));
            assertTrue(shape.getMessage().contains(name) && shape.getMessage().contains("[64, 33]"), shape.getMessage());
            assertEquals(0, java.allocatedBytes(), "weights of a failed load are freed");
        }
    }

    @Test
    void wrongInputSizesNameTheModelAndShape() {
        DiffusersModel m = tiny();
        try (Backend java = new JavaBackend(); Weights w = m.weights("unet");
             UNet2DConditionModel unet = new UNet2DConditionModel(m.unetConfig(), w, new Exec(java, Precision.FP32, Processor.FLASH))) {
            float[] s = REF.get("sample"), e = REF.get("encoder_hidden_states"), t = REF.get("timestep");
            IllegalArgumentException a = assertThrows(IllegalArgumentException.class, () -> unet.forward(s, 2, 32, 30, t, e, 77));
            assertTrue(a.getMessage().contains("UNet2DConditionModel") && a.getMessage().contains("[2, 4, 32, 30]"), a.getMessage());
            IllegalArgumentException b = assertThrows(IllegalArgumentException.class, () -> unet.forward(s, 2, 32, 32, t, e, 76));
            assertTrue(b.getMessage().contains("encoder_hidden_states") && b.getMessage().contains("[2, 76, 32]"), b.getMessage());
            IllegalArgumentException c = assertThrows(IllegalArgumentException.class, () -> unet.forward(s, 2, 32, 32, new float[3], e, 77));
            assertTrue(c.getMessage().contains("timesteps"), c.getMessage());
            IllegalArgumentException d = assertThrows(IllegalArgumentException.class, () -> unet.forward(new float[2 * 4 * 31 * 31], 2, 31, 31, t, e, 77));
            assertTrue(d.getMessage().contains("multiple of 2"), d.getMessage());
        }
    }
}
