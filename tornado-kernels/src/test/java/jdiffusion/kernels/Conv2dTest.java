package jdiffusion.kernels;

import static jdiffusion.kernels.GemmTest.assertClose;
import static jdiffusion.kernels.GemmTest.half;
import static jdiffusion.kernels.GemmTest.random;
import static jdiffusion.kernels.GemmTest.upload;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Conv2d: (a) the Java reference against a direct double-accumulating convolution, (b) every backend against the Java reference. */
class Conv2dTest {
    /** {n, cIn, h, w, cOut, kernel, stride, padding} */
    static final int[][] SHAPES = {
            {1, 3, 5, 7, 4, 3, 1, 1},       // ragged spatial size
            {2, 5, 6, 5, 33, 3, 2, 1},      // stride 2, odd channels
            {2, 37, 8, 8, 16, 1, 1, 0},     // 1x1, cIn not a multiple of the tile
            {1, 4, 16, 16, 32, 3, 1, 1},    // conv_in-like (cIn = 4 latent channels)
            {1, 32, 9, 11, 4, 3, 1, 1},     // conv_out-like (cOut = 4)
            {2, 16, 12, 12, 70, 3, 2, 1},   // downsample
            {1, 20, 7, 7, 65, 3, 1, 0},     // no padding
            {1, 64, 16, 16, 64, 3, 1, 1},   // SD-like block, CI-sized
    };
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

    static int outSize(int in, int k, int s, int p) {
        return (in + 2 * p - k) / s + 1;
    }

    static double[] direct(float[] x, float[] wt, float[] bias, int[] s) {
        int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
        int ho = outSize(h, k, st, p), wo = outSize(w, k, st, p);
        double[] out = new double[n * cOut * ho * wo];
        for (int b = 0; b < n; b++)
            for (int co = 0; co < cOut; co++)
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++) {
                        double acc = bias == null ? 0 : bias[co];
                        for (int ci = 0; ci < cIn; ci++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++) {
                                    int iy = oy * st - p + ky, ix = ox * st - p + kx;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                    acc += (double) x[((b * cIn + ci) * h + iy) * w + ix] * wt[((co * cIn + ci) * k + ky) * k + kx];
                                }
                        out[((b * cOut + co) * ho + oy) * wo + ox] = acc;
                    }
        return out;
    }

    static float[] convOn(Backend be, DType dt, boolean tf32, float[] x, float[] wt, float[] bias, int[] s) {
        int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
        Buffer bx = upload(be, "x", dt, x), bw = upload(be, "weight", dt, wt), bb = bias == null ? null : upload(be, "bias", dt, bias);
        Buffer out = be.allocate("out", dt, (long) n * cOut * outSize(h, k, st, p) * outSize(w, k, st, p));
        try (TaskGraph g = new TaskGraph("conv-test", be, tf32)) {
            Conv2d.conv2d(g, bx, bw, bb, out, n, cIn, h, w, cOut, k, st, p);
            g.execute();
            return be.read(out);
        } finally {
            bx.close();
            bw.close();
            out.close();
            if (bb != null) bb.close();
        }
    }

    static float[][] inputs(long seed, int[] s) {
        int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5];
        return new float[][]{random(seed, n * cIn * h * w), random(seed + 1, cOut * cIn * k * k), random(seed + 2, cOut)};
    }

    @Test
    void javaReferenceMatchesDirect() {
        long seed = 1;
        for (int[] s : SHAPES) {
            float[][] in = inputs(seed += 3, s);
            float[] bias = s[4] % 2 == 0 ? in[2] : null;
            assertClose("java conv f32 " + Arrays.toString(s), GemmTest.toFloat(direct(in[0], in[1], bias, s)),
                    convOn(java, DType.F32, false, in[0], in[1], bias, s), GemmTest.TOL_F32);
            float[] xh = half(in[0]), wh = half(in[1]), bh = bias == null ? null : half(bias);
            assertClose("java conv f16 " + Arrays.toString(s), half(GemmTest.toFloat(direct(xh, wh, bh, s))),
                    convOn(java, DType.F16, false, in[0], in[1], bias, s), 2e-3);
        }
    }

    /**
     * Both Java conv paths (the direct Vector API convolution and the GEMM driver over im2col panels, forced with
     * -Djdiffusion.conv.javaDirect) against the double convolution, fp32 and fp16, plain and with the residual epilogue:
     * the CI shapes plus depth past one accumulation block, kernel 5 with stride 3, cOut not a multiple of 4, 1x1 images.
     */
    @Test
    void bothJavaPathsMatchDirect() {
        int[][] extra = {{2, 70, 10, 21, 7, 3, 1, 1}, {1, 8, 11, 13, 5, 5, 3, 2}, {2, 3, 40, 40, 3, 3, 1, 1}, {1, 16, 4, 4, 12, 3, 1, 1},
                {1, 9, 1, 1, 6, 1, 1, 0}, {2, 6, 9, 30, 9, 3, 2, 1}};
        int[][] shapes = Stream.concat(Arrays.stream(SHAPES), Arrays.stream(extra)).toArray(int[][]::new);
        try {
            for (String mode : new String[]{"true", "false"}) {
                System.setProperty("jdiffusion.conv.javaDirect", mode);
                long seed = 700;
                for (int[] s : shapes) {
                    float[][] in = inputs(seed += 3, s);
                    float[] bias = s[4] % 3 != 0 ? in[2] : null;
                    String what = "java conv (direct " + mode + ") " + Arrays.toString(s);
                    double[] want = direct(in[0], in[1], bias, s);
                    assertClose(what + " f32", GemmTest.toFloat(want), convOn(java, DType.F32, false, in[0], in[1], bias, s), 2e-6);
                    float[] xh = half(in[0]), wh = half(in[1]), bh = bias == null ? null : half(bias);
                    assertClose(what + " f16", half(GemmTest.toFloat(direct(xh, wh, bh, s))), convOn(java, DType.F16, false, in[0], in[1], bias, s), 2e-3);
                    float[] res = random(seed + 9, want.length);
                    double[] fused = new double[want.length];
                    for (int i = 0; i < fused.length; i++) fused[i] = (want[i] + res[i]) * 0.5;
                    assertClose(what + " residual f32", GemmTest.toFloat(fused), convResidual(in[0], in[1], bias, res, 0.5f, s), 2e-6);
                }
            }
        } finally {
            System.clearProperty("jdiffusion.conv.javaDirect");
        }
    }

    /** conv2d with the residual epilogue on the java backend: out = (conv + bias + res) * beta. */
    static float[] convResidual(float[] x, float[] wt, float[] bias, float[] res, float beta, int[] s) {
        int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
        Buffer bx = upload(java, "x", DType.F32, x), bw = upload(java, "weight", DType.F32, wt), bb = bias == null ? null : upload(java, "bias", DType.F32, bias);
        Buffer br = upload(java, "res", DType.F32, res), out = java.allocate("out", DType.F32, res.length);
        try (TaskGraph g = new TaskGraph("conv-residual", java)) {
            Conv2d.conv2d(g, bx, bw, bb, br, beta, out, n, cIn, h, w, cOut, k, st, p);
            g.execute();
            return java.read(out);
        } finally {
            bx.close();
            bw.close();
            br.close();
            out.close();
            if (bb != null) bb.close();
        }
    }

    @Test
    void parityAllBackends() {
        long seed = 500;
        for (Backend be : backends)
            for (int[] s : SHAPES) {
                float[][] in = inputs(seed += 3, s);
                float[] bias = s[4] % 2 == 1 ? in[2] : null;
                String what = be.name() + " conv " + Arrays.toString(s);
                assertClose(what + " f32", convOn(java, DType.F32, false, in[0], in[1], bias, s), convOn(be, DType.F32, false, in[0], in[1], bias, s), GemmTest.TOL_F32);
                assertClose(what + " f16", convOn(java, DType.F16, false, in[0], in[1], bias, s), convOn(be, DType.F16, false, in[0], in[1], bias, s), GemmTest.TOL_F16);
                assertClose(what + " tf32", convOn(java, DType.F32, false, in[0], in[1], bias, s), convOn(be, DType.F32, true, in[0], in[1], bias, s), GemmTest.TOL_TF32);
            }
    }

    /** The version-3 conv tasks (conv2d_mma_* + split-K reduce into NCHW) through the Java references. */
    @Test
    void mmaTasksWithSplitKMatchReference() {
        int[][] shapes = {{2, 16, 9, 8, 40, 3, 2, 1}, {2, 40, 6, 6, 136, 3, 1, 1}, {2, 24, 5, 6, 64, 1, 1, 0}};
        long seed = 900;
        for (int[] s : shapes)
            for (DType dt : new DType[]{DType.F32, DType.F16})
                for (int splits : new int[]{1, 3, 7}) {
                    float[][] in = inputs(seed += 3, s);
                    int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
                    Gemm.Split sp = Gemm.split(cIn * k * k, dt, splits);
                    Buffer bx = upload(java, "x", dt, in[0]), bw = upload(java, "weight", dt, in[1]), bb = upload(java, "bias", dt, in[2]);
                    Buffer out = java.allocate("out", dt, (long) n * cOut * outSize(h, k, st, p) * outSize(w, k, st, p));
                    try (TaskGraph g = new TaskGraph("conv-mma", java)) {
                        Conv2d.appendMma(g, "conv-mma", bx, bw, bb, out, n, cIn, h, w, cOut, k, st, p, sp);
                        g.execute();
                        String what = "mma conv " + dt + " " + Arrays.toString(s) + " " + sp;
                        assertClose(what, convOn(java, dt, false, in[0], in[1], in[2], s), java.read(out), dt == DType.F16 ? 2e-3 : GemmTest.TOL_F32);
                    } finally {
                        bx.close();
                        bw.close();
                        bb.close();
                        out.close();
                    }
                }
    }

    @Test
    void badArgumentsNameTheTask() {
        try (TaskGraph g = new TaskGraph("bad", java)) {
            Buffer x = java.allocate("x", DType.F32, 2 * 3 * 8 * 8), w = java.allocate("w", DType.F32, 4 * 3 * 9);
            Buffer out = java.allocate("out", DType.F32, 2 * 4 * 8 * 8), small = java.allocate("small", DType.F32, 5), h = java.allocate("h", DType.F16, 2 * 4 * 64);
            KernelException e = assertThrows(KernelException.class, () -> Conv2d.conv2d(g, x, w, null, small, 2, 3, 8, 8, 4, 3, 1, 1));
            assertTrue(e.getMessage().contains("conv2d[n=2,cIn=3,8x8,cOut=4,k=3,s=1,p=1]") && e.getMessage().contains("out"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Conv2d.conv2d(g, x, w, null, h, 2, 3, 8, 8, 4, 3, 1, 1));
            assertTrue(e.getMessage().contains("F16"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Conv2d.conv2d(g, x, w, null, out, 2, 3, 8, 8, 4, 3, 0, 1));
            assertTrue(e.getMessage().contains("stride"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Conv2d.conv2d(g, x, small, null, out, 2, 3, 8, 8, 4, 3, 1, 1));
            assertTrue(e.getMessage().contains("weight"), e.getMessage());
            e = assertThrows(KernelException.class, () -> Conv2d.conv2d(g, x, w, null, out, 2, 3, 1, 1, 4, 3, 1, 0));
            assertTrue(e.getMessage().contains("larger than the padded input"), e.getMessage());
            assertTrue(g.tasks().isEmpty());
        }
    }
}
