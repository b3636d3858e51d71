package jdiffusion.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.random.RandomGenerator;
import jdiffusion.loader.SchedulerConfig;

/**
 * Pseudo numerical methods (Liu et al. 2022), diffusers' PNDMScheduler: a Runge-Kutta warm-up (PRK, 4 model calls per
 * step over the last 3 steps) then linear multistep (PLMS). SD1.x ships skip_prk_steps = true: PLMS only, whose
 * second model call re-evaluates at the first step's target, so the timestep list repeats one value (11 calls for 10 steps).
 */
public final class PNDMScheduler implements Scheduler {
    private static final int PNDM_ORDER = 4;
    public final NoiseSchedule schedule;
    public final Prediction prediction;
    private final SchedulerConfig config;
    private final float finalAlphaCumprod;
    private int steps;
    private int[] prkTimesteps = new int[0];
    private float[] timesteps = new float[0];
    private int counter;
    private final List<float[]> ets = new ArrayList<>();
    private float[] curModelOutput;
    private float[] curSample;

    public PNDMScheduler(SchedulerConfig config) {
        this.config = config;
        this.schedule = NoiseSchedule.of(config);
        this.prediction = Prediction.parse(config.predictionType());
        if (prediction == Prediction.SAMPLE) throw new IllegalArgumentException("PNDMScheduler supports prediction_type epsilon or v_prediction, not sample");
        this.finalAlphaCumprod = config.setAlphaToOne() ? 1f : schedule.alphasCumprod()[0];
    }

    @Override
    public String name() {
        return "pndm";
    }

    @Override
    public void setTimesteps(int steps) {
        int trainSteps = schedule.numTrainTimesteps();
        double[] desc = NoiseSchedule.spacing(config.timestepSpacing(), trainSteps, steps, config.stepsOffset(), true);
        int n = desc.length;
        int[] asc = new int[n];                                              // diffusers' _timesteps, ascending
        for (int i = 0; i < n; i++) asc[i] = (int) desc[n - 1 - i];
        this.steps = steps;
        int[] plms;
        if (config.skipPrkSteps()) {
            prkTimesteps = new int[0];
            // concatenate([_timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:]])[::-1]
            plms = new int[n + 1];
            int k = 0;
            plms[k++] = asc[n - 1];
            if (n >= 2) plms[k++] = asc[n - 2];
            for (int i = n - 2; i >= 0; i--) plms[k++] = asc[i];
            if (k < plms.length) plms = java.util.Arrays.copyOf(plms, k);
        } else {
            if (n < PNDM_ORDER) throw new IllegalArgumentException("PNDMScheduler with PRK steps needs at least " + PNDM_ORDER + " inference steps, got " + steps);
            int half = trainSteps / steps / 2;
            int[] rep = new int[2 * PNDM_ORDER];                              // _timesteps[-4:].repeat(2) + tile([0, half], 4)
            for (int i = 0; i < PNDM_ORDER; i++) {
                rep[2 * i] = asc[n - PNDM_ORDER + i];
                rep[2 * i + 1] = asc[n - PNDM_ORDER + i] + half;
            }
            int[] twice = new int[2 * (rep.length - 1)];                      // rep[:-1].repeat(2)
            for (int i = 0; i < rep.length - 1; i++) twice[2 * i] = twice[2 * i + 1] = rep[i];
            prkTimesteps = new int[twice.length - 2];                         // [1:-1][::-1]
            for (int i = 0; i < prkTimesteps.length; i++) prkTimesteps[i] = twice[twice.length - 2 - i];
            plms = new int[Math.max(0, n - 3)];                               // _timesteps[:-3][::-1]
            for (int i = 0; i < plms.length; i++) plms[i] = asc[n - 4 - i];
        }
        timesteps = new float[prkTimesteps.length + plms.length];
        for (int i = 0; i < prkTimesteps.length; i++) timesteps[i] = prkTimesteps[i];
        for (int i = 0; i < plms.length; i++) timesteps[prkTimesteps.length + i] = plms[i];
        ets.clear();
        counter = 0;
        curModelOutput = null;
        curSample = null;
    }

    @Override
    public float[] timesteps() {
        return timesteps.clone();
    }

    @Override
    public float[] step(float[] modelOutput, float timestep, float[] sample, RandomGenerator rng) {
        if (steps == 0) throw new IllegalStateException("PNDMScheduler: call setTimesteps before step");
        if (counter < prkTimesteps.length && !config.skipPrkSteps()) return stepPrk(modelOutput, (int) timestep, sample);
        return stepPlms(modelOutput, (int) timestep, sample);
    }

    private float[] stepPrk(float[] modelOutput, int timestep, float[] sample) {
        int ratio = schedule.numTrainTimesteps() / steps;
        int diffToPrev = counter % 2 != 0 ? 0 : ratio / 2;
        int prev = timestep - diffToPrev;
        int t = prkTimesteps[counter / 4 * 4];
        float[] out = modelOutput;
        switch (counter % 4) {
            case 0 -> {
                curModelOutput = axpy(null, 1f / 6, modelOutput);
                ets.add(modelOutput.clone());
                curSample = sample.clone();
            }
            case 1, 2 -> curModelOutput = axpy(curModelOutput, 1f / 3, modelOutput);
            default -> {
                out = axpy(curModelOutput, 1f / 6, modelOutput);
                curModelOutput = null;
            }
        }
        float[] base = curSample != null ? curSample : sample;
        float[] prevSample = prevSample(base, t, prev, out);
        counter++;
        return prevSample;
    }

    private float[] stepPlms(float[] modelOutput, int timestep, float[] sample) {
        int ratio = schedule.numTrainTimesteps() / steps;
        if (!config.skipPrkSteps() && ets.size() < 3)
            throw new IllegalStateException("PNDMScheduler: PLMS steps need 3 PRK warm-up steps first (12 model calls)");
        int t = timestep;
        int prev = t - ratio;
        if (counter != 1) {
            while (ets.size() > 3) ets.removeFirst();
            ets.add(modelOutput.clone());
        } else {
            prev = t;
            t = t + ratio;
        }
        int n = ets.size();
        float[] out = new float[modelOutput.length];
        if (n == 1 && counter == 0) {
            System.arraycopy(modelOutput, 0, out, 0, out.length);
            curSample = sample.clone();
        } else if (n == 1 && counter == 1) {
            float[] e1 = ets.get(0);
            for (int i = 0; i < out.length; i++) out[i] = (modelOutput[i] + e1[i]) / 2;
            sample = curSample;
            curSample = null;
        } else if (n == 2) {
            float[] e1 = ets.get(1), e2 = ets.get(0);
            for (int i = 0; i < out.length; i++) out[i] = (3 * e1[i] - e2[i]) / 2;
        } else if (n == 3) {
            float[] e1 = ets.get(2), e2 = ets.get(1), e3 = ets.get(0);
            for (int i = 0; i < out.length; i++) out[i] = (23 * e1[i] - 16 * e2[i] + 5 * e3[i]) / 12;
        } else {
            float[] e1 = ets.get(n - 1), e2 = ets.get(n - 2), e3 = ets.get(n - 3), e4 = ets.get(n - 4);
            for (int i = 0; i < out.length; i++) out[i] = (1f / 24) * (55 * e1[i] - 59 * e2[i] + 37 * e3[i] - 9 * e4[i]);
        }
        float[] prevSample = prevSample(sample, t, prev, out);
        counter++;
        return prevSample;
    }

    /** Formula (9) of the PNDM paper: x_{t-delta} from x_t and the (combined) noise prediction. */
    private float[] prevSample(float[] sample, int t, int prev, float[] modelOutput) {
        float[] ac = schedule.alphasCumprod();
        float alphaProd = ac[t];
        float alphaProdPrev = prev >= 0 ? ac[prev] : finalAlphaCumprod;
        float betaProd = 1f - alphaProd;
        float betaProdPrev = 1f - alphaProdPrev;
        float[] eps = prediction == Prediction.EPSILON ? modelOutput
                : prediction.epsilon(modelOutput, sample, (float) Math.sqrt(alphaProd), (float) Math.sqrt(betaProd));
        float sampleCoeff = (float) Math.sqrt(alphaProdPrev / alphaProd);
        float denom = alphaProd * (float) Math.sqrt(betaProdPrev) + (float) Math.sqrt(alphaProd * betaProd * alphaProdPrev);
        float diff = alphaProdPrev - alphaProd;
        float[] prevSample = new float[sample.length];
        for (int i = 0; i < prevSample.length; i++) prevSample[i] = sampleCoeff * sample[i] - diff * eps[i] / denom;
        return prevSample;
    }

    /** acc + a x (acc null = 0), into a new array. */
    private static float[] axpy(float[] acc, float a, float[] x) {
        float[] r = new float[x.length];
        for (int i = 0; i < r.length; i++) r[i] = (acc == null ? 0f : acc[i]) + a * x[i];
        return r;
    }
}
