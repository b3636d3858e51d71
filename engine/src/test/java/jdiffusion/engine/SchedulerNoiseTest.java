package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** TorchRandom reproduces torch.Generator("cpu").manual_seed(s) + torch.randn. */
class SchedulerNoiseTest {

    @Test
    void mersenneTwisterMatchesTheReferenceStream() {
        assertEquals(3499211612L, new TorchRandom(5489).nextInt() & 0xffffffffL);   // MT19937 default seed, first output
        assertEquals(2357136044L, new TorchRandom(0).nextInt() & 0xffffffffL);
    }

    @Test
    void randnMatchesTorchForSixteenAndMore() {
        // torch.manual_seed(0); torch.randn(4, 4)
        float[] want = {-1.1258f, -1.1524f, -0.2506f, -0.4339f, 0.8487f, 0.6920f, -0.3160f, -2.1152f,
                0.3223f, -1.2633f, 0.3500f, 0.3081f, 0.1198f, 1.2377f, 1.1168f, -0.2473f};
        float[] got = new float[16];
        new TorchRandom(0).randn(got);
        assertArrayEquals(want, got, 1e-4f);
    }

    @Test
    void randnMatchesTorchBelowSixteen() {
        // torch.manual_seed(0); torch.randn(3)
        float[] got = new float[3];
        new TorchRandom(0).randn(got);
        assertArrayEquals(new float[]{1.5410f, -0.2934f, -2.1788f}, got, 1e-4f);
    }

    @Test
    void seed1234GivesTheFixtureLatents() {
        // the references were made with torch.Generator("cpu").manual_seed(1234)
        float[] ours = new float[4096];
        new TorchRandom(1234).randn(ours);
        PipelineRefs.assertClose("latents_init", ours, PipelineRefs.load("ddim").get("latents_init"), 1e-6);
    }

    @Test
    void nextGaussianIsTheCachedScalarPath() {
        float[] viaRandn = new float[3];
        new TorchRandom(0).randn(viaRandn);
        TorchRandom r = new TorchRandom(0);
        for (float v : viaRandn) assertEquals(v, (float) r.nextGaussian(), 0f);
    }

    @Test
    void referenceLatentsStatistics() {
        float[] l = new float[4096];
        new TorchRandom(42).randn(l);
        double mean = 0, sq = 0;
        for (float v : l) {
            mean += v;
            sq += v * v;
        }
        mean /= l.length;
        assertEquals(0, mean, 0.06);
        assertEquals(1, Math.sqrt(sq / l.length - mean * mean), 0.05);
    }
}
