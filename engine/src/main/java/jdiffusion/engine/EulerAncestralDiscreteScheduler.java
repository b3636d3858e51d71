package jdiffusion.engine;

import java.util.random.RandomGenerator;
import jdiffusion.loader.SchedulerConfig;

/**
 * Ancestral Euler (k-diffusion's sample_euler_ancestral), diffusers' EulerAncestralDiscreteScheduler: each step goes
 * deterministically down to sigma_down and adds fresh noise of sigma_up, with sigma_down^2 + sigma_up^2 = sigma_next^2.
 */
public final class EulerAncestralDiscreteScheduler implements Scheduler {
    public final NoiseSchedule schedule;
    public final Prediction prediction;
    private final SchedulerConfig config;
    private float[] timesteps = new float[0];
    private float[] sigmas;
    private int stepIndex = -1;

    public EulerAncestralDiscreteScheduler(SchedulerConfig config) {
        this.config = config;
        this.schedule = NoiseSchedule.of(config);
        this.prediction = Prediction.parse(config.predictionType());
        if (config.rescaleBetasZeroSnr()) schedule.alphasCumprod()[schedule.alphasCumprod().length - 1] = 0x1p-24f;
        float[] s = schedule.sigmas();
        this.sigmas = new float[s.length + 1];
        for (int i = 0; i < s.length; i++) sigmas[i] = s[s.length - 1 - i];
    }

    @Override
    public String name() {
        return "euler-a";
    }

    public float[] sigmas() {
        return sigmas.clone();
    }

    @Override
    public void setTimesteps(int steps) {
        double[] t = NoiseSchedule.spacing(config.timestepSpacing(), schedule.numTrainTimesteps(), steps, config.stepsOffset(), false);
        float[] train = schedule.sigmas();
        timesteps = new float[t.length];
        sigmas = new float[t.length + 1];                                    // last sigma is 0
        for (int i = 0; i < t.length; i++) {
            timesteps[i] = (float) t[i];
            sigmas[i] = (float) NoiseSchedule.interp(timesteps[i], train);
        }
        stepIndex = -1;
    }

    @Override
    public float[] timesteps() {
        return timesteps.clone();
    }

    @Override
    public float initNoiseSigma() {
        return EulerDiscreteScheduler.initNoiseSigma(sigmas, config.timestepSpacing());
    }

    @Override
    public float[] scaleModelInput(float[] sample, float timestep) {
        if (stepIndex < 0) stepIndex = EulerDiscreteScheduler.indexFor(timesteps, timestep);
        return EulerDiscreteScheduler.scaled(sample, sigmas[stepIndex]);
    }

    @Override
    public float[] step(float[] modelOutput, float timestep, float[] sample, RandomGenerator rng) {
        if (timesteps.length == 0) throw new IllegalStateException("EulerAncestralDiscreteScheduler: call setTimesteps before step");
        if (stepIndex < 0) stepIndex = EulerDiscreteScheduler.indexFor(timesteps, timestep);
        float sigma = sigmas[stepIndex];
        float[] x0;
        if (prediction == Prediction.EPSILON) {
            x0 = new float[sample.length];
            for (int i = 0; i < x0.length; i++) x0[i] = sample[i] - sigma * modelOutput[i];
        } else {
            float alpha = (float) (1 / Math.sqrt(sigma * sigma + 1f));
            float[] vp = new float[sample.length];
            for (int i = 0; i < vp.length; i++) vp[i] = sample[i] * alpha;
            x0 = prediction.x0(modelOutput, vp, alpha, sigma * alpha);
        }
        float[] upDown = ancestral(sigma, sigmas[stepIndex + 1]);
        float sigmaUp = upDown[0], sigmaDown = upDown[1];
        float dt = sigmaDown - sigma;
        float[] noise = new float[sample.length];
        Scheduler.gaussian(rng, noise);
        float[] prev = new float[sample.length];
        for (int i = 0; i < prev.length; i++) {
            float derivative = (sample[i] - x0[i]) / sigma;
            prev[i] = sample[i] + derivative * dt + noise[i] * sigmaUp;
        }
        stepIndex++;
        return prev;
    }

    /** The noise added by the step from sigma_from to sigma_to, and the deterministic target: {sigma_up, sigma_down}. */
    static float[] ancestral(float sigmaFrom, float sigmaTo) {
        float up = (float) Math.sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom));
        return new float[]{up, (float) Math.sqrt(sigmaTo * sigmaTo - up * up)};
    }
}
