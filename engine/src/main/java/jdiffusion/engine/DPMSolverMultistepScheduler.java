package jdiffusion.engine;

import java.util.random.RandomGenerator;
import jdiffusion.loader.SchedulerConfig;

/**
 * DPM-Solver++ multistep (Lu et al. 2022), diffusers' DPMSolverMultistepScheduler with algorithm_type "dpmsolver++":
 * the data-prediction ODE solver in log-SNR time lambda = log(alpha / sigma). solver_order 2 is "DPM++ 2M"; with
 * Karras sigmas (rho = 7) it is "DPM++ 2M Karras". Lower orders are used for the first steps and, with
 * lower_order_final, for the last ones (always for the last step when the final sigma is zero).
 */
public final class DPMSolverMultistepScheduler implements Scheduler {
    public final NoiseSchedule schedule;
    public final Prediction prediction;
    private final SchedulerConfig config;
    private final boolean karras;
    private final int order;
    private final boolean heun;
    private float[] timesteps = new float[0];
    private float[] sigmas = new float[0];
    private float[][] outputs;
    private int lowerOrderNums;
    private int stepIndex = -1;

    public DPMSolverMultistepScheduler(SchedulerConfig config, boolean karras) {
        if (!"dpmsolver++".equals(config.algorithmType()))
            throw new IllegalArgumentException("DPMSolverMultistepScheduler: algorithm_type '" + config.algorithmType() + "' is not supported (dpmsolver++)");
        if (config.thresholding()) throw new IllegalArgumentException("DPMSolverMultistepScheduler: thresholding is not supported");
        this.config = config;
        this.schedule = NoiseSchedule.of(config);
        this.prediction = Prediction.parse(config.predictionType());
        this.karras = karras || config.useKarrasSigmas();
        this.order = config.solverOrder();
        if (order < 1 || order > 3) throw new IllegalArgumentException("DPMSolverMultistepScheduler: solver_order must be 1, 2 or 3, got " + order);
        this.heun = switch (config.solverType()) {
            case "midpoint" -> false;
            case "heun" -> true;
            default -> throw new IllegalArgumentException("DPMSolverMultistepScheduler: solver_type '" + config.solverType() + "' is not supported (midpoint, heun)");
        };
        if (config.rescaleBetasZeroSnr()) schedule.alphasCumprod()[schedule.alphasCumprod().length - 1] = 0x1p-24f;
        this.outputs = new float[order][];
    }

    @Override
    public String name() {
        return karras ? "dpm++2m-karras" : "dpm++2m";
    }

    public float[] sigmas() {
        return sigmas.clone();
    }

    @Override
    public void setTimesteps(int steps) {
        int trainSteps = schedule.numTrainTimesteps();
        if (steps < 1) throw new IllegalArgumentException("number of inference steps must be >= 1, got " + steps);
        if (steps > trainSteps) throw new IllegalArgumentException(steps + " inference steps exceed num_train_timesteps " + trainSteps);
        float[] ac = schedule.alphasCumprod();
        int clipped = 0;                                                     // searchsorted(flip(lambda_t), lambda_min_clipped)
        for (float a : ac) {
            float lambda = (float) Math.log((float) Math.sqrt(a)) - (float) Math.log((float) Math.sqrt(1f - a));
            if (lambda < config.lambdaMinClipped()) clipped++;
        }
        int lastTimestep = trainSteps - clipped;
        double[] t;
        String spacing = config.timestepSpacing();
        if (spacing.equals("trailing")) {
            double ratio = (double) trainSteps / steps;
            int len = (int) Math.ceil(lastTimestep / ratio);
            t = new double[len];
            for (int i = 0; i < len; i++) t[i] = Math.rint(lastTimestep - i * ratio) - 1;
        } else {
            double[] all = NoiseSchedule.spacing(spacing, lastTimestep, steps + 1, config.stepsOffset(), true);
            t = java.util.Arrays.copyOf(all, steps);                          // [::-1][:-1]: drop the smallest
        }
        float[] train = schedule.sigmas();
        double[] s;
        float last;
        if (karras) {
            float[] logSigmas = NoiseSchedule.logs(train);
            s = NoiseSchedule.karras(train[0], train[train.length - 1], steps);  // in_sigmas flipped: min = sigma(t=0), max = sigma(T-1)
            t = new double[s.length];
            for (int i = 0; i < s.length; i++) t[i] = Math.rint(NoiseSchedule.sigmaToT(s[i], logSigmas));
            last = finalZero() ? 0f : (float) s[s.length - 1];
        } else {
            s = new double[t.length];
            for (int i = 0; i < t.length; i++) s[i] = NoiseSchedule.interp(t[i], train);
            last = finalZero() ? 0f : (float) Math.sqrt((1f - ac[0]) / ac[0]);
        }
        sigmas = new float[s.length + 1];
        for (int i = 0; i < s.length; i++) sigmas[i] = (float) s[i];
        sigmas[s.length] = last;
        timesteps = new float[t.length];
        for (int i = 0; i < t.length; i++) timesteps[i] = (float) t[i];
        outputs = new float[order][];
        lowerOrderNums = 0;
        stepIndex = -1;
    }

    private boolean finalZero() {
        return switch (config.finalSigmasType()) {
            case "zero" -> true;
            case "sigma_min" -> false;
            default -> throw new IllegalArgumentException("final_sigmas_type '" + config.finalSigmasType() + "' is not supported (zero, sigma_min)");
        };
    }

    @Override
    public float[] timesteps() {
        return timesteps.clone();
    }

    @Override
    public float[] step(float[] modelOutput, float timestep, float[] sample, RandomGenerator rng) {
        if (timesteps.length == 0) throw new IllegalStateException("DPMSolverMultistepScheduler: call setTimesteps before step");
        if (stepIndex < 0) stepIndex = indexFor(timestep);
        int n = timesteps.length;
        boolean lowerFinal = stepIndex == n - 1 && (config.eulerAtFinal() || (config.lowerOrderFinal() && n < 15) || finalZero());
        boolean lowerSecond = stepIndex == n - 2 && config.lowerOrderFinal() && n < 15;

        float[] as = alphaSigma(sigmas[stepIndex]);
        float[] x0 = prediction.x0(modelOutput, sample, as[0], as[1]);      // convert_model_output
        System.arraycopy(outputs, 1, outputs, 0, order - 1);
        outputs[order - 1] = x0;

        float[] prev;
        if (order == 1 || lowerOrderNums < 1 || lowerFinal) prev = firstOrder(x0, sample);
        else if (order == 2 || lowerOrderNums < 2 || lowerSecond) prev = secondOrder(sample);
        else prev = thirdOrder(sample);
        if (lowerOrderNums < order) lowerOrderNums++;
        stepIndex++;
        return prev;
    }

    private int indexFor(float t) {
        int first = -1;
        for (int i = 0; i < timesteps.length; i++) {
            if (timesteps[i] == t) {
                if (first >= 0) return i;
                first = i;
            }
        }
        return first >= 0 ? first : timesteps.length - 1;
    }

    /** {alpha_t, sigma_t} of the VP view for a VE sigma: alpha = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha. */
    static float[] alphaSigma(float sigma) {
        float alpha = 1f / (float) Math.sqrt(sigma * sigma + 1f);
        return new float[]{alpha, sigma * alpha};
    }

    static float lambda(float[] as) {
        return (float) Math.log(as[0]) - (float) Math.log(as[1]);
    }

    /** DPM-Solver++(1), i.e. DDIM in data prediction: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) x0. */
    private float[] firstOrder(float[] x0, float[] sample) {
        float[] t = alphaSigma(sigmas[stepIndex + 1]), s = alphaSigma(sigmas[stepIndex]);
        float h = lambda(t) - lambda(s);
        float a = t[1] / s[1], b = t[0] * ((float) Math.exp(-h) - 1f);
        float[] out = new float[sample.length];
        for (int i = 0; i < out.length; i++) out[i] = a * sample[i] - b * x0[i];
        return out;
    }

    private float[] secondOrder(float[] sample) {
        float[] t = alphaSigma(sigmas[stepIndex + 1]), s0 = alphaSigma(sigmas[stepIndex]), s1 = alphaSigma(sigmas[stepIndex - 1]);
        float lt = lambda(t), l0 = lambda(s0), l1 = lambda(s1);
        float[] m0 = outputs[order - 1], m1 = outputs[order - 2];
        float h = lt - l0, h0 = l0 - l1;
        float r0 = h0 / h;
        float em1 = (float) Math.exp(-h) - 1f;
        float a = t[1] / s0[1], b = t[0] * em1;
        float c = heun ? -(t[0] * (em1 / h + 1f)) : 0.5f * b;               // coefficient of D1 (subtracted)
        float[] out = new float[sample.length];
        for (int i = 0; i < out.length; i++) {
            float d1 = (1f / r0) * (m0[i] - m1[i]);
            out[i] = a * sample[i] - b * m0[i] - c * d1;
        }
        return out;
    }

    private float[] thirdOrder(float[] sample) {
        float[] t = alphaSigma(sigmas[stepIndex + 1]), s0 = alphaSigma(sigmas[stepIndex]);
        float[] s1 = alphaSigma(sigmas[stepIndex - 1]), s2 = alphaSigma(sigmas[stepIndex - 2]);
        float lt = lambda(t), l0 = lambda(s0), l1 = lambda(s1), l2 = lambda(s2);
        float[] m0 = outputs[2], m1 = outputs[1], m2 = outputs[0];
        float h = lt - l0, h0 = l0 - l1, h1 = l1 - l2;
        float r0 = h0 / h, r1 = h1 / h;
        float em1 = (float) Math.exp(-h) - 1f;
        float a = t[1] / s0[1], b = t[0] * em1, c1 = t[0] * (em1 / h + 1f), c2 = t[0] * ((em1 + h) / (h * h) - 0.5f);
        float[] out = new float[sample.length];
        for (int i = 0; i < out.length; i++) {
            float d10 = (1f / r0) * (m0[i] - m1[i]);
            float d11 = (1f / r1) * (m1[i] - m2[i]);
            float d1 = d10 + (r0 / (r0 + r1)) * (d10 - d11);
            float d2 = (1f / (r0 + r1)) * (d10 - d11);
            out[i] = a * sample[i] - b * m0[i] + c1 * d1 - c2 * d2;
        }
        return out;
    }
}
