/* Normalisation family. T is float, or half_t with -DJD_F16; statistics are always fp32.
 * GroupNorm runs in three launches so that a GPU is full even at batch 1:
 *   group_norm_partial  global (n*groups*256, splits), local (256, 1): per (sample*group, split) chunk count, mean, M2 (two-pass)
 *   group_norm_stats    1-D over n*groups: merges the chunks (Chan et al.) into mean and 1/sqrt(var + eps)
 *   group_norm_apply    a plane kernel (prelude.h) over the sample*channel planes: normalise, gamma/beta, optional SiLU
 * LayerNorm: layer_norm, 8 rows per work group of 256 (32 items per row), two-pass mean/variance.
 * Where the plane / group / row length is a multiple of 8 (every SD shape), each item moves 8 elements per access
 * (16-byte fp16 loads and stores: LD8 / ST8, prelude.h); else one element per access. */
#ifdef JD_F16
#define T half_t
#define LD(p, i) LDH(p, i)
#define ST(p, i, v) STH(p, i, v)
#else
#define T float
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#endif

#define NORM_GROUP 256

/* Sum of v over the work group (LSIZE(0) a power of two <= NORM_GROUP); every item gets the result. */
INLINE float norm_block_sum(LOCAL_PTR float* buf, float v) {
    int l = LID(0);
    buf[l] = v;
    BARRIER();
    for (int s = LSIZE(0) / 2; s > 0; s >>= 1) {
        if (l < s) buf[l] += buf[l + s];
        BARRIER();
    }
    float r = buf[0];
    BARRIER();
    return r;
}

KERNEL void group_norm_partial(GLOBAL const T* x, GLOBAL float* stats, int c, int hw, int groups, int splits, int ngCount) { /* ngCount = n*groups = GROUP count of dimension 0 (the Java reference has no launch) */
    LOCAL_ARRAY(float, buf, NORM_GROUP);
    int ng = GROUP(0), split = GROUP(1), l = LID(0), ls = LSIZE(0);
    long gs = (long)(c / groups) * hw;               /* elements per (sample, group) */
    long chunk = ((gs + splits - 1) / splits + 7) / 8 * 8;   /* a multiple of 8 (Norm.partialRef splits alike) */
    long from = (long)split * chunk, to = from + chunk;
    if (to > gs) to = gs;
    if (from > to) from = to;
    GLOBAL const T* p = x + (long)ng * gs;
    int vec = (gs & 7) == 0;                          /* then from, to and the group's start are multiples of 8 */
    float s = 0.0f;
    if (vec) {
        for (long i = from + 8 * l; i < to; i += 8 * ls) { float f[8]; LD8(p, i, f); for (int k = 0; k < 8; k++) s += f[k]; }
    } else {
        for (long i = from + l; i < to; i += ls) s += LD(p, i);
    }
    long count = to - from;
    float total = norm_block_sum(buf, s);
    float mean = count > 0 ? total / (float)count : 0.0f;
    float q = 0.0f;
    if (vec) {
        for (long i = from + 8 * l; i < to; i += 8 * ls) { float f[8]; LD8(p, i, f); for (int k = 0; k < 8; k++) { float d = f[k] - mean; q += d * d; } }
    } else {
        for (long i = from + l; i < to; i += ls) { float d = LD(p, i) - mean; q += d * d; }
    }
    float m2 = norm_block_sum(buf, q);
    if (l == 0) {
        long o = ((long)ng * splits + split) * 3;
        stats[o] = (float)count;
        stats[o + 1] = mean;
        stats[o + 2] = m2;
    }
}

KERNEL void group_norm_stats(GLOBAL const float* stats, GLOBAL float* meanRstd, int count, int splits, float eps) {
    int ng = GID(0);
    if (ng >= count) return;
    GLOBAL const float* st = stats + (long)ng * splits * 3;
    float n = 0.0f, mean = 0.0f;
    for (int s = 0; s < splits; s++) { n += st[s * 3]; mean += st[s * 3] * st[s * 3 + 1]; }
    mean = n > 0.0f ? mean / n : 0.0f;
    float m2 = 0.0f;
    for (int s = 0; s < splits; s++) { float d = st[s * 3 + 1] - mean; m2 += st[s * 3 + 2] + st[s * 3] * d * d; }
    float var = n > 0.0f ? m2 / n : 0.0f;
    meanRstd[ng * 2] = mean;
    meanRstd[ng * 2 + 1] = RSQRT(var + eps);
}

/* A plane kernel (prelude.h), plane = sample*c + channel: the plane's scale is computed once per item, then
 * y = (x - mean) * scale + beta (+ SiLU) over the group's positions. */
KERNEL void group_norm_apply(GLOBAL const T* x, GLOBAL const T* gamma, GLOBAL const T* beta, GLOBAL const float* meanRstd,
                             GLOBAL T* out, long total, int c, int hw, int groups, int silu) {
    PLANE_SETUP(hw)
    if (plane * hw >= total) return;
    int ch = (int)(plane % c);
    long ng = (plane / c) * groups + ch / (c / groups);
    float mean = meanRstd[ng * 2], sc = meanRstd[ng * 2 + 1] * LD(gamma, ch), sh = LD(beta, ch);
    GLOBAL const T* xp = x + plane * hw;
    GLOBAL T* op = out + plane * hw;
    if ((hw & 7) == 0) {                          /* from_ and to_ are multiples of 8 too */
        for (int j = from_ + 8 * LID(0); j < to_; j += 8 * LSIZE(0)) {
            float f[8];
            LD8(xp, j, f);
            for (int k = 0; k < 8; k++) {
                float y = (f[k] - mean) * sc + sh;
                f[k] = silu ? y / (1.0f + EXP(-y)) : y;
            }
            ST8(op, j, f);
        }
        return;
    }
    for (int j = from_ + LID(0); j < to_; j += LSIZE(0)) {
        float y = (LD(xp, j) - mean) * sc + sh;   /* x - mean first: no cancellation when the variance is tiny */
        if (silu) y = y / (1.0f + EXP(-y));
        ST(op, j, y);
    }
}

/* LN_ROWS rows per work group of NORM_GROUP items, NORM_GROUP / LN_ROWS (32) lanes per row; two-pass mean/variance.
 * Launch: global (cover(rows, LN_ROWS) / LN_ROWS * NORM_GROUP), local (NORM_GROUP). */
#define LN_ROWS 8
#define LN_LANES (NORM_GROUP / LN_ROWS)
/* Sum over the LN_LANES lanes of each row segment of the group; every lane of the segment gets its row's sum. */
INLINE float ln_row_sum(LOCAL_PTR float* buf, float v) {
    int l = LID(0), lane = l % LN_LANES;
    buf[l] = v;
    BARRIER();
    for (int s = LN_LANES / 2; s > 0; s >>= 1) {
        if (lane < s) buf[l] += buf[l + s];
        BARRIER();
    }
    float r = buf[l - lane];
    BARRIER();
    return r;
}

KERNEL void layer_norm(GLOBAL const T* x, GLOBAL const T* gamma, GLOBAL const T* beta, GLOBAL T* out, int rows, int cols, float eps) {
    LOCAL_ARRAY(float, buf, NORM_GROUP);
    int l = LID(0), lane = l % LN_LANES;
    long row = (long)GROUP(0) * LN_ROWS + l / LN_LANES;
    int n = row < rows ? cols : 0;                    /* rows past the end still take part in the barriers */
    GLOBAL const T* p = x + row * cols;
    GLOBAL T* o = out + row * cols;
    if ((cols & 7) == 0) {                            /* rows start 16-byte aligned: 8 elements per access */
        float s = 0.0f;
        for (int j = 8 * lane; j < n; j += 8 * LN_LANES) { float f[8]; LD8(p, j, f); for (int k = 0; k < 8; k++) s += f[k]; }
        float mean = ln_row_sum(buf, s) / (float)cols;
        float q = 0.0f;
        for (int j = 8 * lane; j < n; j += 8 * LN_LANES) { float f[8]; LD8(p, j, f); for (int k = 0; k < 8; k++) { float d = f[k] - mean; q += d * d; } }
        float rstd = RSQRT(ln_row_sum(buf, q) / (float)cols + eps);
        for (int j = 8 * lane; j < n; j += 8 * LN_LANES) {
            float f[8], gm[8], bt[8];
            LD8(p, j, f);
            LD8(gamma, j, gm);
            LD8(beta, j, bt);
            for (int k = 0; k < 8; k++) f[k] = (f[k] - mean) * rstd * gm[k] + bt[k];
            ST8(o, j, f);
        }
        return;
    }
    float s = 0.0f;
    for (int j = lane; j < n; j += LN_LANES) s += LD(p, j);
    float mean = ln_row_sum(buf, s) / (float)cols;
    float q = 0.0f;
    for (int j = lane; j < n; j += LN_LANES) { float d = LD(p, j) - mean; q += d * d; }
    float rstd = RSQRT(ln_row_sum(buf, q) / (float)cols + eps);
    for (int j = lane; j < n; j += LN_LANES) ST(o, j, (LD(p, j) - mean) * rstd * LD(gamma, j) + LD(beta, j));
}
