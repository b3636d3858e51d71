package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import jdiffusion.kernels.Attention.Processor;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.JavaBackend;
import jdiffusion.kernels.Task;
import jdiffusion.loader.DiffusersModel;
import jdiffusion.loader.UNetConfig;
import jdiffusion.loader.Weights;
import org.junit.jupiter.api.Test;

/**
 * -Djdiffusion.fuse (Layers.fuse): the fused graphs (residuals in the GEMM / conv epilogues, GEGLU in net.0.proj's GEMM
 * over interleaved weights, proj_out writing [b, c, h, w] itself) against the unfused ones (add / add_scaled / geglu /
 * transpose tasks) on every backend. On java the fused
 * graph runs the fused kernels' references (fp32: the same float operations, so ~1e-7); on OpenCL the kernel families
 * append the elementwise tasks themselves (interleaved GEGLU); on CUDA the version-3 kernels fuse them.
 */
class FusionTest {
    /** Runs body with -Djdiffusion.fuse=fuse (read when models are constructed and graphs recorded). */
    static <T> T withFuse(boolean fuse, Supplier<T> body) {
        String before = System.getProperty("jdiffusion.fuse");
        System.setProperty("jdiffusion.fuse", Boolean.toString(fuse));
        try {
            return body.get();
        } finally {
            if (before == null) System.clearProperty("jdiffusion.fuse");
            else System.setProperty("jdiffusion.fuse", before);
        }
    }

    static long count(List<Task> tasks, String name) {
        return tasks.stream().filter(t -> t.name().equals(name)).count();
    }

    record Run(float[] out, List<Task> tasks) {
    }

    static Run unet(UNetConfig c, Weights w, Exec exec, boolean fuse, float[] sample, float[] ehs) {
        return withFuse(fuse, () -> {
            try (UNet2DConditionModel unet = new UNet2DConditionModel(c, w, exec)) {
                float[] out = unet.forward(sample, 2, 16, 16, new float[]{981, 1}, ehs, 77);
                return new Run(out, unet.lastGraph().tasks());
            }
        });
    }

    /** SD1.5-shaped UNet (small channels, random weights, 2x4x16x16): fused == unfused within fp32 / fp16 tolerance; the fused graph on java has no add_scaled / geglu task. */
    @Test
    void unetFusedMatchesUnfusedOnEveryBackend() {
        UNetConfig c = UNetConfig.parse(ArenaPlanTest.SD15_SMALL, "sd15-small");
        SplittableRandom r = new SplittableRandom(5);
        float[] sample = new float[2 * 4 * 16 * 16], ehs = new float[2 * 77 * 48];
        for (int i = 0; i < sample.length; i++) sample[i] = (float) r.nextGaussian();
        for (int i = 0; i < ehs.length; i++) ehs[i] = (float) r.nextGaussian();
        List<Backend> backends = Backends.forTests();
        try (RandomWeights w = new RandomWeights(UNet2DConditionModel.parameterShapes(c), 9)) {
            for (Backend be : backends)
                for (Precision p : List.of(Precision.FP32, Precision.FP16)) {
                    Exec exec = new Exec(be, p, Processor.FLASH);
                    Run plain = unet(c, w, exec, false, sample, ehs), fused = unet(c, w, exec, true, sample, ehs);
                    String what = "sd15-small UNet " + be.name() + " " + p + " fused vs unfused";
                    Fixtures.assertClose(what, fused.out(), plain.out(), p == Precision.FP32 ? 1e-5 : 1e-2);
                    // 16 Transformer2DModels of one BasicTransformerBlock (3 residuals + GEGLU each, + its own residual), 22 resnets
                    assertEquals(16, count(plain.tasks(), "geglu"), what);
                    assertEquals(4 * 16 + 22, count(plain.tasks(), "add"), what);
                    if (be instanceof JavaBackend) {
                        assertEquals(0, count(fused.tasks(), "geglu") + count(fused.tasks(), "geglu_interleaved") + count(fused.tasks(), "add_scaled")
                                + count(fused.tasks(), "add"), what);
                        // per transformer: 3 block residuals, GEGLU, proj_out's transpose and residual; per resnet: its residual
                        assertEquals(count(plain.tasks(), "transpose") - 16, count(fused.tasks(), "transpose"), what);
                        assertEquals(plain.tasks().size() - 6 * 16 - 22, fused.tasks().size(), what);
                    }
                }
        } finally {
            for (Backend be : backends) be.close();
        }
    }

    /** The VAE (resnets' conv2 + shortcut, the mid-block attention's to_out written channels-first + residual / rescale) fused vs unfused, tiny decoder and encoder. */
    @Test
    void vaeFusedMatchesUnfusedOnEveryBackend() {
        DiffusersModel m = DiffusersModel.open(Fixtures.tinySd());
        float[] latents = AutoencoderKLTest.REF.get("latents"), image = AutoencoderKLTest.REF.get("enc_image");
        List<Backend> backends = Backends.forTests();
        try (Weights w = m.weights("vae")) {
            for (Backend be : backends)
                for (Precision p : List.of(Precision.FP32, Precision.FP16)) {
                    float[][] dec = new float[2][], enc = new float[2][];
                    for (boolean fuse : new boolean[]{false, true})
                        withFuse(fuse, () -> {
                            try (AutoencoderKL vae = new AutoencoderKL(m.vaeConfig(), w, new Exec(be, p, Processor.FLASH))) {
                                dec[fuse ? 1 : 0] = vae.decode(latents, 1, 32, 32);
                                enc[fuse ? 1 : 0] = vae.encode(image, 1, 64, 64).mean();
                                return null;
                            }
                        });
                    double tol = p == Precision.FP32 ? 1e-5 : 1e-2;
                    Fixtures.assertClose("vae " + be.name() + " " + p + " decode fused vs unfused", dec[1], dec[0], tol);
                    Fixtures.assertClose("vae " + be.name() + " " + p + " encode fused vs unfused", enc[1], enc[0], tol);
                }
        } finally {
            for (Backend be : backends) be.close();
        }
    }

    /** CLIP's two residuals per layer (out_proj, fc2) fused vs unfused, tiny text encoder. */
    @Test
    void clipFusedMatchesUnfusedOnEveryBackend() {
        DiffusersModel m = DiffusersModel.open(Fixtures.tinySd());
        List<Backend> backends = Backends.forTests();
        try (Weights w = m.weights("text_encoder")) {
            for (Backend be : backends) {
                float[][] out = new float[2][];
                for (boolean fuse : new boolean[]{false, true})
                    out[fuse ? 1 : 0] = withFuse(fuse, () -> {
                        try (CLIPTextModel clip = new CLIPTextModel(m.textEncoderConfig(), w, new Exec(be, Precision.FP32, Processor.FLASH))) {
                            return clip.forward(ClipTextModelTest.ids(), 3, 0).lastHiddenState();
                        }
                    });
                Fixtures.assertClose("clip " + be.name() + " fp32 fused vs unfused", out[1], out[0], 1e-5);
            }
        } finally {
            for (Backend be : backends) be.close();
        }
    }
}
