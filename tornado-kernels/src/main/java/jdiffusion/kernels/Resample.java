package jdiffusion.kernels;

import static jdiffusion.kernels.Elementwise.load;
import static jdiffusion.kernels.Elementwise.need;
import static jdiffusion.kernels.Elementwise.opt;
import static jdiffusion.kernels.Elementwise.sameFloat;
import static jdiffusion.kernels.Elementwise.store;

/**
 * Layout family: nearest 2x upsample, channel concat, batched transpose.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 * Kernels in kernels/resample.cl; transpose goes through 32x32 local-memory tiles.
 */
public final class Resample {
    private Resample() {
    }

    static final int TILE = 32, TILE_ROWS = 8, MAX_Z = 65535;

    /** x [n, c, h, w] -> out [n, c, 2h, 2w], out[.., y, x] = x[.., y/2, x/2]. */
    public static void upsampleNearest2x(TaskGraph g, Buffer x, Buffer out, int n, int c, int h, int w) {
        sameFloat("upsample_nearest2x", x, out);
        long total = 4L * n * c * h * w;
        need("upsample_nearest2x", "x", x, total / 4);
        need("upsample_nearest2x", "out", out, total);
        g.task("upsample_nearest2x", new Kernel("resample", "upsample_nearest2x", false, opt(x), Resample::upsampleRef),
                Elementwise.planes(total / Math.max(1, 4L * h * w), 4 * h * w), x, out, total, h, w);
    }

    /** a [n, ca, hw], b [n, cb, hw] -> out [n, ca + cb, hw] (torch.cat dim=1). */
    public static void concatChannels(TaskGraph g, Buffer a, Buffer b, Buffer out, int n, int ca, int cb, int hw) {
        sameFloat("concat_channels", a, b, out);
        long total = (long) n * (ca + cb) * hw;
        need("concat_channels", "a", a, (long) n * ca * hw);
        need("concat_channels", "b", b, (long) n * cb * hw);
        need("concat_channels", "out", out, total);
        g.task("concat_channels", new Kernel("resample", "concat_channels", false, opt(a), Resample::concatRef),
                Elementwise.planes(total / Math.max(1, hw), hw), a, b, out, total, ca, cb, hw);
    }

    /** x [batch, rows, cols] -> out [batch, cols, rows]. */
    public static void transpose(TaskGraph g, Buffer x, Buffer out, int batch, int rows, int cols) {
        sameFloat("transpose", x, out);
        need("transpose", "x", x, (long) batch * rows * cols);
        need("transpose", "out", out, (long) batch * rows * cols);
        if (batch == 0 || rows == 0 || cols == 0) return;
        long gx = Launch.cover(cols, TILE), gy = Launch.cover(rows, TILE) / TILE * TILE_ROWS;
        g.task("transpose", new Kernel("resample", "transpose", false, opt(x), Resample::transposeRef),
                new Launch(new long[]{gx, gy, Math.min(batch, MAX_Z)}, new long[]{TILE, TILE_ROWS, 1}), x, out, batch, rows, cols);
    }

    /** args: x, out, total, h, w; one output row at a time. */
    static void upsampleRef(Object[] a) {
        int total = (int) (long) (Long) a[2], h = (Integer) a[3], w = (Integer) a[4];
        int outRows = total / Math.max(1, 2 * w);
        Parallel.range(outRows, 64, (r0, r1) -> {
            float[] src = new float[w], dst = new float[2 * w];
            for (int r = r0; r < r1; r++) {
                int plane = r / (2 * h), oy = r % (2 * h);
                load(a[0], (plane * h + oy / 2) * w, src, w);
                for (int i = 0; i < 2 * w; i++) dst[i] = src[i / 2];
                store(dst, a[1], r * 2 * w, 2 * w);
            }
        });
    }

    /** args: a, b, out, total, ca, cb, hw; one output plane at a time. */
    static void concatRef(Object[] args) {
        int total = (int) (long) (Long) args[3], ca = (Integer) args[4], cb = (Integer) args[5], hw = (Integer) args[6];
        int planes = hw == 0 ? 0 : total / hw, cc = ca + cb;
        Parallel.range(planes, 16, (p0, p1) -> {
            float[] v = new float[hw];
            for (int p = p0; p < p1; p++) {
                int s = p / cc, ch = p % cc;
                if (ch < ca) load(args[0], (s * ca + ch) * hw, v, hw);
                else load(args[1], (s * cb + ch - ca) * hw, v, hw);
                store(v, args[2], p * hw, hw);
            }
        });
    }

    /** args: x, out, batch, rows, cols; 32x32 blocks in parallel. */
    static void transposeRef(Object[] a) {
        int batch = (Integer) a[2], rows = (Integer) a[3], cols = (Integer) a[4];
        int rt = (rows + TILE - 1) / TILE, ct = (cols + TILE - 1) / TILE;
        Parallel.range(batch * rt * ct, 4, (t0, t1) -> {
            float[] in = new float[TILE], col = new float[TILE * TILE];
            for (int t = t0; t < t1; t++) {
                int b = t / (rt * ct), r0 = (t / ct) % rt * TILE, c0 = t % ct * TILE;
                int nr = Math.min(TILE, rows - r0), nc = Math.min(TILE, cols - c0);
                long base = (long) b * rows * cols;
                for (int r = 0; r < nr; r++) {
                    load(a[0], (int) (base + (long) (r0 + r) * cols + c0), in, nc);
                    for (int c = 0; c < nc; c++) col[c * TILE + r] = in[c];
                }
                for (int c = 0; c < nc; c++) {
                    System.arraycopy(col, c * TILE, in, 0, nr);
                    store(in, a[1], (int) (base + (long) (c0 + c) * rows + r0), nr);
                }
            }
        });
    }
}
