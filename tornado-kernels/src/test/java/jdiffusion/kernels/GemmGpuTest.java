package jdiffusion.kernels;

import static jdiffusion.kernels.GemmTest.assertClose;
import static jdiffusion.kernels.GemmTest.random;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SD1.5-size GEMM and convolution parity (batch 2, 64x64 latents) on GPU backends only (CUDA, or an OpenCL GPU):
 * too large for PoCL in CI. The Java reference computes the expected values. Tensor-core kernels run here on CUDA.
 */
class GemmGpuTest {
    static List<Backend> gpus;
    static JavaBackend java;

    @BeforeAll
    static void open() {
        List<Backend> all = Backends.forTests();
        gpus = all.stream().filter(b -> b.name().equals("cuda") || (b instanceof OpenClBackend cl && cl.gpu)).toList();
        for (Backend b : all) if (!gpus.contains(b)) b.close();
        java = new JavaBackend();
    }

    @AfterAll
    static void close() {
        for (Backend b : gpus) b.close();
    }

    @Test
    void sdLinearShapes() {
        assumeFalse(gpus.isEmpty(), "no GPU backend");
        int[][] shapes = {{2 * 4096, 320, 320}, {2 * 1024, 640, 640}, {2 * 256, 1280, 1280}, {2 * 4096, 2560, 320}, {2 * 77, 320, 768}};
        long seed = 7;
        for (Backend be : gpus)
            for (int[] s : shapes) {
                int m = s[0], n = s[1], k = s[2];
                float[] x = random(seed++, m * k), w = random(seed++, n * k), bias = random(seed++, n);
                String what = be.name() + " linear " + m + "x" + n + "x" + k;
                float[] ref = GemmTest.gemmOn(java, DType.F32, false, x, w, bias, 1, m, n, k, true, 1f, true);
                assertClose(what + " f32", ref, GemmTest.gemmOn(be, DType.F32, false, x, w, bias, 1, m, n, k, true, 1f, true), GemmTest.TOL_F32);
                assertClose(what + " tf32", ref, GemmTest.gemmOn(be, DType.F32, true, x, w, bias, 1, m, n, k, true, 1f, true), GemmTest.TOL_TF32);
                assertClose(what + " f16", GemmTest.gemmOn(java, DType.F16, false, x, w, bias, 1, m, n, k, true, 1f, true),
                        GemmTest.gemmOn(be, DType.F16, false, x, w, bias, 1, m, n, k, true, 1f, true), GemmTest.TOL_F16);
            }
    }

    @Test
    void sdAttentionMatmuls() {
        assumeFalse(gpus.isEmpty(), "no GPU backend");
        int[][] shapes = {{16, 4096, 4096, 40, 1}, {16, 4096, 40, 4096, 0}, {16, 4096, 77, 40, 1}, {16, 4096, 40, 77, 0}};
        long seed = 70;
        for (Backend be : gpus)
            for (int[] s : shapes) {
                int batch = s[0], m = s[1], n = s[2], k = s[3];
                boolean transB = s[4] != 0;
                float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k);
                String what = be.name() + " matmul " + batch + "x" + m + "x" + n + "x" + k + " transB=" + transB;
                float[] ref = GemmTest.gemmOn(java, DType.F32, false, a, b, null, batch, m, n, k, transB, 0.158f, false);
                assertClose(what + " f32", ref, GemmTest.gemmOn(be, DType.F32, false, a, b, null, batch, m, n, k, transB, 0.158f, false), GemmTest.TOL_F32);
                assertClose(what + " tf32", ref, GemmTest.gemmOn(be, DType.F32, true, a, b, null, batch, m, n, k, transB, 0.158f, false), GemmTest.TOL_TF32);
                assertClose(what + " f16", GemmTest.gemmOn(java, DType.F16, false, a, b, null, batch, m, n, k, transB, 0.158f, false),
                        GemmTest.gemmOn(be, DType.F16, false, a, b, null, batch, m, n, k, transB, 0.158f, false), GemmTest.TOL_F16);
            }
    }

    @Test
    void sdConvShapes() {
        assumeFalse(gpus.isEmpty(), "no GPU backend");
        int[][] shapes = {
                {2, 320, 64, 64, 320, 3, 1, 1}, {2, 4, 64, 64, 320, 3, 1, 1}, {2, 320, 64, 64, 320, 3, 2, 1},
                {2, 640, 32, 32, 640, 3, 1, 1}, {2, 320, 32, 32, 640, 1, 1, 0}, {2, 1280, 8, 8, 1280, 3, 1, 1}, {2, 320, 64, 64, 4, 3, 1, 1}};
        long seed = 700;
        for (Backend be : gpus)
            for (int[] s : shapes) {
                float[][] in = Conv2dTest.inputs(seed += 3, s);
                String what = be.name() + " conv " + Arrays.toString(s);
                float[] ref = Conv2dTest.convOn(java, DType.F32, false, in[0], in[1], in[2], s);
                assertClose(what + " f32", ref, Conv2dTest.convOn(be, DType.F32, false, in[0], in[1], in[2], s), GemmTest.TOL_F32);
                assertClose(what + " tf32", ref, Conv2dTest.convOn(be, DType.F32, true, in[0], in[1], in[2], s), GemmTest.TOL_TF32);
                assertClose(what + " f16", Conv2dTest.convOn(java, DType.F16, false, in[0], in[1], in[2], s),
                        Conv2dTest.convOn(be, DType.F16, false, in[0], in[1], in[2], s), GemmTest.TOL_F16);
            }
    }

    /** The small-spatial convs that take split-K on CUDA (kernels/gemm_mma.cu), 3x3 and 1x1. */
    @Test
    void sdSplitKConvShapes() {
        assumeFalse(gpus.isEmpty(), "no GPU backend");
        int[][] shapes = {{2, 1280, 16, 16, 1280, 3, 1, 1}, {2, 2560, 8, 8, 1280, 1, 1, 0}, {2, 640, 16, 16, 1280, 3, 2, 1}};
        long seed = 800;
        for (Backend be : gpus)
            for (int[] s : shapes) {
                float[][] in = Conv2dTest.inputs(seed += 3, s);
                String what = be.name() + " conv " + Arrays.toString(s);
                assertClose(what + " tf32", Conv2dTest.convOn(java, DType.F32, false, in[0], in[1], in[2], s),
                        Conv2dTest.convOn(be, DType.F32, true, in[0], in[1], in[2], s), GemmTest.TOL_TF32);
                assertClose(what + " f16", Conv2dTest.convOn(java, DType.F16, false, in[0], in[1], in[2], s),
                        Conv2dTest.convOn(be, DType.F16, false, in[0], in[1], in[2], s), GemmTest.TOL_F16);
            }
    }

    /** Ragged shapes with split-K forced (-Djdiffusion.gemm.splits=5), then with the version-3 kernels off (the fallback). */
    @Test
    void forcedSplitsAndFallbackKernels() {
        assumeFalse(gpus.isEmpty(), "no GPU backend");
        String[][] settings = {{"jdiffusion.gemm.splits", "5"}, {"jdiffusion.gemm.v2", "false"}};
        long seed = 900;
        for (String[] kv : settings) {
            String before = System.getProperty(kv[0]);
            System.setProperty(kv[0], kv[1]);
            try {
                for (Backend be : gpus) {
                    int[][] gemms = {{1, 300, 200, 328, 1}, {2, 130, 136, 200, 0}, {2, 77, 129, 1000, 1}};
                    for (int[] s : gemms) {
                        int batch = s[0], m = s[1], n = s[2], k = s[3];
                        boolean transB = s[4] != 0;
                        float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k);
                        String what = be.name() + " " + kv[0] + "=" + kv[1] + " matmul " + Arrays.toString(s);
                        assertClose(what + " tf32", GemmTest.gemmOn(java, DType.F32, false, a, b, null, batch, m, n, k, transB, 0.5f, false),
                                GemmTest.gemmOn(be, DType.F32, true, a, b, null, batch, m, n, k, transB, 0.5f, false), GemmTest.TOL_TF32);
                        assertClose(what + " f16", GemmTest.gemmOn(java, DType.F16, false, a, b, null, batch, m, n, k, transB, 0.5f, false),
                                GemmTest.gemmOn(be, DType.F16, false, a, b, null, batch, m, n, k, transB, 0.5f, false), GemmTest.TOL_F16);
                        float[] bias = random(seed++, n);
                        assertClose(what + " linear f16", GemmTest.gemmOn(java, DType.F16, false, a, b, bias, 1, m, n, k, true, 1f, true),
                                GemmTest.gemmOn(be, DType.F16, false, a, b, bias, 1, m, n, k, true, 1f, true), GemmTest.TOL_F16);
                    }
                    int[][] convs = {{2, 40, 12, 12, 136, 3, 1, 1}, {1, 64, 9, 7, 130, 3, 2, 1}, {2, 96, 8, 8, 64, 1, 1, 0}};
                    for (int[] s : convs) {
                        float[][] in = Conv2dTest.inputs(seed += 3, s);
                        String what = be.name() + " " + kv[0] + "=" + kv[1] + " conv " + Arrays.toString(s);
                        assertClose(what + " tf32", Conv2dTest.convOn(java, DType.F32, false, in[0], in[1], in[2], s),
                                Conv2dTest.convOn(be, DType.F32, true, in[0], in[1], in[2], s), GemmTest.TOL_TF32);
                        assertClose(what + " f16", Conv2dTest.convOn(java, DType.F16, false, in[0], in[1], in[2], s),
                                Conv2dTest.convOn(be, DType.F16, false, in[0], in[1], in[2], s), GemmTest.TOL_F16);
                    }
                }
            } finally {
                if (before == null) System.clearProperty(kv[0]);
                else System.setProperty(kv[0], before);
            }
        }
    }
}
