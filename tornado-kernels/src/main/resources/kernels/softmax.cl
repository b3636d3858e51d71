/* Row softmax family. T is float, or half_t with -DJD_F16; fp32 arithmetic.
 * softmax: one work group of SOFTMAX_GROUP items per row (global rows*SOFTMAX_GROUP), three passes over the row
 * (max, sum of exp, write) with local-memory tree reductions; any number of columns. */
#ifdef JD_F16
#define T half_t
#define LD(p, i) LDH(p, i)
#define ST(p, i, v) STH(p, i, v)
#else
#define T float
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#endif

#define SOFTMAX_GROUP 256

INLINE float softmax_block_max(LOCAL_PTR float* buf, float v) {
    int l = LID(0);
    buf[l] = v;
    BARRIER();
    for (int s = LSIZE(0) / 2; s > 0; s >>= 1) {
        if (l < s) buf[l] = FMAX(buf[l], buf[l + s]);
        BARRIER();
    }
    float r = buf[0];
    BARRIER();
    return r;
}

INLINE float softmax_block_sum(LOCAL_PTR float* buf, float v) {
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

/* out[r, :] = softmax(scale * x[r, :]); causal: columns j > r % cols are masked (probability 0). */
KERNEL void softmax(GLOBAL const T* x, GLOBAL T* out, int rows, int cols, float scale, int causal) {
    LOCAL_ARRAY(float, buf, SOFTMAX_GROUP);
    long row = GROUP(0);
    if (row >= rows) return;
    int l = LID(0), ls = LSIZE(0);
    int valid = causal ? (int)(row % cols) + 1 : cols;
    GLOBAL const T* p = x + row * cols;
    GLOBAL T* o = out + row * cols;
    float m = -INFINITY_F;
    for (int j = l; j < valid; j += ls) m = FMAX(m, scale * LD(p, j));
    m = softmax_block_max(buf, m);
    float s = 0.0f;
    for (int j = l; j < valid; j += ls) s += EXP(scale * LD(p, j) - m);
    float inv = 1.0f / softmax_block_sum(buf, s);
    for (int j = l; j < cols; j += ls) ST(o, j, j < valid ? EXP(scale * LD(p, j) - m) * inv : 0.0f);
}
