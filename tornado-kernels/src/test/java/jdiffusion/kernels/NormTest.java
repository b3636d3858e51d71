package jdiffusion.kernels;

import static jdiffusion.kernels.ParityCheck.close;
import static jdiffusion.kernels.ParityCheck.half;
import static jdiffusion.kernels.ParityCheck.random;
import static jdiffusion.kernels.ParityCheck.run1;
import static jdiffusion.kernels.ParityCheck.tol;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** GroupNorm (+SiLU) and LayerNorm: Java reference vs naive double, then every backend vs the Java reference. */
class NormTest {
    // n, c, hw, groups (hw 20000 makes several statistics chunks per group)
    static final int[][] GROUP_SHAPES = {{2, 64, 63, 32}, {1, 320, 64, 32}, {1, 64, 20000, 32}, {3, 6, 1, 3}, {1, 32, 1, 32}, {2, 16, 4096, 8}, {1, 8, 2049, 4}};
    static final int[][] LAYER_SHAPES = {{1, 1}, {7, 7}, {77, 32}, {3, 1000}, {2, 768}, {9, 1280}, {16, 320}};
    static List<Backend> backends;
    static final JavaBackend JAVA = new JavaBackend();

    @BeforeAll
    static void open() {
        backends = Backends.forTests();
    }

    @AfterAll
    static void closeAll() {
        for (Backend b : backends) b.close();
    }

    static double[] groupNormDouble(float[] x, float[] gamma, float[] beta, int n, int c, int hw, int groups, double eps, boolean silu) {
        double[] y = new double[x.length];
        int cpg = c / groups;
        for (int s = 0; s < n; s++)
            for (int g = 0; g < groups; g++) {
                int base = (s * c + g * cpg) * hw, len = cpg * hw;
                double mean = 0, var = 0;
                for (int i = 0; i < len; i++) mean += x[base + i];
                mean /= len;
                for (int i = 0; i < len; i++) var += (x[base + i] - mean) * (x[base + i] - mean);
                var /= len;
                for (int i = 0; i < len; i++) {
                    int ch = g * cpg + i / hw;
                    double v = (x[base + i] - mean) / Math.sqrt(var + eps) * gamma[ch] + beta[ch];
                    y[base + i] = silu ? v / (1 + Math.exp(-v)) : v;
                }
            }
        return y;
    }

    static float[] groupNorm(Backend be, DType dt, float[] x, float[] gamma, float[] beta, int[] s, float eps, boolean silu) {
        return run1(be, dt, new float[][]{x, gamma, beta}, x.length,
                (g, in, out) -> Norm.groupNorm(g, in[0], in[1], in[2], out[0], s[0], s[1], s[2], s[3], eps, silu));
    }

    @Test
    void groupNormReferenceMatchesDouble() {
        for (int[] s : GROUP_SHAPES)
            for (boolean silu : new boolean[]{false, true}) {
                float[] x = random(s[0] * 31 + s[2], s[0] * s[1] * s[2], -2, 3), gamma = random(5, s[1], 0.5, 1.5), beta = random(6, s[1], -0.5, 0.5);
                float[] got = groupNorm(JAVA, DType.F32, x, gamma, beta, s, 1e-5f, silu);
                close("group_norm java " + java.util.Arrays.toString(s) + " silu " + silu, got, groupNormDouble(x, gamma, beta, s[0], s[1], s[2], s[3], 1e-5, silu), 1e-5);
            }
    }

    @Test
    void groupNormParity() {
        for (int[] s : GROUP_SHAPES)
            for (DType dt : new DType[]{DType.F32, DType.F16})
                for (boolean silu : new boolean[]{false, true}) {
                    float[] x = random(s[1] + s[2], s[0] * s[1] * s[2], -2, 3), gamma = random(7, s[1], 0.5, 1.5), beta = random(8, s[1], -0.5, 0.5);
                    if (dt == DType.F16) {
                        x = half(x);
                        gamma = half(gamma);
                        beta = half(beta);
                    }
                    float[] want = groupNorm(JAVA, dt, x, gamma, beta, s, 1e-6f, silu);
                    for (Backend be : backends)
                        close("group_norm " + be.name() + " " + dt + " " + java.util.Arrays.toString(s) + " silu " + silu,
                                groupNorm(be, dt, x, gamma, beta, s, 1e-6f, silu), want, tol(dt));
                }
    }

    @Test
    void groupNormRejectsUnevenGroups() {
        try (TaskGraph g = new TaskGraph("bad", JAVA)) {
            Buffer x = JAVA.allocate("x", DType.F32, 30), p = JAVA.allocate("p", DType.F32, 10);
            assertThrows(KernelException.class, () -> Norm.groupNorm(g, x, p, p, x, 1, 10, 3, 4, 1e-5f, false));
            assertThrows(KernelException.class, () -> Norm.groupNorm(g, x, p, p, x, 2, 10, 3, 5, 1e-5f, false));
        }
    }

    static double[] layerNormDouble(float[] x, float[] gamma, float[] beta, int rows, int cols, double eps) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < cols; j++) mean += x[r * cols + j];
            mean /= cols;
            for (int j = 0; j < cols; j++) var += (x[r * cols + j] - mean) * (x[r * cols + j] - mean);
            var /= cols;
            for (int j = 0; j < cols; j++) y[r * cols + j] = (x[r * cols + j] - mean) / Math.sqrt(var + eps) * gamma[j] + beta[j];
        }
        return y;
    }

    static float[] layerNorm(Backend be, DType dt, float[] x, float[] gamma, float[] beta, int rows, int cols) {
        return run1(be, dt, new float[][]{x, gamma, beta}, x.length,
                (g, in, out) -> Norm.layerNorm(g, in[0], in[1], in[2], out[0], rows, cols, 1e-5f));
    }

    @Test
    void layerNormReferenceMatchesDoubleAndBackends() {
        for (int[] s : LAYER_SHAPES)
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                float[] x = random(s[0] + 3L * s[1], s[0] * s[1], -1, 2), gamma = random(9, s[1], 0.5, 1.5), beta = random(10, s[1], -0.5, 0.5);
                if (dt == DType.F16) {
                    x = half(x);
                    gamma = half(gamma);
                    beta = half(beta);
                }
                float[] want = layerNorm(JAVA, dt, x, gamma, beta, s[0], s[1]);
                String what = "layer_norm " + s[0] + "x" + s[1] + " " + dt;
                close(what + " java vs double", want, layerNormDouble(x, gamma, beta, s[0], s[1], 1e-5), tol(dt));
                for (Backend be : backends) close(what + " " + be.name(), layerNorm(be, dt, x, gamma, beta, s[0], s[1]), want, tol(dt));
            }
    }
}
