package jdiffusion.loader;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class DiffusersModelTest {
    static final Path TINY = SafeTensorsTest.TINY;

    @TempDir
    Path tmp;

    @Test
    void tinyPipeline() {
        DiffusersModel m = DiffusersModel.open(TINY);
        assertEquals(5, m.components().size());
        assertEquals(2, m.unetConfig().blocks());
        assertEquals(0.18215, m.vaeConfig().scalingFactor());
        assertEquals(5, m.textEncoderConfig().numHiddenLayers());
        assertEquals("PNDMScheduler", m.schedulerConfig().className());
        assertEquals("EulerDiscreteScheduler", m.schedulerConfig("scheduler_config_euler.json").className());
        assertTrue(Files.isRegularFile(m.tokenizerDir().resolve("vocab.json")));
        try (Weights u = m.weights("unet"); Weights v = m.weights("vae"); Weights t = m.weights("text_encoder")) {
            assertEquals(304, u.names().size());
            assertEquals(156, v.names().size());
            assertEquals(84, t.names().size());
            assertArrayEquals(new long[]{32, 4, 3, 3}, u.info("conv_in.weight").shape());
            // text encoder names without "text_model.", the prefixed spelling also resolves
            assertTrue(t.has("embeddings.token_embedding.weight"));
            assertTrue(t.has("text_model.embeddings.token_embedding.weight"));
            assertArrayEquals(t.floats("final_layer_norm.weight"), t.floats("text_model.final_layer_norm.weight"));
            assertArrayEquals(new long[]{49408, 32}, t.info("text_model.embeddings.token_embedding.weight").shape());
        }
    }

    /** Copies the tiny unet config and writes its weights in another layout. */
    private Path pipeline(String... componentFiles) throws IOException {
        Path dir = tmp.resolve("p" + System.nanoTime());
        Files.createDirectories(dir.resolve("unet"));
        Files.createDirectories(dir.resolve("text_encoder"));
        Files.copy(TINY.resolve("model_index.json"), dir.resolve("model_index.json"));
        Files.copy(TINY.resolve("unet/config.json"), dir.resolve("unet/config.json"));
        return dir;
    }

    @Test
    void variantAndShardedLayouts() throws IOException {
        Path dir = pipeline();
        Path unet = dir.resolve("unet");
        try (SafeTensors src = SafeTensors.open(TINY.resolve("unet/diffusion_pytorch_model.safetensors"))) {
            List<String> names = new ArrayList<>(src.names());
            // fp16 variant
            var fp16 = new SafeTensorsWriter().metadata("format", "pt");
            for (String n : names) fp16.addF16(n, src.halves(n), src.info(n).shape());
            fp16.write(unet.resolve("diffusion_pytorch_model.fp16.safetensors"));
            // sharded fp32, three shards + index
            var shards = List.of(new SafeTensorsWriter(), new SafeTensorsWriter(), new SafeTensorsWriter());
            StringBuilder map = new StringBuilder("{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
            for (int i = 0; i < names.size(); i++) {
                String n = names.get(i);
                shards.get(i % 3).add(n, src.floats(n), src.info(n).shape());
                map.append(i == 0 ? "" : ",").append('"').append(n).append("\": \"diffusion_pytorch_model-0000")
                        .append(i % 3 + 1).append("-of-00003.safetensors\"");
            }
            for (int s = 0; s < 3; s++) shards.get(s).write(unet.resolve("diffusion_pytorch_model-0000" + (s + 1) + "-of-00003.safetensors"));
            Files.writeString(unet.resolve("diffusion_pytorch_model.safetensors.index.json"), map.append("}}"));

            DiffusersModel m = DiffusersModel.open(dir);
            try (Weights sharded = m.weights("unet"); Weights half = m.weights("unet", "fp16")) {
                assertEquals(src.names(), sharded.names());
                assertEquals(src.names(), half.names());
                for (String n : names) {
                    assertArrayEquals(src.floats(n), sharded.floats(n), n);
                    assertArrayEquals(src.info(n).shape(), sharded.info(n).shape(), n);
                    assertEquals(TensorType.F16, half.info(n).type());
                    assertArrayEquals(src.halves(n), half.halves(n), n);
                }
                assertTrue(((MappedWeights) sharded).origin("conv_in.weight").contains("-of-00003.safetensors"));
            }
            // a sharded fp16 variant with diffusers' index spelling
            Files.move(unet.resolve("diffusion_pytorch_model.fp16.safetensors"), unet.resolve("diffusion_pytorch_model-00001-of-00001.fp16.safetensors"));
            Files.writeString(unet.resolve("diffusion_pytorch_model.safetensors.index.fp16.json"),
                    map.toString().replaceAll("diffusion_pytorch_model-0000\\d-of-00003", "diffusion_pytorch_model-00001-of-00001.fp16")
                            .replace(".fp16.safetensors", ".fp16.safetensors"));
            try (Weights half = m.weights("unet", "fp16")) {
                assertEquals(TensorType.F16, half.info("conv_in.weight").type());
                assertArrayEquals(src.halves("conv_out.weight"), half.halves("conv_out.weight"));
            }
        }
    }

    @Test
    void textEncoderWithTextModelPrefix() throws IOException {
        Path dir = pipeline();
        try (SafeTensors src = SafeTensors.open(TINY.resolve("text_encoder/model.safetensors"))) {
            var w = new SafeTensorsWriter();
            for (String n : src.names()) w.add("text_model." + n, src.floats(n), src.info(n).shape());
            w.add("text_model.embeddings.position_ids", new long[77], 1, 77);
            w.write(dir.resolve("text_encoder/model.safetensors"));
            try (Weights t = DiffusersModel.open(dir).weights("text_encoder")) {
                assertTrue(t.names().contains("encoder.layers.4.mlp.fc2.weight"));
                assertTrue(t.has("text_model.encoder.layers.4.mlp.fc2.weight"));
                assertArrayEquals(src.floats("embeddings.token_embedding.weight"), t.floats("embeddings.token_embedding.weight"));
                assertEquals(TensorType.I64, t.info("embeddings.position_ids").type());
            }
        }
    }

    @Test
    void missingThingsNameThePath() throws IOException {
        Path dir = pipeline();
        DiffusersModel m = DiffusersModel.open(dir);
        var e = assertThrows(LoaderException.class, () -> m.weights("vae"));
        assertTrue(e.getMessage().contains(dir.resolve("vae").toString()) && e.getMessage().contains("missing"), e.getMessage());
        e = assertThrows(LoaderException.class, () -> m.weights("unet"));
        assertTrue(e.getMessage().contains(dir.resolve("unet").toString()) && e.getMessage().contains("diffusion_pytorch_model.safetensors"), e.getMessage());
        Files.writeString(dir.resolve("unet/diffusion_pytorch_model.bin"), "pickle");
        e = assertThrows(LoaderException.class, () -> m.weights("unet"));
        assertTrue(e.getMessage().contains("pickle"), e.getMessage());
        e = assertThrows(LoaderException.class, () -> m.weights("unet", "fp16"));
        assertTrue(e.getMessage().contains("diffusion_pytorch_model.fp16.safetensors"), e.getMessage());
        e = assertThrows(LoaderException.class, m::vaeConfig);
        assertTrue(e.getMessage().contains("vae"), e.getMessage());
        e = assertThrows(LoaderException.class, m::schedulerConfig);
        assertTrue(e.getMessage().contains("scheduler"), e.getMessage());
        assertThrows(LoaderException.class, () -> m.weights("../unet"));
        assertThrows(LoaderException.class, () -> m.weights("unet", "../x"));
        e = assertThrows(LoaderException.class, () -> DiffusersModel.open(tmp.resolve("none")));
        assertTrue(e.getMessage().contains("none"), e.getMessage());
        e = assertThrows(LoaderException.class, () -> DiffusersModel.open(dir.resolve("unet")));
        assertTrue(e.getMessage().contains("model_index.json"), e.getMessage());
        // a bad index: missing shard, shard outside the folder, tensor missing from its shard
        Files.delete(dir.resolve("unet/diffusion_pytorch_model.bin"));
        Path index = dir.resolve("unet/diffusion_pytorch_model.safetensors.index.json");
        Files.writeString(index, "{\"weight_map\": {\"a\": \"s1.safetensors\"}}");
        e = assertThrows(LoaderException.class, () -> m.weights("unet"));
        assertTrue(e.getMessage().contains("s1.safetensors") && e.getMessage().contains("missing"), e.getMessage());
        Files.writeString(index, "{\"weight_map\": {\"a\": \"../../x.safetensors\"}}");
        e = assertThrows(LoaderException.class, () -> m.weights("unet"));
        assertTrue(e.getMessage().contains("bad shard file"), e.getMessage());
        new SafeTensorsWriter().add("b", new float[1], 1).write(dir.resolve("unet/s1.safetensors"));
        Files.writeString(index, "{\"weight_map\": {\"a\": \"s1.safetensors\"}}");
        e = assertThrows(LoaderException.class, () -> m.weights("unet"));
        assertTrue(e.getMessage().contains("'a'") && e.getMessage().contains("s1.safetensors"), e.getMessage());
        Files.writeString(index, "{\"weight_map\": [1]}");
        e = assertThrows(LoaderException.class, () -> m.weights("unet"));
        assertTrue(e.getMessage().contains("weight_map"), e.getMessage());
    }
}
