package jdiffusion.engine;

import java.util.random.RandomGenerator;
import jdiffusion.loader.SchedulerConfig;

/**
 * DDIM (Song et al. 2020), diffusers' DDIMScheduler: deterministic for eta = 0, adds sigma_t-scaled noise for eta > 0
 * (eta = 1 is DDPM's posterior variance).
 */
public final class DDIMScheduler implements Scheduler {
    public final NoiseSchedule schedule;
    public final Prediction prediction;
    /** The step's noise weight (diffusers passes it to step(); 0 = deterministic DDIM). */
    public float eta;
    private final float finalAlphaCumprod;
    private final SchedulerConfig config;
    private int steps;
    private float[] timesteps = new float[0];

    public DDIMScheduler(SchedulerConfig config, float eta) {
        if (config.thresholding()) throw new IllegalArgumentException("DDIMScheduler: thresholding (dynamic thresholding for pixel-space models) is not supported");
        this.config = config;
        this.schedule = NoiseSchedule.of(config);
        this.prediction = Prediction.parse(config.predictionType());
        this.eta = eta;
        this.finalAlphaCumprod = config.setAlphaToOne() ? 1f : schedule.alphasCumprod()[0];
    }

    @Override
    public String name() {
        return "ddim";
    }

    public float finalAlphaCumprod() {
        return finalAlphaCumprod;
    }

    @Override
    public void setTimesteps(int steps) {
        double[] t = NoiseSchedule.spacing(config.timestepSpacing(), schedule.numTrainTimesteps(), steps, config.stepsOffset(), true);
        this.steps = steps;
        this.timesteps = new float[t.length];
        for (int i = 0; i < t.length; i++) timesteps[i] = (float) t[i];
    }

    @Override
    public float[] timesteps() {
        return timesteps.clone();
    }

    @Override
    public float[] step(float[] modelOutput, float timestep, float[] sample, RandomGenerator rng) {
        if (steps == 0) throw new IllegalStateException("DDIMScheduler: call setTimesteps before step");
        int t = (int) timestep;
        int prev = t - schedule.numTrainTimesteps() / steps;
        float[] ac = schedule.alphasCumprod();
        float alphaProd = ac[t];
        float alphaProdPrev = prev >= 0 ? ac[prev] : finalAlphaCumprod;
        float betaProd = 1f - alphaProd;
        float betaProdPrev = 1f - alphaProdPrev;
        float alpha = (float) Math.sqrt(alphaProd), sigma = (float) Math.sqrt(betaProd);

        float[] x0 = prediction.x0(modelOutput, sample, alpha, sigma);
        float[] eps = prediction.epsilon(modelOutput, sample, alpha, sigma);
        if (config.clipSample()) {
            float r = (float) config.clipSampleRange();
            for (int i = 0; i < x0.length; i++) x0[i] = Math.clamp(x0[i], -r, r);
        }
        float variance = (betaProdPrev / betaProd) * (1f - alphaProd / alphaProdPrev);
        float std = eta * (float) Math.sqrt(variance);
        float c0 = (float) Math.sqrt(alphaProdPrev);
        float cEps = (float) Math.sqrt(1f - alphaProdPrev - std * std);
        float[] prevSample = new float[sample.length];
        for (int i = 0; i < prevSample.length; i++) prevSample[i] = c0 * x0[i] + cEps * eps[i];
        if (eta > 0) {
            float[] noise = new float[sample.length];
            Scheduler.gaussian(rng, noise);
            for (int i = 0; i < prevSample.length; i++) prevSample[i] += std * noise[i];
        }
        return prevSample;
    }
}
