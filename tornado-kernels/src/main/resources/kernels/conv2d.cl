/*
 * Convolution family, portable (OpenCL C and CUDA through prelude.h). The Java reference (Conv2d.reference) defines the result.
 *
 * Implicit GEMM: out[img, co, oy, ox] = sum_r weight[co, r] * patch[r, col] + bias[co] with
 *   M = cOut (rows), N = n*hOut*wOut (col = (img*hOut + oy)*wOut + ox), K = cIn*ks*ks (r = (ci*ks + ky)*ks + kx),
 *   patch[r, col] = x[img, ci, oy*stride - pad + ky, ox*stride - pad + kx] (zero outside the image).
 * The patch matrix is never stored: each work item gathers its column of the B tile while loading it.
 *
 * conv2d_tiled_f32 / conv2d_tiled_f16 (-DJD_HALF): the tiling of gemm_tiled (TILE_M x TILE_N output tile per group of
 * (TILE_N/REG_N) x (TILE_M/REG_M) work items, REG_M x REG_N outputs each, TILE_K steps through local memory).
 * Launch: global (ceil(N/TILE_N)*TX, ceil(cOut/TILE_M)*TY, 1), local (TX, TY, 1).
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
#define CONV_TILED conv2d_tiled_f16
#else
#define REAL float
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#define CONV_TILED conv2d_tiled_f32
#endif

KERNEL void CONV_TILED(GLOBAL const REAL* x, GLOBAL const REAL* weight, GLOBAL const REAL* bias, GLOBAL REAL* out,
                       int n, int cIn, int h, int w, int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias) {
    LOCAL_ARRAY(float, as, TILE_K * LDA_S);   /* as[kk][co] */
    LOCAL_ARRAY(float, bs, TILE_K * LDB_S);   /* bs[kk][col] */
    int lx = LID(0), ly = LID(1), tid = ly * TX + lx;
    int n0 = GROUP(0) * TILE_N, m0 = GROUP(1) * TILE_M;
    int hw = hOut * wOut, ncols = n * hw, kk2 = ks * ks, depth = cIn * kk2;
    long plane = (long)h * w;

    /* this work item's B column is fixed over the k loop (NT is a multiple of TILE_N): decode it once */
    int bn = tid % TILE_N, bk0 = tid / TILE_N;
    int col = n0 + bn;
    int colOk = col < ncols;
    int img = colOk ? col / hw : 0, p = colOk ? col % hw : 0;
    int iy0 = p / wOut * stride - pad, ix0 = p % wOut * stride - pad;
    long xBase = (long)img * cIn * plane;

    float acc[REG_M][REG_N];
    for (int i = 0; i < REG_M; i++)
        for (int j = 0; j < REG_N; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < depth; k0 += TILE_K) {
        for (int idx = tid; idx < TILE_M * TILE_K; idx += NT) {
            int mm = idx / TILE_K, kk = idx % TILE_K;
            int gm = m0 + mm, gk = k0 + kk;
            as[kk * LDA_S + mm] = (gm < cOut && gk < depth) ? LD(weight, (long)gm * depth + gk) : 0.0f;
        }
        for (int kk = bk0; kk < TILE_K; kk += NT / TILE_N) {
            int r = k0 + kk;
            float v = 0.0f;
            if (colOk && r < depth) {
                int ci, ky, kx;
                if (ks == 1) { ci = r; ky = 0; kx = 0; }
                else if (ks == 3) { ci = r / 9; int q = r - ci * 9; ky = q / 3; kx = q - ky * 3; }
                else { ci = r / kk2; int q = r - ci * kk2; ky = q / ks; kx = q - ky * ks; }
                int iy = iy0 + ky, ix = ix0 + kx;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = LD(x, xBase + ci * plane + (long)iy * w + ix);
            }
            bs[kk * LDB_S + bn] = v;
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

    for (int j = 0; j < REG_N; j++) {
        int gn = n0 + lx + j * TX;
        if (gn >= ncols) continue;
        long o = (long)(gn / hw) * cOut * hw + gn % hw;
        for (int i = 0; i < REG_M; i++) {
            int gm = m0 + ly + i * TY;
            if (gm >= cOut) continue;
            float v = acc[i][j];
            if (hasBias) v += LD(bias, gm);
            ST(out, o + (long)gm * hw, v);
        }
    }
}
