package jdiffusion.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Gemm: (a) the Java reference against a naive double-accumulating loop, (b) every backend against the Java reference. */
class GemmTest {
    static final double TOL_F32 = 1e-5, TOL_TF32 = 2e-3, TOL_F16 = 1e-2;
    static final int[][] LINEAR_SHAPES = shapes(new int[]{1, 7, 77, 130}, new int[]{1, 33, 320}, new int[]{1, 37, 320});
    static List<Backend> backends;
    static JavaBackend java;

    @BeforeAll
    static void open() {
        backends = Backends.forTests();
        java = new JavaBackend();
    }

    @AfterAll
    static void close() {
        for (Backend b : backends) b.close();
    }

    // ---- helpers shared with Conv2dTest ----

    static int[][] shapes(int[] ms, int[] ns, int[] ks) {
        List<int[]> all = new ArrayList<>();
        for (int m : ms) for (int n : ns) for (int k : ks) all.add(new int[]{m, n, k});
        return all.toArray(new int[0][]);
    }

    static float[] random(long seed, int length) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[length];
        for (int i = 0; i < length; i++) a[i] = (float) (r.nextDouble() * 2 - 1);
        return a;
    }

    /** Rounds to fp16 and back (the values an F16 buffer holds). */
    static float[] half(float[] a) {
        float[] h = new float[a.length];
        for (int i = 0; i < a.length; i++) h[i] = Float.float16ToFloat(Float.floatToFloat16(a[i]));
        return h;
    }

    static Buffer upload(Backend be, String what, DType dt, float[] data) {
        Buffer b = be.allocate(what, dt, data.length);
        be.write(b, data);
        return b;
    }

    /** Asserts relative L2 error and max abs error (scaled by max |expected|) are both within tol. */
    static void assertClose(String what, float[] expected, float[] actual, double tol) {
        assertEquals(expected.length, actual.length, what + ": length");
        double num = 0, den = 0, maxErr = 0, maxRef = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = (double) actual[i] - expected[i];
            if (!Double.isFinite(actual[i])) throw new AssertionError(what + ": non-finite value " + actual[i] + " at " + i);
            num += d * d;
            den += (double) expected[i] * expected[i];
            maxErr = Math.max(maxErr, Math.abs(d));
            maxRef = Math.max(maxRef, Math.abs(expected[i]));
        }
        double rel = Math.sqrt(num / Math.max(den, 1e-30)), relMax = maxErr / Math.max(maxRef, 1e-30);
        assertTrue(rel <= tol && relMax <= tol * 4, what + ": relative L2 " + rel + ", max abs " + maxErr + " (ref max " + maxRef + "), tol " + tol);
    }

    static double[] naive(float[] a, float[] b, float[] bias, int batch, int m, int n, int k, boolean transB, float alpha) {
        double[] c = new double[batch * m * n];
        for (int bt = 0; bt < batch; bt++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) {
                        double bv = transB ? b[bt * n * k + j * k + p] : b[bt * k * n + p * n + j];
                        s += (double) a[bt * m * k + i * k + p] * bv;
                    }
                    c[bt * m * n + i * n + j] = alpha * s + (bias == null ? 0 : bias[j]);
                }
        return c;
    }

    static float[] toFloat(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        return f;
    }

    /** Runs linear (batch=1, transB, bias) or matmul on a backend and returns the output. */
    static float[] gemmOn(Backend be, DType dt, boolean tf32, float[] a, float[] b, float[] bias, int batch, int m, int n, int k, boolean transB, float alpha, boolean linear) {
        Buffer ba = upload(be, "a", dt, a), bb = upload(be, "b", dt, b), bbias = bias == null ? null : upload(be, "bias", dt, bias);
        Buffer bc = be.allocate("c", dt, (long) batch * m * n);
        try (TaskGraph g = new TaskGraph("gemm-test", be, tf32)) {
            if (linear) Gemm.linear(g, ba, bb, bbias, bc, m, n, k);
            else Gemm.matmul(g, ba, bb, bc, batch, m, n, k, transB, alpha);
            g.warmup();
            g.execute();
            return be.read(bc);
        } finally {
            ba.close();
            bb.close();
            bc.close();
            if (bbias != null) bbias.close();
        }
    }

    // ---- (a) Java reference vs naive ----

    @Test
    void javaReferenceMatchesNaiveLinear() {
        int[][] extra = {{4095, 3, 5}, {65, 67, 1100}, {128, 64, 513}};
        List<int[]> all = new ArrayList<>(List.of(LINEAR_SHAPES));
        all.addAll(List.of(extra));
        long seed = 1;
        for (int[] s : all) {
            int m = s[0], n = s[1], k = s[2];
            float[] x = random(seed++, m * k), w = random(seed++, n * k), bias = random(seed++, n);
            assertClose("java linear f32 " + m + "x" + n + "x" + k, toFloat(naive(x, w, bias, 1, m, n, k, true, 1f)),
                    gemmOn(java, DType.F32, false, x, w, bias, 1, m, n, k, true, 1f, true), TOL_F32);
        }
    }

    @Test
    void javaReferenceMatchesNaiveMatmulAndHalf() {
        int[][] shapes = {{1, 1, 1}, {7, 33, 37}, {77, 40, 77}, {130, 77, 40}, {64, 64, 64}};
        long seed = 100;
        for (int[] s : shapes)
            for (boolean transB : new boolean[]{true, false}) {
                int batch = 3, m = s[0], n = s[1], k = s[2];
                float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k);
                String what = "java matmul " + batch + "x" + m + "x" + n + "x" + k + " transB=" + transB;
                assertClose(what + " f32", toFloat(naive(a, b, null, batch, m, n, k, transB, 0.125f)),
                        gemmOn(java, DType.F32, false, a, b, null, batch, m, n, k, transB, 0.125f, false), TOL_F32);
                float[] ah = half(a), bh = half(b);
                assertClose(what + " f16", half(toFloat(naive(ah, bh, null, batch, m, n, k, transB, 0.125f))),
                        gemmOn(java, DType.F16, false, a, b, null, batch, m, n, k, transB, 0.125f, false), 2e-3);
            }
    }

    // ---- (b) every backend against the Java reference ----

    @Test
    void linearParityAllBackends() {
        long seed = 1000;
        for (Backend be : backends)
            for (int[] s : LINEAR_SHAPES) {
                int m = s[0], n = s[1], k = s[2];
                float[] x = random(seed++, m * k), w = random(seed++, n * k), bias = random(seed++, n);
                float[] ref = gemmOn(java, DType.F32, false, x, w, bias, 1, m, n, k, true, 1f, true);
                assertClose(be.name() + " linear f32 " + m + "x" + n + "x" + k, ref, gemmOn(be, DType.F32, false, x, w, bias, 1, m, n, k, true, 1f, true), TOL_F32);
            }
    }

    @Test
    void linearParityHalfAndTf32AllBackends() {
        int[][] shapes = {{1, 320, 320}, {7, 33, 37}, {77, 320, 37}, {130, 33, 320}, {256, 320, 640}, {154, 320, 768}};
        long seed = 2000;
        for (Backend be : backends)
            for (int[] s : shapes) {
                int m = s[0], n = s[1], k = s[2];
                float[] x = random(seed++, m * k), w = random(seed++, n * k), bias = random(seed++, n);
                String what = be.name() + " linear " + m + "x" + n + "x" + k;
                assertClose(what + " f16", gemmOn(java, DType.F16, false, x, w, bias, 1, m, n, k, true, 1f, true),
                        gemmOn(be, DType.F16, false, x, w, bias, 1, m, n, k, true, 1f, true), TOL_F16);
                assertClose(what + " tf32", gemmOn(java, DType.F32, false, x, w, bias, 1, m, n, k, true, 1f, true),
                        gemmOn(be, DType.F32, true, x, w, bias, 1, m, n, k, true, 1f, true), TOL_TF32);
            }
    }

    /** gemm_skinny (few rows x large weight, e.g. time_emb_proj at UNet batch 16): fp32 and fp16, ragged k and n, batch 2. */
    @Test
    void skinnyParityAllBackends() {
        int[][] shapes = {{1, 64, 128}, {16, 320, 1280}, {5, 100, 300}, {16, 1283, 257}, {2, 77, 131}};
        assertTrue(Gemm.skinny(DType.F16, 16, 1280, 1280, true) && !Gemm.skinny(DType.F16, 17, 1280, 1280, true) && !Gemm.skinny(DType.F32, 4, 1280, 1280, false));
        long seed = 5000;
        for (Backend be : backends)
            for (int[] s : shapes)
                for (int batch : new int[]{1, 2}) {
                    int m = s[0], n = s[1], k = s[2];
                    boolean linear = batch == 1;   // linear: bias, alpha 1; batched matmul: no bias, alpha 0.5
                    float alpha = linear ? 1f : 0.5f;
                    float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k), bias = linear ? random(seed++, n) : null;
                    String what = be.name() + " skinny " + batch + "x" + m + "x" + n + "x" + k;
                    assertClose(what + " f32", toFloat(naive(a, b, bias, batch, m, n, k, true, alpha)), gemmOn(be, DType.F32, false, a, b, bias, batch, m, n, k, true, alpha, linear), TOL_F32);
                    float[] ah = half(a), bh = half(b), biash = bias == null ? null : half(bias);
                    assertClose(what + " f16", half(toFloat(naive(ah, bh, biash, batch, m, n, k, true, alpha))),
                            gemmOn(be, DType.F16, false, ah, bh, biash, batch, m, n, k, true, alpha, linear), TOL_F16);
                }
    }

    @Test
    void matmulParityAllBackends() {
        int[][] shapes = {{77, 77, 40}, {130, 77, 40}, {130, 40, 77}, {64, 64, 64}, {7, 1, 33}, {300, 200, 40}};
        long seed = 3000;
        for (Backend be : backends)
            for (int[] s : shapes)
                for (boolean transB : new boolean[]{true, false}) {
                    int batch = 2, m = s[0], n = s[1], k = s[2];
                    float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k);
                    String what = be.name() + " matmul " + batch + "x" + m + "x" + n + "x" + k + " transB=" + transB;
                    assertClose(what + " f32", gemmOn(java, DType.F32, false, a, b, null, batch, m, n, k, transB, 0.5f, false),
                            gemmOn(be, DType.F32, false, a, b, null, batch, m, n, k, transB, 0.5f, false), TOL_F32);
                    assertClose(what + " f16", gemmOn(java, DType.F16, false, a, b, null, batch, m, n, k, transB, 0.5f, false),
                            gemmOn(be, DType.F16, false, a, b, null, batch, m, n, k, transB, 0.5f, false), TOL_F16);
                    assertClose(what + " tf32", gemmOn(java, DType.F32, false, a, b, null, batch, m, n, k, transB, 0.5f, false),
                            gemmOn(be, DType.F32, true, a, b, null, batch, m, n, k, transB, 0.5f, false), TOL_TF32);
                }
    }

    /** The large-tile variants (chosen on CUDA for big shapes) on every backend, at ragged shapes. */
    @Test
    void largeTileVariantsAllBackends() {
        int[][] shapes = {{130, 77, 37}, {7, 300, 129}};
        long seed = 4000;
        for (Backend be : backends)
            for (int[] s : shapes)
                for (boolean half : new boolean[]{false, true}) {
                    int m = s[0], n = s[1], k = s[2];
                    DType dt = half ? DType.F16 : DType.F32;
                    Kernel kernel = half ? Gemm.TILED_F16_LARGE : Gemm.TILED_F32_LARGE;
                    float[] x = random(seed++, 2 * m * k), w = random(seed++, 2 * n * k), bias = random(seed++, n);
                    Buffer bx = upload(be, "x", dt, x), bw = upload(be, "w", dt, w), bb = upload(be, "bias", dt, bias), out = be.allocate("out", dt, 2L * m * n);
                    try (TaskGraph g = new TaskGraph("large", be)) {
                        g.task("large", kernel, Gemm.tiledLaunch(kernel, m, n, 2), bx, bw, bb, out, 2, m, n, k, 0, 1, 0.5f);
                        g.execute();
                        float[] expected = toFloat(naive(half ? half(x) : x, half ? half(w) : w, half ? half(bias) : bias, 2, m, n, k, false, 0.5f));
                        assertClose(be.name() + " " + kernel.id() + " " + m + "x" + n + "x" + k, half ? half(expected) : expected, be.read(out), half ? TOL_F16 : TOL_F32);
                    } finally {
                        bx.close();
                        bw.close();
                        bb.close();
                        out.close();
                    }
                }
    }

    /** The version-3 task layout (gemm_mma_* + split-K reduce) through the Java references: splits 1, 3 and 7 at ragged shapes. */
    @Test
    void mmaTasksWithSplitKMatchReference() {
        int[][] shapes = {{70, 200, 328, 1}, {33, 140, 200, 0}, {129, 129, 1000, 1}};
        long seed = 5000;
        for (int[] s : shapes)
            for (DType dt : new DType[]{DType.F32, DType.F16})
                for (int splits : new int[]{1, 3, 7}) {
                    int batch = 2, m = s[0], n = s[1], k = s[2];
                    boolean transB = s[3] != 0;
                    float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k), bias = random(seed++, n);
                    Gemm.Split sp = Gemm.split(k, dt, splits);
                    assertTrue(sp.splits() <= splits && (sp.splits() - 1) * sp.kPer() < k && sp.splits() * sp.kPer() >= k, sp.toString());
                    Buffer ba = upload(java, "a", dt, a), bb = upload(java, "b", dt, b), bbias = upload(java, "bias", dt, bias);
                    Buffer bc = java.allocate("c", dt, (long) batch * m * n);
                    try (TaskGraph g = new TaskGraph("mma", java)) {
                        Gemm.appendMma(g, "mma", ba, bb, bbias, bc, batch, m, n, k, transB, 0.5f, sp);
                        assertEquals(sp.splits() > 1 ? 2 : 1, g.tasks().size());
                        g.execute();
                        float[] expected = toFloat(naive(dt == DType.F16 ? half(a) : a, dt == DType.F16 ? half(b) : b, dt == DType.F16 ? half(bias) : bias,
                                batch, m, n, k, transB, 0.5f));
                        assertClose("mma " + dt + " " + m + "x" + n + "x" + k + " transB=" + transB + " " + sp, dt == DType.F16 ? half(expected) : expected,
                                java.read(bc), dt == DType.F16 ? 2e-3 : TOL_F32);
                    } finally {
                        ba.close();
                        bb.close();
                        bbias.close();
                        bc.close();
                    }
                }
    }

    /** Split plans: whole k tiles, no empty split, one wave at most, and none on the java backend's SM-less default when tiles are plenty. */
    @Test
    void splitPlans() {
        try (TaskGraph g = new TaskGraph("plan", java)) {
            Gemm.Split sp = Gemm.splitPlan(g, 1, 1280, 128, 11520, DType.F16);   // conv 1280->1280 at 8x8, batch 2: 10 tiles
            assertTrue(sp.splits() > 8 && sp.splits() <= 16 && sp.kPer() % 32 == 0, sp.toString());
            assertEquals(1, Gemm.splitPlan(g, 1, 8192, 320, 320, DType.F16).splits());
            assertEquals(1, Gemm.splitPlan(g, 16, 4096, 4096, 40, DType.F16).splits());
            sp = Gemm.splitPlan(g, 1, 1280, 1024, 11520, DType.F32);            // 8x8 at UNet batch 16: 80 tiles
            assertTrue(sp.splits() == 3 && sp.kPer() % 16 == 0, sp.toString());
        }
    }

    // ---- validation ----

    @Test
    void badArgumentsNameTheTask() {
        try (TaskGraph g = new TaskGraph("bad", java)) {
            Buffer x = java.allocate("x", DType.F32, 10 * 8), w = java.allocate("w", DType.F32, 4 * 8);
            Buffer small = java.allocate("small", DType.F32, 3), h = java.allocate("h", DType.F16, 40), out = java.allocate("out", DType.F32, 40);
            KernelException e = assertThrows(KernelException.class, () -> Gemm.linear(g, small, w, null, out, 10, 4, 8));
            assertTrue(e.getMessage().contains("linear[m=10,n=4,k=8]") && e.getMessage().contains("needs 80"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Gemm.linear(g, x, w, null, h, 10, 4, 8));
            assertTrue(e.getMessage().contains("F16") && e.getMessage().contains("linear"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Gemm.linear(g, x, w, small, out, 10, 4, 8));
            assertTrue(e.getMessage().contains("bias"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Gemm.matmul(g, x, w, x, 1, 10, 4, 8, true, 1f));
            assertTrue(e.getMessage().contains("aliases"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Gemm.matmul(g, x, w, out, 0, 10, 4, 8, true, 1f));
            assertTrue(e.getMessage().contains("matmul"), e.getMessage());
            assertTrue(g.tasks().isEmpty());
        }
    }
}
