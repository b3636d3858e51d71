/* Pointwise family. T is float, or half_t with -DJD_F16 (loaded/stored through LDH/STH, computed in fp32).
 * Every kernel is a grid-stride loop over a 64-bit index: 1-D launch of any number of groups. */
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
/* geglu, geglu_interleaved and add_channel are plane kernels (prelude.h) */

INLINE float jd_gelu(float x) { return 0.5f * x * (1.0f + ERF(x * 0.70710678118654752f)); }

KERNEL void silu(GLOBAL const T* x, GLOBAL T* out, long n) {
    FOR_EACH(i, n) { float v = LD(x, i); ST(out, i, v / (1.0f + EXP(-v))); }
}

KERNEL void gelu(GLOBAL const T* x, GLOBAL T* out, long n) {
    FOR_EACH(i, n) { ST(out, i, jd_gelu(LD(x, i))); }
}

KERNEL void quick_gelu(GLOBAL const T* x, GLOBAL T* out, long n) {
    FOR_EACH(i, n) { float v = LD(x, i); ST(out, i, v / (1.0f + EXP(-1.702f * v))); }
}

/* x [rows, 2*cols] -> out [rows, cols] = hidden * gelu(gate) */
KERNEL void geglu(GLOBAL const T* x, GLOBAL T* out, int rows, int cols) {   /* plane = row */
    PLANE_SETUP(cols)
    if (plane >= rows) return;
    GLOBAL const T* xp = x + plane * 2 * cols;
    GLOBAL T* op = out + plane * cols;
    for (int j = from_ + LID(0); j < to_; j += LSIZE(0)) ST(op, j, LD(xp, j) * jd_gelu(LD(xp, cols + j)));
}

/* x [rows, 2*cols] in groups of 16 columns (8 hidden units, then their 8 gates; Gemm.gegluInterleave) -> out [rows, cols] */
KERNEL void geglu_interleaved(GLOBAL const T* x, GLOBAL T* out, int rows, int cols) {   /* plane = row */
    PLANE_SETUP(cols)
    if (plane >= rows) return;
    GLOBAL const T* xp = x + plane * 2 * cols;
    GLOBAL T* op = out + plane * cols;
    for (int j = from_ + LID(0); j < to_; j += LSIZE(0)) {
        int v = (j >> 3) * 16 + (j & 7);
        ST(op, j, LD(xp, v) * jd_gelu(LD(xp, v + 8)));
    }
}

KERNEL void add_scaled(GLOBAL const T* a, GLOBAL const T* b, GLOBAL T* out, long n, float alpha) {
    FOR_EACH(i, n) { ST(out, i, (LD(a, i) + LD(b, i)) * alpha); }
}

KERNEL void scale(GLOBAL const T* x, GLOBAL T* out, long n, float alpha) {
    FOR_EACH(i, n) { ST(out, i, LD(x, i) * alpha); }
}

/* x [outer, channels, inner] + bias[c] or bias[o*channels + c]: a plane kernel, plane = o*channels + c */
KERNEL void add_channel(GLOBAL const T* x, GLOBAL const T* bias, GLOBAL T* out, long n, int channels, int inner, int perOuter) {
    PLANE_SETUP(inner)                                   /* plane = o*channels + c */
    if (plane * inner >= n) return;
    float bv = LD(bias, perOuter ? plane : plane % channels);
    GLOBAL const T* xp = x + plane * inner;
    GLOBAL T* op = out + plane * inner;
    for (int j = from_ + LID(0); j < to_; j += LSIZE(0)) ST(op, j, LD(xp, j) + bv);
}

#ifdef JD_SRC_F16
#define SRC_T half_t
#define LD_SRC(p, i) LDH(p, i)
#else
#define SRC_T float
#define LD_SRC(p, i) ((p)[i])
#endif
#ifdef JD_DST_F16
#define DST_T half_t
#define ST_DST(p, i, v) STH(p, i, v)
#else
#define DST_T float
#define ST_DST(p, i, v) ((p)[i] = (v))
#endif

KERNEL void cast(GLOBAL const SRC_T* src, GLOBAL DST_T* dst, long n) {
    FOR_EACH(i, n) { ST_DST(dst, i, LD_SRC(src, i)); }
}
