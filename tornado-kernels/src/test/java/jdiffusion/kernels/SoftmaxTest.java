package jdiffusion.kernels;

import static jdiffusion.kernels.ParityCheck.close;
import static jdiffusion.kernels.ParityCheck.half;
import static jdiffusion.kernels.ParityCheck.random;
import static jdiffusion.kernels.ParityCheck.run1;
import static jdiffusion.kernels.ParityCheck.tol;

import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Row softmax: Java reference vs naive double (scale, causal), every backend vs the Java reference. */
class SoftmaxTest {
    static final int[][] SHAPES = {{1, 1}, {3, 7}, {154, 77}, {2, 1000}, {2, 4100}, {5, 256}};
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

    static double[] softmaxDouble(float[] x, int rows, int cols, double scale, boolean causal) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            int valid = causal ? r % cols + 1 : cols;
            double m = Double.NEGATIVE_INFINITY, s = 0;
            for (int j = 0; j < valid; j++) m = Math.max(m, scale * x[r * cols + j]);
            for (int j = 0; j < valid; j++) s += Math.exp(scale * x[r * cols + j] - m);
            for (int j = 0; j < valid; j++) y[r * cols + j] = Math.exp(scale * x[r * cols + j] - m) / s;
        }
        return y;
    }

    @Test
    void referenceAndBackends() {
        for (int[] s : SHAPES)
            for (boolean causal : new boolean[]{false, true})
                for (DType dt : new DType[]{DType.F32, DType.F16}) {
                    int rows = s[0], cols = s[1];
                    float[] x = random(rows * 13L + cols, rows * cols, -20, 20);
                    if (dt == DType.F16) x = half(x);
                    ParityCheck.Op op = (g, in, out) -> Softmax.softmax(g, in[0], out[0], rows, cols, 0.125f, causal);
                    float[] want = run1(JAVA, dt, new float[][]{x}, rows * cols, op);
                    String what = "softmax " + rows + "x" + cols + " causal " + causal + " " + dt;
                    close(what + " java vs double", want, softmaxDouble(x, rows, cols, 0.125, causal), dt == DType.F16 ? 1e-3 : 1e-6);
                    for (Backend be : backends) close(what + " " + be.name(), run1(be, dt, new float[][]{x}, rows * cols, op), want, tol(dt));
                }
    }

    @Test
    void inPlaceWithLargeValues() {
        int rows = 4, cols = 300;
        float[] x = random(5, rows * cols, -3000, 3000);
        double[] want = softmaxDouble(x, rows, cols, 1.0, false);
        for (Backend be : backends) {
            Buffer b = ParityCheck.upload(be, "x", DType.F32, x);
            try (TaskGraph g = new TaskGraph("softmax", be)) {
                Softmax.softmax(g, b, b, rows, cols, 1f, false);
                g.execute();
                close("softmax in place " + be.name(), be.read(b), want, 1e-5);
            } finally {
                b.close();
            }
        }
    }
}
