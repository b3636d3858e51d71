package jdiffusion.kernels;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The OpenCL backend on whatever OpenCL device is here (PoCL on the CPU in CI), against the java backend. */
class OpenClBackendTest {
    static final Kernel AXPB = new Kernel("cltest", "axpb", args -> {
        float[] x = (float[]) args[0], y = (float[]) args[1];
        int n = (Integer) args[2];
        float a = (Float) args[3], b = (Float) args[4];
        for (int i = 0; i < n; i++) y[i] = a * x[i] + b;
    });
    static final Kernel AXPB_F16 = new Kernel("cltest", "axpb_f16", args -> {
        short[] x = (short[]) args[0], y = (short[]) args[1];
        int n = (Integer) args[2];
        float a = (Float) args[3], b = (Float) args[4];
        for (int i = 0; i < n; i++) y[i] = Float.floatToFloat16(a * Float.float16ToFloat(x[i]) + b);
    });
    static final Kernel ROWSUM = new Kernel("cltest", "rowsum", args -> {
        float[] x = (float[]) args[0], out = (float[]) args[1];
        int rows = (Integer) args[2], cols = (Integer) args[3];
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int c = 0; c < cols; c++) s += x[r * cols + c];
            out[r] = (float) s;
        }
    });
    static final Kernel SCALEIDS = new Kernel("cltest", "scaleids", args -> {
        int[] ids = (int[]) args[0];
        float[] out = (float[]) args[1];
        long n = (Long) args[2];
        int scale = (Integer) args[3];
        long offset = (Long) args[4];
        for (int i = 0; i < n; i++) out[i] = (float) ((long) ids[i] * scale + offset);
    });

    @TempDir
    static Path cacheDir;
    static OpenClBackend cl;

    @BeforeAll
    static void open() {
        cl = openOrSkip(new KernelCache(cacheDir));
    }

    static OpenClBackend openOrSkip(KernelCache cache) {
        try {
            return OpenClBackend.open(System.getProperty("jdiffusion.opencl.platform"), System.getProperty("jdiffusion.opencl.device"), cache);
        } catch (KernelException e) {
            if ("true".equals(System.getenv("CI"))) throw e;
            assumeTrue(false, "no OpenCL here: " + e.getMessage());
            throw e;
        }
    }

    @AfterAll
    static void close() {
        if (cl != null) cl.close();
    }

    static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    @Test
    void describesDevices() {
        List<String> lines = OpenClBackend.describeDevices();
        assertFalse(lines.isEmpty());
        assertTrue(String.join("\n", lines).contains(cl.deviceName), String.join("\n", lines));
        assertEquals("opencl", cl.name());
        assertTrue(cl.device().contains(cl.deviceName));
    }

    @Test
    void roundTripF32RaggedLengthsAndOffsets() {
        for (int n : new int[]{1, 3, 7, 1000, 4099}) {
            float[] src = random(n, n);
            try (Buffer b = cl.allocate("f32/" + n, DType.F32, n)) {
                assertArrayEquals(new float[n], cl.read(b), "fresh buffers are zero");
                cl.write(b, src);
                assertArrayEquals(src, cl.read(b));
                assertEquals(n * 4L, b.bytes());
            }
        }
        float[] src = random(50, 1);
        try (Buffer b = cl.allocate("offsets", DType.F32, 40)) {
            cl.write(b, 5, src, 2, 7); // elements 5..11 = src[2..8]
            float[] out = new float[12];
            cl.read(b, 3, out, 1, 10); // out[1..10] = b[3..12]
            for (int i = 0; i < 10; i++) {
                int e = 3 + i;
                assertEquals(e >= 5 && e < 12 ? src[e - 5 + 2] : 0f, out[1 + i], "element " + e);
            }
            assertEquals(0f, out[0]);
            assertEquals(0f, out[11]);
        }
    }

    @Test
    void roundTripF16() {
        for (int n : new int[]{1, 5, 1023}) {
            float[] src = random(n, 7 + n);
            src[0] = 65504f;
            try (Buffer b = cl.allocate("f16/" + n, DType.F16, n)) {
                assertEquals(n * 2L, b.bytes());
                cl.write(b, src);
                float[] out = cl.read(b);
                for (int i = 0; i < n; i++) assertEquals(Float.float16ToFloat(Float.floatToFloat16(src[i])), out[i], "element " + i);
            }
        }
        try (Buffer b = cl.allocate("f16 offsets", DType.F16, 9)) {
            cl.write(b, 3, new float[]{1.5f, -2.25f, 3f}, 0, 3);
            float[] out = cl.read(b);
            assertArrayEquals(new float[]{0, 0, 0, 1.5f, -2.25f, 3f, 0, 0, 0}, out);
        }
    }

    @Test
    void roundTripI32() {
        int[] src = {0, 1, -1, 123456, Integer.MAX_VALUE, Integer.MIN_VALUE, 77};
        try (Buffer b = cl.allocate("ids", DType.I32, src.length)) {
            cl.write(b, 0, src, 0, src.length);
            int[] back = new int[src.length];
            cl.readInts(b, 0, back, 0, back.length);
            assertArrayEquals(src, back);
            float[] f = cl.read(b);
            for (int i = 0; i < src.length; i++) assertEquals((float) src[i], f[i]);
            assertThrows(KernelException.class, () -> cl.write(b, new float[]{1f}));
        }
    }

    @Test
    void zeroLengthBuffersAndRangeChecks() {
        try (Buffer z = cl.allocate("empty", DType.F32, 0); Buffer b = cl.allocate("four", DType.F32, 4)) {
            assertEquals(0, z.bytes());
            cl.write(z, new float[0]);
            assertEquals(0, cl.read(z).length);
            cl.copy(z, 0, b, 0, 0);
            KernelException e = assertThrows(KernelException.class, () -> cl.write(b, 2, new float[3], 0, 3));
            assertTrue(e.getMessage().contains("four"), e.getMessage());
            assertThrows(KernelException.class, () -> cl.read(b, -1, new float[2], 0, 1));
            assertThrows(KernelException.class, () -> cl.read(b, 0, new float[2], 1, 2));
            assertThrows(KernelException.class, () -> cl.allocate("negative", DType.F32, -1));
        }
    }

    @Test
    void copyBetweenBuffers() {
        float[] src = random(100, 3);
        try (Buffer a = cl.allocate("a", DType.F32, 100); Buffer b = cl.allocate("b", DType.F32, 60);
             Buffer h = cl.allocate("h", DType.F16, 100); Buffer h2 = cl.allocate("h2", DType.F16, 100)) {
            cl.write(a, src);
            cl.copy(a, 10, b, 5, 50);
            float[] out = cl.read(b);
            for (int i = 0; i < 60; i++) assertEquals(i >= 5 && i < 55 ? src[i + 5] : 0f, out[i], "element " + i);
            cl.write(h, src);
            cl.copy(h, 0, h2, 0, 100);
            assertArrayEquals(cl.read(h), cl.read(h2));
            assertThrows(KernelException.class, () -> cl.copy(a, 0, h, 0, 10));
            assertThrows(KernelException.class, () -> cl.copy(a, 90, b, 0, 20));
        }
    }

    /** The test family run through a TaskGraph on the java backend and here; results compared. */
    @Test
    void testKernelsMatchTheJavaBackend() {
        try (JavaBackend java = new JavaBackend()) {
            float[] cl32 = runFamily(cl), j32 = runFamily(java);
            assertEquals(j32.length, cl32.length);
            for (int i = 0; i < j32.length; i++) assertEquals(j32[i], cl32[i], 1e-3f * Math.max(1, Math.abs(j32[i])), "element " + i); // fp16 part: one half ulp
        }
    }

    /** Runs every cltest kernel once on backend b and returns all outputs concatenated. */
    static float[] runFamily(Backend b) {
        int n = 1000, rows = 37, cols = 301;
        float[] x = random(n, 11), m = random(rows * cols, 12);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = i * 7 - 300;
        try (TaskGraph g = new TaskGraph("cltest", b)) {
            Buffer bx = g.scratch("x", DType.F32, n), by = g.scratch("y", DType.F32, n);
            Buffer hx = g.scratch("hx", DType.F16, n), hy = g.scratch("hy", DType.F16, n);
            Buffer bm = g.scratch("m", DType.F32, (long) rows * cols), bs = g.scratch("sums", DType.F32, rows);
            Buffer bi = g.scratch("ids", DType.I32, n), bo = g.scratch("scaled", DType.F32, n);
            b.write(bx, x);
            b.write(hx, x);
            b.write(bm, m);
            b.write(bi, 0, ids, 0, n);
            g.task("axpb", AXPB, Launch.of1(n, 64), bx, by, n, 1.5f, -0.25f)
                    .task("axpb_f16", AXPB_F16, Launch.of1(n, 128), hx, hy, n, -2f, 0.5f)
                    .task("rowsum", ROWSUM, new Launch(new long[]{64, rows}, new long[]{64, 1}), bm, bs, rows, cols)
                    .task("scaleids", SCALEIDS, Launch.of1(n, 32), bi, bo, (long) n, 3, 5_000_000_000L);
            g.warmup();
            g.execute();
            b.finish();
            return concat(b.read(by), b.read(hy), b.read(bs), b.read(bo));
        }
    }

    static float[] concat(float[]... parts) {
        int n = 0;
        for (float[] p : parts) n += p.length;
        float[] out = new float[n];
        int o = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    @Test
    void buildFailureNamesTheKernelAndCarriesTheLog() {
        Kernel broken = new Kernel("clbroken", "oops", args -> {
        });
        KernelException e = assertThrows(KernelException.class, () -> cl.prepare(broken));
        assertTrue(e.getMessage().contains("clbroken/oops"), e.getMessage());
        assertTrue(e.getMessage().contains("undefined_symbol_jd42"), e.getMessage());
        assertTrue(e.getMessage().contains("build log"), e.getMessage());
        // still usable
        assertEquals(1000 + 1000 + 37 + 1000, runFamily(cl).length);
    }

    @Test
    void allocationAboveTheDeviceLimitIsOutOfMemoryAndTheBackendSurvives() {
        long before = cl.allocatedBytes();
        DeviceOutOfMemoryException e = assertThrows(DeviceOutOfMemoryException.class,
                () -> cl.allocate("too big", DType.F32, cl.maxMemAllocSize / 4 + 1));
        assertTrue(e.getMessage().contains("too big"), e.getMessage());
        assertTrue(e.requestedBytes > cl.maxMemAllocSize);
        assertEquals(before, cl.allocatedBytes());
        try (Buffer b = cl.allocate("after oom", DType.F32, 16)) {
            cl.write(b, random(16, 5));
            assertEquals(16, cl.read(b).length);
        }
        assertEquals(before, cl.allocatedBytes());
    }

    @Test
    void freedBufferIsAKernelException() {
        Buffer b = cl.allocate("short lived", DType.F32, 8);
        Buffer y = cl.allocate("y", DType.F32, 8);
        b.close();
        b.close(); // idempotent
        KernelException e = assertThrows(KernelException.class, () -> cl.read(b));
        assertTrue(e.getMessage().contains("short lived"), e.getMessage());
        assertThrows(KernelException.class, () -> cl.launch(new Task("t", AXPB, Launch.of1(8, 8), new Object[]{b, y, 8, 1f, 0f})));
        y.close();
    }

    @Test
    void workGroupAboveTheDeviceMaximumIsRefused() {
        try (Buffer x = cl.allocate("x", DType.F32, 8); Buffer y = cl.allocate("y", DType.F32, 8)) {
            long big = cl.maxWorkGroupSize * 2;
            KernelException e = assertThrows(KernelException.class,
                    () -> cl.launch(new Task("huge group", AXPB, new Launch(new long[]{big}, new long[]{big}), new Object[]{x, y, 8, 1f, 0f})));
            assertTrue(e.getMessage().contains("max work group size"), e.getMessage());
            assertTrue(e.getMessage().contains("cltest/axpb"), e.getMessage());
        }
    }

    @Test
    void secondBackendLoadsTheProgramFromTheCacheAndACorruptBinaryFallsBackToSource(@TempDir Path dir) throws IOException {
        KernelCache first = new KernelCache(dir);
        float[] expected;
        try (OpenClBackend b = openOrSkip(first)) {
            expected = runFamily(b);
        }
        assertFalse(first.compiles().isEmpty());
        assertFalse(first.compiles().getFirst().fromCache(), first.compiles().toString());
        assertEquals(1, first.stats().entries(), "one program for the cltest family");

        KernelCache second = new KernelCache(dir);
        try (OpenClBackend b = openOrSkip(second)) {
            assertArrayEquals(expected, runFamily(b));
        }
        assertTrue(second.compiles().getFirst().fromCache(), second.compiles().toString());
        assertEquals(1, second.stats().hits());

        // a well-formed entry whose payload is not a program binary: clBuildProgram rejects it, the source build takes over
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : files.toList()) {
                String name = f.getFileName().toString();
                second.store(name.substring(0, name.length() - ".bin".length()), "not a binary".getBytes(), "garbage");
            }
        }
        KernelCache third = new KernelCache(dir);
        try (OpenClBackend b = openOrSkip(third)) {
            assertArrayEquals(expected, runFamily(b));
        }
        assertFalse(third.compiles().getFirst().fromCache(), third.compiles().toString());
        KernelCache fourth = new KernelCache(dir);
        try (OpenClBackend b = openOrSkip(fourth)) {
            b.prepare(AXPB);
        }
        assertTrue(fourth.compiles().getFirst().fromCache(), "the good binary was stored again: " + fourth.compiles());
    }
}
