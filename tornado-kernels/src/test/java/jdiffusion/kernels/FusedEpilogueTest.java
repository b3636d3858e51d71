package jdiffusion.kernels;

import static jdiffusion.kernels.GemmTest.assertClose;
import static jdiffusion.kernels.GemmTest.half;
import static jdiffusion.kernels.GemmTest.random;
import static jdiffusion.kernels.GemmTest.toFloat;
import static jdiffusion.kernels.GemmTest.upload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The fused epilogues of Gemm and Conv2d: the residual ({@code (op + bias + residual) * beta}), GEGLU
 * ({@link Gemm#linearGeglu} over {@link Gemm#gegluInterleave}d weights) and the channels-first output of token rows
 * ({@link Gemm#linearToChannels}). (a) Every backend against double-precision
 * compositions of the unfused ops at ragged shapes (on java: the version-3 task layout through the kernels' references;
 * OpenCL: GEMM/conv + add_scaled or geglu_interleaved; CUDA: the fused kernels where version 3 applies); (b) the
 * version-3 tasks with split-K (1, 3, 7 splits: the reduce kernels' epilogues) through the Java references;
 * (c) the liveness plan keeps a residual temp alive until the split-K reduction reads it. The CUDA kernels themselves:
 * GemmMmaEmulatorTest (CPU), GemmGpuTest (GPU).
 */
class FusedEpilogueTest {
    static final float BETA = 0.7071f;
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

    static DType dtype(String precision) {
        return precision.equals("f16") ? DType.F16 : DType.F32;
    }

    static double tol(String precision) {
        return switch (precision) {
            case "f16" -> GemmTest.TOL_F16;
            case "tf32" -> GemmTest.TOL_TF32;
            default -> GemmTest.TOL_F32;
        };
    }

    /** (alpha * a . op(b) + bias + res) * beta in double; res null: no residual, beta ignored. */
    static double[] gemmResidual(float[] a, float[] b, float[] bias, float[] res, int batch, int m, int n, int k, boolean transB, float alpha, float beta) {
        double[] c = GemmTest.naive(a, b, bias, batch, m, n, k, transB, alpha);
        if (res != null) for (int i = 0; i < c.length; i++) c[i] = (c[i] + res[i]) * beta;
        return c;
    }

    /** diffusers' GEGLU of x . w^T + bias with w [2*inner][k] un-permuted (hidden rows, then gate rows), in double. */
    static double[] geglu(float[] x, float[] w, float[] bias, int m, int inner, int k) {
        double[] hg = GemmTest.naive(x, w, bias, 1, m, 2 * inner, k, true, 1f);
        double[] out = new double[m * inner];
        for (int r = 0; r < m; r++)
            for (int j = 0; j < inner; j++) out[r * inner + j] = hg[r * 2 * inner + j] * ElementwiseTest.geluD(hg[r * 2 * inner + inner + j]);
        return out;
    }

    static float[] maybeHalf(DType dt, float[] a) {
        return a == null ? null : dt == DType.F16 ? half(a) : a;
    }

    /** Gemm.linear / matmul with a residual on be; returns c. */
    static float[] residualGemmOn(Backend be, String precision, float[] a, float[] b, float[] bias, float[] res, int batch, int m, int n, int k, boolean transB,
                                  float alpha, boolean linear, List<String> kernels) {
        DType dt = dtype(precision);
        Buffer ba = upload(be, "a", dt, a), bb = upload(be, "b", dt, b), bbias = bias == null ? null : upload(be, "bias", dt, bias);
        Buffer br = upload(be, "residual", dt, res), bc = be.allocate("c", dt, (long) batch * m * n);
        try (TaskGraph g = new TaskGraph("residual-gemm-test", be, precision.equals("tf32"))) {
            if (linear) Gemm.linear(g, ba, bb, bbias, br, BETA, bc, m, n, k);
            else Gemm.matmul(g, ba, bb, br, BETA, bc, batch, m, n, k, transB, alpha);
            for (Kernel kn : g.kernels()) kernels.add(kn.name());
            g.execute();
            return be.read(bc);
        } finally {
            for (Buffer x : new Buffer[]{ba, bb, bbias, br, bc}) if (x != null) x.close();
        }
    }

    /** Gemm.linearGeglu on be with the weights permuted by gegluInterleave (as the engine uploads them); returns out [m, inner]. */
    static float[] gegluOn(Backend be, String precision, float[] x, float[] w, float[] bias, int m, int inner, int k, List<String> kernels) {
        DType dt = dtype(precision);
        Buffer bx = upload(be, "x", dt, x), bw = upload(be, "w", dt, Gemm.gegluInterleave(w, inner, k));
        Buffer bb = bias == null ? null : upload(be, "bias", dt, Gemm.gegluInterleave(bias, inner, 1)), out = be.allocate("out", dt, (long) m * inner);
        try (TaskGraph g = new TaskGraph("geglu-gemm-test", be, precision.equals("tf32"))) {
            Gemm.linearGeglu(g, bx, bw, bb, out, m, inner, k);
            for (Kernel kn : g.kernels()) kernels.add(kn.name());
            g.execute();
            return be.read(out);
        } finally {
            for (Buffer b : new Buffer[]{bx, bw, bb, out}) if (b != null) b.close();
        }
    }

    /** Conv2d.conv2d with a residual on be; returns out. */
    static float[] residualConvOn(Backend be, String precision, float[][] in, float[] res, int[] s, List<String> kernels) {
        DType dt = dtype(precision);
        int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
        Buffer bx = upload(be, "x", dt, in[0]), bw = upload(be, "weight", dt, in[1]), bb = upload(be, "bias", dt, in[2]), br = upload(be, "residual", dt, res);
        Buffer out = be.allocate("out", dt, res.length);
        try (TaskGraph g = new TaskGraph("residual-conv-test", be, precision.equals("tf32"))) {
            Conv2d.conv2d(g, bx, bw, bb, br, BETA, out, n, cIn, h, w, cOut, k, st, p);
            for (Kernel kn : g.kernels()) kernels.add(kn.name());
            g.execute();
            return be.read(out);
        } finally {
            for (Buffer b : new Buffer[]{bx, bw, bb, br, out}) b.close();
        }
    }

    static int convOutElements(int[] s) {
        return s[0] * s[4] * Conv2dTest.outSize(s[2], s[5], s[6], s[7]) * Conv2dTest.outSize(s[3], s[5], s[6], s[7]);
    }

    // ---- (a) every backend against the unfused composition in double ----

    @Test
    void linearAndMatmulWithResidualAllBackends() {
        int[][] shapes = {{1, 1, 33, 37, 1}, {1, 77, 320, 40, 1}, {1, 130, 136, 200, 1}, {2, 70, 40, 77, 0}, {2, 33, 130, 64, 1}};
        long seed = 100;
        for (Backend be : backends)
            for (int[] s : shapes)
                for (String precision : List.of("f32", "tf32", "f16")) {
                    int batch = s[0], m = s[1], n = s[2], k = s[3];
                    boolean transB = s[4] != 0, linear = batch == 1;
                    DType dt = dtype(precision);
                    float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k), bias = linear ? random(seed++, n) : null;
                    float[] res = random(seed++, batch * m * n);
                    float alpha = linear ? 1f : 0.5f;
                    double[] want = gemmResidual(maybeHalf(dt, a), maybeHalf(dt, b), maybeHalf(dt, bias), maybeHalf(dt, res), batch, m, n, k, transB, alpha, BETA);
                    List<String> names = new ArrayList<>();
                    float[] got = residualGemmOn(be, precision, a, b, bias, res, batch, m, n, k, transB, alpha, linear, names);
                    String what = be.name() + " " + precision + (linear ? " linear" : " matmul") + " + residual " + Arrays.toString(s) + " " + names;
                    assertClose(what, toFloat(want), got, tol(precision));
                    if (be instanceof JavaBackend) assertTrue(names.stream().noneMatch(x -> x.startsWith("add")), "java runs the fused reference: " + what);
                }
    }

    /** Gemm.linearToChannels on be: x [images*hw, k] tokens -> out [images, n, hw] (+ residual in that layout, may be null). */
    static float[] toChannelsOn(Backend be, String precision, float[] x, float[] w, float[] bias, float[] res, int images, int hw, int n, int k, List<String> kernels) {
        DType dt = dtype(precision);
        Buffer bx = upload(be, "x", dt, x), bw = upload(be, "w", dt, w), bb = bias == null ? null : upload(be, "bias", dt, bias);
        Buffer br = res == null ? null : upload(be, "residual", dt, res), out = be.allocate("out", dt, (long) images * hw * n);
        try (TaskGraph g = new TaskGraph("to-channels-test", be, precision.equals("tf32"))) {
            Gemm.linearToChannels(g, bx, bw, bb, br, BETA, out, images, hw, n, k);
            for (Kernel kn : g.kernels()) kernels.add(kn.name());
            g.execute();
            return be.read(out);
        } finally {
            for (Buffer b : new Buffer[]{bx, bw, bb, br, out}) if (b != null) b.close();
        }
    }

    /** (x . w^T + bias) per token row, transposed per image to [images, n, hw], (+ res) * beta, in double. */
    static double[] toChannels(float[] x, float[] w, float[] bias, float[] res, int images, int hw, int n, int k) {
        double[] rows = GemmTest.naive(x, w, bias, 1, images * hw, n, k, true, 1f), out = new double[rows.length];
        for (int img = 0; img < images; img++)
            for (int p = 0; p < hw; p++)
                for (int j = 0; j < n; j++) {
                    int o = (img * n + j) * hw + p;
                    double v = rows[(img * hw + p) * n + j];
                    out[o] = res == null ? v : (v + res[o]) * BETA;
                }
        return out;
    }

    /** Transformer2DModel's proj_out + transpose + residual: every backend against the double composition, ragged hw, n, k. */
    @Test
    void linearToChannelsAllBackends() {
        int[][] shapes = {{1, 7, 33, 37}, {2, 65, 40, 64}, {2, 36, 136, 200}, {3, 43, 72, 48}};
        long seed = 250;
        for (Backend be : backends)
            for (int[] s : shapes)
                for (String precision : List.of("f32", "tf32", "f16")) {
                    int images = s[0], hw = s[1], n = s[2], k = s[3];
                    DType dt = dtype(precision);
                    float[] x = random(seed++, images * hw * k), w = random(seed++, n * k), bias = random(seed++, n), res = random(seed++, images * n * hw);
                    List<String> names = new ArrayList<>();
                    float[] got = toChannelsOn(be, precision, x, w, bias, res, images, hw, n, k, names);
                    String what = be.name() + " " + precision + " linear_to_channels + residual " + Arrays.toString(s) + " " + names;
                    assertClose(what, toFloat(toChannels(maybeHalf(dt, x), maybeHalf(dt, w), maybeHalf(dt, bias), maybeHalf(dt, res), images, hw, n, k)), got, tol(precision));
                    if (be instanceof JavaBackend) assertTrue(names.stream().noneMatch(t -> t.startsWith("add") || t.equals("transpose")), "java runs the fused reference: " + what);
                    if (precision.equals("f32")) {                                  // without residual and bias
                        float[] plain = toChannelsOn(be, precision, x, w, null, null, images, hw, n, k, new ArrayList<>());
                        assertClose(what + " without residual", toFloat(toChannels(x, w, null, null, images, hw, n, k)), plain, tol(precision));
                    }
                }
    }

    @Test
    void linearGegluAllBackends() {
        int[][] shapes = {{1, 8, 8}, {7, 24, 37}, {77, 40, 64}, {130, 72, 200}, {33, 160, 96}};
        long seed = 200;
        for (Backend be : backends)
            for (int[] s : shapes)
                for (String precision : List.of("f32", "tf32", "f16")) {
                    int m = s[0], inner = s[1], k = s[2];
                    DType dt = dtype(precision);
                    float[] x = random(seed++, m * k), w = random(seed++, 2 * inner * k), bias = random(seed++, 2 * inner);
                    double[] want = geglu(maybeHalf(dt, x), maybeHalf(dt, w), maybeHalf(dt, bias), m, inner, k);
                    List<String> names = new ArrayList<>();
                    float[] got = gegluOn(be, precision, x, w, bias, m, inner, k, names);
                    String what = be.name() + " " + precision + " linear_geglu " + Arrays.toString(s) + " " + names;
                    assertClose(what, toFloat(want), got, tol(precision));
                    if (be instanceof JavaBackend) assertEquals(List.of(dt == DType.F16 ? "gemm_mma_geglu_f16" : precision.equals("tf32") ? "gemm_mma_geglu_tf32" : "gemm_mma_geglu_3xtf32"), names, what);
                    if (s[0] == 7 && !precision.equals("tf32")) {               // no bias
                        float[] nb = gegluOn(be, precision, x, w, null, m, inner, k, new ArrayList<>());
                        assertClose(what + " without bias", toFloat(geglu(maybeHalf(dt, x), maybeHalf(dt, w), null, m, inner, k)), nb, tol(precision));
                    }
                }
    }

    @Test
    void convWithResidualAllBackends() {
        int[][] shapes = {{1, 3, 5, 7, 4, 3, 1, 1}, {2, 5, 6, 5, 33, 3, 2, 1}, {2, 37, 8, 8, 16, 1, 1, 0}, {2, 32, 9, 7, 40, 3, 1, 1}, {1, 64, 6, 6, 72, 3, 1, 1}};
        long seed = 300;
        for (Backend be : backends)
            for (int[] s : shapes)
                for (String precision : List.of("f32", "tf32", "f16")) {
                    DType dt = dtype(precision);
                    float[][] in = Conv2dTest.inputs(seed += 3, s);
                    float[] res = random(seed++, convOutElements(s));
                    double[] want = Conv2dTest.direct(maybeHalf(dt, in[0]), maybeHalf(dt, in[1]), maybeHalf(dt, in[2]), s);
                    float[] rh = maybeHalf(dt, res);
                    for (int i = 0; i < want.length; i++) want[i] = (want[i] + rh[i]) * BETA;
                    List<String> names = new ArrayList<>();
                    float[] got = residualConvOn(be, precision, in, res, s, names);
                    String what = be.name() + " " + precision + " conv + residual " + Arrays.toString(s) + " " + names;
                    assertClose(what, toFloat(want), got, tol(precision));
                    if (be instanceof JavaBackend) assertTrue(names.stream().noneMatch(x -> x.startsWith("add")), "java runs the fused reference: " + what);
                }
    }

    // ---- (b) the version-3 task layout with split-K through the Java references ----

    @Test
    void mmaTasksWithSplitKApplyTheEpilogues() {
        int[][] shapes = {{2, 70, 48, 328, 1}, {1, 33, 144, 200, 0}, {2, 129, 32, 1000, 1}};
        long seed = 400;
        for (int[] s : shapes)
            for (DType dt : new DType[]{DType.F32, DType.F16})
                for (int splits : new int[]{1, 3, 7}) {
                    int batch = s[0], m = s[1], n = s[2], k = s[3];
                    boolean transB = s[4] != 0;
                    float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k), bias = random(seed++, n), res = random(seed++, batch * m * n);
                    Gemm.Split sp = Gemm.split(k, dt, splits);
                    double tol = dt == DType.F16 ? 2e-3 : GemmTest.TOL_F32;
                    String what = dt + " " + Arrays.toString(s) + " " + sp;
                    Buffer ba = upload(java, "a", dt, a), bb = upload(java, "b", dt, b), bbias = upload(java, "bias", dt, bias), br = upload(java, "res", dt, res);
                    Buffer bc = java.allocate("c", dt, (long) batch * m * n), bg = java.allocate("g", dt, (long) batch * m * n / 2);
                    Buffer bt = java.allocate("t", dt, (long) m * n);
                    try (TaskGraph g = new TaskGraph("mma-epilogues", java)) {
                        Gemm.appendMma(g, "residual", ba, bb, bbias, br, BETA, bc, batch, m, n, k, transB, 0.5f, sp);
                        Gemm.appendMmaGeglu(g, "geglu", ba, bb, bbias, bg, batch, m, n, k, transB, 0.5f, sp);
                        if (m % 3 == 0) Gemm.appendMma(g, "channels", ba, bb, bbias, br, BETA, m / 3, bt, 1, m, n, k, transB, 0.5f, sp); // 3 images of m/3 tokens
                        assertEquals((sp.splits() > 1 ? 2 : 1) * (m % 3 == 0 ? 3 : 2), g.tasks().size(), what);
                        g.execute();
                        double[] plain = GemmTest.naive(maybeHalf(dt, a), maybeHalf(dt, b), maybeHalf(dt, bias), batch, m, n, k, transB, 0.5f);
                        float[] rh = maybeHalf(dt, res);
                        double[] want = new double[plain.length], gg = new double[plain.length / 2];
                        for (int i = 0; i < plain.length; i++) want[i] = (plain[i] + rh[i]) * BETA;
                        for (int r = 0; r < batch * m; r++)
                            for (int j = 0; j < n / 2; j++) {
                                int cv = j / 8 * 16 + j % 8;                        // permuted columns: value, gate 8 further
                                gg[r * (n / 2) + j] = plain[r * n + cv] * ElementwiseTest.geluD(plain[r * n + cv + 8]);
                            }
                        assertClose("mma residual " + what, maybeHalf(dt, toFloat(want)), java.read(bc), tol);
                        assertClose("mma geglu " + what, maybeHalf(dt, toFloat(gg)), java.read(bg), tol);
                        if (m % 3 == 0) {                                          // batch 0's rows as 3 images, channels-first, residual in that layout
                            int hw = m / 3;
                            double[] ch = new double[m * n];
                            for (int row = 0; row < m; row++)
                                for (int j = 0; j < n; j++) {
                                    int o = (row / hw * n + j) * hw + row % hw;
                                    ch[o] = (plain[row * n + j] + rh[o]) * BETA;
                                }
                            assertClose("mma channels-first " + what, maybeHalf(dt, toFloat(ch)), java.read(bt), tol);
                        }
                    } finally {
                        for (Buffer x : new Buffer[]{ba, bb, bbias, br, bc, bg, bt}) x.close();
                    }
                }
    }

    @Test
    void convTasksWithSplitKApplyTheResidual() {
        int[][] shapes = {{2, 32, 9, 7, 40, 3, 1, 1}, {1, 64, 9, 8, 24, 3, 2, 1}, {2, 48, 5, 6, 33, 1, 1, 0}};
        long seed = 500;
        for (int[] s : shapes)
            for (DType dt : new DType[]{DType.F32, DType.F16})
                for (int splits : new int[]{1, 3}) {
                    float[][] in = Conv2dTest.inputs(seed += 3, s);
                    float[] res = random(seed++, convOutElements(s));
                    int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
                    double[] want = Conv2dTest.direct(maybeHalf(dt, in[0]), maybeHalf(dt, in[1]), maybeHalf(dt, in[2]), s);
                    float[] rh = maybeHalf(dt, res);
                    for (int i = 0; i < want.length; i++) want[i] = (want[i] + rh[i]) * BETA;
                    for (boolean v3 : new boolean[]{false, true}) {
                        Buffer bx = upload(java, "x", dt, in[0]), bw = upload(java, "weight", dt, in[1]), bb = upload(java, "bias", dt, in[2]), br = upload(java, "res", dt, res);
                        Buffer out = java.allocate("out", dt, res.length);
                        try (TaskGraph g = new TaskGraph("conv-epilogue", java)) {
                            Gemm.Split sp = Gemm.split(cIn * k * k, dt, splits);
                            if (v3) Conv2d.appendV3(g, "conv", bx, bw, bb, br, BETA, out, n, cIn, h, w, cOut, k, st, p, sp);
                            else Conv2d.appendMma(g, "conv", bx, bw, bb, br, BETA, out, n, cIn, h, w, cOut, k, st, p, sp);
                            g.execute();
                            assertClose((v3 ? "conv v3" : "conv mma") + " residual " + dt + " " + Arrays.toString(s) + " " + sp, maybeHalf(dt, toFloat(want)), java.read(out),
                                    dt == DType.F16 ? 2e-3 : GemmTest.TOL_F32);
                        } finally {
                            for (Buffer x : new Buffer[]{bx, bw, bb, br, out}) x.close();
                        }
                    }
                }
    }

    // ---- (c) liveness and aliasing ----

    /**
     * A residual that is itself a temp (the engine's case: h of the previous block) is an argument of the split-K reduction
     * too, so the plan keeps its buffer apart from the workspace and the output until the reduction has read it; a temp
     * first written after the fused task may take its buffer.
     */
    @Test
    void residualTempLivesUntilTheReduction() {
        int m = 70, n = 48, k = 328;
        float[] a = random(1, m * k), b = random(2, n * k), res = random(3, m * n);
        Buffer ba = upload(java, "a", DType.F32, a), bb = upload(java, "b", DType.F32, b), src = upload(java, "src", DType.F32, res);
        try (TaskGraph g = new TaskGraph("residual-liveness", java)) {
            Buffer r = g.temp("residual", DType.F32, (long) m * n), c = g.temp("c", DType.F32, (long) m * n), after = g.temp("after", DType.F32, (long) m * n);
            Elementwise.scale(g, src, r, (long) m * n, 1f);                               // r = residual (a temp of the graph)
            Gemm.appendMma(g, "fused", ba, bb, null, r, BETA, c, 1, m, n, k, true, 1f, Gemm.split(k, DType.F32, 3));
            Elementwise.scale(g, c, after, (long) m * n, 2f);                             // first use of "after": after the reduction
            Buffer out = g.keep(after);
            g.warmup();
            List<Task> t = g.tasks();
            assertEquals(List.of("scale", "fused", "fused/reduce", "scale"), t.stream().map(Task::name).toList());
            Object ws = t.get(2).args()[0], cBuf = t.get(2).args()[2], rBuf = t.get(2).args()[10];
            assertNotSame(rBuf, cBuf);
            assertNotSame(rBuf, ws);
            assertTrue(t.get(1).args()[14] == rBuf && t.get(0).args()[1] == rBuf, "the residual's one physical buffer");
            g.execute();
            double[] want = gemmResidual(a, b, null, res, 1, m, n, k, true, 1f, BETA);
            for (int i = 0; i < want.length; i++) want[i] *= 2;
            assertClose("residual temp through split-K", toFloat(want), java.read(out), GemmTest.TOL_F32);
        } finally {
            ba.close();
            bb.close();
            src.close();
        }
    }

    @Test
    void badArguments() {
        try (TaskGraph g = new TaskGraph("bad", java)) {
            Buffer x = java.allocate("x", DType.F32, 10 * 8), w = java.allocate("w", DType.F32, 16 * 8), out = java.allocate("out", DType.F32, 10 * 16);
            Buffer small = java.allocate("small", DType.F32, 5);
            KernelException e = assertThrows(KernelException.class, () -> Gemm.linear(g, x, w, null, out, 1f, out, 10, 16, 8));
            assertTrue(e.getMessage().contains("aliases"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Gemm.linear(g, x, w, null, small, 1f, out, 10, 16, 8));
            assertTrue(e.getMessage().contains("residual"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Gemm.linearGeglu(g, x, w, null, out, 10, 4, 8));
            assertTrue(e.getMessage().contains("multiple of 8"), e.getMessage());
            Buffer cx = java.allocate("cx", DType.F32, 2 * 3 * 8 * 8), cw = java.allocate("cw", DType.F32, 4 * 3 * 9), cy = java.allocate("cy", DType.F32, 2 * 4 * 64);
            e = assertThrows(KernelException.class, () -> Conv2d.conv2d(g, cx, cw, null, cy, 1f, cy, 2, 3, 8, 8, 4, 3, 1, 1));
            assertTrue(e.getMessage().contains("aliases"), e.getMessage());
            assertTrue(g.tasks().isEmpty());
        }
        assertThrows(IllegalArgumentException.class, () -> Gemm.gegluInterleave(new float[24], 12, 1));
        float[] rows = new float[2 * 16];
        for (int i = 0; i < rows.length; i++) rows[i] = i;                                  // hidden 0..15, gates 16..31
        float[] want = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
        assertTrue(Arrays.equals(want, Gemm.gegluInterleave(rows, 16, 1)), Arrays.toString(Gemm.gegluInterleave(rows, 16, 1)));
    }
}
