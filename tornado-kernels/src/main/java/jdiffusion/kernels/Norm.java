package jdiffusion.kernels;

import static jdiffusion.kernels.Elementwise.load;
import static jdiffusion.kernels.Elementwise.need;
import static jdiffusion.kernels.Elementwise.opt;
import static jdiffusion.kernels.Elementwise.sameFloat;
import static jdiffusion.kernels.Elementwise.store;

/**
 * Normalisation family: GroupNorm (with optional fused SiLU) and LayerNorm; statistics in fp32 for every dtype.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 * GroupNorm is three launches (kernels/norm.cl): chunk statistics, merge, normalise; its two small workspaces are
 * TaskGraph.temps of the call. Knob: -Djdiffusion.groupnorm.chunk (elements per statistics work group, default 8192).
 */
public final class Norm {
    private Norm() {
    }

    static final int GROUP = 256;
    /** layer_norm: rows per work group (32 items each). */
    static final int LN_ROWS = 8;
    static final int CHUNK = Integer.getInteger("jdiffusion.groupnorm.chunk", 8192);

    /** x [n, c, hw]: per (sample, group of c/groups channels) mean and biased variance, y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c], then SiLU when silu. */
    public static void groupNorm(TaskGraph g, Buffer x, Buffer gamma, Buffer beta, Buffer out, int n, int c, int hw, int groups, float eps, boolean silu) {
        sameFloat("group_norm", x, gamma, beta, out);
        if (groups <= 0 || c % groups != 0) throw new KernelException("group_norm: " + c + " channels do not split into " + groups + " groups");
        long total = (long) n * c * hw;
        need("group_norm", "x", x, total);
        need("group_norm", "out", out, total);
        need("group_norm", "gamma", gamma, c);
        need("group_norm", "beta", beta, c);
        long gs = (long) (c / groups) * hw;                       // elements per (sample, group)
        int splits = (int) Math.max(1, Math.min(64, gs / Math.max(1, CHUNK)));
        int ng = n * groups;
        Buffer stats = g.temp("group_norm.partial", DType.F32, (long) ng * splits * 3); // [n*groups, splits, (count, mean, M2)]
        Buffer meanRstd = g.temp("group_norm.mean_rstd", DType.F32, ng * 2L);         // [n*groups, (mean, rstd)]
        String o = opt(x);
        g.task("group_norm_partial", new Kernel("norm", "group_norm_partial", false, o, Norm::partialRef),
                new Launch(new long[]{(long) ng * GROUP, splits}, new long[]{GROUP, 1}), x, stats, c, hw, groups, splits, ng);
        g.task("group_norm_stats", new Kernel("norm", "group_norm_stats", Norm::statsRef),
                Launch.of1(ng, 64), stats, meanRstd, ng, splits, eps);
        g.task("group_norm_apply", new Kernel("norm", "group_norm_apply", false, o, Norm::applyRef),
                Elementwise.planes((long) n * c, hw), x, gamma, beta, meanRstd, out, total, c, hw, groups, silu ? 1 : 0);
    }

    /** x [rows, cols]: per row y = (x - mean) / sqrt(var + eps) * gamma[col] + beta[col]. */
    public static void layerNorm(TaskGraph g, Buffer x, Buffer gamma, Buffer beta, Buffer out, int rows, int cols, float eps) {
        sameFloat("layer_norm", x, gamma, beta, out);
        need("layer_norm", "x", x, (long) rows * cols);
        need("layer_norm", "out", out, (long) rows * cols);
        need("layer_norm", "gamma", gamma, cols);
        need("layer_norm", "beta", beta, cols);
        if (rows == 0 || cols == 0) return;
        g.task("layer_norm", new Kernel("norm", "layer_norm", false, opt(x), Norm::layerNormRef),
                new Launch(new long[]{(rows + LN_ROWS - 1L) / LN_ROWS * GROUP}, new long[]{GROUP}), x, gamma, beta, out, rows, cols, eps);
    }

    // ---- Java references (same arguments as the kernels) ----

    /** args: x, stats, c, hw, groups, splits, count (n*groups); work groups (ng, split) as on the device. */
    static void partialRef(Object[] a) {
        Object x = a[0];
        float[] stats = (float[]) a[1];
        int c = (Integer) a[2], hw = (Integer) a[3], groups = (Integer) a[4], splits = (Integer) a[5], ngs = (Integer) a[6];
        int gs = (c / groups) * hw, chunk = ((gs + splits - 1) / splits + 7) / 8 * 8;      // a multiple of 8, as the kernel
        Parallel.each(ngs * splits, w -> {
            int ng = w / splits, split = w % splits;
            int from = Math.min(gs, split * chunk), to = Math.min(gs, from + chunk), cnt = to - from;
            float[] v = new float[cnt];
            load(x, ng * gs + from, v, cnt);
            double s = 0;
            for (float f : v) s += f;
            float mean = cnt > 0 ? (float) (s / cnt) : 0f;
            double q = 0;
            for (float f : v) q += (double) (f - mean) * (f - mean);
            stats[w * 3] = cnt;
            stats[w * 3 + 1] = mean;
            stats[w * 3 + 2] = (float) q;
        });
    }

    /** args: stats, meanRstd, count, splits, eps. */
    static void statsRef(Object[] a) {
        float[] stats = (float[]) a[0], mr = (float[]) a[1];
        int count = (Integer) a[2], splits = (Integer) a[3];
        float eps = (Float) a[4];
        for (int ng = 0; ng < count; ng++) {
            int o = ng * splits * 3;
            double n = 0, mean = 0;
            for (int s = 0; s < splits; s++) {
                n += stats[o + s * 3];
                mean += (double) stats[o + s * 3] * stats[o + s * 3 + 1];
            }
            mean = n > 0 ? mean / n : 0;
            double m2 = 0;
            for (int s = 0; s < splits; s++) {
                double d = stats[o + s * 3 + 1] - mean;
                m2 += stats[o + s * 3 + 2] + stats[o + s * 3] * d * d;
            }
            double var = n > 0 ? m2 / n : 0;
            mr[ng * 2] = (float) mean;
            mr[ng * 2 + 1] = (float) (1.0 / Math.sqrt((float) var + eps));
        }
    }

    /** args: x, gamma, beta, meanRstd, out, total, c, hw, groups, silu; one plane (sample, channel) at a time. */
    static void applyRef(Object[] a) {
        float[] mr = (float[]) a[3];
        int total = (int) (long) (Long) a[5], c = (Integer) a[6], hw = (Integer) a[7], groups = (Integer) a[8];
        boolean silu = (Integer) a[9] != 0;
        int cpg = c / groups, planes = hw == 0 ? 0 : total / hw;
        float[] gamma = Elementwise.floats(a[1], 0, c), beta = Elementwise.floats(a[2], 0, c);
        Parallel.range(planes, 4, (p0, p1) -> {
            float[] v = new float[hw];
            for (int p = p0; p < p1; p++) {
                int ch = p % c, ng = (p / c) * groups + ch / cpg;
                float mean = mr[ng * 2], rstd = mr[ng * 2 + 1], ga = gamma[ch], be = beta[ch];
                load(a[0], p * hw, v, hw);
                for (int i = 0; i < hw; i++) {
                    float y = (v[i] - mean) * rstd * ga + be;
                    v[i] = silu ? y / (1f + (float) Math.exp(-y)) : y;
                }
                store(v, a[4], p * hw, hw);
            }
        });
    }

    /** args: x, gamma, beta, out, rows, cols, eps. */
    static void layerNormRef(Object[] a) {
        int rows = (Integer) a[4], cols = (Integer) a[5];
        float eps = (Float) a[6];
        float[] gamma = Elementwise.floats(a[1], 0, cols), beta = Elementwise.floats(a[2], 0, cols);
        Parallel.range(rows, 8, (r0, r1) -> {
            float[] v = new float[cols];
            for (int r = r0; r < r1; r++) {
                load(a[0], r * cols, v, cols);
                double s = 0;
                for (float f : v) s += f;
                float mean = (float) (s / cols);
                double q = 0;
                for (float f : v) q += (double) (f - mean) * (f - mean);
                float rstd = (float) (1.0 / Math.sqrt((float) (q / cols) + eps));
                for (int j = 0; j < cols; j++) v[j] = (v[j] - mean) * rstd * gamma[j] + beta[j];
                store(v, a[3], r * cols, cols);
            }
        });
    }
}
