package jdiffusion.engine;

import jdiffusion.loader.SchedulerConfig;

/**
 * The discrete forward-noising schedule shared by all schedulers (diffusers' betas / alphas_cumprod), with the
 * timestep spacings and sigma helpers they use. Float math follows torch/numpy dtypes: betas and alphas_cumprod are
 * float32 (cumprod accumulated in double as torch does on the CPU), spacings and interpolations are float64.
 */
public record NoiseSchedule(float[] betas, float[] alphasCumprod) {

    public static NoiseSchedule of(SchedulerConfig c) {
        int n = c.numTrainTimesteps();
        float[] betas;
        if (c.trainedBetas() != null) {
            betas = new float[c.trainedBetas().length];
            for (int i = 0; i < betas.length; i++) betas[i] = (float) c.trainedBetas()[i];
            if (betas.length != n)
                throw new IllegalArgumentException("trained_betas has " + betas.length + " values, num_train_timesteps is " + n);
        } else {
            betas = switch (c.betaSchedule()) {
                case "linear" -> linspace32((float) c.betaStart(), (float) c.betaEnd(), n);
                case "scaled_linear" -> {
                    float[] b = linspace32((float) Math.sqrt(c.betaStart()), (float) Math.sqrt(c.betaEnd()), n);
                    for (int i = 0; i < n; i++) b[i] = b[i] * b[i];
                    yield b;
                }
                case "squaredcos_cap_v2" -> cosineBetas(n);
                default -> throw new IllegalArgumentException("beta_schedule '" + c.betaSchedule() + "' is not supported (linear, scaled_linear, squaredcos_cap_v2)");
            };
        }
        if (c.rescaleBetasZeroSnr()) betas = rescaleZeroTerminalSnr(betas);
        return new NoiseSchedule(betas, cumprod(betas));
    }

    public int numTrainTimesteps() {
        return betas.length;
    }

    /** sqrt((1 - alphas_cumprod) / alphas_cumprod) in float32, ascending in t (the "Karras" sigmas of the VE view). */
    public float[] sigmas() {
        float[] s = new float[alphasCumprod.length];
        for (int i = 0; i < s.length; i++) s[i] = (float) Math.sqrt((1f - alphasCumprod[i]) / alphasCumprod[i]);
        return s;
    }

    static float[] cumprod(float[] betas) {
        float[] ac = new float[betas.length];
        double p = 1;
        for (int i = 0; i < betas.length; i++) {
            p *= (1f - betas[i]);
            ac[i] = (float) p;
        }
        return ac;
    }

    /** torch.linspace(start, end, n, dtype=float32): float step, filled from both ends. */
    static float[] linspace32(float start, float end, int n) {
        float[] v = new float[n];
        if (n == 1) {
            v[0] = start;
            return v;
        }
        float step = (end - start) / (n - 1);
        int half = n / 2;
        for (int i = 0; i < n; i++) v[i] = i < half ? start + step * i : end - step * (n - 1 - i);
        return v;
    }

    /** numpy.linspace(start, stop, n) in float64. */
    static double[] linspace(double start, double stop, int n) {
        double[] v = new double[n];
        if (n == 1) {
            v[0] = start;
            return v;
        }
        double step = (stop - start) / (n - 1);
        for (int i = 0; i < n; i++) v[i] = i * step + start;
        v[n - 1] = stop;
        return v;
    }

    /** betas_for_alpha_bar with the cosine alpha_bar (Nichol and Dhariwal), capped at 0.999. */
    static float[] cosineBetas(int n) {
        float[] b = new float[n];
        for (int i = 0; i < n; i++) {
            double t1 = (double) i / n, t2 = (double) (i + 1) / n;
            b[i] = (float) Math.min(1 - alphaBar(t2) / alphaBar(t1), 0.999);
        }
        return b;
    }

    private static double alphaBar(double t) {
        double c = Math.cos((t + 0.008) / 1.008 * Math.PI / 2);
        return c * c;
    }

    /** Lin et al. 2023: shift and scale sqrt(alphas_cumprod) so the last timestep has zero SNR. */
    static float[] rescaleZeroTerminalSnr(float[] betas) {
        int n = betas.length;
        float[] ac = cumprod(betas);
        float[] sq = new float[n];
        for (int i = 0; i < n; i++) sq[i] = (float) Math.sqrt(ac[i]);
        float a0 = sq[0], aT = sq[n - 1];
        float k = a0 / (a0 - aT);
        float[] bar = new float[n];
        for (int i = 0; i < n; i++) {
            float s = (sq[i] - aT) * k;
            bar[i] = s * s;
        }
        float[] out = new float[n];
        out[0] = 1f - bar[0];
        for (int i = 1; i < n; i++) out[i] = 1f - bar[i] / bar[i - 1];
        return out;
    }

    /**
     * The inference timesteps of diffusers' timestep_spacing, descending: "linspace" (np.linspace(0, T-1, n)),
     * "leading" (multiples of T//n, plus steps_offset) or "trailing" (np.round(np.arange(T, 0, -T/n)) - 1).
     * Rounded half-to-even like np.round when {@code round}; "linspace" stays fractional otherwise.
     */
    static double[] spacing(String spacing, int trainSteps, int n, int stepsOffset, boolean round) {
        if (n < 1) throw new IllegalArgumentException("number of inference steps must be >= 1, got " + n);
        if (n > trainSteps)
            throw new IllegalArgumentException(n + " inference steps exceed num_train_timesteps " + trainSteps);
        double[] t;
        switch (spacing) {
            case "linspace" -> {
                double[] l = linspace(0, trainSteps - 1, n);
                t = new double[n];
                for (int i = 0; i < n; i++) t[i] = round ? Math.rint(l[n - 1 - i]) : l[n - 1 - i];
            }
            case "leading" -> {
                int ratio = trainSteps / n;
                t = new double[n];
                for (int i = 0; i < n; i++) t[i] = (double) (n - 1 - i) * ratio + stepsOffset;
            }
            case "trailing" -> {
                double step = (double) trainSteps / n;
                int len = (int) Math.ceil(trainSteps / step);
                t = new double[len];
                for (int i = 0; i < len; i++) t[i] = Math.rint(trainSteps - i * step) - 1;
            }
            default -> throw new IllegalArgumentException("timestep_spacing '" + spacing + "' is not supported (linspace, leading, trailing)");
        }
        return t;
    }

    /** np.interp(x, arange(len(fp)), fp). */
    static double interp(double x, float[] fp) {
        if (x <= 0) return fp[0];
        int last = fp.length - 1;
        if (x >= last) return fp[last];
        int j = (int) Math.floor(x);
        if (x == j) return fp[j];
        double slope = ((double) fp[j + 1] - fp[j]);
        return slope * (x - j) + fp[j];
    }

    /** Karras et al. 2022 sigmas: (max^(1/rho) + ramp (min^(1/rho) - max^(1/rho)))^rho over n points, rho = 7. */
    static double[] karras(double sigmaMin, double sigmaMax, int n) {
        double rho = 7.0;
        double[] ramp = linspace(0, 1, n);
        double minInv = Math.pow(sigmaMin, 1 / rho), maxInv = Math.pow(sigmaMax, 1 / rho);
        double[] s = new double[n];
        for (int i = 0; i < n; i++) s[i] = Math.pow(maxInv + ramp[i] * (minInv - maxInv), rho);
        return s;
    }

    /** diffusers' _sigma_to_t: the fractional timestep whose log-sigma matches, by linear interpolation in log sigma. */
    static double sigmaToT(double sigma, float[] logSigmas) {
        double logSigma = Math.log(Math.max(sigma, 1e-10));
        int low = 0;
        for (int i = 0; i < logSigmas.length; i++) if (logSigma - logSigmas[i] >= 0) low = i;
        low = Math.min(low, logSigmas.length - 2);
        double lo = logSigmas[low], hi = logSigmas[low + 1];
        double w = (lo - logSigma) / (lo - hi);
        w = Math.clamp(w, 0.0, 1.0);
        return (1 - w) * low + w * (low + 1);
    }

    static float[] logs(float[] v) {
        float[] l = new float[v.length];
        for (int i = 0; i < v.length; i++) l[i] = (float) Math.log(v[i]);
        return l;
    }
}
