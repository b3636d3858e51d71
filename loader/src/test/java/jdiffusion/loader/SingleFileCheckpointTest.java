package jdiffusion.loader;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SingleFileCheckpointTest {
    static final Path TINY = SafeTensorsTest.TINY;

    @TempDir
    Path tmp;

    /** Hand-written diffusers -> CompVis prefixes for the tiny UNet (2 blocks: DownBlock2D, CrossAttnDownBlock2D). */
    static final String[][] TINY_UNET = {
            {"conv_in", "input_blocks.0.0"},
            {"time_embedding.linear_1", "time_embed.0"}, {"time_embedding.linear_2", "time_embed.2"},
            {"down_blocks.0.resnets.0", "input_blocks.1.0"}, {"down_blocks.0.resnets.1", "input_blocks.2.0"},
            {"down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"},
            {"down_blocks.1.resnets.0", "input_blocks.4.0"}, {"down_blocks.1.attentions.0", "input_blocks.4.1"},
            {"down_blocks.1.resnets.1", "input_blocks.5.0"}, {"down_blocks.1.attentions.1", "input_blocks.5.1"},
            {"mid_block.resnets.0", "middle_block.0"}, {"mid_block.attentions.0", "middle_block.1"},
            {"mid_block.resnets.1", "middle_block.2"},
            {"up_blocks.0.resnets.0", "output_blocks.0.0"}, {"up_blocks.0.attentions.0", "output_blocks.0.1"},
            {"up_blocks.0.resnets.1", "output_blocks.1.0"}, {"up_blocks.0.attentions.1", "output_blocks.1.1"},
            {"up_blocks.0.resnets.2", "output_blocks.2.0"}, {"up_blocks.0.attentions.2", "output_blocks.2.1"},
            {"up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv"},
            {"up_blocks.1.resnets.0", "output_blocks.3.0"}, {"up_blocks.1.resnets.1", "output_blocks.4.0"},
            {"up_blocks.1.resnets.2", "output_blocks.5.0"},
            {"conv_norm_out", "out.0"}, {"conv_out", "out.2"}};
    static final String[][] UNET_RESNET = {{"norm1", "in_layers.0"}, {"conv1", "in_layers.2"},
            {"time_emb_proj", "emb_layers.1"}, {"norm2", "out_layers.0"}, {"conv2", "out_layers.3"},
            {"conv_shortcut", "skip_connection"}};
    static final String[][] TINY_VAE = {
            {"encoder.down_blocks.0.resnets.0", "encoder.down.0.block.0"}, {"encoder.down_blocks.0.resnets.1", "encoder.down.0.block.1"},
            {"encoder.down_blocks.0.downsamplers.0.conv", "encoder.down.0.downsample.conv"},
            {"encoder.down_blocks.1.resnets.0", "encoder.down.1.block.0"}, {"encoder.down_blocks.1.resnets.1", "encoder.down.1.block.1"},
            {"encoder.mid_block.resnets.0", "encoder.mid.block_1"}, {"encoder.mid_block.resnets.1", "encoder.mid.block_2"},
            {"encoder.mid_block.attentions.0", "encoder.mid.attn_1"},
            {"encoder.conv_norm_out", "encoder.norm_out"},
            {"decoder.mid_block.resnets.0", "decoder.mid.block_1"}, {"decoder.mid_block.resnets.1", "decoder.mid.block_2"},
            {"decoder.mid_block.attentions.0", "decoder.mid.attn_1"},
            {"decoder.up_blocks.0.resnets.0", "decoder.up.1.block.0"}, {"decoder.up_blocks.0.resnets.1", "decoder.up.1.block.1"},
            {"decoder.up_blocks.0.resnets.2", "decoder.up.1.block.2"},
            {"decoder.up_blocks.0.upsamplers.0.conv", "decoder.up.1.upsample.conv"},
            {"decoder.up_blocks.1.resnets.0", "decoder.up.0.block.0"}, {"decoder.up_blocks.1.resnets.1", "decoder.up.0.block.1"},
            {"decoder.up_blocks.1.resnets.2", "decoder.up.0.block.2"},
            {"decoder.conv_norm_out", "decoder.norm_out"}};
    static final String[][] VAE_ATTENTION = {{"group_norm", "norm"}, {"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"}, {"to_out.0", "proj_out"}};

    /** diffusers name -> CompVis name by the hand-written tables (not the production mapping). */
    static String compVis(String[][] prefixes, String[][] inner, String name) {
        for (String[] p : prefixes) {
            if (!name.startsWith(p[0] + ".")) continue;
            String rest = name.substring(p[0].length() + 1);
            for (String[] i : inner) if (rest.startsWith(i[0] + ".")) rest = i[1] + rest.substring(i[0].length());
            return p[1] + "." + rest;
        }
        return name; // unchanged (encoder.conv_in, quant_conv...)
    }

    private Path tinySingleFile(boolean oldClipLayout) {
        Path file = tmp.resolve("tiny-compvis.safetensors");
        var w = new SafeTensorsWriter().metadata("format", "pt");
        try (var unet = SafeTensors.open(TINY.resolve("unet/diffusion_pytorch_model.safetensors"));
             var vae = SafeTensors.open(TINY.resolve("vae/diffusion_pytorch_model.safetensors"));
             var clip = SafeTensors.open(TINY.resolve("text_encoder/model.safetensors"))) {
            for (String n : unet.names()) {
                boolean attention = n.contains(".attentions.");
                String to = compVis(TINY_UNET, attention ? new String[0][] : UNET_RESNET, n);
                w.add("model.diffusion_model." + to, unet.floats(n), unet.info(n).shape());
            }
            for (String n : vae.names()) {
                boolean attention = n.contains(".attentions.");
                String to = compVis(TINY_VAE, attention ? VAE_ATTENTION : new String[][]{{"conv_shortcut", "nin_shortcut"}}, n);
                long[] shape = vae.info(n).shape();
                if (attention && shape.length == 2) shape = new long[]{shape[0], shape[1], 1, 1}; // old checkpoints: 1x1 convs
                w.add("first_stage_model." + to, vae.floats(n), shape);
            }
            for (String n : clip.names())
                w.add("cond_stage_model.transformer." + (oldClipLayout ? "" : "text_model.") + n, clip.floats(n), clip.info(n).shape());
            w.add("model_ema.decay", new float[]{0.9999f});
            w.add("alphas_cumprod", new float[1000], 1000);
        }
        w.write(file);
        return file;
    }

    @Test
    void tinyCompVisFileComesBackUnderDiffusersNames() {
        for (boolean oldClip : new boolean[]{false, true}) {
            Path file = tinySingleFile(oldClip);
            DiffusersModel tiny = DiffusersModel.open(TINY);
            try (var ckpt = SingleFileCheckpoint.open(file, tiny.unetConfig(), tiny.vaeConfig(), tiny.textEncoderConfig(), null);
                 var unet = tiny.weights("unet"); var vae = tiny.weights("vae"); var clip = tiny.weights("text_encoder")) {
                assertEquals(List.of("model_ema.decay", "alphas_cumprod"), ckpt.unmapped());
                assertFalse(ckpt.openClip());
                assertEquals("PNDMScheduler", ckpt.schedulerConfig().className()); // bundled SD1.5 one
                for (var pair : List.of(List.of(unet, ckpt.unet()), List.of(vae, ckpt.vae()), List.of(clip, ckpt.textEncoder()))) {
                    Weights want = pair.get(0), got = pair.get(1);
                    assertEquals(new java.util.TreeSet<>(want.names()), new java.util.TreeSet<>(got.names()), got.source());
                    for (String n : want.names()) {
                        assertArrayEquals(want.info(n).shape(), got.info(n).shape(), n);
                        assertArrayEquals(want.floats(n), got.floats(n), n);
                        assertArrayEquals(want.halves(n), got.halves(n), n);
                    }
                }
                assertEquals(64L * 64 * 4, ((MappedWeights) ckpt.vae()).segment("decoder.mid_block.attentions.0.to_q.weight").byteSize());
                assertTrue(ckpt.textEncoder().has("text_model.final_layer_norm.weight"));
            }
            // SD2-style linear projections: the 1x1 conv proj_in is seen as [c, c]
            UNetConfig linear = UNetConfig.parse(read(TINY.resolve("unet/config.json")).replace("\"use_linear_projection\": false",
                    "\"use_linear_projection\": true"), "linear");
            try (var ckpt = SingleFileCheckpoint.open(file, linear, tiny.vaeConfig(), tiny.textEncoderConfig(), null);
                 var unet = tiny.weights("unet")) {
                String n = "down_blocks.1.attentions.0.proj_in.weight";
                assertArrayEquals(new long[]{64, 64}, ckpt.unet().info(n).shape());
                assertArrayEquals(unet.floats(n), ckpt.unet().floats(n));
            }
        }
    }

    static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (java.io.IOException e) {
            throw new RuntimeException(e);
        }
    }

    @Test
    void sd15KeyPairs() {
        UNetConfig sd15 = SingleFileCheckpoint.bundledUNet("sd15");
        Map<String, String> pairs = Map.ofEntries(
                Map.entry("input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"),
                Map.entry("input_blocks.0.0.weight", "conv_in.weight"),
                Map.entry("input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"),
                Map.entry("input_blocks.4.0.skip_connection.weight", "down_blocks.1.resnets.0.conv_shortcut.weight"),
                Map.entry("input_blocks.9.0.op.bias", "down_blocks.2.downsamplers.0.conv.bias"),
                Map.entry("input_blocks.10.0.in_layers.0.weight", "down_blocks.3.resnets.0.norm1.weight"),
                Map.entry("input_blocks.11.0.out_layers.3.weight", "down_blocks.3.resnets.1.conv2.weight"),
                Map.entry("input_blocks.8.1.proj_out.bias", "down_blocks.2.attentions.1.proj_out.bias"),
                Map.entry("middle_block.1.proj_in.weight", "mid_block.attentions.0.proj_in.weight"),
                Map.entry("middle_block.1.transformer_blocks.0.attn2.to_k.weight", "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"),
                Map.entry("middle_block.2.emb_layers.1.weight", "mid_block.resnets.1.time_emb_proj.weight"),
                Map.entry("middle_block.0.in_layers.2.weight", "mid_block.resnets.0.conv1.weight"),
                Map.entry("output_blocks.0.0.skip_connection.weight", "up_blocks.0.resnets.0.conv_shortcut.weight"),
                Map.entry("output_blocks.2.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"),
                Map.entry("output_blocks.3.1.norm.weight", "up_blocks.1.attentions.0.norm.weight"),
                Map.entry("output_blocks.5.2.conv.weight", "up_blocks.1.upsamplers.0.conv.weight"),
                Map.entry("output_blocks.8.2.conv.bias", "up_blocks.2.upsamplers.0.conv.bias"),
                Map.entry("output_blocks.11.1.transformer_blocks.0.ff.net.2.weight", "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.weight"),
                Map.entry("output_blocks.9.0.in_layers.0.bias", "up_blocks.3.resnets.0.norm1.bias"),
                Map.entry("time_embed.0.weight", "time_embedding.linear_1.weight"),
                Map.entry("time_embed.2.bias", "time_embedding.linear_2.bias"),
                Map.entry("out.0.weight", "conv_norm_out.weight"),
                Map.entry("out.2.bias", "conv_out.bias"));
        for (var e : pairs.entrySet()) assertEquals(e.getValue(), SingleFileCheckpoint.unetName(sd15, e.getKey()), e.getKey());
        for (String none : List.of("input_blocks.12.0.in_layers.0.weight", "output_blocks.12.0.in_layers.0.weight",
                "output_blocks.11.2.conv.weight", "input_blocks.10.1.norm.weight", "output_blocks.2.2.conv.weight", "foo", "time_embed.1.weight"))
            assertNull(SingleFileCheckpoint.unetName(sd15, none), none);
        VaeConfig vae = SingleFileCheckpoint.bundledVae("sd15");
        Map<String, String> vaePairs = Map.of(
                "decoder.up.3.block.0.conv1.weight", "decoder.up_blocks.0.resnets.0.conv1.weight",
                "decoder.up.3.upsample.conv.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight",
                "decoder.up.0.block.2.norm2.bias", "decoder.up_blocks.3.resnets.2.norm2.bias",
                "encoder.down.1.block.0.nin_shortcut.weight", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
                "encoder.down.2.downsample.conv.bias", "encoder.down_blocks.2.downsamplers.0.conv.bias",
                "encoder.mid.attn_1.proj_out.weight", "encoder.mid_block.attentions.0.to_out.0.weight",
                "decoder.mid.attn_1.norm.bias", "decoder.mid_block.attentions.0.group_norm.bias",
                "decoder.norm_out.weight", "decoder.conv_norm_out.weight",
                "post_quant_conv.weight", "post_quant_conv.weight");
        for (var e : vaePairs.entrySet()) assertEquals(e.getValue(), SingleFileCheckpoint.vaeName(vae, e.getKey()), e.getKey());
        assertNull(SingleFileCheckpoint.vaeName(vae, "decoder.up.0.upsample.conv.weight"));
        assertNull(SingleFileCheckpoint.vaeName(vae, "encoder.down.3.downsample.conv.weight"));
    }

    /** SD2.x OpenCLIP text encoder: fused in_proj split into q/k/v, resblocks -> layers, the last layer dropped. */
    @Test
    void openClipTextEncoder() {
        int h = 8, layers = 3;
        var w = new SafeTensorsWriter();
        w.add("cond_stage_model.model.token_embedding.weight", seq(10 * h, 0), 10, h);
        w.add("cond_stage_model.model.positional_embedding", seq(77 * h, 1), 77, h);
        w.add("cond_stage_model.model.ln_final.weight", seq(h, 2), h);
        w.add("cond_stage_model.model.ln_final.bias", seq(h, 3), h);
        w.add("cond_stage_model.model.text_projection", seq(h * h, 4), h, h);
        w.add("cond_stage_model.model.logit_scale", new float[]{1});
        for (int l = 0; l < layers; l++) {
            String p = "cond_stage_model.model.transformer.resblocks." + l + ".";
            w.add(p + "attn.in_proj_weight", seq(3 * h * h, 10 * l), 3 * h, h);
            w.add(p + "attn.in_proj_bias", seq(3 * h, 10 * l + 1), 3 * h);
            w.add(p + "attn.out_proj.weight", seq(h * h, 10 * l + 2), h, h);
            w.add(p + "attn.out_proj.bias", seq(h, 10 * l + 3), h);
            w.add(p + "ln_1.weight", seq(h, 10 * l + 4), h);
            w.add(p + "ln_1.bias", seq(h, 10 * l + 5), h);
            w.add(p + "ln_2.weight", seq(h, 10 * l + 6), h);
            w.add(p + "ln_2.bias", seq(h, 10 * l + 7), h);
            w.add(p + "mlp.c_fc.weight", seq(4 * h * h, 10 * l + 8), 4 * h, h);
            w.add(p + "mlp.c_fc.bias", seq(4 * h, 10 * l + 9), 4 * h);
            w.add(p + "mlp.c_proj.weight", seq(4 * h * h, 10 * l + 10), h, 4 * h);
            w.add(p + "mlp.c_proj.bias", seq(h, 10 * l + 11), h);
        }
        Path file = tmp.resolve("sd2.safetensors");
        w.write(file);
        ClipTextConfig cfg = ClipTextConfig.parse("{\"hidden_size\": 8, \"num_attention_heads\": 2, \"num_hidden_layers\": 2,"
                + " \"intermediate_size\": 32, \"hidden_act\": \"gelu\"}", "x");
        try (var ckpt = SingleFileCheckpoint.open(file, null, null, cfg, null)) {
            assertTrue(ckpt.openClip());
            assertEquals("v_prediction", ckpt.schedulerConfig().predictionType()); // bundled SD2.1
            assertTrue(ckpt.unetConfig().useLinearProjection());
            Weights t = ckpt.textEncoder();
            assertEquals(4 + 2 * 16, t.names().size());
            assertArrayEquals(seq(10 * h, 0), t.floats("embeddings.token_embedding.weight"));
            assertArrayEquals(seq(77 * h, 1), t.floats("embeddings.position_embedding.weight"));
            assertArrayEquals(seq(h, 3), t.floats("final_layer_norm.bias"));
            float[] fused = seq(3 * h * h, 10);
            assertArrayEquals(new long[]{h, h}, t.info("encoder.layers.1.self_attn.k_proj.weight").shape());
            assertArrayEquals(Arrays.copyOfRange(fused, 0, h * h), t.floats("encoder.layers.1.self_attn.q_proj.weight"));
            assertArrayEquals(Arrays.copyOfRange(fused, h * h, 2 * h * h), t.floats("encoder.layers.1.self_attn.k_proj.weight"));
            assertArrayEquals(Arrays.copyOfRange(fused, 2 * h * h, 3 * h * h), t.floats("encoder.layers.1.self_attn.v_proj.weight"));
            float[] bias = seq(3 * h, 11);
            assertArrayEquals(Arrays.copyOfRange(bias, 2 * h, 3 * h), t.floats("encoder.layers.1.self_attn.v_proj.bias"));
            short[] hv = t.halves("encoder.layers.1.self_attn.v_proj.bias");
            assertEquals(Float.floatToFloat16(bias[2 * h]), hv[0]);
            assertArrayEquals(seq(4 * h * h, 18), t.floats("encoder.layers.1.mlp.fc1.weight"));
            assertArrayEquals(seq(h, 14), t.floats("encoder.layers.1.layer_norm1.weight"));
            assertArrayEquals(seq(h * h, 12), t.floats("encoder.layers.1.self_attn.out_proj.weight"));
            assertArrayEquals(new long[]{h, 4 * h}, t.info("encoder.layers.0.mlp.fc2.weight").shape());
            assertFalse(t.has("encoder.layers.2.mlp.fc2.weight")); // beyond num_hidden_layers
            assertTrue(ckpt.unmapped().contains("cond_stage_model.model.transformer.resblocks.2.ln_1.weight"));
            assertTrue(ckpt.unmapped().contains("cond_stage_model.model.text_projection"));
        }
    }

    static float[] seq(int n, int seed) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) f[i] = seed * 1000 + i;
        return f;
    }

    @Test
    void collisionsAndMissingFiles() {
        var e = assertThrows(LoaderException.class, () -> SingleFileCheckpoint.open(tmp.resolve("nope.safetensors")));
        assertTrue(e.getMessage().contains("nope.safetensors"), e.getMessage());
        Path file = tmp.resolve("dup.safetensors");
        new SafeTensorsWriter().add("cond_stage_model.transformer.text_model.final_layer_norm.weight", new float[1], 1)
                .add("cond_stage_model.transformer.final_layer_norm.weight", new float[1], 1).write(file);
        e = assertThrows(LoaderException.class, () -> SingleFileCheckpoint.open(file));
        assertTrue(e.getMessage().contains("both map to") && e.getMessage().contains("dup.safetensors"), e.getMessage());
        Path empty = tmp.resolve("empty.safetensors");
        new SafeTensorsWriter().write(empty);
        try (var ckpt = SingleFileCheckpoint.open(empty)) {
            assertTrue(ckpt.unet().names().isEmpty());
            assertEquals(768, ckpt.unetConfig().crossAttentionDim()[0]); // bundled SD1.5
            var missing = assertThrows(LoaderException.class, () -> ckpt.unet().floats("conv_in.weight"));
            assertTrue(missing.getMessage().contains("#unet") && missing.getMessage().contains("conv_in.weight"), missing.getMessage());
        }
    }
}
