/*
 * GEMM family, CUDA-only tensor-core kernels (sm_80+, inline PTX mma.sync; no headers: NVRTC has no include path).
 * Same arguments and results as gemm.cl / conv2d.cl (see Gemm.java, Conv2d.java); fp32 accumulation throughout.
 *
 *   gemm_tc_f16    fp16 a, b, bias, c     mma.sync.m16n8k16.row.col.f32.f16.f16.f32
 *   gemm_tc_tf32   fp32 a, b, bias, c     mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32 (inputs rounded with cvt.rna.tf32)
 *   conv2d_tc_f16 / conv2d_tc_tf32        the same core, B tile gathered from NCHW x (implicit GEMM, im2col never stored)
 *
 * One block of 256 threads (8 warps as 2 x 4, each warp 64 x 32 outputs = 4 x 4 mma tiles) computes a 128 x 128 tile of
 * C, stepping over K by 64 bytes per row (32 halves or 16 floats). Shared memory holds A as [128 rows][k] and B as
 * [128 columns][k], 32-bit words (a half pair or one float), row stride 20 words: every fragment load of a warp hits
 * 32 distinct banks. Two shared buffers: the next tile is fetched from global memory into registers while the warps
 * run mma on the current one, then stored into the other buffer (one barrier per k step). Ragged M, N, K are
 * zero-filled on load and masked on store; 16-byte vector loads are used where K keeps rows aligned.
 * Launch: grid (ceil(N/128), ceil(M/128), batch), block 256 (Launch global (gx*256, gy, batch), local (256, 1, 1)).
 */
#define TC_BM 128
#define TC_BN 128
#define TC_KW 16                 /* 32-bit words of k per tile row */
#define TC_LDS 20                /* shared row stride in words */
#define TC_THREADS 256

typedef unsigned int u32;

/* element loaders: fp16 bits or fp32 converted to tf32 bits; E = elements per 32-bit word */
template <bool HALF> struct Elem;
template <> struct Elem<true> {
    typedef unsigned short T;
    enum { E = 2, PER16 = 8 };
    static __device__ __forceinline__ u32 zero() { return 0u; }
    static __device__ __forceinline__ u32 pack(T lo, T hi) { return (u32)lo | ((u32)hi << 16); }
    static __device__ __forceinline__ float toFloat(T v) { return jd_h2f(v); }
    static __device__ __forceinline__ void store(T* p, long i, float v) { p[i] = jd_f2h(v); }
};
template <> struct Elem<false> {
    typedef float T;
    enum { E = 1, PER16 = 4 };
    static __device__ __forceinline__ u32 tf32(float f) { u32 r; asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f)); return r; }
    static __device__ __forceinline__ float toFloat(T v) { return v; }
    static __device__ __forceinline__ void store(T* p, long i, float v) { p[i] = v; }
};

__device__ __forceinline__ void mma_f16(float* d, const u32* a, const u32* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_tf32(float* d, const u32* a, const u32* b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/*
 * Loads 8 words of a row-major [rows][K] operand tile (rows r0.., k from k0) into registers: chunk c = tid + 256*i
 * (i = 0, 1) is row c/4, words 4*(c%4) .. +3. vec: K is a multiple of the elements in 16 bytes, so a chunk inside K
 * is one aligned 16-byte load.
 */
template <bool HALF>
__device__ __forceinline__ void load_rows(u32* r, const typename Elem<HALF>::T* p, int rows, int K, int r0, int k0, bool vec) {
    typedef typename Elem<HALF>::T T;
    const int tid = threadIdx.x;
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = tid + TC_THREADS * i, row = r0 + (c >> 2), k = k0 + (c & 3) * Elem<HALF>::PER16;
        u32* w = r + 4 * i;
        if (row < rows && vec && k + Elem<HALF>::PER16 <= K) {
            uint4 v = *(const uint4*)(p + (long)row * K + k);
            if (HALF) {
                w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
            } else {
                w[0] = Elem<false>::tf32(__uint_as_float(v.x)); w[1] = Elem<false>::tf32(__uint_as_float(v.y));
                w[2] = Elem<false>::tf32(__uint_as_float(v.z)); w[3] = Elem<false>::tf32(__uint_as_float(v.w));
            }
        } else {
            const T* q = p + (long)row * K;
            #pragma unroll
            for (int j = 0; j < 4; j++) {
                if (HALF) {
                    int kk = k + 2 * j;
                    unsigned short lo = (row < rows && kk < K) ? ((const unsigned short*)q)[kk] : (unsigned short)0;
                    unsigned short hi = (row < rows && kk + 1 < K) ? ((const unsigned short*)q)[kk + 1] : (unsigned short)0;
                    w[j] = (u32)lo | ((u32)hi << 16);
                } else {
                    int kk = k + j;
                    w[j] = (row < rows && kk < K) ? Elem<false>::tf32(((const float*)q)[kk]) : 0u;
                }
            }
        }
    }
}

template <bool HALF>
__device__ __forceinline__ void store_rows(u32* s, const u32* r) {
    const int tid = threadIdx.x;
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = tid + TC_THREADS * i;
        uint4 v;
        v.x = r[4 * i]; v.y = r[4 * i + 1]; v.z = r[4 * i + 2]; v.w = r[4 * i + 3];
        *(uint4*)(s + (c >> 2) * TC_LDS + (c & 3) * 4) = v;
    }
}

/*
 * Column-gathered B tile (B[k][n] row-major, or the im2col patch matrix): word w = (tid >> 7) + 2*i (i = 0..7) of
 * column n = tid & 127; the gather function returns element (k, column) as float bits or fp16 bits (0 outside).
 */
struct DenseKN {
    const void* p;
    int N, K;
    long base;
    template <bool HALF>
    __device__ __forceinline__ typename Elem<HALF>::T get(int k, int col, bool colOk) const {
        typedef typename Elem<HALF>::T T;
        return (colOk && k < K) ? ((const T*)p)[base + (long)k * N + col] : (T)0;
    }
};

struct Im2col {
    const void* p;
    int cIn, h, w, ks, K;
    long plane, xBase;  /* per thread: image base of its column */
    int iy0, ix0;
    template <bool HALF>
    __device__ __forceinline__ typename Elem<HALF>::T get(int r, int col, bool colOk) const {
        typedef typename Elem<HALF>::T T;
        if (!colOk || r >= K) return (T)0;
        int ci, ky, kx;
        if (ks == 1) { ci = r; ky = 0; kx = 0; }
        else if (ks == 3) { ci = r / 9; int q = r - ci * 9; ky = q / 3; kx = q - ky * 3; }
        else { int kk2 = ks * ks; ci = r / kk2; int q = r - ci * kk2; ky = q / ks; kx = q - ky * ks; }
        int iy = iy0 + ky, ix = ix0 + kx;
        if (iy < 0 || iy >= h || ix < 0 || ix >= w) return (T)0;
        return ((const T*)p)[xBase + ci * plane + (long)iy * w + ix];
    }
};

template <bool HALF, class G>
__device__ __forceinline__ void load_cols(u32* r, const G& g, int col, bool colOk, int k0) {
    const int wq = threadIdx.x >> 7;
    #pragma unroll
    for (int i = 0; i < 8; i++) {
        int wd = wq + 2 * i;
        if (HALF) {
            int k = k0 + 2 * wd;
            r[i] = Elem<true>::pack(g.template get<true>(k, col, colOk), g.template get<true>(k + 1, col, colOk));
        } else {
            r[i] = Elem<false>::tf32(g.template get<false>(k0 + wd, col, colOk));
        }
    }
}

__device__ __forceinline__ void store_cols(u32* s, const u32* r) {
    const int n = threadIdx.x & 127, wq = threadIdx.x >> 7;
    #pragma unroll
    for (int i = 0; i < 8; i++) s[n * TC_LDS + wq + 2 * i] = r[i];
}

/* One 64-byte k step of mma on the current shared buffers: 2 sub-steps of k16 (fp16) or k8 (tf32). */
template <bool HALF>
__device__ __forceinline__ void mma_tile(float (*acc)[4][4], const u32* As, const u32* Bs, int wm, int wn, int g, int t) {
    #pragma unroll
    for (int s = 0; s < 2; s++) {
        u32 af[4][4], bf[4][2];
        #pragma unroll
        for (int mi = 0; mi < 4; mi++) {
            const u32* a0 = As + (wm * 64 + mi * 16 + g) * TC_LDS + s * 8 + t;
            af[mi][0] = a0[0];                 /* rows g,   k words t   */
            af[mi][1] = a0[8 * TC_LDS];        /* rows g+8, k words t   */
            af[mi][2] = a0[4];                 /* rows g,   k words t+4 */
            af[mi][3] = a0[8 * TC_LDS + 4];    /* rows g+8, k words t+4 */
        }
        #pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            const u32* b0 = Bs + (wn * 32 + ni * 8 + g) * TC_LDS + s * 8 + t;
            bf[ni][0] = b0[0];
            bf[ni][1] = b0[4];
        }
        #pragma unroll
        for (int mi = 0; mi < 4; mi++)
            #pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                if (HALF) mma_f16(acc[mi][ni], af[mi], bf[ni]);
                else mma_tf32(acc[mi][ni], af[mi], bf[ni]);
            }
    }
}

/*
 * The core: C tile (m0.., n0..) of A [M][K] (row-major, element pointer a) times B, B given either as rows
 * ([N][K], transB) or through a column gatherer g (dense [K][N] or im2col). Accumulators are left in acc.
 */
#define TC_SMEM_WORDS (2 * (TC_BM + TC_BN) * TC_LDS)   /* 40960 bytes: within the 48 KiB of static shared memory */

template <bool HALF, bool BROWS, class G>
__device__ __forceinline__ void tc_core(u32* smem, float (*acc)[4][4], const typename Elem<HALF>::T* a, const typename Elem<HALF>::T* b,
                                        const G& gb, int M, int N, int K, int m0, int n0, int col, bool colOk) {
#define TC_AS(i) (smem + (i) * (TC_BM * TC_LDS))
#define TC_BS(i) (smem + 2 * TC_BM * TC_LDS + (i) * (TC_BN * TC_LDS))
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp >> 2, wn = warp & 3, g = lane >> 2, t = lane & 3;
    const int KT = TC_KW * Elem<HALF>::E;          /* elements of k per tile */
    const bool vec = (K % Elem<HALF>::PER16) == 0;
    u32 ra[8], rb[8];
    #pragma unroll
    for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 4; ni++)
            #pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.0f;

    int ktiles = (K + KT - 1) / KT;
    load_rows<HALF>(ra, a, M, K, m0, 0, vec);
    if (BROWS) load_rows<HALF>(rb, b, N, K, n0, 0, vec);
    else load_cols<HALF>(rb, gb, col, colOk, 0);
    store_rows<HALF>(TC_AS(0), ra);
    if (BROWS) store_rows<HALF>(TC_BS(0), rb);
    else store_cols(TC_BS(0), rb);
    __syncthreads();
    for (int kt = 0; kt < ktiles; kt++) {
        int cur = kt & 1;
        bool more = kt + 1 < ktiles;
        if (more) {
            int k0 = (kt + 1) * KT;
            load_rows<HALF>(ra, a, M, K, m0, k0, vec);
            if (BROWS) load_rows<HALF>(rb, b, N, K, n0, k0, vec);
            else load_cols<HALF>(rb, gb, col, colOk, k0);
        }
        mma_tile<HALF>(acc, TC_AS(cur), TC_BS(cur), wm, wn, g, t);
        if (more) {
            store_rows<HALF>(TC_AS(cur ^ 1), ra);
            if (BROWS) store_rows<HALF>(TC_BS(cur ^ 1), rb);
            else store_cols(TC_BS(cur ^ 1), rb);
        }
        __syncthreads();
    }
}

template <bool HALF>
__device__ __forceinline__ void tc_gemm(const typename Elem<HALF>::T* a, const typename Elem<HALF>::T* b, const typename Elem<HALF>::T* bias,
                                        typename Elem<HALF>::T* c, int M, int N, int K, int transB, int hasBias, float alpha) {
    const int m0 = blockIdx.y * TC_BM, n0 = blockIdx.x * TC_BN, z = blockIdx.z;
    a += (long)z * M * K;
    b += (long)z * N * K;
    c += (long)z * M * N;
    __shared__ uint4 smem4[TC_SMEM_WORDS / 4];   /* uint4: 16-byte aligned for the vector stores */
    u32* smem = (u32*)smem4;
    float acc[4][4][4];
    if (transB) {
        DenseKN unused;
        unused.p = b; unused.N = N; unused.K = K; unused.base = 0;
        tc_core<HALF, true>(smem, acc, a, b, unused, M, N, K, m0, n0, 0, false);
    } else {
        DenseKN g;
        g.p = b; g.N = N; g.K = K; g.base = 0;
        int col = n0 + (threadIdx.x & 127);
        tc_core<HALF, false>(smem, acc, a, b, g, M, N, K, m0, n0, col, col < N);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = warp >> 2, wn = warp & 3, g = lane >> 2, t = lane & 3;
    #pragma unroll
    for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 4; ni++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                int row = m0 + wm * 64 + mi * 16 + g + (e >> 1) * 8;
                int cn = n0 + wn * 32 + ni * 8 + 2 * t + (e & 1);
                if (row < M && cn < N) {
                    float v = alpha * acc[mi][ni][e];
                    if (hasBias) v += Elem<HALF>::toFloat(bias[cn]);
                    Elem<HALF>::store(c, (long)row * N + cn, v);
                }
            }
}

template <bool HALF>
__device__ __forceinline__ void tc_conv(const typename Elem<HALF>::T* x, const typename Elem<HALF>::T* weight, const typename Elem<HALF>::T* bias,
                                        typename Elem<HALF>::T* out, int n, int cIn, int h, int w, int cOut, int ks, int stride, int pad,
                                        int hOut, int wOut, int hasBias) {
    const int m0 = blockIdx.y * TC_BM, n0 = blockIdx.x * TC_BN;
    const int hw = hOut * wOut, ncols = n * hw, K = cIn * ks * ks;
    int col = n0 + (threadIdx.x & 127);
    bool colOk = col < ncols;
    int img = colOk ? col / hw : 0, p = colOk ? col % hw : 0;
    Im2col g;
    g.p = x; g.cIn = cIn; g.h = h; g.w = w; g.ks = ks; g.K = K;
    g.plane = (long)h * w;
    g.xBase = (long)img * cIn * g.plane;
    g.iy0 = p / wOut * stride - pad;
    g.ix0 = p % wOut * stride - pad;
    __shared__ uint4 smem4[TC_SMEM_WORDS / 4];   /* uint4: 16-byte aligned for the vector stores */
    u32* smem = (u32*)smem4;
    float acc[4][4][4];
    tc_core<HALF, false>(smem, acc, weight, weight, g, cOut, ncols, K, m0, n0, col, colOk);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = warp >> 2, wn = warp & 3, gr = lane >> 2, t = lane & 3;
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
                    if (hasBias) v += Elem<HALF>::toFloat(bias[row]);
                    Elem<HALF>::store(out, o + (long)row * hw, v);
                }
        }
}

KERNEL void __launch_bounds__(TC_THREADS, 2) gemm_tc_f16(const half_t* a, const half_t* b, const half_t* bias, half_t* c,
                                                      int batch, int m, int n, int k, int transB, int hasBias, float alpha) {
    tc_gemm<true>(a, b, bias, c, m, n, k, transB, hasBias, alpha);
}

KERNEL void __launch_bounds__(TC_THREADS, 2) gemm_tc_tf32(const float* a, const float* b, const float* bias, float* c,
                                                       int batch, int m, int n, int k, int transB, int hasBias, float alpha) {
    tc_gemm<false>(a, b, bias, c, m, n, k, transB, hasBias, alpha);
}

KERNEL void __launch_bounds__(TC_THREADS, 2) conv2d_tc_f16(const half_t* x, const half_t* weight, const half_t* bias, half_t* out,
                                                        int n, int cIn, int h, int w, int cOut, int ks, int stride, int pad,
                                                        int hOut, int wOut, int hasBias) {
    tc_conv<true>(x, weight, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias);
}

KERNEL void __launch_bounds__(TC_THREADS, 2) conv2d_tc_tf32(const float* x, const float* weight, const float* bias, float* out,
                                                         int n, int cIn, int h, int w, int cOut, int ks, int stride, int pad,
                                                         int hOut, int wOut, int hasBias) {
    tc_conv<false>(x, weight, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias);
}
