/*
 * GEMM family, portable (OpenCL C and CUDA through prelude.h). The Java reference (Gemm.reference) defines the result.
 *
 *   c[z] = alpha * a[z] . op(b[z]) + bias      a [m,k], op(b) = b [n,k]^T (transB=1) or b [k,n] (transB=0), bias [n],
 *                                              c [m,n], row-major, z = batch index = GROUP(2), batches contiguous.
 *
 * gemm_tiled_f32 / gemm_tiled_f16 (-DJD_HALF: fp16 storage, fp32 accumulation): one work group of
 * (TILE_N/REG_N) x (TILE_M/REG_M) work items computes a TILE_M x TILE_N tile of c, stepping over k by TILE_K through
 * local memory; each work item owns REG_M x REG_N outputs strided by the group size (rows ly + i*TY, columns
 * lx + j*TX: conflict-free local reads, coalesced stores). Ragged m, n, k are zero-filled on load and masked on store.
 * Defaults 64x64 tiles, 4x4 per work item; "-DTILE_M=128 -DTILE_N=128 -DREG_M=8 -DREG_N=8" is the large-tile variant.
 * Launch: global (ceil(n/TILE_N)*TX, ceil(m/TILE_M)*TY, batch), local (TX, TY, 1).
 *
 * gemm_skinny_f32 / gemm_skinny_f16 (same arguments; transB = 1 and m <= SK_MAXM only): a few rows against a large
 * weight, e.g. every ResnetBlock2D's time_emb_proj ([batch, 1280] x [n, 1280]^T). The tiled kernel has only
 * ceil(n/64) work groups there, each walking all of k; here one work group of SK_GROUP items owns one output column:
 * the items stride over k (the weight row read once, coalesced), each keeps the SK_MAXM row sums, and a local tree
 * reduction finishes them. Launch: global (n*SK_GROUP, batch), local (SK_GROUP, 1).
 */
#ifndef TILE_M
#define TILE_M 64
#endif
#ifndef TILE_N
#define TILE_N 64
#endif
#ifndef TILE_K
#define TILE_K 16
#endif
#ifndef REG_M
#define REG_M 4
#endif
#ifndef REG_N
#define REG_N 4
#endif
#define TX (TILE_N / REG_N)
#define TY (TILE_M / REG_M)
#define NT (TX * TY)
#define LDA_S (TILE_M + 1)
#define LDB_S (TILE_N + 1)

#ifdef JD_HALF
#define REAL half_t
#define LD(p, i) LDH(p, i)
#define ST(p, i, v) STH(p, i, v)
#define GEMM_TILED gemm_tiled_f16
#define GEMM_SKINNY gemm_skinny_f16
#else
#define REAL float
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#define GEMM_TILED gemm_tiled_f32
#define GEMM_SKINNY gemm_skinny_f32
#endif
#define SK_GROUP 64
#define SK_MAXM 16

KERNEL void GEMM_TILED(GLOBAL const REAL* a, GLOBAL const REAL* b, GLOBAL const REAL* bias, GLOBAL REAL* c,
                       int batch, int m, int n, int k, int transB, int hasBias, float alpha) {
    LOCAL_ARRAY(float, as, TILE_K * LDA_S);   /* as[kk][mm] */
    LOCAL_ARRAY(float, bs, TILE_K * LDB_S);   /* bs[kk][nn] */
    int lx = LID(0), ly = LID(1), tid = ly * TX + lx;
    int n0 = GROUP(0) * TILE_N, m0 = GROUP(1) * TILE_M, z = GROUP(2);
    long aBase = (long)z * m * k, bBase = (long)z * n * k, cBase = (long)z * m * n;
    float acc[REG_M][REG_N];
    for (int i = 0; i < REG_M; i++)
        for (int j = 0; j < REG_N; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < k; k0 += TILE_K) {
        /* a tile: TILE_M rows x TILE_K, read along k (coalesced), stored transposed */
        for (int idx = tid; idx < TILE_M * TILE_K; idx += NT) {
            int mm = idx / TILE_K, kk = idx % TILE_K;
            int gm = m0 + mm, gk = k0 + kk;
            as[kk * LDA_S + mm] = (gm < m && gk < k) ? LD(a, aBase + (long)gm * k + gk) : 0.0f;
        }
        /* b tile: TILE_N columns x TILE_K */
        if (transB) {
            for (int idx = tid; idx < TILE_N * TILE_K; idx += NT) {
                int nn = idx / TILE_K, kk = idx % TILE_K;
                int gn = n0 + nn, gk = k0 + kk;
                bs[kk * LDB_S + nn] = (gn < n && gk < k) ? LD(b, bBase + (long)gn * k + gk) : 0.0f;
            }
        } else {
            for (int idx = tid; idx < TILE_N * TILE_K; idx += NT) {
                int kk = idx / TILE_N, nn = idx % TILE_N;
                int gn = n0 + nn, gk = k0 + kk;
                bs[kk * LDB_S + nn] = (gn < n && gk < k) ? LD(b, bBase + (long)gk * n + gn) : 0.0f;
            }
        }
        BARRIER();
        for (int kk = 0; kk < TILE_K; kk++) {
            float ar[REG_M], br[REG_N];
            for (int i = 0; i < REG_M; i++) ar[i] = as[kk * LDA_S + ly + i * TY];
            for (int j = 0; j < REG_N; j++) br[j] = bs[kk * LDB_S + lx + j * TX];
            for (int i = 0; i < REG_M; i++)
                for (int j = 0; j < REG_N; j++) acc[i][j] += ar[i] * br[j];
        }
        BARRIER();
    }

    for (int i = 0; i < REG_M; i++) {
        int gm = m0 + ly + i * TY;
        if (gm >= m) continue;
        for (int j = 0; j < REG_N; j++) {
            int gn = n0 + lx + j * TX;
            if (gn >= n) continue;
            float v = alpha * acc[i][j];
            if (hasBias) v += LD(bias, gn);
            ST(c, cBase + (long)gm * n + gn, v);
        }
    }
}

KERNEL void GEMM_SKINNY(GLOBAL const REAL* a, GLOBAL const REAL* b, GLOBAL const REAL* bias, GLOBAL REAL* c,
                        int batch, int m, int n, int k, int transB, int hasBias, float alpha) {
    LOCAL_ARRAY(float, red, SK_MAXM * SK_GROUP);   /* red[row][item] */
    int l = LID(0), col = GROUP(0), z = GROUP(1);
    GLOBAL const REAL* ap = a + (long)z * m * k;
    GLOBAL const REAL* bp = b + (long)z * n * k + (long)col * k;
    float acc[SK_MAXM];
    for (int r = 0; r < SK_MAXM; r++) acc[r] = 0.0f;
    for (int kk = l; kk < k; kk += SK_GROUP) {
        float w = LD(bp, kk);
        for (int r = 0; r < SK_MAXM; r++)   /* constant trip count: acc stays in registers */
            if (r < m) acc[r] += LD(ap, (long)r * k + kk) * w;
    }
    for (int r = 0; r < SK_MAXM; r++) red[r * SK_GROUP + l] = acc[r];
    BARRIER();
    for (int s = SK_GROUP / 2; s > 0; s >>= 1) {
        if (l < s)
            for (int r = 0; r < SK_MAXM; r++) red[r * SK_GROUP + l] += red[r * SK_GROUP + l + s];
        BARRIER();
    }
    if (l < m) {
        float v = alpha * red[l * SK_GROUP];
        if (hasBias) v += LD(bias, col);
        ST(c, (long)z * m * n + (long)l * n + col, v);
    }
}
