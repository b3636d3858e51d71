package jdiffusion.kernels;

import static jdiffusion.kernels.ParityCheck.close;
import static jdiffusion.kernels.ParityCheck.half;
import static jdiffusion.kernels.ParityCheck.random;
import static jdiffusion.kernels.ParityCheck.run1;
import static jdiffusion.kernels.ParityCheck.tol;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.function.DoubleUnaryOperator;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Pointwise ops: Java reference vs naive double, every backend vs the Java reference, fp16 rounding, 64-bit lengths on GPUs. */
class ElementwiseTest {
    static final int[] LENGTHS = {1, 7, 77, 1000, 4099};
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

    @Test
    void erfMatchesKnownValuesAndSeries() {
        assertEquals(0.8427007929497149, Elementwise.erf(1.0), 1e-12);
        assertEquals(0.9953222650189527, Elementwise.erf(2.0), 1e-12);
        assertEquals(-0.5204998778130465, Elementwise.erf(-0.5), 1e-12);
        assertEquals(1 - 2.209049699858544e-05, Elementwise.erf(3.0), 1e-12);
        assertEquals(1 - 1.5417257900280018e-08, Elementwise.erf(4.0), 1e-12);
        for (double x = -6; x <= 6; x += 0.0137) assertEquals(Elementwise.erfSlow(x), Elementwise.erf(x), 1e-11, "erf(" + x + ")");
    }

    static double geluD(double x) {
        return 0.5 * x * (1 + Elementwise.erfSlow(x / Math.sqrt(2)));
    }

    interface Unary {
        void append(TaskGraph g, Buffer x, Buffer out, long n);
    }

    void unary(String name, Unary op, DoubleUnaryOperator exact) {
        for (int n : LENGTHS)
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                float[] x = random(n + name.length(), n, -8, 8);
                if (dt == DType.F16) x = half(x);
                float[] want = run1(JAVA, dt, new float[][]{x}, n, (g, in, out) -> op.append(g, in[0], out[0], n));
                double[] d = new double[n];
                for (int i = 0; i < n; i++) d[i] = exact.applyAsDouble(x[i]);
                close(name + " java vs double " + dt + " n=" + n, want, d, dt == DType.F16 ? 1e-3 : 1e-6);
                for (Backend be : backends)
                    close(name + " " + be.name() + " " + dt + " n=" + n, run1(be, dt, new float[][]{x}, n, (g, in, out) -> op.append(g, in[0], out[0], n)), want, tol(dt));
            }
    }

    @Test
    void activations() {
        unary("silu", Elementwise::silu, x -> x / (1 + Math.exp(-x)));
        unary("gelu", Elementwise::gelu, ElementwiseTest::geluD);
        unary("quick_gelu", Elementwise::quickGelu, x -> x / (1 + Math.exp(-1.702 * x)));
        unary("scale", (g, x, o, n) -> Elementwise.scale(g, x, o, n, -0.18215f), x -> x * -0.18215);
    }

    @Test
    void inPlace() {
        float[] x = random(3, 1000, -3, 3);
        for (Backend be : backends) {
            Buffer b = ParityCheck.upload(be, "x", DType.F32, x);
            try (TaskGraph g = new TaskGraph("inplace", be)) {
                Elementwise.silu(g, b, b, 1000);
                g.execute();
                float[] got = be.read(b);
                for (int i = 0; i < x.length; i++) assertEquals(x[i] / (1 + Math.exp(-x[i])), got[i], 1e-6, be.name() + " silu in place at " + i);
            } finally {
                b.close();
            }
        }
    }

    @Test
    void binary() {
        for (int n : LENGTHS)
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                float[] a = random(n, n, -4, 4), b = random(n + 1, n, -4, 4);
                if (dt == DType.F16) {
                    a = half(a);
                    b = half(b);
                }
                double[] sum = new double[n], scaled = new double[n];
                for (int i = 0; i < n; i++) {
                    sum[i] = (double) a[i] + b[i];
                    scaled[i] = sum[i] * 0.7071;
                }
                float[] add = run1(JAVA, dt, new float[][]{a, b}, n, (g, in, out) -> Elementwise.add(g, in[0], in[1], out[0], n));
                float[] addS = run1(JAVA, dt, new float[][]{a, b}, n, (g, in, out) -> Elementwise.addScaled(g, in[0], in[1], out[0], n, 0.7071f));
                close("add java " + dt, add, sum, dt == DType.F16 ? 1e-3 : 1e-7);
                close("add_scaled java " + dt, addS, scaled, dt == DType.F16 ? 1e-3 : 1e-7);
                for (Backend be : backends) {
                    close("add " + be.name() + " " + dt + " n=" + n, run1(be, dt, new float[][]{a, b}, n, (g, in, out) -> Elementwise.add(g, in[0], in[1], out[0], n)), add, tol(dt));
                    close("add_scaled " + be.name() + " " + dt + " n=" + n, run1(be, dt, new float[][]{a, b}, n, (g, in, out) -> Elementwise.addScaled(g, in[0], in[1], out[0], n, 0.7071f)), addS, tol(dt));
                }
            }
    }

    @Test
    void geglu() {
        for (int[] s : new int[][]{{1, 1}, {7, 13}, {77, 320}, {5, 1280}, {3, 2500}})
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                int rows = s[0], cols = s[1];
                float[] x = random(rows * 7L + cols, rows * 2 * cols, -4, 4);
                if (dt == DType.F16) x = half(x);
                double[] d = new double[rows * cols];
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < cols; j++) d[r * cols + j] = x[r * 2 * cols + j] * geluD(x[r * 2 * cols + cols + j]);
                ParityCheck.Op op = (g, in, out) -> Elementwise.geglu(g, in[0], out[0], rows, cols);
                float[] want = run1(JAVA, dt, new float[][]{x}, rows * cols, op);
                close("geglu java " + dt, want, d, dt == DType.F16 ? 1e-3 : 1e-6);
                for (Backend be : backends) close("geglu " + be.name() + " " + dt + " " + rows + "x" + cols, run1(be, dt, new float[][]{x}, rows * cols, op), want, tol(dt));
            }
    }

    /** geglu_interleaved (the unfused tail of Gemm.linearGeglu): geglu of the un-permuted columns, on every backend. */
    @Test
    void gegluInterleaved() {
        for (int[] s : new int[][]{{1, 8}, {7, 24}, {77, 320}, {5, 1280}, {2, 2056}})
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                int rows = s[0], cols = s[1];
                float[] x = random(rows * 5L + cols, rows * 2 * cols, -4, 4);
                if (dt == DType.F16) x = half(x);
                float[] perm = new float[x.length];
                for (int r = 0; r < rows; r++) {                            // each row of [hidden | gate] in gegluInterleave's order
                    float[] row = Gemm.gegluInterleave(java.util.Arrays.copyOfRange(x, r * 2 * cols, (r + 1) * 2 * cols), cols, 1);
                    System.arraycopy(row, 0, perm, r * 2 * cols, 2 * cols);
                }
                ParityCheck.Op plain = (g, in, out) -> Elementwise.geglu(g, in[0], out[0], rows, cols);
                ParityCheck.Op op = (g, in, out) -> Elementwise.gegluInterleaved(g, in[0], out[0], rows, cols);
                float[] want = run1(JAVA, dt, new float[][]{x}, rows * cols, plain);
                close("geglu_interleaved java " + dt, run1(JAVA, dt, new float[][]{perm}, rows * cols, op), want, 0);
                for (Backend be : backends)
                    close("geglu_interleaved " + be.name() + " " + dt + " " + rows + "x" + cols, run1(be, dt, new float[][]{perm}, rows * cols, op), want, tol(dt));
            }
        assertThrows(KernelException.class, () -> Elementwise.gegluInterleaved(new TaskGraph("bad", JAVA), JAVA.allocate("x", DType.F32, 24), JAVA.allocate("o", DType.F32, 12), 1, 12));
    }

    @Test
    void addChannel() {
        for (int[] s : new int[][]{{1, 1, 1}, {2, 3, 7}, {2, 320, 64}, {3, 5, 1}, {2, 3, 4100}})
            for (boolean perOuter : new boolean[]{false, true})
                for (DType dt : new DType[]{DType.F32, DType.F16}) {
                    int outer = s[0], ch = s[1], inner = s[2], n = outer * ch * inner;
                    float[] x = random(n, n, -2, 2), bias = random(ch, perOuter ? outer * ch : ch, -1, 1);
                    if (dt == DType.F16) {
                        x = half(x);
                        bias = half(bias);
                    }
                    double[] d = new double[n];
                    for (int o = 0; o < outer; o++)
                        for (int c = 0; c < ch; c++)
                            for (int i = 0; i < inner; i++)
                                d[(o * ch + c) * inner + i] = (double) x[(o * ch + c) * inner + i] + bias[perOuter ? o * ch + c : c];
                    ParityCheck.Op op = (g, in, out) -> Elementwise.addChannel(g, in[0], in[1], out[0], outer, ch, inner, perOuter);
                    float[] want = run1(JAVA, dt, new float[][]{x, bias}, n, op);
                    close("add_channel java " + dt, want, d, dt == DType.F16 ? 1e-3 : 1e-7);
                    for (Backend be : backends)
                        close("add_channel " + be.name() + " " + dt + " perOuter " + perOuter, run1(be, dt, new float[][]{x, bias}, n, op), want, tol(dt));
                }
    }

    /** Values whose fp16 rounding is a tie, a carry, an overflow or a subnormal. */
    static final float[] CAST_CASES = {0f, -0f, 1f, 1f + 0x1p-11f, 1f + 3 * 0x1p-11f, 1f + 0x1p-11f + 0x1p-20f, -2.5f, 65504f, 65519f, 65520f, 1e6f, -1e6f,
            0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-14f, 3.14159f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 5.9604645e-8f, 1e-10f};

    @Test
    void castRoundsToNearestEven() {
        float[] x = new float[CAST_CASES.length + 4099];
        System.arraycopy(CAST_CASES, 0, x, 0, CAST_CASES.length);
        float[] r = random(11, 4099, -70000, 70000);
        System.arraycopy(r, 0, x, CAST_CASES.length, r.length);
        int n = x.length;
        float[] want = new float[n];
        for (int i = 0; i < n; i++) want[i] = Float.float16ToFloat(Float.floatToFloat16(x[i]));
        assertEquals(1f, want[3]);                    // tie goes to even
        assertEquals(1f + 0x1p-9f, want[4]);          // tie goes to even (up)
        assertEquals(1f + 0x1p-10f, want[5]);         // above the tie
        assertEquals(Float.POSITIVE_INFINITY, want[9]);
        for (Backend be : backends) {
            Buffer src = be.allocate("src", DType.F32, n), h = be.allocate("h", DType.F16, n), back = be.allocate("back", DType.F32, n);
            try (TaskGraph g = new TaskGraph("cast", be)) {
                be.write(src, x);
                Elementwise.cast(g, src, h, n);
                Elementwise.cast(g, h, back, n);
                g.execute();
                float[] got = be.read(back), viaHalf = be.read(h);
                for (int i = 0; i < n; i++) {
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), be.name() + " cast of " + x[i]);
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(viaHalf[i]), be.name() + " half of " + x[i]);
                }
            } finally {
                src.close();
                h.close();
                back.close();
            }
        }
    }

    @Test
    void rejectsMixedDtypesAndShortBuffers() {
        try (TaskGraph g = new TaskGraph("bad", JAVA)) {
            Buffer a = JAVA.allocate("a", DType.F32, 8), h = JAVA.allocate("h", DType.F16, 8), i = JAVA.allocate("i", DType.I32, 8);
            assertThrows(KernelException.class, () -> Elementwise.add(g, a, h, a, 8));
            assertThrows(KernelException.class, () -> Elementwise.silu(g, i, i, 8));
            assertThrows(KernelException.class, () -> Elementwise.scale(g, a, a, 9, 2f));
        }
    }

    /** Past 2^31 elements (GPU only: 4 GiB of fp16 in place): the tail must be written. */
    @Test
    void lengthsPast32Bits() {
        long n = (1L << 31) + 77;
        for (Backend be : backends) {
            if (!ParityCheck.isGpu(be)) continue;
            Buffer x = be.allocate("big", DType.F16, n);
            try (TaskGraph g = new TaskGraph("big", be)) {
                float[] tail = {1f, 2f, 3f, 4f};
                be.write(x, n - 4, tail, 0, 4);
                be.write(x, 0, tail, 0, 4);
                Elementwise.scale(g, x, x, n, 2f);
                g.execute();
                float[] got = new float[4];
                be.read(x, n - 4, got, 0, 4);
                assertTrue(got[0] == 2f && got[3] == 8f, be.name() + " tail " + ParityCheck.head(got));
                be.read(x, 0, got, 0, 4);
                assertTrue(got[0] == 2f && got[3] == 8f, be.name() + " head " + ParityCheck.head(got));
            } finally {
                x.close();
            }
        }
    }
}
