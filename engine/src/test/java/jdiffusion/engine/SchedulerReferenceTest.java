package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** DDIM, Euler and PNDM against diffusers' 10-step pipeline runs: schedule, timesteps, sigmas and every step. */
class SchedulerReferenceTest {

    static Scheduler create(String name) {
        return Scheduler.of(null, PipelineRefs.config(name));
    }

    @ParameterizedTest
    @ValueSource(strings = {"ddim", "euler", "pndm"})
    void scheduleAndTimestepsMatchDiffusers(String name) {
        PipelineRefs ref = PipelineRefs.load(name);
        Scheduler s = create(name);
        NoiseSchedule schedule = switch (s) {
            case DDIMScheduler d -> d.schedule;
            case EulerDiscreteScheduler e -> e.schedule;
            case PNDMScheduler p -> p.schedule;
            default -> throw new AssertionError(s.getClass().getName());
        };
        PipelineRefs.assertClose(name + " alphas_cumprod", schedule.alphasCumprod(), ref.get("alphas_cumprod"), 1e-6);
        s.setTimesteps(10);
        assertArrayEquals(ref.get("timesteps"), s.timesteps(), name + " timesteps");
        assertArrayEquals(ref.get("step_timesteps"), s.timesteps(), name + " step timesteps");
        assertEquals(ref.scalar("init_noise_sigma"), s.initNoiseSigma(), 1e-5 * ref.scalar("init_noise_sigma"), name + " init_noise_sigma");
        if (s instanceof EulerDiscreteScheduler e) PipelineRefs.assertClose("euler sigmas", e.sigmas(), ref.get("sigmas"), 1e-6);
        if (s instanceof DDIMScheduler d) assertEquals(ref.scalar("final_alpha_cumprod"), d.finalAlphaCumprod(), 1e-7);
    }

    @ParameterizedTest
    @ValueSource(strings = {"ddim", "euler", "pndm"})
    void everyStepMatchesDiffusers(String name) {
        PipelineRefs ref = PipelineRefs.load(name);
        Scheduler s = create(name);
        s.setTimesteps(10);
        float[] t = s.timesteps();
        assertEquals(ref.steps(), t.length);
        for (int i = 0; i < t.length; i++) {
            float[] in = ref.step("step_sample_in", i);
            float[] scaled = s.scaleModelInput(in, t[i]);
            float[] unetIn = ref.step("step_unet_in", i);                    // cat([scaled, scaled]) for CFG
            PipelineRefs.assertClose(name + " step " + i + " unet_in[0]", scaled, Arrays.copyOfRange(unetIn, 0, in.length), 1e-6);
            PipelineRefs.assertClose(name + " step " + i + " unet_in[1]", scaled, Arrays.copyOfRange(unetIn, in.length, 2 * in.length), 1e-6);
            float[] out = s.step(ref.step("step_noise_pred", i), t[i], in, null);
            PipelineRefs.assertClose(name + " step " + i + " latents", out, ref.step("step_latents", i), 1e-5);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"ddim", "euler", "pndm"})
    void guidanceCombinesUncondThenCond(String name) {
        PipelineRefs ref = PipelineRefs.load(name);
        for (int i = 0; i < ref.steps(); i++) {
            float[] out = ref.step("step_unet_out", i), pred = ref.step("step_noise_pred", i);
            float[] ours = new float[pred.length];
            for (int k = 0; k < ours.length; k++) ours[k] = out[k] + 7.5f * (out[pred.length + k] - out[k]);
            PipelineRefs.assertClose(name + " cfg " + i, ours, pred, 1e-6);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"ddim", "euler", "pndm"})
    void modelConfigSwitchesLikeFromConfig(String name) {
        // the model's PNDM config, retargeted like diffusers' Scheduler.from_config(pipe.scheduler.config)
        PipelineRefs ref = PipelineRefs.load(name);
        Scheduler s = Scheduler.load(name, PipelineRefs.tinySd().resolve("scheduler").resolve("scheduler_config.json"));
        s.setTimesteps(10);
        assertArrayEquals(ref.get("timesteps"), s.timesteps());
        assertEquals(ref.scalar("init_noise_sigma"), s.initNoiseSigma(), 1e-5 * ref.scalar("init_noise_sigma"));
    }
}
