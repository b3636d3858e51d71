/* Normalisation family. T is float, or half_t with -DJD_F16; statistics are always fp32.
 * GroupNorm runs in three launches so that a GPU is full even at batch 1:
 *   group_norm_partial  global (n*groups*256, splits), local (256, 1): per (sample*group, split) chunk count, mean, M2 (two-pass)
 *   group_norm_stats    1-D over n*groups: merges the chunks (Chan et al.) into mean and 1/sqrt(var + eps)
 *   group_norm_apply    grid-stride over n*c*hw: normalise, gamma/beta, optional SiLU
 * LayerNorm: layer_norm, one work group of 256 per row (global rows*256), two-pass mean/variance. */
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
    long chunk = (gs + splits - 1) / splits;
    long from = (long)split * chunk, to = from + chunk;
    if (to > gs) to = gs;
    if (from > to) from = to;
    GLOBAL const T* p = x + (long)ng * gs;
    float s = 0.0f;
    for (long i = from + l; i < to; i += ls) s += LD(p, i);
    long count = to - from;
    float total = norm_block_sum(buf, s);
    float mean = count > 0 ? total / (float)count : 0.0f;
    float q = 0.0f;
    for (long i = from + l; i < to; i += ls) { float d = LD(p, i) - mean; q += d * d; }
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

KERNEL void group_norm_apply(GLOBAL const T* x, GLOBAL const T* gamma, GLOBAL const T* beta, GLOBAL const float* meanRstd,
                             GLOBAL T* out, long total, int c, int hw, int groups, int silu) {
    int cpg = c / groups;
    for (long i = (long)GROUP(0) * LSIZE(0) + LID(0); i < total; i += (long)NGROUPS(0) * LSIZE(0)) {
        long plane = i / hw;                          /* sample*c + channel */
        int ch = (int)(plane % c);
        long ng = (plane / c) * groups + ch / cpg;
        float y = (LD(x, i) - meanRstd[ng * 2]) * meanRstd[ng * 2 + 1] * LD(gamma, ch) + LD(beta, ch);
        if (silu) y = y / (1.0f + EXP(-y));
        ST(out, i, y);
    }
}

KERNEL void layer_norm(GLOBAL const T* x, GLOBAL const T* gamma, GLOBAL const T* beta, GLOBAL T* out, int rows, int cols, float eps) {
    LOCAL_ARRAY(float, buf, NORM_GROUP);
    int l = LID(0), ls = LSIZE(0);
    long row = GROUP(0);
    if (row >= rows) return;
    GLOBAL const T* p = x + row * cols;
    float s = 0.0f;
    for (int j = l; j < cols; j += ls) s += LD(p, j);
    float mean = norm_block_sum(buf, s) / (float)cols;
    float q = 0.0f;
    for (int j = l; j < cols; j += ls) { float d = LD(p, j) - mean; q += d * d; }
    float rstd = RSQRT(norm_block_sum(buf, q) / (float)cols + eps);
    for (int j = l; j < cols; j += ls) ST(out, row * cols + j, (LD(p, j) - mean) * rstd * LD(gamma, j) + LD(beta, j));
}
