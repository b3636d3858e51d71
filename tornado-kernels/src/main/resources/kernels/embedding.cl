/* Embedding family. T (output, table) is float, or half_t with -DJD_F16.
 * Timesteps TS are float, half_t with -DJD_TS_F16, or int with -DJD_TS_I32. Grid-stride 1-D launches over the output. */
#ifdef JD_F16
#define T half_t
#define LD(p, i) LDH(p, i)
#define ST(p, i, v) STH(p, i, v)
#else
#define T float
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#endif
#if defined(JD_TS_F16)
#define TS half_t
#define LD_TS(p, i) LDH(p, i)
#elif defined(JD_TS_I32)
#define TS int
#define LD_TS(p, i) ((float)(p)[i])
#else
#define TS float
#define LD_TS(p, i) ((p)[i])
#endif

#define FOR_EACH(i, n) for (long i = (long)GROUP(0) * LSIZE(0) + LID(0); i < (n); i += (long)NGROUPS(0) * LSIZE(0))

/* out [n, dim]: half = dim/2, freq_k = exp(negLogMaxPeriod * k / (half - shift)), e = t * freq;
 * [sin e, cos e], or [cos e, sin e] when flip; a trailing zero column when dim is odd. All in fp32 like diffusers. */
KERNEL void timestep_embedding(GLOBAL const TS* t, GLOBAL T* out, int n, int dim, int flip, float shift, float negLogMaxPeriod) {
    int halfDim = dim / 2;
    long total = (long)n * dim;
    FOR_EACH(i, total) {
        int row = (int)(i / dim), j = (int)(i % dim);
        float v = 0.0f;
        if (j < 2 * halfDim) {
            int k = j < halfDim ? j : j - halfDim;
            float e = negLogMaxPeriod * (float)k;
            e = e / ((float)halfDim - shift);
            float arg = LD_TS(t, row) * EXP(e);
            int first = j < halfDim;
            v = (first != flip) ? SIN(arg) : COS(arg);
        }
        ST(out, i, v);
    }
}

/* ids [n] -> out [n, dim] = table[ids]; an id outside [0, vocab) gives a zero row. */
KERNEL void gather_rows(GLOBAL const int* ids, GLOBAL const T* table, GLOBAL T* out, int n, int dim, int vocab) {
    long total = (long)n * dim;
    FOR_EACH(i, total) {
        long r = i / dim, j = i - r * dim;
        int id = ids[r];
        ST(out, i, (id >= 0 && id < vocab) ? LD(table, (long)id * dim + j) : 0.0f);
    }
}
