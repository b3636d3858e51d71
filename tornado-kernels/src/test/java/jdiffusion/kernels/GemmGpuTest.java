package jdiffusion.kernels;

import static jdiffusion.kernels.GemmTest.assertClose;
import static jdiffusion.kernels.GemmTest.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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

    /** Runs Conv2d.conv2d on be and returns the output; kernels (if not null) receives the graph's kernel names. */
    static float[] convKernels(Backend be, DType dt, boolean tf32, float[][] in, int[] s, List<String> kernels) {
        int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
        int hOut = (h + 2 * p - k) / st + 1, wOut = (w + 2 * p - k) / st + 1;
        Buffer bx = GemmTest.upload(be, "x", dt, in[0]), bw = GemmTest.upload(be, "weight", dt, in[1]), bb = GemmTest.upload(be, "bias", dt, in[2]);
        Buffer out = be.allocate("out", dt, (long) n * cOut * hOut * wOut);
        try (TaskGraph g = new TaskGraph("conv-v3-test", be, tf32)) {
            Conv2d.conv2d(g, bx, bw, bb, out, n, cIn, h, w, cOut, k, st, p);
            for (Kernel kn : g.kernels()) kernels.add(kn.name());
            g.execute();
            return be.read(out);
        } finally {
            bx.close();
            bw.close();
            bb.close();
            out.close();
        }
    }

    /**
     * SD1.5 convs (320@64x64, 640@32x32, 1280@16x16 and 8x8, concat inputs 960/1920/2560, 1x1 shortcuts, conv_in's cIn 4,
     * a stride-2 downsampler, conv_out's cOut 4; batch 2 and 16) on CUDA: kernels/conv_mma.cu (conv2d_v3_*) is selected where cIn is a
     * multiple of the k tile (32 halves / 16 floats) and matches the Java reference; -Djdiffusion.conv.v3=false selects
     * conv2d_mma_* / the older kernels again.
     */
    @Test
    void sdConvV3Shapes() {
        assumeFalse(gpus.isEmpty(), "no GPU backend");
        int[][] shapes = {
                {2, 320, 64, 64, 320, 3, 1, 1}, {16, 320, 64, 64, 320, 3, 1, 1}, {2, 960, 64, 64, 320, 3, 1, 1}, {2, 960, 64, 64, 320, 1, 1, 0},
                {2, 640, 32, 32, 640, 3, 1, 1}, {2, 1920, 32, 32, 640, 3, 1, 1}, {2, 1280, 16, 16, 1280, 3, 1, 1}, {2, 2560, 16, 16, 1280, 3, 1, 1},
                {2, 1280, 8, 8, 1280, 3, 1, 1}, {16, 1280, 8, 8, 1280, 3, 1, 1}, {2, 2560, 8, 8, 1280, 1, 1, 0}, {2, 4, 64, 64, 320, 3, 1, 1},
                {2, 320, 64, 64, 320, 3, 2, 1}, {2, 48, 13, 11, 72, 3, 1, 1}, {2, 320, 64, 64, 4, 3, 1, 1}, {16, 320, 64, 64, 4, 3, 1, 1}};
        long seed = 1000;
        for (Backend be : gpus)
            for (int[] s : shapes) {
                float[][] in = Conv2dTest.inputs(seed += 3, s);
                String what = be.name() + " conv v3 " + Arrays.toString(s);
                boolean cuda = be.name().equals("cuda");
                List<String> k16 = new java.util.ArrayList<>(), k32 = new java.util.ArrayList<>();
                float[] got16 = convKernels(be, DType.F16, false, in, s, k16);
                assertClose(what + " f16 " + k16, Conv2dTest.convOn(java, DType.F16, false, in[0], in[1], in[2], s), got16, GemmTest.TOL_F16);
                assertEquals(cuda && s[1] % 32 == 0, k16.contains("conv2d_v3_f16") || k16.contains("conv2d_wgmma_f16"), what + " f16 kernels " + k16);
                if (s[0] == 16 && s[2] == 64) continue;                 // tf32 of the largest shape: same kernel, long Java reference
                float[] got32 = convKernels(be, DType.F32, true, in, s, k32);
                assertClose(what + " tf32 " + k32, Conv2dTest.convOn(java, DType.F32, false, in[0], in[1], in[2], s), got32, GemmTest.TOL_TF32);
                assertEquals(cuda && s[1] % 16 == 0, k32.contains("conv2d_v3_tf32") || k32.contains("conv2d_wgmma_tf32"), what + " tf32 kernels " + k32);
            }
        String before = System.getProperty("jdiffusion.conv.v3");
        System.setProperty("jdiffusion.conv.v3", "false");
        try {
            for (Backend be : gpus) {
                int[] s = {2, 64, 9, 7, 130, 3, 1, 1};
                float[][] in = Conv2dTest.inputs(seed += 3, s);
                List<String> k16 = new java.util.ArrayList<>();
                float[] got16 = convKernels(be, DType.F16, false, in, s, k16);
                assertClose(be.name() + " conv.v3=false f16 " + k16, Conv2dTest.convOn(java, DType.F16, false, in[0], in[1], in[2], s), got16, GemmTest.TOL_F16);
                assertFalse(k16.contains("conv2d_v3_f16"), k16.toString());
            }
        } finally {
            if (before == null) System.clearProperty("jdiffusion.conv.v3");
            else System.setProperty("jdiffusion.conv.v3", before);
        }
    }

    /** Runs a strict-fp32 (tf32 off) GEMM on be; kernels receives the graph's kernel names. */
    static float[] strictGemm(Backend be, float[] a, float[] b, float[] bias, int batch, int m, int n, int k, boolean transB, float alpha, boolean linear,
                              List<String> kernels) {
        Buffer ba = GemmTest.upload(be, "a", DType.F32, a), bb = GemmTest.upload(be, "b", DType.F32, b);
        Buffer bbias = bias == null ? null : GemmTest.upload(be, "bias", DType.F32, bias), bc = be.allocate("c", DType.F32, (long) batch * m * n);
        try (TaskGraph g = new TaskGraph("gemm-fp32x3-test", be, false)) {
            if (linear) Gemm.linear(g, ba, bb, bbias, bc, m, n, k);
            else Gemm.matmul(g, ba, bb, bc, batch, m, n, k, transB, alpha);
            for (Kernel kn : g.kernels()) kernels.add(kn.name());
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

    /** Runs a strict-fp32 conv on be; kernels receives the graph's kernel names. */
    static float[] strictConv(Backend be, float[][] in, int[] s, List<String> kernels) {
        int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
        int hOut = (h + 2 * p - k) / st + 1, wOut = (w + 2 * p - k) / st + 1;
        Buffer bx = GemmTest.upload(be, "x", DType.F32, in[0]), bw = GemmTest.upload(be, "weight", DType.F32, in[1]), bb = GemmTest.upload(be, "bias", DType.F32, in[2]);
        Buffer out = be.allocate("out", DType.F32, (long) n * cOut * hOut * wOut);
        try (TaskGraph g = new TaskGraph("conv-fp32x3-test", be, false)) {
            Conv2d.conv2d(g, bx, bw, bb, out, n, cIn, h, w, cOut, k, st, p);
            for (Kernel kn : g.kernels()) kernels.add(kn.name());
            g.warmup();
            g.execute();
            return be.read(out);
        } finally {
            bx.close();
            bw.close();
            bb.close();
            out.close();
        }
    }

    /**
     * Strict fp32 (graph.tf32 off) on CUDA runs the 3xTF32 tensor-core kernels (gemm_mma_3xtf32, conv2d_mma_3xtf32: each
     * fp32 operand split into two tf32 words, three mma products, fp32 accumulation) and matches the Java reference at the
     * fp32 tolerance (rel L2 <= 1e-5) on ragged and SD1.5 shapes, with and without split-K; -Djdiffusion.fp32x3=false
     * selects no tensor-core kernel. Other GPU backends: the SIMT kernels at the same tolerance.
     */
    @Test
    void strictFp32As3xTf32() {
        assumeFalse(gpus.isEmpty(), "no GPU backend");
        int[][] gemms = {{1, 300, 200, 328, 1}, {2, 130, 136, 200, 0}, {2, 77, 129, 1000, 1}, {1, 2 * 4096, 320, 320, 1}, {1, 2 * 256, 1280, 1280, 1},
                {1, 2 * 77, 320, 768, 1}, {1, 2 * 4096, 2560, 320, 1}, {16, 4096, 40, 4096, 0}, {16, 4096, 77, 40, 1}};
        int[][] convs = {{2, 40, 12, 12, 136, 3, 1, 1}, {1, 64, 9, 7, 130, 3, 2, 1}, {2, 96, 8, 8, 64, 1, 1, 0}, {2, 320, 64, 64, 320, 3, 1, 1},
                {2, 4, 64, 64, 320, 3, 1, 1}, {2, 640, 32, 32, 640, 3, 1, 1}, {2, 1280, 8, 8, 1280, 3, 1, 1}, {2, 2560, 8, 8, 1280, 1, 1, 0},
                {2, 320, 64, 64, 4, 3, 1, 1}};
        long seed = 1300;
        for (Backend be : gpus) {
            boolean cuda = be.name().equals("cuda") && Gemm.fp32x3();
            for (int[] s : gemms) {
                int batch = s[0], m = s[1], n = s[2], k = s[3];
                boolean transB = s[4] != 0, linear = batch == 1 && transB;
                float[] a = random(seed++, batch * m * k), b = random(seed++, batch * n * k), bias = linear ? random(seed++, n) : null;
                List<String> names = new java.util.ArrayList<>();
                float[] got = strictGemm(be, a, b, bias, batch, m, n, k, transB, 0.5f, linear, names);
                String what = be.name() + " strict fp32 matmul " + Arrays.toString(s) + " " + names;
                assertClose(what, GemmTest.gemmOn(java, DType.F32, false, a, b, bias, batch, m, n, k, transB, 0.5f, linear), got, GemmTest.TOL_F32);
                assertEquals(cuda, names.contains("gemm_mma_3xtf32"), what);
                assertFalse(names.contains("gemm_mma_tf32") || names.contains("gemm_tc_tf32") || names.stream().anyMatch(t -> t.contains("wgmma")), what);
            }
            for (int[] s : convs) {
                float[][] in = Conv2dTest.inputs(seed += 3, s);
                List<String> names = new java.util.ArrayList<>();
                float[] got = strictConv(be, in, s, names);
                String what = be.name() + " strict fp32 conv " + Arrays.toString(s) + " " + names;
                assertClose(what, Conv2dTest.convOn(java, DType.F32, false, in[0], in[1], in[2], s), got, GemmTest.TOL_F32);
                long cols = (long) s[0] * ((s[2] + 2 * s[7] - s[5]) / s[6] + 1) * ((s[3] + 2 * s[7] - s[5]) / s[6] + 1);
                boolean tc = Math.min(s[4], cols) >= Gemm.TC_MIN && s[1] * s[5] * s[5] % 4 == 0;   // else SIMT (cOut 4: conv_out)
                assertEquals(cuda && tc, names.contains("conv2d_mma_3xtf32"), what);
                assertFalse(names.stream().anyMatch(x -> x.contains("tf32") && !x.contains("3xtf32")), what);
            }
        }
        String before = System.getProperty("jdiffusion.fp32x3");
        System.setProperty("jdiffusion.fp32x3", "false");
        try {
            for (Backend be : gpus) {
                int[] s = {2, 40, 12, 12, 136, 3, 1, 1};
                float[][] in = Conv2dTest.inputs(seed += 3, s);
                List<String> names = new java.util.ArrayList<>();
                float[] got = strictConv(be, in, s, names);
                assertClose(be.name() + " fp32x3=false conv " + names, Conv2dTest.convOn(java, DType.F32, false, in[0], in[1], in[2], s), got, GemmTest.TOL_F32);
                float[] a = random(seed++, 300 * 328), b = random(seed++, 200 * 328);
                got = strictGemm(be, a, b, null, 1, 300, 200, 328, true, 1f, false, names);
                assertClose(be.name() + " fp32x3=false matmul " + names, GemmTest.gemmOn(java, DType.F32, false, a, b, null, 1, 300, 200, 328, true, 1f, false), got,
                        GemmTest.TOL_F32);
                assertFalse(names.stream().anyMatch(x -> x.contains("mma") || x.contains("_tc_")), names.toString());
            }
        } finally {
            if (before == null) System.clearProperty("jdiffusion.fp32x3");
            else System.setProperty("jdiffusion.fp32x3", before);
        }
    }
    /**
     * The fused epilogues at SD1.5 shapes (batch 2, 64x64 latents) on GPU backends, against the java backend's fused
     * references: Linear + residual (to_out at 64x64, at the mid block's 8x8 with split-K, net.2 with K 5120), net.0.proj +
     * GEGLU (64x64, the mid block with split-K, 32x32), Transformer2DModel's proj_out written channels-first + residual
     * (64x64, the mid block with split-K, 32x32), conv + residual (ResnetBlock2D's conv2 at 64x64, 32x32 and
     * 8x8 with split-K); fp16, TF32 and strict fp32 (3xTF32 on CUDA). On CUDA the version-3 kernels alone (no add_scaled /
     * geglu_interleaved / transpose task). Then ragged shapes with split-K forced (-Djdiffusion.gemm.splits=5).
     */
    @Test
    void fusedEpiloguesSdShapes() {
        assumeFalse(gpus.isEmpty(), "no GPU backend");
        int[][] linears = {{2 * 4096, 320, 320}, {2 * 64, 1280, 1280}, {2 * 256, 1280, 5120}};
        int[][] geglus = {{2 * 4096, 1280, 320}, {2 * 64, 5120, 1280}, {2 * 1024, 2560, 640}};
        int[][] convs = {{2, 320, 64, 64, 320, 3, 1, 1}, {2, 640, 32, 32, 640, 3, 1, 1}, {2, 1280, 8, 8, 1280, 3, 1, 1}};
        int[][] projOuts = {{2, 4096, 320, 320}, {2, 64, 1280, 1280}, {2, 1024, 640, 640}};    // {images, hw, n, k}
        long seed = 1500;
        for (Backend be : gpus) {
            boolean cuda = be.name().equals("cuda");
            for (String precision : List.of("f16", "tf32", "f32")) {
                double tol = FusedEpilogueTest.tol(precision);
                // the fused kernels unless a fallback switch is set (-Djdiffusion.gemm.v2=false, strict fp32 with -Djdiffusion.fp32x3=false)
                boolean fusedHere = cuda && Gemm.v2() && Gemm.TENSOR_CORES && (!precision.equals("f32") || Gemm.fp32x3());
                for (int[] s : linears) {
                    int m = s[0], n = s[1], k = s[2];
                    float[] x = random(seed++, m * k), w = random(seed++, n * k), bias = random(seed++, n), res = random(seed++, m * n);
                    List<String> names = new java.util.ArrayList<>();
                    float[] got = FusedEpilogueTest.residualGemmOn(be, precision, x, w, bias, res, 1, m, n, k, true, 1f, true, names);
                    String what = be.name() + " " + precision + " linear + residual " + Arrays.toString(s) + " " + names;
                    assertClose(what, FusedEpilogueTest.residualGemmOn(java, precision, x, w, bias, res, 1, m, n, k, true, 1f, true, new java.util.ArrayList<>()), got, tol);
                    if (fusedHere) assertFalse(names.contains("add_scaled") || names.stream().noneMatch(t -> t.startsWith("gemm_mma_") || t.startsWith("gemm_wgmma_")), what);
                }
                for (int[] s : geglus) {
                    int m = s[0], inner = s[1], k = s[2];
                    float[] x = random(seed++, m * k), w = random(seed++, 2 * inner * k), bias = random(seed++, 2 * inner);
                    List<String> names = new java.util.ArrayList<>();
                    float[] got = FusedEpilogueTest.gegluOn(be, precision, x, w, bias, m, inner, k, names);
                    String what = be.name() + " " + precision + " linear_geglu " + Arrays.toString(s) + " " + names;
                    assertClose(what, FusedEpilogueTest.gegluOn(java, precision, x, w, bias, m, inner, k, new java.util.ArrayList<>()), got, tol);
                    if (fusedHere) assertFalse(names.contains("geglu_interleaved") || names.stream().noneMatch(t -> t.startsWith("gemm_mma_geglu_") || t.startsWith("gemm_wgmma_geglu_")), what);
                }
                for (int[] s : projOuts) {
                    int images = s[0], hw = s[1], n = s[2], k = s[3];
                    float[] x = random(seed++, images * hw * k), w = random(seed++, n * k), bias = random(seed++, n), res = random(seed++, images * n * hw);
                    List<String> names = new java.util.ArrayList<>();
                    float[] got = FusedEpilogueTest.toChannelsOn(be, precision, x, w, bias, res, images, hw, n, k, names);
                    String what = be.name() + " " + precision + " proj_out to channels + residual " + Arrays.toString(s) + " " + names;
                    assertClose(what, FusedEpilogueTest.toChannelsOn(java, precision, x, w, bias, res, images, hw, n, k, new java.util.ArrayList<>()), got, tol);
                    if (fusedHere) assertFalse(names.contains("transpose") || names.contains("add_scaled") || names.stream().noneMatch(t -> t.startsWith("gemm_mma_") || t.startsWith("gemm_wgmma_")), what);
                }
                for (int[] s : convs) {
                    float[][] in = Conv2dTest.inputs(seed += 3, s);
                    float[] res = random(seed++, FusedEpilogueTest.convOutElements(s));
                    List<String> names = new java.util.ArrayList<>();
                    float[] got = FusedEpilogueTest.residualConvOn(be, precision, in, res, s, names);
                    String what = be.name() + " " + precision + " conv + residual " + Arrays.toString(s) + " " + names;
                    assertClose(what, FusedEpilogueTest.residualConvOn(java, precision, in, res, s, new java.util.ArrayList<>()), got, tol);
                    if (fusedHere) assertFalse(names.contains("add_scaled") || names.stream().noneMatch(t -> t.startsWith("conv2d_v3_") || t.startsWith("conv2d_mma_") || t.startsWith("conv2d_wgmma_")), what);
                }
            }
        }
        String before = System.getProperty("jdiffusion.gemm.splits");
        System.setProperty("jdiffusion.gemm.splits", "5");
        try {
            for (Backend be : gpus)
                for (String precision : List.of("f16", "tf32", "f32")) {
                    double tol = FusedEpilogueTest.tol(precision);
                    float[] x = random(seed++, 300 * 328), w = random(seed++, 200 * 328), bias = random(seed++, 200), res = random(seed++, 300 * 200);
                    assertClose(be.name() + " " + precision + " splits=5 linear + residual", FusedEpilogueTest.residualGemmOn(java, precision, x, w, bias, res, 1, 300, 200, 328, true,
                            1f, true, new java.util.ArrayList<>()), FusedEpilogueTest.residualGemmOn(be, precision, x, w, bias, res, 1, 300, 200, 328, true, 1f, true,
                            new java.util.ArrayList<>()), tol);
                    float[] gx = random(seed++, 130 * 200), gw = random(seed++, 144 * 200), gb = random(seed++, 144);
                    assertClose(be.name() + " " + precision + " splits=5 linear_geglu", FusedEpilogueTest.gegluOn(java, precision, gx, gw, gb, 130, 72, 200, new java.util.ArrayList<>()),
                            FusedEpilogueTest.gegluOn(be, precision, gx, gw, gb, 130, 72, 200, new java.util.ArrayList<>()), tol);
                    float[] tx = random(seed++, 3 * 43 * 200), tres = random(seed++, 3 * 43 * 136);
                    assertClose(be.name() + " " + precision + " splits=5 linear_to_channels + residual", FusedEpilogueTest.toChannelsOn(java, precision, tx, w, bias, tres, 3, 43,
                            136, 200, new java.util.ArrayList<>()), FusedEpilogueTest.toChannelsOn(be, precision, tx, w, bias, tres, 3, 43, 136, 200, new java.util.ArrayList<>()), tol);
                    int[] s = {2, 64, 9, 7, 130, 3, 1, 1};
                    float[][] in = Conv2dTest.inputs(seed += 3, s);
                    float[] cres = random(seed++, FusedEpilogueTest.convOutElements(s));
                    assertClose(be.name() + " " + precision + " splits=5 conv + residual", FusedEpilogueTest.residualConvOn(java, precision, in, cres, s, new java.util.ArrayList<>()),
                            FusedEpilogueTest.residualConvOn(be, precision, in, cres, s, new java.util.ArrayList<>()), tol);
                }
        } finally {
            if (before == null) System.clearProperty("jdiffusion.gemm.splits");
            else System.setProperty("jdiffusion.gemm.splits", before);
        }
    }
}
