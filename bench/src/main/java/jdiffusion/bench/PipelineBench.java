package jdiffusion.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import jdiffusion.engine.StableDiffusionPipeline;
import jdiffusion.engine.StableDiffusionPipeline.Options;
import jdiffusion.engine.StableDiffusionPipeline.Request;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH: the bundled tiny pipeline (engine/tiny-sd: CLIP tokenizer + text encoder, 2-block UNet, VAE, PNDM) end to end,
 * text-to-image with classifier-free guidance (UNet batch 2) at the model's size (32x32 latents, 256x256 image), timed
 * as one {@code generate()}: encode prompt, {@code steps} denoising steps, VAE decode, RGB images. The pipeline is
 * loaded (weights uploaded) once per fork and one untimed generate builds every task graph before the warm-up.
 * The model folder: -Dtiny.sd, else engine/tiny-sd under the working directory or one of its parents.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "--add-modules", "jdk.incubator.vector", "-Xmx2g"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class PipelineBench {
    static {
    }

    @Param({"java"})
    public String backend;

    @Param({"10"})
    public int steps;

    private StableDiffusionPipeline pipeline;
    private Request request;

    @Setup(Level.Trial)
    public void setup() {
        if (InterpretedBench.allCores() < Runtime.getRuntime().availableProcessors())
            System.out.println("WARNING: java backend threads " + InterpretedBench.allCores() + " < " + Runtime.getRuntime().availableProcessors() + " cores: the java backend does not use every core");
        pipeline = StableDiffusionPipeline.load(tinySd(), Options.defaults().withBackend(backend));
        request = Request.of("a photo of an astronaut riding a horse").withSteps(steps).withSeed(0);
        pipeline.generate(request);
    }

    @Benchmark
    public StableDiffusionPipeline.Result generate() {
        return pipeline.generate(request);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (pipeline != null) pipeline.close();
    }

    /** The bundled tiny model: -Dtiny.sd, else engine/tiny-sd under the working directory or a parent of it. */
    static Path tinySd() {
        String p = System.getProperty("tiny.sd");
        if (p != null) {
            Path dir = Path.of(p);
            if (!Files.isRegularFile(dir.resolve("model_index.json")))
                throw new IllegalStateException("-Dtiny.sd=" + p + " is not a diffusers model folder (no model_index.json)");
            return dir;
        }
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path dir = d.resolve("engine").resolve("tiny-sd");
            if (Files.isRegularFile(dir.resolve("model_index.json"))) return dir;
        }
        throw new IllegalStateException("tiny model not found: pass -Dtiny.sd=<repo>/engine/tiny-sd or run from the repository");
    }
}
