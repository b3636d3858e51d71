package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import jdiffusion.loader.SchedulerConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Scheduler properties without a diffusers reference: spacings, Karras sigmas, hand-derived steps, exact-noise oracles. */
class SchedulerTest {
    static final String SD = """
            "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000""";

    static SchedulerConfig config(String cls, String extra) {
        return SchedulerConfig.parse("{\"_class_name\": \"" + cls + "\", " + SD + (extra.isEmpty() ? "" : ", " + extra) + "}", cls + " test config");
    }

    static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    @Test
    void timestepSpacingsFollowDiffusers() {
        assertArrayEquals(new double[]{999, 832, 666, 500, 333, 166, 0}, NoiseSchedule.spacing("linspace", 1000, 7, 0, true));
        assertArrayEquals(new double[]{999, 832.5, 666, 499.5, 333, 166.5, 0}, NoiseSchedule.spacing("linspace", 1000, 7, 0, false));
        assertArrayEquals(new double[]{999, 856, 713, 570, 428, 285, 142}, NoiseSchedule.spacing("trailing", 1000, 7, 0, true));
        assertArrayEquals(new double[]{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}, NoiseSchedule.spacing("leading", 1000, 10, 1, true));
        assertThrows(IllegalArgumentException.class, () -> NoiseSchedule.spacing("leading", 1000, 0, 1, true));
        assertThrows(IllegalArgumentException.class, () -> NoiseSchedule.spacing("leading", 1000, 1001, 1, true));
        assertThrows(IllegalArgumentException.class, () -> NoiseSchedule.spacing("sideways", 1000, 10, 1, true));
    }

    @Test
    void betaSchedules() {
        NoiseSchedule lin = NoiseSchedule.of(SchedulerConfig.parse("{\"beta_schedule\": \"linear\"}", "t"));
        assertEquals(1e-4f, lin.betas()[0], 1e-10);
        assertEquals(0.02f, lin.betas()[999], 1e-9);
        NoiseSchedule sl = NoiseSchedule.of(config("DDIMScheduler", ""));
        assertEquals(0.00085f, sl.betas()[0], 1e-9);
        assertEquals(0.012f, sl.betas()[999], 1e-8);
        NoiseSchedule cos = NoiseSchedule.of(SchedulerConfig.parse("{\"beta_schedule\": \"squaredcos_cap_v2\"}", "t"));
        assertEquals(0.999f, cos.betas()[999], 1e-6);                       // capped
        for (int i = 1; i < 1000; i++) assertTrue(cos.alphasCumprod()[i] < cos.alphasCumprod()[i - 1]);
        NoiseSchedule zsnr = NoiseSchedule.of(SchedulerConfig.parse("{\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012, \"rescale_betas_zero_snr\": true}", "t"));
        assertEquals(0f, zsnr.alphasCumprod()[999], 1e-12);                  // zero terminal SNR
        assertEquals(sl.alphasCumprod()[0], zsnr.alphasCumprod()[0], 1e-6);
        assertThrows(IllegalArgumentException.class, () -> NoiseSchedule.of(SchedulerConfig.parse("{\"beta_schedule\": \"cubic\"}", "t")));
    }

    @Test
    void karrasSigmasFollowTheRho7Formula() {
        var s = new DPMSolverMultistepScheduler(config("DPMSolverMultistepScheduler", ""), true);
        s.setTimesteps(20);
        float[] sig = s.sigmas();
        float[] train = s.schedule.sigmas();
        assertEquals(21, sig.length);
        assertEquals(train[999], sig[0], 1e-4 * train[999]);                  // sigma_max
        assertEquals(train[0], sig[19], 1e-4 * train[0]);                     // sigma_min
        assertEquals(0f, sig[20]);                                            // final sigma zero
        for (int i = 1; i < sig.length; i++) assertTrue(sig[i] < sig[i - 1], "sigmas decrease");
        double maxInv = Math.pow(train[999], 1 / 7.0), minInv = Math.pow(train[0], 1 / 7.0);
        for (int i : new int[]{5, 10}) assertEquals(Math.pow(maxInv + i / 19.0 * (minInv - maxInv), 7), sig[i], 1e-5 * sig[i]);
        float[] t = s.timesteps();
        assertEquals(999f, t[0]);
        assertEquals(0f, t[19]);
        for (int i = 1; i < t.length; i++) assertTrue(t[i] <= t[i - 1]);
        assertEquals("dpm++2m-karras", s.name());

        var e = new EulerDiscreteScheduler(config("EulerDiscreteScheduler", "\"timestep_spacing\": \"leading\", \"steps_offset\": 1"), true);
        e.setTimesteps(10);
        float[] es = e.sigmas();
        assertEquals(0f, es[10]);
        for (int i = 1; i < es.length; i++) assertTrue(es[i] < es[i - 1]);
        assertEquals((float) Math.sqrt(es[0] * es[0] + 1), e.initNoiseSigma(), 1e-5);
        assertEquals(901f, e.timesteps()[0], 1e-2);                           // sigma_max of leading spacing maps back to t = 901
    }

    @Test
    void eulerAncestralStepByHand() {
        var s = new EulerAncestralDiscreteScheduler(config("EulerAncestralDiscreteScheduler", ""));
        s.setTimesteps(5);
        float[] t = s.timesteps(), sig = s.sigmas();
        assertArrayEquals(new float[]{999, 749.25f, 499.5f, 249.75f, 0}, t);
        assertEquals(0f, sig[5]);
        assertEquals(sig[0], s.initNoiseSigma());                           // linspace: sigma_max itself
        float[] x = random(64, 1), eps = random(64, 2);
        for (int i = 0; i < 2; i++) {
            float[] scaled = s.scaleModelInput(x, t[i]);
            assertEquals(x[3] / Math.sqrt(sig[i] * sig[i] + 1), scaled[3], 1e-6);
            long seed = 100 + i;
            float[] next = s.step(eps, t[i], x, new TorchRandom(seed));
            float[] noise = new float[64];
            new TorchRandom(seed).randn(noise);
            double from = sig[i], to = sig[i + 1];
            double up = Math.sqrt(to * to * (from * from - to * to) / (from * from)), down = Math.sqrt(to * to - up * up);
            assertEquals(to * to, up * up + down * down, 1e-9 * to * to);
            for (int k = 0; k < 64; k++) {
                double x0 = x[k] - from * eps[k];
                double want = x[k] + (x[k] - x0) / from * (down - from) + noise[k] * up;
                assertEquals(want, next[k], 1e-4 * (1 + Math.abs(want)), "step " + i + " element " + k);
            }
            x = next;
        }
        assertThrows(IllegalArgumentException.class, () -> {
            var s2 = new EulerAncestralDiscreteScheduler(config("EulerAncestralDiscreteScheduler", ""));
            s2.setTimesteps(5);
            s2.step(eps, 999, eps, null);
        });
    }

    @Test
    void dpmSolverSecondOrderStepsByHand() {
        var s = new DPMSolverMultistepScheduler(config("DPMSolverMultistepScheduler", ""), false);
        s.setTimesteps(5);
        assertArrayEquals(new float[]{999, 799, 599, 400, 200}, s.timesteps());  // linspace(0, 999, 6).round()[::-1][:-1]
        float[] sig = s.sigmas();
        float[] train = s.schedule.sigmas();
        assertEquals(train[999], sig[0], 0);
        assertEquals(train[599], sig[2], 0);
        assertEquals(0f, sig[5]);
        float[] x = random(32, 3);
        float[][] outs = {random(32, 4), random(32, 5), random(32, 6)};
        double[] prevX0 = null;
        for (int i = 0; i < 3; i++) {
            float[] next = s.step(outs[i], s.timesteps()[i], x, null);
            double as = 1 / Math.sqrt(sig[i] * (double) sig[i] + 1), ss = sig[i] * as;
            double at = 1 / Math.sqrt(sig[i + 1] * (double) sig[i + 1] + 1), st = sig[i + 1] * at;
            double h = Math.log(at / st) - Math.log(as / ss);
            double[] x0 = new double[32];
            for (int k = 0; k < 32; k++) x0[k] = (x[k] - ss * outs[i][k]) / as;
            for (int k = 0; k < 32; k++) {
                double want = st / ss * x[k] - at * (Math.exp(-h) - 1) * x0[k];          // DPM-Solver++(1)
                if (i > 0) {                                                          // 2M midpoint correction
                    double ap = 1 / Math.sqrt(sig[i - 1] * (double) sig[i - 1] + 1), sp = sig[i - 1] * ap;
                    double r0 = (Math.log(as / ss) - Math.log(ap / sp)) / h;
                    double d1 = (x0[k] - prevX0[k]) / r0;
                    want -= 0.5 * at * (Math.exp(-h) - 1) * d1;
                }
                assertEquals(want, next[k], 2e-4 * (1 + Math.abs(want)), "step " + i + " element " + k);
            }
            prevX0 = x0;
            x = next;
        }
    }

    /** Each scheduler with a model that predicts the exact noise lands on the analytic trajectory. */
    @ParameterizedTest
    @ValueSource(strings = {"ddim", "pndm", "pndm-prk", "euler", "euler-karras", "euler-trailing", "dpm++2m", "dpm++2m-karras", "dpm++3m", "dpm++2m-heun", "dpm++2m-sigma-min"})
    void exactNoiseOracleRecoversTheCleanSample(String kind) {
        Scheduler s = switch (kind) {
            case "ddim" -> new DDIMScheduler(config("DDIMScheduler", "\"set_alpha_to_one\": false, \"steps_offset\": 1, \"clip_sample\": false"), 0);
            case "pndm" -> new PNDMScheduler(config("PNDMScheduler", "\"skip_prk_steps\": true, \"steps_offset\": 1"));
            case "pndm-prk" -> new PNDMScheduler(config("PNDMScheduler", "\"skip_prk_steps\": false, \"steps_offset\": 1"));
            case "euler" -> new EulerDiscreteScheduler(config("EulerDiscreteScheduler", "\"timestep_spacing\": \"leading\", \"steps_offset\": 1"), false);
            case "euler-karras" -> new EulerDiscreteScheduler(config("EulerDiscreteScheduler", ""), true);
            case "euler-trailing" -> new EulerDiscreteScheduler(config("EulerDiscreteScheduler", "\"timestep_spacing\": \"trailing\""), false);
            case "dpm++2m" -> new DPMSolverMultistepScheduler(config("DPMSolverMultistepScheduler", "\"timestep_spacing\": \"leading\", \"steps_offset\": 1"), false);
            case "dpm++2m-karras" -> new DPMSolverMultistepScheduler(config("DPMSolverMultistepScheduler", ""), true);
            case "dpm++3m" -> new DPMSolverMultistepScheduler(config("DPMSolverMultistepScheduler", "\"solver_order\": 3"), false);
            case "dpm++2m-heun" -> new DPMSolverMultistepScheduler(config("DPMSolverMultistepScheduler", "\"solver_type\": \"heun\""), false);
            case "dpm++2m-sigma-min" -> new DPMSolverMultistepScheduler(config("DPMSolverMultistepScheduler", "\"final_sigmas_type\": \"sigma_min\""), false);
            default -> throw new AssertionError(kind);
        };
        int n = 64;
        s.setTimesteps(20);
        float[] t = s.timesteps();
        float[] x0 = random(n, 7), eps = random(n, 8);
        boolean ve = s instanceof EulerDiscreteScheduler;
        NoiseSchedule schedule = switch (s) {
            case DDIMScheduler d -> d.schedule;
            case PNDMScheduler p -> p.schedule;
            case EulerDiscreteScheduler e -> e.schedule;
            case DPMSolverMultistepScheduler d -> d.schedule;
            default -> throw new AssertionError();
        };
        double a0, s0;                                                        // x_T = a0 x0 + s0 eps
        if (ve) {
            a0 = 1;
            s0 = ((EulerDiscreteScheduler) s).sigmas()[0];
        } else if (s instanceof DPMSolverMultistepScheduler d) {
            double sig = d.sigmas()[0];
            a0 = 1 / Math.sqrt(sig * sig + 1);
            s0 = sig * a0;
        } else {
            double ac = schedule.alphasCumprod()[(int) t[0]];
            a0 = Math.sqrt(ac);
            s0 = Math.sqrt(1 - ac);
        }
        float[] x = new float[n];
        for (int k = 0; k < n; k++) x[k] = (float) (a0 * x0[k] + s0 * eps[k]);
        for (float ti : t) {
            s.scaleModelInput(x, ti);
            x = s.step(eps, ti, x, null);
        }
        double aEnd, sEnd;
        if (s instanceof DDIMScheduler || s instanceof PNDMScheduler) {       // final_alpha_cumprod = alphas_cumprod[0]
            aEnd = Math.sqrt(schedule.alphasCumprod()[0]);
            sEnd = Math.sqrt(1 - schedule.alphasCumprod()[0]);
        } else if (kind.equals("dpm++2m-sigma-min")) {
            double sig = ((DPMSolverMultistepScheduler) s).sigmas()[20];
            aEnd = 1 / Math.sqrt(sig * sig + 1);
            sEnd = sig * aEnd;
        } else {
            aEnd = 1;
            sEnd = 0;
        }
        float[] want = new float[n];
        for (int k = 0; k < n; k++) want[k] = (float) (aEnd * x0[k] + sEnd * eps[k]);
        PipelineRefs.assertClose(kind + " final sample", x, want, 1e-4);
    }

    @Test
    void pndmPrkTimestepsFollowDiffusers() {
        var s = new PNDMScheduler(config("PNDMScheduler", "\"skip_prk_steps\": false, \"steps_offset\": 1"));
        s.setTimesteps(10);
        assertArrayEquals(new float[]{901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1}, s.timesteps());
        var plms = new PNDMScheduler(config("PNDMScheduler", "\"skip_prk_steps\": true, \"steps_offset\": 1"));
        plms.setTimesteps(1);
        assertArrayEquals(new float[]{1}, plms.timesteps());
    }

    @Test
    void predictionTypesAgreeOnTheCleanSample() {
        // a VP point x_t = alpha x0 + sigma eps: epsilon, v and sample predictions all give back x0 and eps
        float alpha = 0.6f, sigma = 0.8f;
        float[] x0 = random(16, 9), eps = random(16, 10), xt = new float[16], v = new float[16];
        for (int i = 0; i < 16; i++) {
            xt[i] = alpha * x0[i] + sigma * eps[i];
            v[i] = alpha * eps[i] - sigma * x0[i];
        }
        PipelineRefs.assertClose("eps->x0", Prediction.EPSILON.x0(eps, xt, alpha, sigma), x0, 1e-6);
        PipelineRefs.assertClose("v->x0", Prediction.V_PREDICTION.x0(v, xt, alpha, sigma), x0, 1e-6);
        PipelineRefs.assertClose("v->eps", Prediction.V_PREDICTION.epsilon(v, xt, alpha, sigma), eps, 1e-6);
        PipelineRefs.assertClose("sample->eps", Prediction.SAMPLE.epsilon(x0, xt, alpha, sigma), eps, 1e-5);
        assertThrows(IllegalArgumentException.class, () -> Prediction.parse("flow"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"v_prediction", "sample"})
    void ddimOracleWithOtherParameterisations(String type) {
        var s = new DDIMScheduler(config("DDIMScheduler", "\"prediction_type\": \"" + type + "\", \"set_alpha_to_one\": true, \"clip_sample\": false"), 0);
        s.setTimesteps(10);
        float[] x0 = random(32, 11), eps = random(32, 12), x = new float[32];
        float[] ac = s.schedule.alphasCumprod();
        float[] t = s.timesteps();
        for (int k = 0; k < 32; k++) x[k] = (float) (Math.sqrt(ac[(int) t[0]]) * x0[k] + Math.sqrt(1 - ac[(int) t[0]]) * eps[k]);
        for (float ti : t) {
            double a = Math.sqrt(ac[(int) ti]), sg = Math.sqrt(1 - ac[(int) ti]);
            float[] out = new float[32];
            for (int k = 0; k < 32; k++) out[k] = type.equals("sample") ? x0[k] : (float) (a * eps[k] - sg * x0[k]);
            x = s.step(out, ti, x, null);
        }
        PipelineRefs.assertClose("ddim " + type, x, x0, 1e-4);               // set_alpha_to_one: the last step lands on x0
    }

    @Test
    void ddimEtaAddsPosteriorNoise() {
        var s = new DDIMScheduler(config("DDIMScheduler", "\"clip_sample\": false, \"steps_offset\": 1"), 1f);
        s.setTimesteps(10);
        float[] x = random(4096, 13), eps = random(4096, 14);
        var deterministic = new DDIMScheduler(config("DDIMScheduler", "\"clip_sample\": false, \"steps_offset\": 1"), 0f);
        deterministic.setTimesteps(10);
        float[] det = deterministic.step(eps, 901, x, null);
        float[] sto = s.step(eps, 901, x, new TorchRandom(3));
        float[] ac = s.schedule.alphasCumprod();
        double at = ac[901], ap = ac[801];
        double var = (1 - ap) / (1 - at) * (1 - at / ap), std = Math.sqrt(var);
        float[] noise = new float[4096];
        new TorchRandom(3).randn(noise);
        for (int k = 0; k < 4096; k += 97) {
            double x0 = (x[k] - Math.sqrt(1 - at) * eps[k]) / Math.sqrt(at);
            double want = Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - var) * eps[k] + std * noise[k];
            assertEquals(want, sto[k], 1e-4 * (1 + Math.abs(want)));
        }
        assertTrue(PipelineRefs.relErr(sto, det) > 1e-3);
        assertThrows(IllegalArgumentException.class, () -> s.step(eps, 801, x, null));
    }

    @Test
    void clearErrorsForBadConfigsAndNames() {
        assertThrows(IllegalArgumentException.class, () -> Scheduler.of("lms", config("PNDMScheduler", "")));
        assertThrows(IllegalArgumentException.class, () -> new DPMSolverMultistepScheduler(config("DPMSolverMultistepScheduler", "\"algorithm_type\": \"sde-dpmsolver\""), false));
        assertThrows(IllegalArgumentException.class, () -> new EulerDiscreteScheduler(config("EulerDiscreteScheduler", "\"timestep_type\": \"continuous\""), false));
        assertThrows(IllegalStateException.class, () -> new DDIMScheduler(config("DDIMScheduler", ""), 0).step(new float[4], 1, new float[4], null));
        for (String name : new String[]{"pndm", "ddim", "euler", "euler-karras", "euler-a", "dpm++2m", "dpm++2m-karras"})
            assertEquals(name, Scheduler.of(name, config("PNDMScheduler", "\"steps_offset\": 1")).name());
    }
}
