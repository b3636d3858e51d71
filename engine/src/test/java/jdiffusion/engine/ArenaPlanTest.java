package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import jdiffusion.kernels.Attention.Processor;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.Buffer;
import jdiffusion.kernels.DType;
import jdiffusion.kernels.JavaBackend;
import jdiffusion.kernels.Kernel;
import jdiffusion.kernels.Task;
import jdiffusion.loader.TensorInfo;
import jdiffusion.loader.TensorType;
import jdiffusion.loader.UNetConfig;
import jdiffusion.loader.Weights;
import org.junit.jupiter.api.Test;

/** The liveness-planned activation arena in the models: far fewer bytes than a buffer per activation, bit-identical results. */
class ArenaPlanTest {
    static final String SD15_SMALL = UNet2DConditionModelTest.SD15.replace("[320, 640, 1280, 1280]", "[32, 32, 64, 64]")
            .replace("\"cross_attention_dim\": 768", "\"cross_attention_dim\": 48");

    static String mib(long bytes) {
        return String.format("%.1f MiB", bytes / 1048576.0);
    }

    /**
     * Bit-identical, except on the java backend, whose Vector API float reductions (reduceLanes ADD) may change order when
     * C2 compiles them, so that even two runs of one graph can differ in the last bit (and fp16 roundings then flip).
     */
    static void same(Backend be, Precision p, float[] want, float[] got, String what) {
        if (be instanceof JavaBackend) Fixtures.assertClose(what, got, want, p == Precision.FP16 ? 1e-3 : 1e-6);
        else assertArrayEquals(want, got, what);
    }

    /** Runs the UNet with -Djdiffusion.arena=arena (read when its graph is built); returns the output, bytes in {@code bytes}. */
    static float[] unet(UNetConfig c, Weights w, Exec exec, boolean arena, float[] sample, float[] ehs, long[] bytes) {
        String before = System.getProperty("jdiffusion.arena");
        System.setProperty("jdiffusion.arena", Boolean.toString(arena));
        try (UNet2DConditionModel unet = new UNet2DConditionModel(c, w, exec)) {
            float[] out = unet.forward(sample, 2, 16, 16, new float[]{981, 1}, ehs, 77);
            System.arraycopy(unet.activationBytes(), 0, bytes, 0, 2);
            float[] again = unet.forward(sample, 2, 16, 16, new float[]{981, 1}, ehs, 77);
            same(exec.backend(), exec.precision(), out, again, "replay, arena " + arena);
            return out;
        } finally {
            if (before == null) System.clearProperty("jdiffusion.arena");
            else System.setProperty("jdiffusion.arena", before);
        }
    }

    @Test
    void sdShapedUNetPlansFewerBytesWithIdenticalOutput() {
        UNetConfig c = UNetConfig.parse(SD15_SMALL, "sd15-small");
        SplittableRandom r = new SplittableRandom(11);
        float[] sample = new float[2 * 4 * 16 * 16], ehs = new float[2 * 77 * 48];
        for (int i = 0; i < sample.length; i++) sample[i] = (float) r.nextGaussian();
        for (int i = 0; i < ehs.length; i++) ehs[i] = (float) r.nextGaussian();
        List<Backend> backends = Backends.forTests();
        try (RandomWeights w = new RandomWeights(UNet2DConditionModel.parameterShapes(c), 3)) {
            for (Backend be : backends)
                for (Precision p : List.of(Precision.FP32, Precision.FP16))
                    for (Processor proc : List.of(Processor.VANILLA, Processor.FLASH)) {
                        if (!(be instanceof JavaBackend) && (p == Precision.FP32) == (proc == Processor.VANILLA)) continue; // other backends: fp32 FLASH, fp16 VANILLA
                        Exec exec = new Exec(be, p, proc);
                        long[] planned = new long[2], naive = new long[2];
                        float[] want = unet(c, w, exec, false, sample, ehs, naive);
                        float[] got = unet(c, w, exec, true, sample, ehs, planned);
                        System.out.println("sd15-shaped UNet 2x4x16x16 " + be.name() + " " + p + " " + proc + ": activations planned " + mib(planned[0]) + ", naive "
                                + mib(planned[1]) + " (unplanned run: " + mib(naive[0]) + "), bit-identical " + Arrays.equals(want, got));
                        same(be, p, want, got, "planned vs unplanned " + be.name() + " " + p + " " + proc);
                        assertTrue(planned[0] * 4 < planned[1], "planned " + planned[0] + " is not far below naive " + planned[1]);
                        assertTrue(naive[0] == naive[1], "without arena every activation is a buffer: " + naive[0] + " vs " + naive[1]);
                    }
            for (Backend be : backends) assertTrue(be.allocatedBytes() == 0, be.name() + ": models and plans freed: " + be.allocatedBytes());
        } finally {
            for (Backend be : backends) be.close();
        }
    }

    /** Full SD1.5 UNet at 64x64 latents, planned on a backend that allocates nothing: the numbers behind issue 5. */
    @Test
    void sd15PlanAt64x64WithoutDeviceMemory() {
        UNetConfig c = UNetConfig.parse(UNet2DConditionModelTest.SD15, "sd15");
        Map<String, long[]> shapes = UNet2DConditionModel.parameterShapes(c);
        try (DryBackend dry = new DryBackend()) {
            for (Precision p : List.of(Precision.FP16, Precision.FP32))
                for (Processor proc : List.of(Processor.FLASH, Processor.VANILLA))
                    try (UNet2DConditionModel unet = new UNet2DConditionModel(c, new ZeroWeights(shapes), new Exec(dry, p, proc))) {
                        for (int batch : new int[]{1, 16, 64}) {
                            unet.forward(new float[batch * 4 * 64 * 64], batch, 64, 64, new float[]{1}, new float[batch * 77 * 768], 77);
                            long[] b = unet.activationBytes();
                            System.out.printf("SD1.5 UNet %s %s batch %d 64x64: activations planned %.2f GiB, naive %.2f GiB (%.1fx); weights %.2f GiB%n",
                                    p, proc, batch, b[0] / 1073741824.0, b[1] / 1073741824.0, b[1] / (double) b[0], unet.weightBytes() / 1073741824.0);
                            assertTrue(b[0] * 4 < b[1], p + " " + proc + " batch " + batch + ": planned " + b[0] + " vs naive " + b[1]);
                        }
                    }
        }
    }

    /** Zeros of the right shapes (planning needs shapes only). */
    record ZeroWeights(Map<String, long[]> shapes) implements Weights {
        public String source() {
            return "zero weights";
        }

        public Set<String> names() {
            return shapes.keySet();
        }

        public TensorInfo info(String name) {
            return new TensorInfo(name, TensorType.F32, shapes.get(name).clone());
        }

        public float[] floats(String name) {
            long n = 1;
            for (long d : shapes.get(name)) n *= d;
            return new float[(int) n];
        }

        public short[] halves(String name) {
            return new short[floats(name).length];
        }

        public void close() {
        }
    }

    /** A backend that only counts bytes: no memory, no kernels (outputs read as zeros). */
    static final class DryBackend implements Backend {
        final AtomicLong allocated = new AtomicLong();

        record DryBuffer(DryBackend backend, DType dtype, long length) implements Buffer {
            public void close() {
                backend.allocated.addAndGet(-bytes());
            }
        }

        public String name() {
            return "dry";
        }

        public String device() {
            return "none (planning only)";
        }

        public Buffer allocate(String what, DType dtype, long length) {
            DryBuffer b = new DryBuffer(this, dtype, length);
            allocated.addAndGet(b.bytes());
            return b;
        }

        public void write(Buffer dst, long dstOffset, float[] src, int srcOffset, int length) {
        }

        public void write(Buffer dst, long dstOffset, int[] src, int srcOffset, int length) {
        }

        public void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int length) {
        }

        public void copy(Buffer src, long srcOffset, Buffer dst, long dstOffset, long length) {
        }

        public void prepare(Kernel kernel) {
        }

        public void launch(Task task) {
        }

        public void finish() {
        }

        public long allocatedBytes() {
            return allocated.get();
        }

        public void close() {
        }
    }
}
