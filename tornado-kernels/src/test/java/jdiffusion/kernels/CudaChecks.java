package jdiffusion.kernels;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The checks shared by CudaBackendTest (a real GPU) and CudaFakeDriverTest (the host-memory stand-in driver):
 * both run the same backend code against kernels/cudatest.cl and kernels/cudatest.cu.
 */
final class CudaChecks {
    private CudaChecks() {
    }

    static Kernel k(String name) {
        return new Kernel("cudatest", name, null);
    }

    static float[] ramp(int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = ((i * 37) % 1001 - 500) * scale;
        return a;
    }

    static void roundTrips(CudaBackend b) {
        int n = 300_007; // > 1 MiB: several staging chunks when the staging buffer is small
        float[] x = ramp(n, 0.013f);
        try (Buffer f32 = b.allocate("f32", DType.F32, n); Buffer f16 = b.allocate("f16", DType.F16, n); Buffer i32 = b.allocate("i32", DType.I32, n)) {
            assertArrayEquals(new float[n], b.read(f32), "fresh buffers are zeroed");
            b.write(f32, x);
            assertArrayEquals(x, b.read(f32));
            b.write(f16, x);
            float[] h = b.read(f16);
            for (int i = 0; i < n; i++) assertEquals(Float.float16ToFloat(Float.floatToFloat16(x[i])), h[i], "f16 element " + i);
            int[] ints = new int[n];
            for (int i = 0; i < n; i++) ints[i] = i * 7 - 1_000_000;
            b.write(i32, 0, ints, 0, n);
            int[] back = new int[n];
            b.read(i32, 0, back, 0, n);
            assertArrayEquals(ints, back);
            assertEquals(ints[12345], b.read(i32)[12345]);
            // offsets on both sides
            b.write(f32, 1000, new float[]{1, 2, 3, 4, 5}, 1, 3);
            float[] part = new float[6];
            b.read(f32, 999, part, 1, 5);
            assertArrayEquals(new float[]{0, x[999], 2, 3, 4, x[1003]}, part);
            // device-to-device copy with offsets
            try (Buffer c = b.allocate("copy", DType.F32, 100)) {
                b.copy(f32, 1000, c, 10, 3);
                float[] cc = b.read(c);
                assertArrayEquals(new float[]{2, 3, 4}, new float[]{cc[10], cc[11], cc[12]});
                assertEquals(0f, cc[9]);
                b.zero(c);
                assertArrayEquals(new float[100], b.read(c));
            }
            KernelException e = assertThrows(KernelException.class, () -> b.write(f32, n - 2, new float[3], 0, 3));
            assertTrue(e.getMessage().contains("outside buffer f32"), e.getMessage());
            assertThrows(KernelException.class, () -> b.write(i32, 0, new float[1], 0, 1));
            assertThrows(KernelException.class, () -> b.copy(f32, 0, f16, 0, 1));
        }
        long before = b.allocatedBytes();
        try (Buffer empty = b.allocate("empty", DType.F16, 0)) {
            assertEquals(0, b.read(empty).length);
            b.write(empty, new float[0]);
        }
        assertEquals(before, b.allocatedBytes());
        Buffer freed = b.allocate("freed", DType.F32, 4);
        freed.close();
        freed.close();
        KernelException e = assertThrows(KernelException.class, () -> b.read(freed));
        assertTrue(e.getMessage().contains("freed"), e.getMessage());
        try (JavaBackend java = new JavaBackend(); Buffer foreign = java.allocate("foreign", DType.F32, 4)) {
            e = assertThrows(KernelException.class, () -> b.write(foreign, new float[4]));
            assertTrue(e.getMessage().contains("does not belong"), e.getMessage());
        }
    }

    static void kernels(CudaBackend b) {
        int n = 1000;
        float[] x = ramp(n, 0.01f), y = ramp(n, -0.02f);
        try (Buffer bx = b.allocate("x", DType.F32, n); Buffer by = b.allocate("y", DType.F32, n);
             Buffer hin = b.allocate("hin", DType.F16, 777); Buffer hout = b.allocate("hout", DType.F16, 777);
             Buffer ints = b.allocate("ints", DType.I32, 333)) {
            b.write(bx, x);
            b.write(by, y);
            b.launch(new Task("saxpy", k("saxpy"), Launch.of1(n, 128), new Object[]{by, bx, 2.5f, n}));
            float[] got = b.read(by);
            for (int i = 0; i < n; i++) assertEquals(2.5f * x[i] + y[i], got[i], 1e-5f, "saxpy " + i);

            float[] h = ramp(777, 0.003f);
            b.write(hin, h);
            b.launch(new Task("scale_half", k("scale_half"), Launch.of1(777, 64), new Object[]{hout, hin, -1.5f, 777L}));
            float[] hg = b.read(hout);
            for (int i = 0; i < 777; i++) {
                float want = Float.float16ToFloat(Float.floatToFloat16(-1.5f * Float.float16ToFloat(Float.floatToFloat16(h[i]))));
                assertEquals(want, hg[i], Math.abs(want) * 1e-3f + 1e-6f, "scale_half " + i);
            }

            b.launch(new Task("iota", k("iota"), Launch.of1(333, 32), new Object[]{ints, -5, 333}));
            int[] iv = new int[333];
            b.read(ints, 0, iv, 0, 333);
            for (int i = 0; i < 333; i++) assertEquals(i - 5, iv[i]);
        }
        int rows = 37, cols = 301;
        float[] m = ramp(rows * cols, 0.001f);
        try (Buffer bm = b.allocate("m", DType.F32, m.length); Buffer out = b.allocate("sums", DType.F32, rows)) {
            b.write(bm, m);
            b.launch(new Task("row_sum", k("row_sum"), Launch.of2(64, rows, 64, 1), new Object[]{out, bm, rows, cols}));
            float[] s = b.read(out);
            for (int r = 0; r < rows; r++) {
                double want = 0;
                for (int c = 0; c < cols; c++) want += m[r * cols + c];
                assertEquals(want, s[r], 1e-3, "row " + r);
            }
        }
        int nx = 13, ny = 7, nz = 5;
        try (Buffer o = b.allocate("fill3d", DType.I32, nx * ny * nz)) {
            b.launch(new Task("fill3d", k("fill3d"), Launch.of3(nx, ny, nz, 8, 4, 2), new Object[]{o, nx, ny, nz}));
            int[] v = new int[nx * ny * nz];
            b.read(o, 0, v, 0, v.length);
            for (int z = 0; z < nz; z++)
                for (int yy = 0; yy < ny; yy++)
                    for (int xx = 0; xx < nx; xx++) assertEquals(xx + 100 * yy + 10000 * z, v[(z * ny + yy) * nx + xx]);
        }
        KernelException e = assertThrows(KernelException.class, () -> b.launch(new Task("bad", k("iota"), Launch.of1(64, 64), new Object[]{1, "two"})));
        assertTrue(e.getMessage().contains("unsupported type"), e.getMessage());
    }

    /** 64 KiB of dynamic shared memory (above the 48 KiB default): the backend must raise the function's limit. */
    static void dynamicSharedMemory(CudaBackend b) {
        int n = 40_000, per = 65536 / 4, blocks = (n + per - 1) / per;
        Kernel rev = new Kernel("cudatest", "reverse_tiles", true, "-DJD_SMEM=65536", null);
        float[] x = ramp(n, 1f);
        try (Buffer in = b.allocate("in", DType.F32, n); Buffer out = b.allocate("out", DType.F32, n)) {
            b.write(in, x);
            b.launch(new Task("reverse", rev, Launch.of1((long) blocks * 256, 256), new Object[]{out, in, n}));
            float[] got = b.read(out);
            for (int blk = 0; blk < blocks; blk++) {
                int base = blk * per, count = Math.min(per, n - base);
                for (int i = 0; i < count; i++) assertEquals(x[base + count - 1 - i], got[base + i], "tile " + blk + " element " + i);
            }
        }
    }

    static void compileFailure(CudaBackend b) {
        Kernel broken = new Kernel("cudatest", "broken", false, "-DJD_TEST_BREAK", null);
        KernelException e = assertThrows(KernelException.class, () -> b.prepare(broken));
        assertTrue(e.getMessage().contains("cudatest/broken"), e.getMessage());
        assertTrue(e.getMessage().contains("undefined_identifier_xyz"), "the NVRTC log must be in the message: " + e.getMessage());
        Kernel missing = k("no_such_kernel");
        e = assertThrows(KernelException.class, () -> b.prepare(missing));
        assertTrue(e.getMessage().contains("no_such_kernel"), e.getMessage());
    }

    static void outOfMemory(CudaBackend b) {
        long absurd = b.info.totalMemory(); // F32 elements: four times the device
        DeviceOutOfMemoryException e = assertThrows(DeviceOutOfMemoryException.class, () -> b.allocate("absurd", DType.F32, absurd));
        assertTrue(e.getMessage().contains("absurd") && e.getMessage().contains("free"), e.getMessage());
        assertEquals(absurd * 4, e.requestedBytes);
        kernelsStillRun(b);
    }

    static void kernelsStillRun(CudaBackend b) {
        try (Buffer o = b.allocate("after", DType.I32, 10)) {
            b.launch(new Task("iota", k("iota"), Launch.of1(10, 32), new Object[]{o, 1, 10}));
            int[] v = new int[10];
            b.read(o, 0, v, 0, 10);
            assertArrayEquals(new int[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, v);
        }
    }

    /** A captured CUDA graph replays exactly what plain launches compute, twice in a row. */
    static void graphReplay(CudaBackend b) {
        int n = 5000;
        float[] x = ramp(n, 0.01f);
        float[][] results = new float[2][];
        for (int mode = 0; mode < 2; mode++) {
            try (Buffer bx = b.allocate("gx", DType.F32, n); Buffer by = b.allocate("gy", DType.F32, n); Buffer ids = b.allocate("ids", DType.I32, n)) {
                b.write(bx, x);
                TaskGraph g = new TaskGraph("graph-test-" + mode, b);
                g.task("saxpy1", k("saxpy"), Launch.of1(n, 256), by, bx, 0.5f, n)
                        .task("iota", k("iota"), Launch.of1(n, 128), ids, 3, n)
                        .task("saxpy2", k("saxpy"), Launch.of1(n, 64), bx, by, -2f, n);
                if (mode == 0) {
                    for (Task t : g.tasks()) b.launch(t);
                    for (Task t : g.tasks()) b.launch(t);
                } else {
                    int before = b.capturedGraphs();
                    g.warmup();
                    assertEquals(before + 1, b.capturedGraphs(), "fallbacks: " + b.graphFallbacks());
                    assertFalse(b.graphFallbacks().containsKey(g.name));
                    g.execute();
                    g.execute();
                }
                b.finish();
                results[mode] = b.read(bx);
            }
        }
        assertArrayEquals(results[0], results[1]);
        try (Buffer timed = b.allocate("timed", DType.I32, 64)) {
            double ms = b.elapsedMillis(() -> b.launch(new Task("t", k("iota"), Launch.of1(64, 64), new Object[]{timed, 0, 64})));
            assertTrue(ms >= 0, "elapsed " + ms);
        }
    }

    /** A second backend on the same cache directory loads every module without compiling. */
    static void cacheColdThenWarm(CudaBackend cold, CudaBackend warm) {
        for (CudaBackend b : List.of(cold, warm)) {
            b.prepare(k("saxpy"));
            b.prepare(k("iota"));
            kernelsStillRun(b);
        }
        List<KernelCache.CompileRecord> c = cold.compileLog(), w = warm.compileLog();
        assertEquals(1, c.size(), "one module for the family: " + c);
        assertFalse(c.getFirst().fromCache(), c.toString());
        assertEquals(1, w.size(), w.toString());
        assertTrue(w.getFirst().fromCache(), "second backend must load from the cache: " + w);
    }

    static Path tempCache(String name) {
        try {
            return java.nio.file.Files.createTempDirectory("jd-cuda-cache-" + name);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
