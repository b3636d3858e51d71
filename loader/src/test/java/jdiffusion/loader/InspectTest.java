package jdiffusion.loader;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class InspectTest {
    static final Path TINY = Path.of(System.getProperty("tiny.sd", "engine/tiny-sd"));

    @Test
    void diffusersFolder() {
        String r = Inspect.report(TINY, 5);
        assertTrue(r.startsWith("diffusers pipeline "), r);
        assertTrue(r.contains("StableDiffusionPipeline"), r);
        assertTrue(r.contains("diffusers.UNet2DConditionModel"), r);
        assertTrue(r.contains("1,427,012 parameters"), r);        // summary.json params.unet
        assertTrue(r.contains("843,847 parameters"), r);          // vae
        assertTrue(r.contains("1,617,529 parameters"), r);        // text_encoder
        assertTrue(r.contains("total: 3,888,388 parameters"), r);
        assertTrue(r.contains("49406"), r);                       // tokenizer bos
        assertTrue(r.contains("also unet/model.onnx: opset {ai.onnx=17}, 1772 nodes"), r);
        assertTrue(r.contains("unet:\n  conv_in.bias F32 [32]\n  conv_in.weight F32 [32, 4, 3, 3]"), r);
        assertTrue(r.contains("more (-Djdiffusion.inspect.tensors=-1 lists all)"), r);
        String full = Inspect.report(TINY, -1);
        assertTrue(full.length() > r.length());
        assertFalse(full.contains(" more ("));
        assertTrue(full.contains("up_blocks.1.resnets.2.conv_shortcut.weight F32"), full);
    }

    @Test
    void safetensorsFile() {
        String r = Inspect.report(TINY.resolve("unet/diffusion_pytorch_model.safetensors"), 3);
        assertTrue(r.startsWith("safetensors "), r);
        assertTrue(r.contains("1,427,012 parameters"), r);
        assertTrue(r.contains("F32: "), r);
        assertEquals(3, r.lines().filter(l -> l.startsWith("  ") && l.contains(" F32 [")).count(), r);
    }

    @Test
    void onnxFile() {
        String r = Inspect.report(TINY.resolve("unet/model.onnx"), 4);
        assertTrue(r.contains("opset {ai.onnx=17}"), r);
        assertTrue(r.contains("1772 nodes"), r);
        assertTrue(r.contains("InstanceNormalization=31"), r);
        assertTrue(r.contains("input  sample FLOAT [batch, 4, 32, 32]"), r);
        assertTrue(r.contains("output out_sample"), r);
        assertTrue(r.contains("304 initializers -> 304 parameters (1,427,012 values)"), r);
        assertTrue(r.contains("conv_in.weight F32 [32, 4, 3, 3]  <- u.conv_in.weight"), r);
        String full = Inspect.report(TINY.resolve("unet/model.onnx"), -1);
        assertTrue(full.contains("attn1.to_q.weight F32 [64, 64]  <- onnx::MatMul_2386 (transposed)"), full);
    }

    @Test
    void singleFileCheckpoint(@TempDir Path dir) {
        Path f = dir.resolve("sd15.safetensors");
        new SafeTensorsWriter()
                .add("model.diffusion_model.input_blocks.0.0.weight", new float[320 * 4 * 9], 320, 4, 3, 3)
                .add("model.diffusion_model.input_blocks.0.0.bias", new float[320], 320)
                .add("first_stage_model.decoder.conv_in.bias", new float[512], 512)
                .add("cond_stage_model.transformer.text_model.final_layer_norm.weight", new float[768], 768)
                .add("model_ema.decay", new float[1])
                .write(f);
        String r = Inspect.report(f, 10);
        assertTrue(r.startsWith("single-file checkpoint "), r);
        assertTrue(r.contains("SD1.x"), r);
        assertTrue(r.contains("conv_in.weight F32 [320, 4, 3, 3]"), r);
        assertTrue(r.contains("unmapped keys: 1 [model_ema.decay]"), r);
    }

    @Test
    void componentFolderAndBadPaths(@TempDir Path dir) throws Exception {
        assertTrue(Inspect.report(TINY.resolve("vae"), 2).contains("843,847 parameters"));
        assertTrue(Inspect.report(TINY.resolve("tokenizer")).contains("49408 tokens"));
        var e = assertThrows(LoaderException.class, () -> Inspect.report(dir.resolve("nope")));
        assertTrue(e.getMessage().contains("nope"));
        Path txt = Files.writeString(dir.resolve("notes.txt"), "hi");
        assertThrows(LoaderException.class, () -> Inspect.report(txt));
        Path bad = Files.writeString(dir.resolve("bad.onnx"), "garbage garbage");
        e = assertThrows(LoaderException.class, () -> Inspect.report(bad));
        assertTrue(e.getMessage().contains("bad.onnx"), e.getMessage());
    }
}
