package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import jdiffusion.kernels.Attention.Processor;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.JavaBackend;
import jdiffusion.loader.ClipTextConfig;
import jdiffusion.loader.DiffusersModel;
import jdiffusion.loader.LoaderException;
import jdiffusion.loader.Weights;
import org.junit.jupiter.api.Test;

/** CLIPTextModel against transformers (text_io reference). */
class ClipTextModelTest {
    static final Map<String, float[]> REF = Fixtures.reference("text_io");

    static int[] ids() {
        float[] f = REF.get("input_ids");
        int[] ids = new int[f.length];
        for (int i = 0; i < f.length; i++) ids[i] = (int) f[i];
        return ids;
    }

    @Test
    void matchesTransformersOnEveryBackend() {
        DiffusersModel m = DiffusersModel.open(Fixtures.tinySd());
        List<Backend> backends = Backends.forTests();
        try (Weights w = m.weights("text_encoder")) {
            for (Backend b : backends) {
                for (Processor proc : Processor.values()) {
                    try (CLIPTextModel clip = new CLIPTextModel(m.textEncoderConfig(), w, new Exec(b, Precision.FP32, proc))) {
                        CLIPTextModel.Output o = clip.forward(ids(), 3, 0);
                        Fixtures.assertClose("clip " + b.name() + " fp32 " + proc + " last_hidden_state", o.lastHiddenState(), REF.get("last_hidden_state"), 1e-4);
                        Fixtures.assertClose("clip " + b.name() + " fp32 " + proc + " pooler_output", o.pooled(), REF.get("pooler_output"), 1e-4);
                    }
                }
                for (Precision p : List.of(Precision.TF32, Precision.FP16)) {
                    try (CLIPTextModel clip = new CLIPTextModel(m.textEncoderConfig(), w, new Exec(b, p, Processor.FLASH))) {
                        CLIPTextModel.Output o = clip.forward(ids(), 3, 0);
                        Fixtures.assertClose("clip " + b.name() + " " + p + " last_hidden_state", o.lastHiddenState(), REF.get("last_hidden_state"), 1e-2);
                        Fixtures.assertClose("clip " + b.name() + " " + p + " pooler_output", o.pooled(), REF.get("pooler_output"), 1e-2);
                    }
                }
            }
        } finally {
            for (Backend b : backends) b.close();
        }
    }

    @Test
    void clipSkipAndSingleRows() {
        DiffusersModel m = DiffusersModel.open(Fixtures.tinySd());
        try (Backend java = new JavaBackend(); Weights w = m.weights("text_encoder");
             CLIPTextModel clip = new CLIPTextModel(m.textEncoderConfig(), w, new Exec(java, Precision.FP32, Processor.VANILLA))) {
            int[] all = ids();
            // one prompt at a time gives the same rows as the batch of three
            int[] second = Arrays.copyOfRange(all, 77, 154);
            CLIPTextModel.Output one = clip.forward(second, 1, 0);
            Fixtures.assertClose("clip batch-1 row", one.lastHiddenState(), Arrays.copyOfRange(REF.get("last_hidden_state"), 77 * 32, 154 * 32), 1e-4);
            CLIPTextModel.Output skip = clip.forward(all, 3, 1);
            assertEquals(3 * 77 * 32, skip.lastHiddenState().length);
            assertTrue(Fixtures.relErr(skip.lastHiddenState(), REF.get("last_hidden_state")) > 1e-3, "clip_skip 1 takes the penultimate layer");
            Fixtures.assertClose("clip clip_skip keeps the pooled output", skip.pooled(), REF.get("pooler_output"), 1e-4);
        }
    }

    @Test
    void parameterShapesAndErrors() {
        DiffusersModel m = DiffusersModel.open(Fixtures.tinySd());
        ClipTextConfig c = m.textEncoderConfig();
        Map<String, long[]> shapes = CLIPTextModel.parameterShapes(c);
        try (Backend java = new JavaBackend(); Weights w = m.weights("text_encoder")) {
            assertEquals(new java.util.TreeSet<>(w.names()), new java.util.TreeSet<>(shapes.keySet()));
            String name = "encoder.layers.3.mlp.fc1.weight";
            Exec exec = new Exec(java, Precision.FP32, Processor.FLASH);
            LoaderException missing = assertThrows(LoaderException.class, () -> new CLIPTextModel(c, Fixtures.tampered(w, name, i -> null), exec));
            assertTrue(missing.getMessage().contains(name), missing.getMessage());
            try (CLIPTextModel clip = new CLIPTextModel(c, w, exec)) {
                IllegalArgumentException a = assertThrows(IllegalArgumentException.class, () -> clip.forward(new int[78], 1, 0));
                assertTrue(a.getMessage().contains("CLIPTextModel") && a.getMessage().contains("[1, 78]"), a.getMessage());
                int[] bad = ids();
                bad[5] = 49408;
                IllegalArgumentException b = assertThrows(IllegalArgumentException.class, () -> clip.forward(bad, 3, 0));
                assertTrue(b.getMessage().contains("input_ids[0, 5]"), b.getMessage());
            }
        }
        // SD1.x text encoder (openai/clip-vit-large-patch14 text model): 123,060,480 parameters
        ClipTextConfig l14 = ClipTextConfig.parse("""
                {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
                 "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu"}""", "clip-l14");
        long n = 0;
        for (long[] s : CLIPTextModel.parameterShapes(l14).values()) n += Arrays.stream(s).reduce(1, (x, y) -> x * y);
        assertEquals(123_060_480L, n);
    }
}
