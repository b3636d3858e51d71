/* Layout family. T is float, or half_t with -DJD_F16.
 *   upsample_nearest2x, concat_channels: a work group per (output plane, chunk of 2048 positions), 1-D launch
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

/* upsample_nearest2x and concat_channels are plane kernels (prelude.h), a plane per output channel plane */
/* x [planes, h, w] -> out [planes, 2h, 2w]; total = planes*4*h*w */
KERNEL void upsample_nearest2x(GLOBAL const T* x, GLOBAL T* out, long total, int h, int w) {
    int w2 = 2 * w, pos = 4 * h * w;
    PLANE_SETUP(pos)
    if (plane * pos >= total) return;
    GLOBAL const T* xp = x + plane * h * w;
    GLOBAL T* op = out + plane * pos;
    for (int j = from_ + LID(0); j < to_; j += LSIZE(0)) {
        int oy = j / w2, ox = j - oy * w2;
        ST(op, j, LD(xp, (oy >> 1) * w + (ox >> 1)));
    }
}

/* a [n, ca, hw], b [n, cb, hw] -> out [n, ca+cb, hw]; total = n*(ca+cb)*hw */
KERNEL void concat_channels(GLOBAL const T* a, GLOBAL const T* b, GLOBAL T* out, long total, int ca, int cb, int hw) {
    int cc = ca + cb;
    PLANE_SETUP(hw)
    if (plane * hw >= total) return;
    long s = plane / cc;
    int ch = (int)(plane - s * cc);
    GLOBAL const T* src = ch < ca ? a + (s * ca + ch) * hw : b + (s * cb + ch - ca) * hw;
    GLOBAL T* op = out + plane * hw;
    for (int j = from_ + LID(0); j < to_; j += LSIZE(0)) ST(op, j, LD(src, j));
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
