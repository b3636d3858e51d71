package jdiffusion.engine;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.random.RandomGenerator;
import jdiffusion.loader.LoaderException;
import jdiffusion.loader.SchedulerConfig;

/**
 * A sampler over a {@link NoiseSchedule} (diffusers' SchedulerMixin): host-side float math on whole latent batches.
 * Call {@link #setTimesteps} first, then per denoising step {@link #scaleModelInput} and {@link #step} with the
 * timesteps of {@link #timesteps()} in order. Schedulers are stateful (multistep history) and not thread-safe.
 */
public interface Scheduler {
    /** The CLI names: pndm, ddim, euler, euler-a, dpm++2m, dpm++2m-karras. */
    String name();

    void setTimesteps(int steps);

    /** The UNet timestep of each denoising step (PNDM's PLMS repeats one, so it may be longer than the steps asked). */
    float[] timesteps();

    /** Standard deviation of the initial noise (1, or sqrt(sigma_max^2 + 1) for the Euler family). */
    default float initNoiseSigma() {
        return 1f;
    }

    /** The UNet input for this step (a new array; the Euler family divides by sqrt(sigma^2 + 1)). */
    default float[] scaleModelInput(float[] sample, float timestep) {
        return sample.clone();
    }

    /** One denoising step: the previous (less noisy) sample. {@code rng} feeds the stochastic samplers; may be null for the others. */
    float[] step(float[] modelOutput, float timestep, float[] sample, RandomGenerator rng);

    /**
     * The scheduler for a CLI name or a diffusers class name over a model's scheduler config (null name = the
     * config's own class), like diffusers' Scheduler.from_config(pipe.scheduler.config).
     */
    static Scheduler of(String name, SchedulerConfig config) {
        String n = name == null ? config.className() : name;
        return switch (n.toLowerCase(Locale.ROOT)) {
            case "pndm", "pndmscheduler" -> new PNDMScheduler(config);
            case "ddim", "ddimscheduler" -> new DDIMScheduler(config, 0f);
            case "euler", "eulerdiscretescheduler" -> new EulerDiscreteScheduler(config, false);
            case "euler-karras" -> new EulerDiscreteScheduler(config, true);
            case "euler-a", "euler_a", "eulerancestraldiscretescheduler" -> new EulerAncestralDiscreteScheduler(config);
            case "dpm++2m", "dpmsolvermultistepscheduler" -> new DPMSolverMultistepScheduler(config, false);
            case "dpm++2m-karras" -> new DPMSolverMultistepScheduler(config, true);
            default -> throw new IllegalArgumentException("unknown scheduler '" + n + "' (pndm, ddim, euler, euler-karras, euler-a, dpm++2m, dpm++2m-karras)");
        };
    }

    /**
     * The scheduler for a name (null = the config's class) from a scheduler_config.json, like diffusers'
     * from_config: keys the file holds are kept, missing keys take the defaults of the named scheduler's class.
     */
    static Scheduler load(String name, Path configJson) {
        String json;
        try {
            json = Files.readString(configJson);
        } catch (IOException e) {
            throw new LoaderException(configJson + ": cannot read scheduler config: " + e.getMessage(), e);
        }
        if (name == null) return of(null, SchedulerConfig.parse(json, configJson.toString()));
        String cls = className(name);
        Matcher m = Pattern.compile("\"_class_name\"\\s*:\\s*\"[^\"]*\"").matcher(json);
        String retargeted = m.find()
                ? m.replaceFirst(Matcher.quoteReplacement("\"_class_name\": \"" + cls + "\""))
                : json.replaceFirst("\\{", Matcher.quoteReplacement("{\"_class_name\": \"" + cls + "\","));
        return of(name, SchedulerConfig.parse(retargeted, configJson.toString()));
    }

    /** The diffusers class behind a scheduler name. */
    static String className(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "pndm", "pndmscheduler" -> "PNDMScheduler";
            case "ddim", "ddimscheduler" -> "DDIMScheduler";
            case "euler", "euler-karras", "eulerdiscretescheduler" -> "EulerDiscreteScheduler";
            case "euler-a", "euler_a", "eulerancestraldiscretescheduler" -> "EulerAncestralDiscreteScheduler";
            case "dpm++2m", "dpm++2m-karras", "dpmsolvermultistepscheduler" -> "DPMSolverMultistepScheduler";
            default -> throw new IllegalArgumentException("unknown scheduler '" + name + "' (pndm, ddim, euler, euler-karras, euler-a, dpm++2m, dpm++2m-karras)");
        };
    }

    /** Fills {@code out} with standard normal noise: torch.randn's stream when rng is a {@link TorchRandom}. */
    static void gaussian(RandomGenerator rng, float[] out) {
        if (rng == null) throw new IllegalArgumentException("this scheduler is stochastic and needs a random generator");
        if (rng instanceof TorchRandom t) {
            t.randn(out);
        } else {
            for (int i = 0; i < out.length; i++) out[i] = (float) rng.nextGaussian();
        }
    }
}
