package jdiffusion.engine;

import java.util.random.RandomGenerator;
import jdiffusion.loader.SchedulerConfig;

/**
 * Euler's method on the probability-flow ODE in sigma space (Karras et al. 2022, Algorithm 2 without churn),
 * diffusers' EulerDiscreteScheduler. The latent lives in the variance-exploding view x = x_vp / alpha, so the UNet
 * input is scaled by 1 / sqrt(sigma^2 + 1) and the initial noise by sqrt(sigma_max^2 + 1) ("leading") or sigma_max.
 */
public final class EulerDiscreteScheduler implements Scheduler {
    public final NoiseSchedule schedule;
    public final Prediction prediction;
    private final SchedulerConfig config;
    private final boolean karras;
    private float[] timesteps = new float[0];
    private float[] sigmas;
    private int stepIndex = -1;

    public EulerDiscreteScheduler(SchedulerConfig config, boolean karras) {
        if (!"discrete".equals(config.timestepType()))
            throw new IllegalArgumentException("EulerDiscreteScheduler: timestep_type '" + config.timestepType() + "' is not supported (discrete)");
        this.config = config;
        this.schedule = NoiseSchedule.of(config);
        this.prediction = Prediction.parse(config.predictionType());
        this.karras = karras || config.useKarrasSigmas();
        if (config.rescaleBetasZeroSnr()) schedule.alphasCumprod()[schedule.alphasCumprod().length - 1] = 0x1p-24f;
        float[] s = schedule.sigmas();                                       // training sigmas before set_timesteps
        this.sigmas = new float[s.length + 1];
        for (int i = 0; i < s.length; i++) sigmas[i] = s[s.length - 1 - i];
    }

    @Override
    public String name() {
        return karras ? "euler-karras" : "euler";
    }

    /** The sigmas of the inference steps, descending, with the final sigma (0 or sigma_min) appended. */
    public float[] sigmas() {
        return sigmas.clone();
    }

    @Override
    public void setTimesteps(int steps) {
        int trainSteps = schedule.numTrainTimesteps();
        double[] t = NoiseSchedule.spacing(config.timestepSpacing(), trainSteps, steps, config.stepsOffset(), false);
        int n = t.length;
        for (int i = 0; i < n; i++) t[i] = (float) t[i];                     // numpy float32 timesteps
        float[] train = schedule.sigmas();
        double[] s = new double[n];
        if (!"linear".equals(config.interpolationType()))
            throw new IllegalArgumentException("EulerDiscreteScheduler: interpolation_type '" + config.interpolationType() + "' is not supported (linear)");
        for (int i = 0; i < n; i++) s[i] = NoiseSchedule.interp(t[i], train);
        if (karras) {
            float[] logSigmas = NoiseSchedule.logs(train);
            double sMin = config.sigmaMin() != null ? config.sigmaMin() : s[s.length - 1];
            double sMax = config.sigmaMax() != null ? config.sigmaMax() : s[0];
            s = NoiseSchedule.karras(sMin, sMax, steps);
            t = new double[s.length];
            for (int i = 0; i < s.length; i++) t[i] = NoiseSchedule.sigmaToT(s[i], logSigmas);
        }
        float last = switch (config.finalSigmasType()) {
            case "zero" -> 0f;
            case "sigma_min" -> (float) Math.sqrt((1f - schedule.alphasCumprod()[0]) / schedule.alphasCumprod()[0]);
            default -> throw new IllegalArgumentException("final_sigmas_type '" + config.finalSigmasType() + "' is not supported (zero, sigma_min)");
        };
        sigmas = new float[s.length + 1];
        for (int i = 0; i < s.length; i++) sigmas[i] = (float) s[i];
        sigmas[s.length] = last;
        timesteps = new float[t.length];
        for (int i = 0; i < t.length; i++) timesteps[i] = (float) t[i];
        stepIndex = -1;
    }

    @Override
    public float[] timesteps() {
        return timesteps.clone();
    }

    @Override
    public float initNoiseSigma() {
        return initNoiseSigma(sigmas, config.timestepSpacing());
    }

    /** diffusers' init_noise_sigma of the Euler family: max sigma, or sqrt(max^2 + 1) for "leading" spacing. */
    static float initNoiseSigma(float[] sigmas, String spacing) {
        float max = 0;
        for (float s : sigmas) max = Math.max(max, s);
        if (spacing.equals("linspace") || spacing.equals("trailing")) return max;
        return (float) Math.sqrt(max * max + 1f);
    }

    @Override
    public float[] scaleModelInput(float[] sample, float timestep) {
        if (stepIndex < 0) stepIndex = indexFor(timesteps, timestep);
        return scaled(sample, sigmas[stepIndex]);
    }

    /** sample / sqrt(sigma^2 + 1), a new array. */
    static float[] scaled(float[] sample, float sigma) {
        float d = (float) Math.sqrt(sigma * sigma + 1f);
        float[] out = new float[sample.length];
        for (int i = 0; i < out.length; i++) out[i] = sample[i] / d;
        return out;
    }

    @Override
    public float[] step(float[] modelOutput, float timestep, float[] sample, RandomGenerator rng) {
        if (timesteps.length == 0) throw new IllegalStateException("EulerDiscreteScheduler: call setTimesteps before step");
        if (stepIndex < 0) stepIndex = indexFor(timesteps, timestep);
        float sigma = sigmas[stepIndex];                                     // s_churn = 0: sigma_hat = sigma
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
        float dt = sigmas[stepIndex + 1] - sigma;
        float[] prev = new float[sample.length];
        for (int i = 0; i < prev.length; i++) {
            float derivative = (sample[i] - x0[i]) / sigma;
            prev[i] = sample[i] + derivative * dt;
        }
        stepIndex++;
        return prev;
    }

    /** diffusers' index_for_timestep: the first match, or the second when the timestep repeats. */
    static int indexFor(float[] timesteps, float t) {
        int first = -1;
        for (int i = 0; i < timesteps.length; i++) {
            if (timesteps[i] == t) {
                if (first >= 0) return i;
                first = i;
            }
        }
        if (first < 0) throw new IllegalArgumentException("timestep " + t + " is not one of the scheduler's timesteps");
        return first;
    }
}
