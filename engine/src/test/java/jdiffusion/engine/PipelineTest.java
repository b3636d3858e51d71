package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import jdiffusion.kernels.Attention.Processor;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.loader.LoaderException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The full 10-step diffusers runs of the fixture (DDIM, Euler, PNDM), every intermediate latent and the image. */
class PipelineTest {
    static final String PROMPT = "a photo of an astronaut riding a horse on mars";
    static final long SEED = 1234;                                           // the references' torch generator seed
    static Backend javaBackend;

    @BeforeAll
    static void open() {
        javaBackend = Backends.open("java");
    }

    @AfterAll
    static void close() {
        javaBackend.close();
    }

    static StableDiffusionPipeline load(Backend backend, String scheduler) {
        var options = StableDiffusionPipeline.Options.defaults().withAttention(Processor.VANILLA).withScheduler(scheduler);
        return StableDiffusionPipeline.load(PipelineRefs.tinySd(), options, backend);
    }

    static void checkRun(String what, PipelineRefs ref, StableDiffusionPipeline.Result result, List<float[]> steps) {
        assertEquals(ref.steps(), steps.size(), what + " steps");
        for (int i = 0; i < steps.size(); i++)
            PipelineRefs.assertClose(what + " step " + i + " latents", steps.get(i), ref.step("step_latents", i), 1e-4);
        PipelineRefs.assertClose(what + " final latents", result.latents(), ref.get("final_latents"), 1e-4);
        PipelineRefs.assertClose(what + " image_decoded", result.decoded(), ref.get("image_decoded"), 1e-4);
        PipelineRefs.assertClose(what + " image", Images.denormalize(result.decoded()), ref.get("image"), 1e-4);
        System.out.printf("%s: final latents rel L2 %.2e, decoded %.2e (%s)%n", what, PipelineRefs.relErr(result.latents(), ref.get("final_latents")),
                PipelineRefs.relErr(result.decoded(), ref.get("image_decoded")), result.timings());
        BufferedImage img = result.images().getFirst();
        assertEquals(64, img.getWidth());
        assertEquals(64, img.getHeight());
        try {
            BufferedImage png = ImageIO.read(PipelineRefs.tinySd().resolve("reference").resolve("pipeline_" + ref.name() + ".png").toFile());
            int worst = 0;
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++)
                    for (int sh = 0; sh <= 16; sh += 8)
                        worst = Math.max(worst, Math.abs((img.getRGB(x, y) >> sh & 255) - (png.getRGB(x, y) >> sh & 255)));
            assertTrue(worst <= 1, what + ": PNG differs from diffusers' by " + worst + " levels");
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"ddim", "euler", "pndm"})
    void tenStepRunMatchesDiffusersFromPromptEmbedsAndLatents(String name) {
        PipelineRefs ref = PipelineRefs.load(name);
        for (Backend backend : backends(name)) {
            try (var sd = load(backend, "scheduler_config_" + name + ".json")) {
                List<float[]> steps = new ArrayList<>();
                var request = StableDiffusionPipeline.Request.of(null)
                        .withPromptEmbeds(ref.get("prompt_embeds"))
                        .withLatents(ref.get("latents_init"))
                        .withSteps(10)
                        .withGuidanceScale(7.5f)
                        .withListener((i, n, t, latents) -> steps.add(latents.clone()));
                var result = sd.generate(request);
                checkRun(name + " on " + backend.name(), ref, result, steps);
                assertEquals(ref.steps(), result.timings().steps());
            } finally {
                if (backend != javaBackend) backend.close();
            }
        }
    }

    @Test
    void promptAndSeedReproduceDiffusersEndToEnd() {
        // the model's own scheduler (PNDM), the tokenizer and text encoder, and torch's CPU generator stream
        PipelineRefs ref = PipelineRefs.load("pndm");
        try (var sd = load(javaBackend, null)) {
            List<float[]> steps = new ArrayList<>();
            var result = sd.generate(StableDiffusionPipeline.Request.of(PROMPT).withSteps(10).withSeed(SEED)
                    .withListener((i, n, t, latents) -> steps.add(latents.clone())));
            checkRun("pndm from prompt and seed", ref, result, steps);
        }
    }

    @Test
    void initialLatentsFromAFile(@TempDir Path dir) {
        PipelineRefs ref = PipelineRefs.load("euler");
        Path file = dir.resolve("latents.safetensors");
        new jdiffusion.loader.SafeTensorsWriter().add("latents", ref.get("latents_init"), 1, 4, 32, 32).write(file);
        try (var sd = load(javaBackend, "scheduler_config_euler.json")) {
            List<float[]> steps = new ArrayList<>();
            var result = sd.generate(StableDiffusionPipeline.Request.of(null).withPromptEmbeds(ref.get("prompt_embeds"))
                    .withInitialLatents(file).withSteps(10).withListener((i, n, t, latents) -> steps.add(latents.clone())));
            checkRun("euler from a latents file", ref, result, steps);
        }
    }

    @Test
    void batchOfTwoStartsWithTheSameNoiseAsOne() {
        // torch.randn([2, 4, 32, 32]) begins with torch.randn([1, 4, 32, 32]) for one seed, so image 0 is the same
        try (var sd = load(javaBackend, "ddim")) {
            var request = StableDiffusionPipeline.Request.of(PROMPT).withSteps(2).withSeed(7);
            var one = sd.generate(request);
            var two = sd.generate(request.withImagesPerPrompt(2));
            assertEquals(2, two.images().size());
            int per = one.latents().length;
            assertEquals(2 * per, two.latents().length);
            PipelineRefs.assertClose("batch image 0", java.util.Arrays.copyOf(two.latents(), per), one.latents(), 1e-4);
            assertTrue(PipelineRefs.relErr(java.util.Arrays.copyOfRange(two.latents(), per, 2 * per), one.latents()) > 0.1, "image 1 has its own noise");
        }
    }

    @Test
    void guidanceOneSkipsClassifierFreeGuidance() {
        try (var sd = load(javaBackend, "euler-a")) {
            var request = StableDiffusionPipeline.Request.of(PROMPT).withSteps(3).withSeed(3);
            var plain = sd.generate(request.withGuidanceScale(1f));
            var guided = sd.generate(request);
            for (float v : plain.decoded()) assertTrue(Float.isFinite(v));
            assertTrue(PipelineRefs.relErr(plain.latents(), guided.latents()) > 1e-3);
            var again = sd.generate(request);                               // same seed, same stochastic sampler noise
            PipelineRefs.assertClose("euler-a reproducible", again.latents(), guided.latents(), 1e-6);
        }
    }

    @Test
    void clearErrors(@TempDir Path dir) throws Exception {
        try (var sd = load(javaBackend, null)) {
            var ok = StableDiffusionPipeline.Request.of(PROMPT).withSteps(1);
            assertThrows(IllegalArgumentException.class, () -> sd.generate(ok.withSize(60, 64)));
            assertThrows(IllegalArgumentException.class, () -> sd.generate(ok.withSteps(0)));
            assertThrows(IllegalArgumentException.class, () -> sd.generate(ok.withImagesPerPrompt(0)));
            assertThrows(IllegalArgumentException.class, () -> sd.generate(ok.withPromptEmbeds(new float[33])));
            assertThrows(IllegalArgumentException.class, () -> sd.generate(ok.withLatents(new float[5])));
        }
        Path missing = dir.resolve("nothing");
        var e = assertThrows(LoaderException.class, () -> StableDiffusionPipeline.load(missing, StableDiffusionPipeline.Options.defaults(), javaBackend));
        assertTrue(e.getMessage().contains("nothing"), e.getMessage());
        Path noUnet = dir.resolve("no-unet");
        Files.createDirectories(noUnet);
        Files.copy(PipelineRefs.tinySd().resolve("model_index.json"), noUnet.resolve("model_index.json"));
        var e2 = assertThrows(LoaderException.class, () -> StableDiffusionPipeline.load(noUnet, StableDiffusionPipeline.Options.defaults(), javaBackend));
        assertTrue(e2.getMessage().contains("unet"), e2.getMessage());
        assertThrows(IllegalArgumentException.class, () -> load(javaBackend, "lms"));
    }

    /** java always; every backend of Backends.forTests() (PoCL, CUDA) for DDIM, or for all with -Djdiffusion.pipeline.allBackends=true. */
    static List<Backend> backends(String scheduler) {
        if (!scheduler.equals("ddim") && !Boolean.getBoolean("jdiffusion.pipeline.allBackends")) return List.of(javaBackend);
        List<Backend> all = new ArrayList<>(List.of(javaBackend));
        for (Backend b : Backends.forTests()) {
            if (b.name().equals("java")) b.close();
            else all.add(b);
        }
        return all;
    }
}
