/* Layout family. T is float, or half_t with -DJD_F16.
 *   upsample_nearest2x, concat_channels: grid-stride loops over the output (64-bit index), 1-D launch
 *   transpose: 32x32 tiles through local memory, local (32, 8), global (cover(cols,32), cover(rows,32)/4, min(batch, 65535));
 *              the batch is walked with a stride of the z groups so any batch works */
#ifdef JD_F16
#define T half_t
#define LD(p, i) LDH(p, i)
#define ST(p, i, v) STH(p, i, v)
#else
#define T float
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#endif

#define FOR_EACH(i, n) for (long i = (long)GROUP(0) * LSIZE(0) + LID(0); i < (n); i += (long)NGROUPS(0) * LSIZE(0))
#define TILE 32
#define TILE_ROWS 8

/* x [planes, h, w] -> out [planes, 2h, 2w]; total = planes*4*h*w */
KERNEL void upsample_nearest2x(GLOBAL const T* x, GLOBAL T* out, long total, int h, int w) {
    long w2 = 2L * w, h2 = 2L * h;
    FOR_EACH(i, total) {
        long ox = i % w2, t = i / w2;
        long oy = t % h2, plane = t / h2;
        ST(out, i, LD(x, (plane * h + oy / 2) * w + ox / 2));
    }
}

/* a [n, ca, hw], b [n, cb, hw] -> out [n, ca+cb, hw]; total = n*(ca+cb)*hw */
KERNEL void concat_channels(GLOBAL const T* a, GLOBAL const T* b, GLOBAL T* out, long total, int ca, int cb, int hw) {
    int cc = ca + cb;
    FOR_EACH(i, total) {
        long j = i % hw, t = i / hw;
        long ch = t % cc, s = t / cc;
        ST(out, i, ch < ca ? LD(a, (s * ca + ch) * hw + j) : LD(b, (s * cb + ch - ca) * hw + j));
    }
}

/* x [batch, rows, cols] -> out [batch, cols, rows] */
KERNEL void transpose(GLOBAL const T* x, GLOBAL T* out, int batch, int rows, int cols) {
    LOCAL_ARRAY(float, tile, TILE * (TILE + 1));
    int tx = LID(0), ty = LID(1);
    int c0 = GROUP(0) * TILE, r0 = GROUP(1) * TILE;
    for (int bz = GROUP(2); bz < batch; bz += NGROUPS(2)) {
        long base = (long)bz * rows * cols;
        for (int k = 0; k < TILE; k += TILE_ROWS) {
            int r = r0 + ty + k, c = c0 + tx;
            if (r < rows && c < cols) tile[(ty + k) * (TILE + 1) + tx] = LD(x, base + (long)r * cols + c);
        }
        BARRIER();
        for (int k = 0; k < TILE; k += TILE_ROWS) {
            int c = c0 + ty + k, r = r0 + tx;
            if (r < rows && c < cols) ST(out, base + (long)c * rows + r, tile[tx * (TILE + 1) + ty + k]);
        }
        BARRIER();
    }
}
