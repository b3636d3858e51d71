package jdiffusion.loader;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * diffusers scheduler_config.json for DDIM, PNDM, Euler, EulerAncestral, DPMSolverMultistep, LMS and DDPM, one record
 * for all: every key any of them reads, with the defaults of the class named by _class_name where they differ
 * (set_alpha_to_one, clip_sample, timestep_spacing, variance_type).
 */
public record SchedulerConfig(
        String className,
        int numTrainTimesteps,
        double betaStart,
        double betaEnd,
        String betaSchedule, // linear | scaled_linear | squaredcos_cap_v2
        double[] trainedBetas, // null unless set
        String predictionType, // epsilon | v_prediction | sample
        String timestepSpacing, // leading | trailing | linspace
        int stepsOffset,
        boolean setAlphaToOne,
        boolean skipPrkSteps,
        boolean clipSample,
        double clipSampleRange,
        boolean thresholding,
        double dynamicThresholdingRatio,
        double sampleMaxValue,
        boolean rescaleBetasZeroSnr,
        String interpolationType, // Euler: linear | log_linear
        boolean useKarrasSigmas,
        boolean useExponentialSigmas,
        boolean useBetaSigmas,
        Double sigmaMin,
        Double sigmaMax,
        String timestepType, // Euler: discrete | continuous
        String finalSigmasType, // zero | sigma_min
        int solverOrder,
        String algorithmType, // DPM: dpmsolver++ | sde-dpmsolver++ | dpmsolver | sde-dpmsolver
        String solverType, // DPM: midpoint | heun
        boolean lowerOrderFinal,
        boolean eulerAtFinal,
        boolean useLuLambdas,
        double lambdaMinClipped, // -Infinity by default
        String varianceType) { // null, fixed_small, learned_range...

    public static SchedulerConfig load(Path configJson) {
        return of(Json.read(configJson));
    }

    public static SchedulerConfig parse(String json, String source) {
        return of(Json.parse(json.getBytes(StandardCharsets.UTF_8), source));
    }

    static SchedulerConfig of(Json j) {
        String cls = j.string("_class_name", "PNDMScheduler");
        boolean ddimLike = cls.equals("DDIMScheduler") || cls.equals("DDPMScheduler");
        boolean leading = ddimLike || cls.equals("PNDMScheduler");
        var c = new SchedulerConfig(
                cls,
                j.integer("num_train_timesteps", 1000),
                j.number("beta_start", 0.0001),
                j.number("beta_end", 0.02),
                j.string("beta_schedule", "linear"),
                j.numbers("trained_betas"),
                j.string("prediction_type", "epsilon"),
                j.string("timestep_spacing", leading ? "leading" : "linspace"),
                j.integer("steps_offset", 0),
                j.bool("set_alpha_to_one", cls.equals("DDIMScheduler")),
                j.bool("skip_prk_steps", false),
                j.bool("clip_sample", ddimLike),
                j.number("clip_sample_range", 1.0),
                j.bool("thresholding", false),
                j.number("dynamic_thresholding_ratio", 0.995),
                j.number("sample_max_value", 1.0),
                j.bool("rescale_betas_zero_snr", false),
                j.string("interpolation_type", "linear"),
                j.bool("use_karras_sigmas", false),
                j.bool("use_exponential_sigmas", false),
                j.bool("use_beta_sigmas", false),
                j.numberOrNull("sigma_min"),
                j.numberOrNull("sigma_max"),
                j.string("timestep_type", "discrete"),
                j.string("final_sigmas_type", "zero"),
                j.integer("solver_order", 2),
                j.string("algorithm_type", "dpmsolver++"),
                j.string("solver_type", "midpoint"),
                j.bool("lower_order_final", true),
                j.bool("euler_at_final", false),
                j.bool("use_lu_lambdas", false),
                j.numberOrInfinity("lambda_min_clipped", Double.NEGATIVE_INFINITY),
                j.string("variance_type", cls.equals("DDPMScheduler") ? "fixed_small" : null));
        j.range("num_train_timesteps", c.numTrainTimesteps, 1, 1_000_000);
        j.range("solver_order", c.solverOrder, 1, 3);
        j.range("steps_offset", c.stepsOffset, 0, c.numTrainTimesteps);
        if (c.trainedBetas != null && c.trainedBetas.length != c.numTrainTimesteps)
            throw j.fail("trained_betas", "has " + c.trainedBetas.length + " values but num_train_timesteps is " + c.numTrainTimesteps);
        return c;
    }
}
