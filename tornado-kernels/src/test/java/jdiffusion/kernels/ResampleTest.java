package jdiffusion.kernels;

import static jdiffusion.kernels.ParityCheck.half;
import static jdiffusion.kernels.ParityCheck.random;
import static jdiffusion.kernels.ParityCheck.run1;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Layout ops are exact: every backend must equal the naive index arithmetic bit for bit. */
class ResampleTest {
    static List<Backend> backends;

    @BeforeAll
    static void open() {
        backends = Backends.forTests();
    }

    @AfterAll
    static void closeAll() {
        for (Backend b : backends) b.close();
    }

    @Test
    void upsampleNearest2x() {
        for (int[] s : new int[][]{{1, 1, 1, 1}, {2, 3, 5, 7}, {1, 4, 32, 32}, {2, 3, 33, 35}})
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                int n = s[0], c = s[1], h = s[2], w = s[3];
                float[] x = random(h * 31L + w, n * c * h * w, -5, 5);
                if (dt == DType.F16) x = half(x);
                float[] want = new float[4 * x.length];
                for (int p = 0; p < n * c; p++)
                    for (int y = 0; y < 2 * h; y++)
                        for (int xx = 0; xx < 2 * w; xx++) want[(p * 2 * h + y) * 2 * w + xx] = x[(p * h + y / 2) * w + xx / 2];
                for (Backend be : backends)
                    assertArrayEquals(want, run1(be, dt, new float[][]{x}, want.length, (g, in, out) -> Resample.upsampleNearest2x(g, in[0], out[0], n, c, h, w)),
                            "upsample " + be.name() + " " + dt);
            }
    }

    @Test
    void concatChannels() {
        for (int[] s : new int[][]{{1, 1, 1, 1}, {2, 3, 5, 7}, {2, 320, 640, 64}, {2, 2, 3, 2100}})
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                int n = s[0], ca = s[1], cb = s[2], hw = s[3];
                float[] a = random(ca, n * ca * hw, -5, 5), b = random(cb + 1, n * cb * hw, -5, 5);
                if (dt == DType.F16) {
                    a = half(a);
                    b = half(b);
                }
                float[] want = new float[n * (ca + cb) * hw];
                for (int i = 0; i < n; i++) {
                    System.arraycopy(a, i * ca * hw, want, i * (ca + cb) * hw, ca * hw);
                    System.arraycopy(b, i * cb * hw, want, (i * (ca + cb) + ca) * hw, cb * hw);
                }
                for (Backend be : backends)
                    assertArrayEquals(want, run1(be, dt, new float[][]{a, b}, want.length, (g, in, out) -> Resample.concatChannels(g, in[0], in[1], out[0], n, ca, cb, hw)),
                            "concat " + be.name() + " " + dt);
            }
    }

    @Test
    void transpose() {
        for (int[] s : new int[][]{{1, 1, 1}, {3, 33, 65}, {2, 77, 40}, {1, 64, 64}, {5, 1, 37}})
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                int batch = s[0], rows = s[1], cols = s[2];
                float[] x = random(rows * 7L + cols, batch * rows * cols, -5, 5);
                if (dt == DType.F16) x = half(x);
                float[] want = new float[x.length];
                for (int b = 0; b < batch; b++)
                    for (int r = 0; r < rows; r++)
                        for (int c = 0; c < cols; c++) want[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
                for (Backend be : backends)
                    assertArrayEquals(want, run1(be, dt, new float[][]{x}, want.length, (g, in, out) -> Resample.transpose(g, in[0], out[0], batch, rows, cols)),
                            "transpose " + be.name() + " " + dt + " " + batch + "x" + rows + "x" + cols);
            }
    }
}
