package jdiffusion.engine;

import java.util.Locale;

/**
 * What the UNet predicts (diffusers' prediction_type), for a noisy sample x_t = alpha x0 + sigma eps with
 * alpha = sqrt(alphas_cumprod[t]) and sigma = sqrt(1 - alphas_cumprod[t]): the noise, the velocity
 * v = alpha eps - sigma x0, or the clean sample itself. Schedulers convert through {@link #x0} and {@link #epsilon}.
 */
public enum Prediction {
    EPSILON, V_PREDICTION, SAMPLE;

    public static Prediction parse(String s) {
        return switch (s == null ? "epsilon" : s.toLowerCase(Locale.ROOT)) {
            case "epsilon" -> EPSILON;
            case "v_prediction" -> V_PREDICTION;
            case "sample" -> SAMPLE;
            default -> throw new IllegalArgumentException("prediction_type '" + s + "' is not supported (epsilon, v_prediction, sample)");
        };
    }

    /** The predicted clean sample x0. */
    public float[] x0(float[] out, float[] sample, float alpha, float sigma) {
        float[] x0 = new float[out.length];
        switch (this) {
            case EPSILON -> {
                for (int i = 0; i < x0.length; i++) x0[i] = (sample[i] - sigma * out[i]) / alpha;
            }
            case SAMPLE -> System.arraycopy(out, 0, x0, 0, x0.length);
            case V_PREDICTION -> {
                for (int i = 0; i < x0.length; i++) x0[i] = alpha * sample[i] - sigma * out[i];
            }
        }
        return x0;
    }

    /** The predicted noise eps. */
    public float[] epsilon(float[] out, float[] sample, float alpha, float sigma) {
        float[] eps = new float[out.length];
        switch (this) {
            case EPSILON -> System.arraycopy(out, 0, eps, 0, eps.length);
            case SAMPLE -> {
                for (int i = 0; i < eps.length; i++) eps[i] = (sample[i] - alpha * out[i]) / sigma;
            }
            case V_PREDICTION -> {
                for (int i = 0; i < eps.length; i++) eps[i] = alpha * out[i] + sigma * sample[i];
            }
        }
        return eps;
    }
}
