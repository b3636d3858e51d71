package jdiffusion.kernels;

import static jdiffusion.kernels.ParityCheck.close;
import static jdiffusion.kernels.ParityCheck.half;
import static jdiffusion.kernels.ParityCheck.random;
import static jdiffusion.kernels.ParityCheck.tol;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Timestep embedding (diffusers get_timestep_embedding) and token gather on every backend. */
class EmbeddingTest {
    static final float[] TIMESTEPS = {0f, 1f, 999f, 500.5f, 981f, 21f, 0.25f};
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

    static double[] timestepDouble(float[] t, int dim, boolean flip, double shift, double maxPeriod) {
        int half = dim / 2;
        double[] out = new double[t.length * dim];
        for (int r = 0; r < t.length; r++)
            for (int k = 0; k < half; k++) {
                double arg = t[r] * Math.exp(-Math.log(maxPeriod) * k / (half - shift));
                out[r * dim + k] = flip ? Math.cos(arg) : Math.sin(arg);
                out[r * dim + half + k] = flip ? Math.sin(arg) : Math.cos(arg);
            }
        return out;
    }

    static float[] timestep(Backend be, DType tsType, DType outType, float[] t, int dim, boolean flip, float shift) {
        int n = t.length;
        Buffer ts = be.allocate("t", tsType, n), out = be.allocate("emb", outType, (long) n * dim);
        try (TaskGraph g = new TaskGraph("timestep", be)) {
            if (tsType == DType.I32) {
                int[] ti = new int[n];
                for (int i = 0; i < n; i++) ti[i] = (int) t[i];
                be.write(ts, 0, ti, 0, n);
            } else be.write(ts, t);
            Embedding.timestep(g, ts, out, n, dim, flip, shift, 10000f);
            g.execute();
            return be.read(out);
        } finally {
            ts.close();
            out.close();
        }
    }

    @Test
    void timestepMatchesDiffusersFormula() {
        // fp32 arguments up to ~1000 rad carry ~3e-5 absolute error in sin/cos (as in diffusers, which computes in fp32)
        for (int dim : new int[]{320, 32, 7, 1, 2})
            for (boolean flip : new boolean[]{true, false})
                for (float shift : new float[]{0f, 1f}) {
                    if (dim / 2 - shift <= 0) continue;
                    float[] got = timestep(JAVA, DType.F32, DType.F32, TIMESTEPS, dim, flip, shift);
                    close("timestep dim " + dim + " flip " + flip + " shift " + shift, got, timestepDouble(TIMESTEPS, dim, flip, shift, 10000), 1e-4);
                    if (dim % 2 == 1) for (int r = 0; r < TIMESTEPS.length; r++) assertEquals(0f, got[r * dim + dim - 1], "odd-dim zero pad");
                }
        // t = 0: sin 0 = 0, cos 0 = 1; flip_sin_to_cos puts the cosines first (SD's time_proj)
        float[] zero = timestep(JAVA, DType.F32, DType.F32, new float[]{0f}, 4, true, 0f);
        assertArrayEquals(new float[]{1f, 1f, 0f, 0f}, zero);
        float[] one = timestep(JAVA, DType.F32, DType.F32, new float[]{1f}, 4, false, 1f);   // freq = exp(-ln 1e4 * k / 1)
        assertArrayEquals(new float[]{(float) Math.sin(1), (float) Math.sin(1e-4), (float) Math.cos(1), (float) Math.cos(1e-4)}, one, 1e-7f);
    }

    @Test
    void timestepParity() {
        for (DType ts : new DType[]{DType.F32, DType.F16, DType.I32})
            for (DType out : new DType[]{DType.F32, DType.F16})
                for (int dim : new int[]{320, 7}) {
                    float[] t = ts == DType.F16 ? half(TIMESTEPS) : TIMESTEPS.clone();
                    if (ts == DType.I32) for (int i = 0; i < t.length; i++) t[i] = (int) t[i];
                    float[] want = timestep(JAVA, ts, out, t, dim, true, 1f);
                    // sin/cos of arguments near 1000 in fp32 differ by a few ulp between libms
                    for (Backend be : backends)
                        close("timestep " + be.name() + " ts " + ts + " out " + out + " dim " + dim, timestep(be, ts, out, t, dim, true, 1f), want, out == DType.F16 ? 1e-2 : 1e-5);
                }
    }

    static float[] gather(Backend be, DType dt, int[] ids, float[] table, int dim, int vocab) {
        Buffer idb = be.allocate("ids", DType.I32, ids.length), tb = ParityCheck.upload(be, "table", dt, table), out = be.allocate("rows", dt, (long) ids.length * dim);
        try (TaskGraph g = new TaskGraph("gather", be)) {
            be.write(idb, 0, ids, 0, ids.length);
            Embedding.gather(g, idb, tb, out, ids.length, dim, vocab);
            g.execute();
            return be.read(out);
        } finally {
            idb.close();
            tb.close();
            out.close();
        }
    }

    @Test
    void gatherRows() {
        int vocab = 1000, dim = 33;
        int[] ids = {0, 999, 5, 5, 49, 1, 998, 0, 77};
        for (DType dt : new DType[]{DType.F32, DType.F16}) {
            float[] table = random(dim, vocab * dim, -1, 1);
            if (dt == DType.F16) table = half(table);
            float[] want = new float[ids.length * dim];
            for (int r = 0; r < ids.length; r++) System.arraycopy(table, ids[r] * dim, want, r * dim, dim);
            for (Backend be : backends) assertArrayEquals(want, gather(be, dt, ids, table, dim, vocab), "gather " + be.name() + " " + dt);
        }
    }

    @Test
    void gatherOutOfRange() {
        int vocab = 10, dim = 4;
        float[] table = random(1, vocab * dim, 1, 2);
        int[] ids = {3, 10, -1, 9};
        KernelException e = assertThrows(KernelException.class, () -> gather(JAVA, DType.F32, ids, table, dim, vocab));
        assertEquals(true, e.getMessage().contains("id 10"), e.getMessage());
        for (Backend be : backends) {
            if (be.name().equals("java")) continue;
            float[] got = gather(be, DType.F32, ids, table, dim, vocab);
            for (int j = 0; j < dim; j++) {
                assertEquals(table[3 * dim + j], got[j]);
                assertEquals(0f, got[dim + j], be.name() + " zero row for id 10");
                assertEquals(0f, got[2 * dim + j], be.name() + " zero row for id -1");
                assertEquals(table[9 * dim + j], got[3 * dim + j]);
            }
        }
    }
}
