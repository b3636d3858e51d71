package jdiffusion.apitest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import jdiffusion.engine.Precision;
import jdiffusion.engine.StableDiffusionPipeline;
import jdiffusion.engine.StableDiffusionPipeline.Options;
import jdiffusion.engine.StableDiffusionPipeline.Request;
import jdiffusion.kernels.Attention;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** What a user of the library sees: only public API, from another package. */
class PublicApiTest {
    static Path model() {
        return Path.of(System.getProperty("tiny.sd"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"pndm", "euler-a", "dpm++2m-karras"})
    void generatesA64x64Image(String scheduler) {
        Options options = Options.defaults().withBackend("java").withScheduler(scheduler);
        try (StableDiffusionPipeline sd = StableDiffusionPipeline.load(model(), options)) {
            AtomicInteger calls = new AtomicInteger();
            var result = sd.generate(Request.of("a red fox in the snow").withNegativePrompt("blurry").withSteps(3).withSeed(42)
                    .withSize(64, 64).withListener((step, steps, t, latents) -> calls.incrementAndGet()));
            assertEquals(1, result.images().size());
            BufferedImage img = result.images().get(0);
            assertEquals(64, img.getWidth());
            assertEquals(64, img.getHeight());
            int first = img.getRGB(0, 0);
            boolean varies = false;
            for (int y = 0; y < 64 && !varies; y++)
                for (int x = 0; x < 64 && !varies; x++) varies = img.getRGB(x, y) != first;
            assertTrue(varies, "the image is not one flat colour");
            assertTrue(calls.get() >= 3, "the listener saw every step");
            var t = result.timings();
            assertEquals("java", t.backend());
            assertNotNull(t.device());
            assertTrue(t.totalSeconds() > 0 && t.secondsPerStep() >= 0);
        }
    }

    @Test
    void optionsAndRequestDefaults() {
        Options o = Options.defaults();
        assertEquals("auto", o.backend());
        assertEquals(Precision.FP32, o.precision());
        assertEquals(Attention.Processor.FLASH, o.attention());
        Request r = Request.of("x");
        assertEquals(50, r.steps());
        assertEquals(7.5f, r.guidanceScale());
        assertEquals(1, r.imagesPerPrompt());
        assertEquals("", r.negativePrompt());
        assertEquals(20, r.withSteps(20).steps());
        assertThrows(IllegalArgumentException.class, () -> Options.defaults().withClipSkip(-1));
    }
}
