/*
 * Convolution family, version 4 of the implicit GEMM ("conv v3" switch, -Djdiffusion.conv.v3, default true; CUDA
 * sm_80+ only, inline PTX only). The tiles, swizzle, cp.async pipeline and mma fragments are those of gemm_mma.cu
 * (names cv_ here so both files stand alone); what changes is the order of the reduction index and the B gather:
 *
 *   r = tap * cIn + ci   (tap = ky * ks + kx)   instead of   r = (ci * ks + ky) * ks + kx
 *
 * With cIn a multiple of the k tile (32 halves / 16 floats), a k tile holds one tap and consecutive channels, so each
 * thread finds its column's input pixel (iy, ix) and its validity (zero padding, ragged edges) once per k tile, and its
 * 16 halves / 8 floats are plain loads at a stride of one channel plane: no per-element index math, no divisions.
 * A warp's 32 columns are consecutive output pixels, so every load instruction reads consecutive addresses.
 * The weights are permuted into wt [cOut][ks*ks][cIn] by conv_taps_* once per graph, at its warmup (skipped for 1x1).
 *
 *   conv_taps_f16 / conv_taps_f32   (weight, wt, cOut, cIn, taps)          launch 1-D over cOut*cIn*taps
 *   conv2d_v3_f16 / conv2d_v3_tf32  (x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, ws, splits, kPer, res, hasRes, beta)
 *
 * Block 256 threads (8 warps 2 x 4, warp 64 x 32), tile 128 x 128, CV_STAGES shared stages; split-K as gemm_mma.cu
 * (split s covers k tiles [s*kPer/KT, ...), raw sums into ws [splits][cOut][n*hOut*wOut], gemm_splitk_reduce_* adds them).
 * Epilogue as gemm_mma.cu: v = acc + bias, then (v + res) * beta when hasRes (res NCHW like out: ResnetBlock2D's
 * (shortcut + conv2(h)) / output_scale_factor in the conv itself); with split-K the reduce kernel applies it.
 * Host guarantees: cIn % KT == 0, 16-byte aligned weight buffers. Launch grid (ceil(N/128), ceil(cOut/128), splits).
 */
#define CV_BM 128
#define CV_KW 16
#define CV_THREADS 256
#ifndef CV_STAGES
#define CV_STAGES 3
#endif
#define CV_TILE_WORDS (CV_BM * CV_KW)
#define CV_STAGE_WORDS (2 * CV_TILE_WORDS)

typedef unsigned int cv_u32;

#ifndef GM_EMULATED
#define CV_SMEM(name) __shared__ uint4 name##_v4[CV_STAGES * CV_STAGE_WORDS / 4]; cv_u32* name = (cv_u32*)name##_v4
__device__ __forceinline__ unsigned cv_smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void cv_cp_async16(cv_u32* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(cv_smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cv_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cv_cp_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }
__device__ __forceinline__ void cv_ldmatrix_x4(cv_u32* r, const cv_u32* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(cv_smem_addr(p)));
}
__device__ __forceinline__ void cv_mma_f16(float* d, const cv_u32* a, const cv_u32* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void cv_mma_tf32(float* d, const cv_u32* a, const cv_u32* b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ cv_u32 cv_tf32(cv_u32 bits) {
    cv_u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(__uint_as_float(bits)));
    return r;
}
#endif

template <bool HALF> struct CvElem;
template <> struct CvElem<true> {
    typedef unsigned short T;
    static __device__ __forceinline__ float toFloat(T v) { return jd_h2f(v); }
    static __device__ __forceinline__ void store(T* p, long i, float v) { p[i] = jd_f2h(v); }
};
template <> struct CvElem<false> {
    typedef float T;
    static __device__ __forceinline__ float toFloat(T v) { return v; }
    static __device__ __forceinline__ void store(T* p, long i, float v) { p[i] = v; }
};

__device__ __forceinline__ int cv_swz(int row, int ch) { return row * CV_KW + ((ch ^ ((row >> 1) & 3)) << 2); }

/* cp.async of a [128 rows][16 words] tile of the row-major [cOut][K] weights (rows r0.., k from k0). */
template <bool HALF>
__device__ __forceinline__ void cv_load_rows(cv_u32* tile, const void* p, int rows, int K, int r0, int k0) {
    const int per = HALF ? 8 : 4;
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = threadIdx.x + CV_THREADS * i, row = c >> 2, ch = c & 3;
        int gr = r0 + row, k = k0 + ch * per;
        bool ok = gr < rows && k < K;
        const char* src = (const char*)p + (ok ? ((long)gr * K + k) * (HALF ? 2 : 4) : 0L);
        cv_cp_async16(tile + cv_swz(row, ch), src, ok);
    }
}

/*
 * This thread's B column (an output pixel) and its walk over k tiles: tap (ky, kx) and first channel ci0 of the tile.
 * gather() reads channels ci0 + kq .. + 15 (halves) / + 7 (floats) of input pixel (iy0 + ky, ix0 + kx).
 */
template <bool HALF>
struct CvGather {
    typedef typename CvElem<HALF>::T T;
    const T* x;                                        /* image of the column, channel kq */
    long plane;                                        /* h * w */
    int h, w, ks, cIn, iy0, ix0, ky, kx, ci0;
    bool colOk;
    __device__ __forceinline__ void start(int r0) {    /* r0: first k of a tile (tile-aligned, so one tap) */
        int tap = r0 / cIn;
        ci0 = r0 - tap * cIn;
        ky = tap / ks;
        kx = tap - ky * ks;
    }
    __device__ __forceinline__ void next(int KT) {
        ci0 += KT;
        if (ci0 == cIn) {
            ci0 = 0;
            if (++kx == ks) { kx = 0; ky++; }
        }
    }
    __device__ __forceinline__ void gather(cv_u32* r) const {
        int iy = iy0 + ky, ix = ix0 + kx;
        bool ok = colOk && (unsigned)iy < (unsigned)h && (unsigned)ix < (unsigned)w;
        const T* p = x + (long)ci0 * plane + (ok ? iy * w + ix : 0);   /* outside: pixel 0 of the same channels, read and masked */
        const cv_u32 mask = ok ? 0xffffffffu : 0u;
        #pragma unroll
        for (int j = 0; j < 8; j++) {
            if (HALF) r[j] = ((cv_u32)p[(2 * j) * plane] | ((cv_u32)p[(2 * j + 1) * plane] << 16)) & mask;
            else r[j] = __float_as_uint(p[j * plane]) & mask;  /* rounded to tf32 after ldmatrix */
        }
    }
};

/* Gathered B words: thread column tid & 127, k words 8*(tid >> 7) .. +7 = chunks 2*(tid >> 7), +1. */
__device__ __forceinline__ void cv_store_gathered(cv_u32* tile, const cv_u32* r) {
    const int n = threadIdx.x & 127, half = threadIdx.x >> 7;
    #pragma unroll
    for (int c = 0; c < 2; c++) {
        uint4 v;
        v.x = r[4 * c]; v.y = r[4 * c + 1]; v.z = r[4 * c + 2]; v.w = r[4 * c + 3];
        *(uint4*)(tile + cv_swz(n, 2 * half + c)) = v;
    }
}

template <bool HALF>
__device__ __forceinline__ void cv_compute(float (*acc)[4][4], const cv_u32* As, const cv_u32* Bs, int wm, int wn, int lane) {
    const int q = lane >> 3, r8 = lane & 7;
    #pragma unroll
    for (int s = 0; s < 2; s++) {
        cv_u32 af[4][4], bf[4][2];
        #pragma unroll
        for (int mi = 0; mi < 4; mi++)
            cv_ldmatrix_x4(af[mi], As + cv_swz(wm * 64 + mi * 16 + (q & 1) * 8 + r8, 2 * s + (q >> 1)));
        #pragma unroll
        for (int p = 0; p < 2; p++) {
            cv_u32 t[4];
            cv_ldmatrix_x4(t, Bs + cv_swz(wn * 32 + (2 * p + (q >> 1)) * 8 + r8, 2 * s + (q & 1)));
            bf[2 * p][0] = t[0]; bf[2 * p][1] = t[1]; bf[2 * p + 1][0] = t[2]; bf[2 * p + 1][1] = t[3];
        }
        if (!HALF) {
            #pragma unroll
            for (int mi = 0; mi < 4; mi++)
                #pragma unroll
                for (int e = 0; e < 4; e++) af[mi][e] = cv_tf32(af[mi][e]);
            #pragma unroll
            for (int ni = 0; ni < 4; ni++) { bf[ni][0] = cv_tf32(bf[ni][0]); bf[ni][1] = cv_tf32(bf[ni][1]); }
        }
        #pragma unroll
        for (int mi = 0; mi < 4; mi++)
            #pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                if (HALF) cv_mma_f16(acc[mi][ni], af[mi], bf[ni]);
                else cv_mma_tf32(acc[mi][ni], af[mi], bf[ni]);
            }
    }
}

template <bool HALF>
__device__ __forceinline__ void cv_conv(const typename CvElem<HALF>::T* __restrict__ x, const typename CvElem<HALF>::T* __restrict__ wt,
                                        const typename CvElem<HALF>::T* bias, typename CvElem<HALF>::T* out, int n, int cIn, int h, int w, int cOut,
                                        int ks, int stride, int pad, int hOut, int wOut, int hasBias, float* ws, int splits, int kPer,
                                        const typename CvElem<HALF>::T* res, int hasRes, float beta) {
    const int KT = HALF ? 32 : 16;
    const int m0 = blockIdx.y * CV_BM, n0 = blockIdx.x * CV_BM;
    const int hw = hOut * wOut, ncols = n * hw, K = cIn * ks * ks;
    const int sp = blockIdx.z, ktiles = K / KT, per = kPer / KT;
    const int kt0 = sp * per, kt1 = kt0 + per < ktiles ? kt0 + per : ktiles;
    const int col = n0 + (threadIdx.x & 127), kq = (threadIdx.x >> 7) * (HALF ? 16 : 8);
    const bool colOk = col < ncols;
    const int img = colOk ? col / hw : 0, p = colOk ? col - img * hw : 0;
    CvGather<HALF> g;
    g.plane = (long)h * w;
    g.x = x + ((long)img * cIn + kq) * g.plane;
    g.h = h; g.w = w; g.ks = ks; g.cIn = cIn; g.colOk = colOk;
    g.iy0 = p / wOut * stride - pad;
    g.ix0 = p % wOut * stride - pad;
    CV_SMEM(smem);
    float acc[4][4][4];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wm = warp >> 2, wn = warp & 3;
    #pragma unroll
    for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 4; ni++)
            #pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.0f;
    const int nt = kt1 > kt0 ? kt1 - kt0 : 0;
    const bool busy = m0 + wm * 64 < cOut && n0 + wn * 32 < ncols;   /* no mma for a warp wholly past cOut (320's third tile) */
    g.start(kt0 * KT);                                 /* g walks the tile being loaded: kt0, kt0+1, ... */
    cv_u32 rb[8];
    #pragma unroll
    for (int s = 0; s < CV_STAGES - 1; s++) {
        if (s < nt) {
            cv_u32* st = smem + s * CV_STAGE_WORDS;
            cv_load_rows<HALF>(st, wt, cOut, K, m0, (kt0 + s) * KT);
            g.gather(rb);
            g.next(KT);
            cv_store_gathered(st + CV_TILE_WORDS, rb);
        }
        cv_cp_commit();
    }
    for (int i = 0; i < nt; i++) {
        cv_cp_wait<CV_STAGES - 2>();
        __syncthreads();
        int j = i + CV_STAGES - 1;
        cv_u32* st = smem + (j % CV_STAGES) * CV_STAGE_WORDS;
        bool more = j < nt;
        if (more) {
            cv_load_rows<HALF>(st, wt, cOut, K, m0, (kt0 + j) * KT);
            g.gather(rb);                              /* loads in flight during the mma below */
            g.next(KT);
        }
        cv_cp_commit();
        const cv_u32* cur = smem + (i % CV_STAGES) * CV_STAGE_WORDS;
        if (busy) cv_compute<HALF>(acc, cur, cur + CV_TILE_WORDS, wm, wn, lane);
        if (more) cv_store_gathered(st + CV_TILE_WORDS, rb);
    }
    cv_cp_wait<0>();
    const int gr = lane >> 2, t = lane & 3;
    #pragma unroll
    for (int ni = 0; ni < 4; ni++)
        #pragma unroll
        for (int e1 = 0; e1 < 2; e1++) {
            int cn = n0 + wn * 32 + ni * 8 + 2 * t + e1;
            if (cn >= ncols) continue;
            long o = (long)(cn / hw) * cOut * hw + cn % hw;
            #pragma unroll
            for (int mi = 0; mi < 4; mi++)
                #pragma unroll
                for (int e0 = 0; e0 < 2; e0++) {
                    int row = m0 + wm * 64 + mi * 16 + gr + e0 * 8;
                    if (row >= cOut) continue;
                    float v = acc[mi][ni][e0 * 2 + e1];
                    if (splits > 1) {
                        ws[((long)sp * cOut + row) * ncols + cn] = v;
                    } else {
                        if (hasBias) v += CvElem<HALF>::toFloat(bias[row]);
                        if (hasRes) v = (v + CvElem<HALF>::toFloat(res[o + (long)row * hw])) * beta;
                        CvElem<HALF>::store(out, o + (long)row * hw, v);
                    }
                }
        }
}

/* wt [cOut][taps][cIn] = weight [cOut][cIn][taps]; the host guarantees cOut*cIn*taps < 2^31 (32-bit index math). */
template <typename T>
__device__ __forceinline__ void cv_taps(const T* weight, T* wt, int cOut, int cIn, int taps) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= cOut * cIn * taps) return;
    int rest = i / cIn, ci = i - rest * cIn, co = rest / taps, tap = rest - co * taps;
    wt[i] = weight[(co * cIn + ci) * taps + tap];
}

KERNEL void conv_taps_f16(const half_t* weight, half_t* wt, int cOut, int cIn, int taps) { cv_taps(weight, wt, cOut, cIn, taps); }

KERNEL void conv_taps_f32(const float* weight, float* wt, int cOut, int cIn, int taps) { cv_taps(weight, wt, cOut, cIn, taps); }

KERNEL void __launch_bounds__(CV_THREADS, 2) conv2d_v3_f16(const half_t* x, const half_t* wt, const half_t* bias, half_t* out, int n, int cIn, int h, int w,
                                                        int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias, float* ws, int splits, int kPer,
                                                        const half_t* res, int hasRes, float beta) {
    cv_conv<true>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, ws, splits, kPer, res, hasRes, beta);
}

KERNEL void __launch_bounds__(CV_THREADS, 2) conv2d_v3_tf32(const float* x, const float* wt, const float* bias, float* out, int n, int cIn, int h, int w,
                                                         int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias, float* ws, int splits, int kPer,
                                                         const float* res, int hasRes, float beta) {
    cv_conv<false>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, ws, splits, kPer, res, hasRes, beta);
}
