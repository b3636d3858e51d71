package jdiffusion.kernels;

import static jdiffusion.kernels.GemmTest.assertClose;
import static jdiffusion.kernels.GemmTest.upload;

import java.util.Arrays;

import org.junit.jupiter.api.Test;

/**
 * The Java references of the conv v3 tasks (conv_taps_*, conv2d_v3_* with and without split-K, the NCHW reduction) on the
 * java backend, appended directly since only CUDA selects them: they must give the convolution. The CUDA kernels
 * themselves are checked by GemmMmaEmulatorTest (CPU) and GemmGpuTest (GPU).
 */
class Conv2dV3Test {
    @Test
    void v3TasksMatchTheConvolution() {
        JavaBackend java = new JavaBackend();
        int[][] shapes = {{2, 32, 9, 7, 40, 3, 1, 1}, {1, 64, 9, 8, 24, 3, 2, 1}, {2, 48, 5, 6, 33, 1, 1, 0}};
        long seed = 40;
        for (int[] s : shapes)
            for (DType dt : new DType[]{DType.F32, DType.F16})
                for (int splits : new int[]{1, 3}) {
                    float[][] in = Conv2dTest.inputs(seed += 3, s);
                    int n = s[0], cIn = s[1], h = s[2], w = s[3], cOut = s[4], k = s[5], st = s[6], p = s[7];
                    int hOut = (h + 2 * p - k) / st + 1, wOut = (w + 2 * p - k) / st + 1;
                    Buffer bx = upload(java, "x", dt, in[0]), bw = upload(java, "weight", dt, in[1]), bb = upload(java, "bias", dt, in[2]);
                    Buffer out = java.allocate("out", dt, (long) n * cOut * hOut * wOut);
                    float[] got;
                    try (TaskGraph g = new TaskGraph("conv-v3-ref", java)) {
                        Conv2d.appendV3(g, "conv", bx, bw, bb, out, n, cIn, h, w, cOut, k, st, p, Gemm.split(cIn * k * k, dt, splits));
                        g.execute();
                        got = java.read(out);
                    }
                    String what = "conv v3 reference " + dt + " splits " + splits + " " + Arrays.toString(s);
                    assertClose(what, Conv2dTest.convOn(java, dt, false, in[0], in[1], in[2], s), got, dt == DType.F16 ? 2e-3 : 1e-5);
                }
    }
}
