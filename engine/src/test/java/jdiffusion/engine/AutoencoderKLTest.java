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
import jdiffusion.loader.DiffusersModel;
import jdiffusion.loader.LoaderException;
import jdiffusion.loader.VaeConfig;
import jdiffusion.loader.Weights;
import org.junit.jupiter.api.Test;

class AutoencoderKLTest {
    static final Map<String, float[]> REF = Fixtures.reference("vae_io");

    static DiffusersModel tiny() {
        return DiffusersModel.open(Fixtures.tinySd());
    }

    static void checkEncode(String what, AutoencoderKL vae, double tol) {
        AutoencoderKL.Encoded e = vae.encode(REF.get("enc_image"), 1, 64, 64);
        Fixtures.assertClose(what + " encode mean", e.mean(), REF.get("enc_mean"), tol);
        Fixtures.assertClose(what + " encode logvar", e.logvar(), REF.get("enc_logvar"), tol);
        Fixtures.assertClose(what + " encode std", e.std(), REF.get("enc_std"), tol);
    }

    @Test
    void decodeAndEncodeMatchDiffusersOnEveryBackend() {
        DiffusersModel m = tiny();
        List<Backend> backends = Backends.forTests();
        try (Weights w = m.weights("vae")) {
            for (Backend b : backends) {
                for (Processor proc : Processor.values()) {
                    try (AutoencoderKL vae = new AutoencoderKL(m.vaeConfig(), w, new Exec(b, Precision.FP32, proc))) {
                        float[] image = vae.decode(REF.get("latents"), 1, 32, 32);
                        Fixtures.assertClose("vae " + b.name() + " fp32 " + proc + " decode", image, REF.get("image"), 1e-4);
                        checkEncode("vae " + b.name() + " fp32 " + proc, vae, 1e-4);
                        // replay with new input
                        Fixtures.assertClose("vae " + b.name() + " fp32 " + proc + " decode replay", vae.decode(REF.get("latents"), 1, 32, 32), REF.get("image"), 1e-4);
                    }
                }
                for (Precision p : List.of(Precision.TF32, Precision.FP16)) {
                    try (AutoencoderKL vae = new AutoencoderKL(m.vaeConfig(), w, new Exec(b, p, Processor.FLASH))) {
                        Fixtures.assertClose("vae " + b.name() + " " + p + " decode", vae.decode(REF.get("latents"), 1, 32, 32), REF.get("image"), 1e-2);
                        AutoencoderKL.Encoded e = vae.encode(REF.get("enc_image"), 1, 64, 64);
                        Fixtures.assertClose("vae " + b.name() + " " + p + " encode mean", e.mean(), REF.get("enc_mean"), 1e-2);
                    }
                }
            }
        } finally {
            for (Backend b : backends) b.close();
        }
    }

    @Test
    void parameterShapesEqualTheCheckpoint() {
        DiffusersModel m = tiny();
        Map<String, long[]> shapes = AutoencoderKL.parameterShapes(m.vaeConfig());
        try (Weights w = m.weights("vae")) {
            assertEquals(new java.util.TreeSet<>(w.names()), new java.util.TreeSet<>(shapes.keySet()));
            for (String n : w.names()) assertTrue(Arrays.equals(w.info(n).shape(), shapes.get(n)), n);
        }
        // SD1.x/2.x VAE (kl-f8): 83,653,863 parameters
        VaeConfig sd = VaeConfig.parse("""
                {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
                 "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
                 "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
                 "sample_size": 512, "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}""", "sd-vae");
        long n = 0;
        for (long[] s : AutoencoderKL.parameterShapes(sd).values()) n += Arrays.stream(s).reduce(1, (x, y) -> x * y);
        assertEquals(83_653_863L, n);
    }

    @Test
    void errorsNameTheModelAndTensor() {
        DiffusersModel m = tiny();
        String name = "decoder.mid_block.attentions.0.to_v.bias";
        try (Backend java = new JavaBackend(); Weights w = m.weights("vae")) {
            Exec exec = new Exec(java, Precision.FP32, Processor.FLASH);
            LoaderException missing = assertThrows(LoaderException.class, () -> new AutoencoderKL(m.vaeConfig(), Fixtures.tampered(w, name, i -> null), exec));
            assertTrue(missing.getMessage().contains(name), missing.getMessage());
            try (AutoencoderKL vae = new AutoencoderKL(m.vaeConfig(), w, exec)) {
                IllegalArgumentException a = assertThrows(IllegalArgumentException.class, () -> vae.decode(new float[10], 1, 32, 32));
                assertTrue(a.getMessage().contains("AutoencoderKL") && a.getMessage().contains("[1, 4, 32, 32]"), a.getMessage());
                IllegalArgumentException b = assertThrows(IllegalArgumentException.class, () -> vae.encode(new float[3 * 63 * 63], 1, 63, 63));
                assertTrue(b.getMessage().contains("AutoencoderKL") && b.getMessage().contains("63x63"), b.getMessage());
            }
        }
    }
}
