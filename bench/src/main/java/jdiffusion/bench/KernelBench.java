package jdiffusion.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import jdiffusion.kernels.Attention;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.Buffer;
import jdiffusion.kernels.Conv2d;
import jdiffusion.kernels.DType;
import jdiffusion.kernels.Gemm;
import jdiffusion.kernels.Norm;
import jdiffusion.kernels.TaskGraph;
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
 * JMH: one kernel-family call at an SD1.5 UNet shape (classifier-free guidance, UNet batch 2, 64x64 latents unless the
 * name says otherwise), timed as one {@code TaskGraph.execute()} + {@code Backend.finish()} of a graph built and warmed
 * up (JIT-compiled) in the setup. Inputs are written once; the graph replays over device-resident buffers.
 * <p>
 * Params: {@code backend} java (the Java references on all cores), opencl (PoCL here, any OpenCL device elsewhere),
 * cuda (the H100); a backend that does not open fails its own fork only. {@code precision} fp32 | tf32 (CUDA tensor
 * cores, exact fp32 elsewhere) | fp16. {@code op}:
 * <ul>
 * <li>linear_8192x320x320: attn1 to_q at 64x64 (m = 2 x 4096 tokens, n = 320, k = 320)</li>
 * <li>linear_8192x2560x320: GEGLU proj at 64x64</li>
 * <li>linear_2048x640x640: attention projection at 32x32</li>
 * <li>linear_512x1280x1280: attention projection at 16x16</li>
 * <li>conv3x3_320_32x32: conv2d 320 -> 320, 3x3, padding 1, batch 2 at 32x32</li>
 * <li>groupnorm_320_64x64: GroupNorm 32 groups over [2, 320, 64x64], fused SiLU</li>
 * <li>flash_1024_d80: flash attention, batch 2, 8 heads, seq 1024, head dim 80 (the 32x32 self-attention)</li>
 * </ul>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "--add-modules", "jdk.incubator.vector", "-Xmx4g"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class KernelBench {
    static {
    }

    @Param({"java", "opencl"})
    public String backend;

    @Param({"fp32"})
    public String precision;

    @Param({"linear_8192x320x320", "linear_8192x2560x320", "linear_2048x640x640", "linear_512x1280x1280",
            "conv3x3_320_32x32", "groupnorm_320_64x64", "flash_1024_d80"})
    public String op;

    private Backend be;
    private TaskGraph graph;
    private final List<Buffer> buffers = new ArrayList<>();

    @Setup(Level.Trial)
    public void setup() {
        if (InterpretedBench.allCores() < Runtime.getRuntime().availableProcessors())
            System.out.println("WARNING: java backend threads " + InterpretedBench.allCores() + " < " + Runtime.getRuntime().availableProcessors() + " cores: the java backend does not use every core");
        be = Backends.open(backend);
        DType dt = switch (precision) {
            case "fp32", "tf32" -> DType.F32;
            case "fp16" -> DType.F16;
            default -> throw new IllegalArgumentException("precision " + precision + " (fp32, tf32 or fp16)");
        };
        graph = new TaskGraph("KernelBench " + op, be, precision.equals("tf32"));
        switch (op) {
            case "linear_8192x320x320" -> linear(dt, 8192, 320, 320);
            case "linear_8192x2560x320" -> linear(dt, 8192, 2560, 320);
            case "linear_2048x640x640" -> linear(dt, 2048, 640, 640);
            case "linear_512x1280x1280" -> linear(dt, 512, 1280, 1280);
            case "conv3x3_320_32x32" -> Conv2d.conv2d(graph, buf(dt, 2L * 320 * 32 * 32), buf(dt, 320L * 320 * 9), buf(dt, 320),
                    buf(dt, 2L * 320 * 32 * 32), 2, 320, 32, 32, 320, 3, 1, 1);
            case "groupnorm_320_64x64" -> Norm.groupNorm(graph, buf(dt, 2L * 320 * 4096), buf(dt, 320), buf(dt, 320),
                    buf(dt, 2L * 320 * 4096), 2, 320, 4096, 32, 1e-5f, true);
            case "flash_1024_d80" -> {
                long n = 2L * 1024 * 8 * 80;                                      // [2, 1024, 8*80]
                Attention.attention(graph, Attention.Processor.FLASH, buf(dt, n), buf(dt, n), buf(dt, n), buf(dt, n),
                        2, 8, 1024, 1024, 80, (float) (1 / Math.sqrt(80)), false);
            }
            default -> throw new IllegalArgumentException("unknown op " + op);
        }
        graph.warmup();
        graph.execute();
        be.finish();
    }

    private void linear(DType dt, int m, int n, int k) {
        Gemm.linear(graph, buf(dt, (long) m * k), buf(dt, (long) n * k), buf(dt, n), buf(dt, (long) m * n), m, n, k);
    }

    private Buffer buf(DType dt, long length) {
        Buffer b = be.allocate("KernelBench." + op + "#" + buffers.size(), dt, length);
        buffers.add(b);
        SplittableRandom r = new SplittableRandom(buffers.size());
        float[] chunk = new float[(int) Math.min(length, 1 << 20)];
        for (long o = 0; o < length; o += chunk.length) {
            int len = (int) Math.min(chunk.length, length - o);
            for (int i = 0; i < len; i++) chunk[i] = (float) (r.nextDouble() - 0.5);
            be.write(b, o, chunk, 0, len);
        }
        return b;
    }

    @Benchmark
    public void execute() {
        graph.execute();
        be.finish();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (graph != null) graph.close();
        for (Buffer b : buffers) b.close();
        buffers.clear();
        if (be != null) be.close();
    }
}
