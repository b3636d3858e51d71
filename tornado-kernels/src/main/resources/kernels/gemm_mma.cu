/*
 * GEMM family, version 3 (CUDA sm_80+ only): the tensor-core GEMM / implicit-GEMM conv of gemm.cu rebuilt around
 * cp.async (multi-stage global->shared pipeline), ldmatrix fragment loads from a swizzled shared layout, and split-K.
 * Same results as gemm.cu; the old kernels stay as the fallback (-Djdiffusion.gemm.v2=false). Inline PTX only.
 *
 *   gemm_mma_f16 / gemm_mma_tf32       (a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer, res, hasRes, beta, outHw)
 *   gemm_mma_geglu_f16 / _tf32         (a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer)
 *   conv2d_mma_f16 / conv2d_mma_tf32   (x, weight, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, ws, splits, kPer, res, hasRes, beta)
 *   gemm_splitk_reduce_f16 / _f32      (ws, bias, c, batch, m, n, splits, hasBias, alpha, hw, res, hasRes, beta, outHw)
 *   gemm_splitk_geglu_f16 / _f32       (ws, bias, c, batch, m, n, splits, hasBias, alpha)
 *
 * Block: 256 threads = 8 warps as 2 (m) x 4 (n), each warp 64 x 32 outputs (4 x 4 mma tiles m16n8); block tile
 * 128 x 128, k step 16 words per row (32 halves or 16 floats), GM_STAGES shared stages of A [128][16 words] and
 * B [128 columns][16 words] (B stored n-major, k inside the row, like A: one ldmatrix layout serves both).
 * A 32-bit word is a half pair (fp16) or one float (tf32); an mma k step (k16 fp16, k8 tf32) is 8 words of a row,
 * so both precisions share the fragment code: ldmatrix.x4 gives a 16x8-word A fragment or two 8x8-word B fragments.
 * Shared rows are 4 chunks of 16 bytes; chunk c of row r is stored at chunk c ^ ((r >> 1) & 3) (XOR swizzle), so
 * the 8 rows an ldmatrix phase reads and the rows a cp.async phase writes fall into 8 distinct 16-byte bank groups.
 *
 * Operands: A [M][K] row-major (weights for conv) always by cp.async (16-byte chunks; the host guarantees K is a
 * multiple of 8 halves / 4 floats and 16-byte aligned buffers; chunks past M or K are zero-filled via src-size 0).
 * B rows ([N][K], transB) by cp.async likewise; B [K][N] and the conv's im2col patches are gathered into registers
 * one stage ahead (column per thread, 16 halves / 8 floats of k) and stored after the mma of the current stage.
 * tf32: fragments are rounded with cvt.rna.tf32.f32 after ldmatrix (cp.async copies raw floats).
 * -DJD_3XTF32 (strict fp32; Gemm / Conv2d launch gemm_mma_3xtf32, gemm_mma_geglu_3xtf32 / conv2d_mma_3xtf32 from this module): gm_tf32 keeps
 * the raw fp32 bits (gathered B included) and gm_compute hands the fp32 fragments to gm_mma_3x, which splits each word
 * into big = tf32(x) and small = tf32(x - big) and accumulates As*Bb + Ab*Bs + Ab*Bb in fp32 ("3xTF32": ~fp32 accuracy,
 * not IEEE fp32 FMA order; 3x the mma work) into a per-stage sum added to the accumulators in fp32 (gm_compute_3x). Every fp32 kernel of such a module computes that way; stage fp32 operands
 * through gm_tf32 (never gm_rna) so both builds stay right. -DGM_3X_MIN_BLOCKS (1) sets their __launch_bounds__ minimum.
 *
 * Split-K: grid z = batch * splits; split s covers k in [s*kPer, min(K, (s+1)*kPer)) (kPer a multiple of the k step)
 * and writes raw fp32 sums to ws[(s*batch + z)*M*N + row*N + col] (conv: batch 1, col = output column); the reduce
 * kernel adds the splits, applies the epilogue and writes c (hw > 0: the conv's NCHW layout). splits == 1 writes
 * c directly (epilogue fused) and never touches ws.
 *
 * Epilogue (in the GEMM/conv kernel when splits == 1, else in the reduce kernel), in fp32 before the one rounding:
 *   v = alpha * acc + bias;  hasRes: v = (v + res) * beta   (res laid out like c; the element is read before c is
 *   written by the same thread, so res may even be c: the emulator checks it, Gemm / Conv2d never ask). ResnetBlock2D's (shortcut + conv2(h)) / output_scale_factor and
 *   the transformer residuals (h + to_out(...), h + ff(...)) become one kernel instead of GEMM/conv + add.
 * outHw > 0 (GEMM, batch 1): the rows are tokens (image row / outHw, position row % outHw) and c (and res) are written
 *   channels-first, c [M / outHw][N][outHw]: Transformer2DModel's proj_out, its transpose back to [b, c, h, w] and its
 *   residual in one kernel. A warp's stores stay as contiguous as row-major ones (8 consecutive positions per column).
 * GEGLU (gemm_mma_geglu_*, diffusers' GEGLU after net.0.proj): B = weight rows [2*inner][K] (transB) permuted by the
 *   host (Gemm.gegluInterleave) so that each group of 16 columns holds hidden units j..j+7 and then their 8 gates
 *   (inner % 8 == 0, so N = 2*inner is a multiple of 16, and bias alike). A warp's n tiles 2p and 2p+1 then hold value
 *   and gate of the same outputs in the same lane and register: c [batch][M][inner], c[row][j] = value * gelu(gate),
 *   exact erf GELU, j = (group start / 2) + column within the group. Split-K: ws holds the raw permuted columns and
 *   gemm_splitk_geglu_* pairs them (column of value j = (j / 8) * 16 + j % 8, its gate 8 further).
 * Launch: grid (ceil(N/128), ceil(M/128), batch*splits), block 256 (global (gx*256, gy, gz), local (256, 1, 1)).
 */
#define GM_BM 128
#define GM_BN 128
#define GM_KW 16                               /* 32-bit words of k per stage row */
#define GM_THREADS 256
#ifndef GM_STAGES
#define GM_STAGES 3
#endif
#define GM_TILE_WORDS (GM_BM * GM_KW)          /* 2048 words = 8 KiB: one operand of one stage */
#define GM_STAGE_WORDS (2 * GM_TILE_WORDS)     /* A then B */

typedef unsigned int gm_u32;

#ifndef GM_EMULATED
#define GM_SMEM(name) __shared__ uint4 name##_v4[GM_STAGES * GM_STAGE_WORDS / 4]; gm_u32* name = (gm_u32*)name##_v4
__device__ __forceinline__ unsigned gm_smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
/* 16-byte async copy global -> shared; !valid copies nothing and zero-fills the 16 bytes (src-size 0). */
__device__ __forceinline__ void gm_cp_async16(gm_u32* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(gm_smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void gm_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void gm_cp_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }
/* Four 8x8 b16 matrices: lane 8*j + i gives the address of row i of matrix j; r[j] = word (lane & 3) of row (lane >> 2) of matrix j. */
__device__ __forceinline__ void gm_ldmatrix_x4(gm_u32* r, const gm_u32* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(gm_smem_addr(p)));
}
__device__ __forceinline__ void gm_mma_f16(float* d, const gm_u32* a, const gm_u32* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void gm_mma_tf32(float* d, const gm_u32* a, const gm_u32* b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
/* cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits (the low 13 bits become 0). */
__device__ __forceinline__ gm_u32 gm_rna(gm_u32 bits) {
    gm_u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(__uint_as_float(bits)));
    return r;
}
#endif

/* Conversion of an fp32 operand word when staged (register-gathered B) and at fragment time: tf32 bits; in a
 * JD_3XTF32 module the raw fp32 bits, split into big + small only at mma time (gm_mma_3x). */
__device__ __forceinline__ gm_u32 gm_tf32(gm_u32 bits) {
#ifdef JD_3XTF32
    return bits;
#else
    return gm_rna(bits);
#endif
}

/* fp16 bits or fp32 elements, read and written as float. */
template <bool HALF> struct GmElem;
template <> struct GmElem<true> {
    typedef unsigned short T;
    static __device__ __forceinline__ float toFloat(T v) { return jd_h2f(v); }
    static __device__ __forceinline__ void store(T* p, long i, float v) { p[i] = jd_f2h(v); }
};
template <> struct GmElem<false> {
    typedef float T;
    static __device__ __forceinline__ float toFloat(T v) { return v; }
    static __device__ __forceinline__ void store(T* p, long i, float v) { p[i] = v; }
};

/* Word offset of 16-byte chunk ch (0..3) of row `row` in a swizzled [128][16-word] tile. */
__device__ __forceinline__ int gm_swz(int row, int ch) { return row * GM_KW + ((ch ^ ((row >> 1) & 3)) << 2); }

/* cp.async of a [128 rows][16 words] tile of a row-major [rows][K] operand (rows r0.., k from k0): 2 chunks per thread. */
template <bool HALF>
__device__ __forceinline__ void gm_load_rows(gm_u32* tile, const void* p, int rows, int K, int r0, int k0) {
    const int per = HALF ? 8 : 4;                     /* elements per 16-byte chunk */
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = threadIdx.x + GM_THREADS * i, row = c >> 2, ch = c & 3;
        int gr = r0 + row, k = k0 + ch * per;
        bool ok = gr < rows && k < K;                  /* K % per == 0: a chunk is wholly inside or outside */
        const char* src = (const char*)p + (ok ? ((long)gr * K + k) * (HALF ? 2 : 4) : 0L);
        gm_cp_async16(tile + gm_swz(row, ch), src, ok);
    }
}

/* Element (k, column) of B [K][N] (dense) for the register gather; 0 outside. */
template <bool HALF>
struct GmDense {
    typedef typename GmElem<HALF>::T T;
    const T* p;
    int N, K, col;
    bool colOk;
    /* 8 words of column col from k = ks (HALF: 16 halves, packed in pairs; else 8 floats as tf32). */
    __device__ __forceinline__ void gather(gm_u32* r, int ks) const {
        #pragma unroll
        for (int j = 0; j < 8; j++) {
            if (HALF) {
                int k = ks + 2 * j;
                unsigned short lo = (colOk && k < K) ? ((const unsigned short*)p)[(long)k * N + col] : (unsigned short)0;
                unsigned short hi = (colOk && k + 1 < K) ? ((const unsigned short*)p)[(long)(k + 1) * N + col] : (unsigned short)0;
                r[j] = (gm_u32)lo | ((gm_u32)hi << 16);
            } else {
                int k = ks + j;
                r[j] = (colOk && k < K) ? gm_tf32(__float_as_uint(((const float*)p)[(long)k * N + col])) : 0u;
            }
        }
    }
};

/* Element (r = (ci, ky, kx), column) of the im2col patch matrix of NCHW x; 0 outside the image or past K. */
template <bool HALF>
struct GmIm2col {
    typedef typename GmElem<HALF>::T T;
    const T* x;                                        /* image of this thread's column */
    int h, w, ks, K, iy0, ix0;
    bool colOk;
    __device__ __forceinline__ gm_u32 at(int r, int ci, int ky, int kx) const {
        int iy = iy0 + ky, ix = ix0 + kx;
        if (!colOk || r >= K || (unsigned)iy >= (unsigned)h || (unsigned)ix >= (unsigned)w) return 0u;
        T v = x[(long)ci * h * w + iy * w + ix];
        if (HALF) return (gm_u32)(unsigned short)v;
        return gm_tf32(__float_as_uint((float)v));
    }
    __device__ __forceinline__ void gather(gm_u32* r, int rs) const {
        int kk2 = ks * ks, ci = rs / kk2, q = rs - ci * kk2, ky = q / ks, kx = q - ky * ks;
        int rr = rs;
        #pragma unroll
        for (int j = 0; j < (HALF ? 16 : 8); j++) {
            gm_u32 v = at(rr, ci, ky, kx);
            if (HALF) {
                if (j & 1) r[j >> 1] |= v << 16;
                else r[j >> 1] = v;
            } else {
                r[j] = v;
            }
            rr++;
            if (++kx == ks) {
                kx = 0;
                if (++ky == ks) { ky = 0; ci++; }
            }
        }
    }
};

/* Dummy B gatherer for transB (B rows come by cp.async). */
struct GmNone {
    __device__ __forceinline__ void gather(gm_u32*, int) const {}
};

/* Register-gathered B words: thread column tid & 127, k words 8*(tid >> 7) .. +7 = chunks 2*(tid >> 7), +1. */
__device__ __forceinline__ void gm_store_gathered(gm_u32* tile, const gm_u32* r) {
    const int n = threadIdx.x & 127, half = threadIdx.x >> 7;
    #pragma unroll
    for (int c = 0; c < 2; c++) {
        uint4 v;
        v.x = r[4 * c]; v.y = r[4 * c + 1]; v.z = r[4 * c + 2]; v.w = r[4 * c + 3];
        *(uint4*)(tile + gm_swz(n, 2 * half + c)) = v;
    }
}

#ifdef JD_3XTF32
/* x = big + small with big = tf32(x), small = tf32(x - big) (x - big is exact in fp32): ~21 mantissa bits in two tf32 words. */
__device__ __forceinline__ void gm_split3(gm_u32 x, gm_u32& big, gm_u32& small) {
    big = gm_rna(x);
    small = gm_rna(__float_as_uint(__uint_as_float(x) - __uint_as_float(big)));
}

/* 3xTF32 for one mma k step of the warp's 4 x 4 tiles from raw fp32 fragments: acc += As*Bb, then Ab*Bs, then Ab*Bb (the
 * small products first, each pass over all tiles so consecutive mmas are independent); As*Bs (~2^-22 relative) is dropped. */
__device__ __forceinline__ void gm_mma_3x(float (*acc)[4][4], const gm_u32 (*af)[4], const gm_u32 (*bf)[2]) {
    gm_u32 bb[4][2], bs[4][2];
    #pragma unroll
    for (int ni = 0; ni < 4; ni++) { gm_split3(bf[ni][0], bb[ni][0], bs[ni][0]); gm_split3(bf[ni][1], bb[ni][1], bs[ni][1]); }
    #pragma unroll
    for (int mi = 0; mi < 4; mi++) {
        gm_u32 ab[4], as[4];
        #pragma unroll
        for (int e = 0; e < 4; e++) gm_split3(af[mi][e], ab[e], as[e]);
        #pragma unroll
        for (int ni = 0; ni < 4; ni++) gm_mma_tf32(acc[mi][ni], as, bb[ni]);
    }
    #pragma unroll
    for (int mi = 0; mi < 4; mi++) {
        gm_u32 ab[4];
        #pragma unroll
        for (int e = 0; e < 4; e++) ab[e] = gm_rna(af[mi][e]);
        #pragma unroll
        for (int ni = 0; ni < 4; ni++) gm_mma_tf32(acc[mi][ni], ab, bs[ni]);
        #pragma unroll
        for (int ni = 0; ni < 4; ni++) gm_mma_tf32(acc[mi][ni], ab, bb[ni]);
    }
}
#endif

#ifdef JD_3XTF32
/*
 * gm_compute for fp32 in 3xTF32: the stage's 6 mmas per tile accumulate into a zeroed stage sum that is then added to acc
 * with an fp32 (round-to-nearest) add: the tensor cores round their fp32 result toward zero, and over thousands of mmas
 * into one register that bias alone would reach ~1e-5 relative at K = 4096.
 */
__device__ __forceinline__ void gm_compute_3x(float (*acc)[4][4], const gm_u32* As, const gm_u32* Bs, int wm, int wn, int lane) {
    const int q = lane >> 3, r8 = lane & 7;
    float part[4][4][4];
    #pragma unroll
    for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 4; ni++)
            #pragma unroll
            for (int e = 0; e < 4; e++) part[mi][ni][e] = 0.0f;
    #pragma unroll
    for (int s = 0; s < 2; s++) {
        gm_u32 af[4][4], bf[4][2];
        #pragma unroll
        for (int mi = 0; mi < 4; mi++)        /* fragment loads as in gm_compute */
            gm_ldmatrix_x4(af[mi], As + gm_swz(wm * 64 + mi * 16 + (q & 1) * 8 + r8, 2 * s + (q >> 1)));
        #pragma unroll
        for (int p = 0; p < 2; p++) {
            gm_u32 t[4];
            gm_ldmatrix_x4(t, Bs + gm_swz(wn * 32 + (2 * p + (q >> 1)) * 8 + r8, 2 * s + (q & 1)));
            bf[2 * p][0] = t[0]; bf[2 * p][1] = t[1]; bf[2 * p + 1][0] = t[2]; bf[2 * p + 1][1] = t[3];
        }
        gm_mma_3x(part, af, bf);
    }
    #pragma unroll
    for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 4; ni++)
            #pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][ni][e] += part[mi][ni][e];
}
#endif

/* mma over one stage (16 words of k = 2 mma k steps) for the warp's 64 x 32 outputs. */
template <bool HALF>
__device__ __forceinline__ void gm_compute(float (*acc)[4][4], const gm_u32* As, const gm_u32* Bs, int wm, int wn, int lane) {
#ifdef JD_3XTF32
    if (!HALF) { gm_compute_3x(acc, As, Bs, wm, wn, lane); return; }
#endif
    const int q = lane >> 3, r8 = lane & 7;
    #pragma unroll
    for (int s = 0; s < 2; s++) {
        gm_u32 af[4][4], bf[4][2];
        #pragma unroll
        for (int mi = 0; mi < 4; mi++)        /* matrices: rows 0-7 / 8-15 (q & 1) x words 0-3 / 4-7 (q >> 1) = a0, a1, a2, a3 */
            gm_ldmatrix_x4(af[mi], As + gm_swz(wm * 64 + mi * 16 + (q & 1) * 8 + r8, 2 * s + (q >> 1)));
        #pragma unroll
        for (int p = 0; p < 2; p++) {         /* matrices: n tile 2p / 2p+1 (q >> 1) x words 0-3 / 4-7 (q & 1) = b0, b1 of each */
            gm_u32 t[4];
            gm_ldmatrix_x4(t, Bs + gm_swz(wn * 32 + (2 * p + (q >> 1)) * 8 + r8, 2 * s + (q & 1)));
            bf[2 * p][0] = t[0]; bf[2 * p][1] = t[1]; bf[2 * p + 1][0] = t[2]; bf[2 * p + 1][1] = t[3];
        }
        if (!HALF) {
            #pragma unroll
            for (int mi = 0; mi < 4; mi++)
                #pragma unroll
                for (int e = 0; e < 4; e++) af[mi][e] = gm_tf32(af[mi][e]);
            #pragma unroll
            for (int ni = 0; ni < 4; ni++) { bf[ni][0] = gm_tf32(bf[ni][0]); bf[ni][1] = gm_tf32(bf[ni][1]); }
        }
        #pragma unroll
        for (int mi = 0; mi < 4; mi++)
            #pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                if (HALF) gm_mma_f16(acc[mi][ni], af[mi], bf[ni]);
                else gm_mma_tf32(acc[mi][ni], af[mi], bf[ni]);
            }
    }
}

/*
 * The pipelined core: acc = A[m0.., kt0*KT..] . B[.., n0..] over k tiles [kt0, kt1). BROWS: B rows [N][K] by cp.async;
 * else gb gathers B into registers. Stage i % GM_STAGES holds k tile i; one barrier per k tile.
 */
template <bool HALF, bool BROWS, class G>
__device__ __forceinline__ void gm_core(gm_u32* smem, float (*acc)[4][4], const void* a, const void* b, const G& gb,
                                        int M, int N, int K, int m0, int n0, int kt0, int kt1) {
    const int KT = HALF ? 32 : 16;                     /* elements of k per tile */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wm = warp >> 2, wn = warp & 3;
    const int kq = (threadIdx.x >> 7) * (HALF ? 16 : 8); /* this thread's k offset in a gathered B tile */
    #pragma unroll
    for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 4; ni++)
            #pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.0f;
    const int nt = kt1 - kt0;
    /* a warp whose 64 rows or 32 columns lie wholly past M or N (N = 320's third tile) issues no mma: its SM's other
       warps get the tensor cores; it still loads and meets every barrier */
    const bool busy = m0 + wm * 64 < M && n0 + wn * 32 < N;
    gm_u32 rb[8];
    /* prologue: tiles 0 .. GM_STAGES-2 (one commit group each, empty past the end) */
    #pragma unroll
    for (int s = 0; s < GM_STAGES - 1; s++) {
        if (s < nt) {
            gm_u32* st = smem + s * GM_STAGE_WORDS;
            int k0 = (kt0 + s) * KT;
            gm_load_rows<HALF>(st, a, M, K, m0, k0);
            if (BROWS) gm_load_rows<HALF>(st + GM_TILE_WORDS, b, N, K, n0, k0);
            else {
                gb.gather(rb, k0 + kq);
                gm_store_gathered(st + GM_TILE_WORDS, rb);
            }
        }
        gm_cp_commit();
    }
    for (int i = 0; i < nt; i++) {
        gm_cp_wait<GM_STAGES - 2>();                   /* this thread's copies of tile i have landed */
        __syncthreads();                               /* everyone's have; and every warp is past the mma of tile i-1 */
        int j = i + GM_STAGES - 1;                     /* refill the stage tile i-1 used */
        gm_u32* st = smem + (j % GM_STAGES) * GM_STAGE_WORDS;
        bool more = j < nt;
        if (more) {
            int k0 = (kt0 + j) * KT;
            gm_load_rows<HALF>(st, a, M, K, m0, k0);
            if (BROWS) gm_load_rows<HALF>(st + GM_TILE_WORDS, b, N, K, n0, k0);
            else gb.gather(rb, k0 + kq);               /* global loads in flight during the mma below */
        }
        gm_cp_commit();
        const gm_u32* cur = smem + (i % GM_STAGES) * GM_STAGE_WORDS;
        if (busy) gm_compute<HALF>(acc, cur, cur + GM_TILE_WORDS, wm, wn, lane);
        if (!BROWS && more) gm_store_gathered(st + GM_TILE_WORDS, rb); /* read after the barrier of iteration i+1 at the earliest */
    }
    gm_cp_wait<0>();
}

/* Split bounds of block z: the batch index and k tiles [kt0, kt1). */
__device__ __forceinline__ void gm_split(int K, int KT, int splits, int kPer, int& bz, int& sp, int& kt0, int& kt1) {
    int z = blockIdx.z;
    bz = z / splits;
    sp = z - bz * splits;
    int ktiles = (K + KT - 1) / KT, per = kPer / KT;
    kt0 = sp * per;
    kt1 = kt0 + per < ktiles ? kt0 + per : ktiles;
    if (kt1 < kt0) kt1 = kt0;
}

/* Exact GELU as diffusers (erf form), in fp32. */
__device__ __forceinline__ float gm_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

/* GEGLU: permuted column of hidden unit j (its gate is 8 columns further), see the header. */
__device__ __forceinline__ int gm_geglu_col(int j) { return ((j >> 3) << 4) + (j & 7); }

/* Element (row, col) of an [M][N] GEMM result in c: row-major, or channels-first [M / outHw][N][outHw] when outHw > 0. */
__device__ __forceinline__ long gm_out_index(int row, int col, int N, int outHw) {
    if (outHw <= 0) return (long)row * N + col;
    int img = row / outHw;
    return ((long)img * N + col) * outHw + (row - img * outHw);
}

/* GEGLU false: c [batch][M][N] (outHw > 0: see gm_out_index) with the residual epilogue; true: c [batch][M][N/2] = value * gelu(gate) (res, outHw unused). */
template <bool HALF, bool GEGLU>
__device__ __forceinline__ void gm_gemm(const typename GmElem<HALF>::T* a, const typename GmElem<HALF>::T* b, const typename GmElem<HALF>::T* bias,
                                        typename GmElem<HALF>::T* c, int batch, int M, int N, int K, int transB, int hasBias, float alpha,
                                        float* ws, int splits, int kPer, const typename GmElem<HALF>::T* res, int hasRes, float beta, int outHw) {
    const int m0 = blockIdx.y * GM_BM, n0 = blockIdx.x * GM_BN;
    int bz, sp, kt0, kt1;
    gm_split(K, HALF ? 32 : 16, splits, kPer, bz, sp, kt0, kt1);
    a += (long)bz * M * K;
    b += (long)bz * N * K;
    GM_SMEM(smem);
    float acc[4][4][4];
    if (transB) {
        GmNone none;
        gm_core<HALF, true>(smem, acc, a, b, none, M, N, K, m0, n0, kt0, kt1);
    } else {
        GmDense<HALF> g;
        g.p = b; g.N = N; g.K = K; g.col = n0 + (threadIdx.x & 127); g.colOk = g.col < N;
        gm_core<HALF, false>(smem, acc, a, b, g, M, N, K, m0, n0, kt0, kt1);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wm = warp >> 2, wn = warp & 3, gr = lane >> 2, t = lane & 3;
    const long mn = (long)M * N;
    if (GEGLU && splits == 1) {
        const int inner = N >> 1;
        const long mi_n = (long)M * inner;
        #pragma unroll
        for (int mi = 0; mi < 4; mi++)
            #pragma unroll
            for (int p = 0; p < 2; p++)                /* n tiles 2p (values) and 2p+1 (their gates) */
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    int row = m0 + wm * 64 + mi * 16 + gr + (e >> 1) * 8;
                    int g0 = n0 + wn * 32 + p * 16, cv = g0 + 2 * t + (e & 1);   /* g0: a 16-column group; cv < N implies cv + 8 < N */
                    if (row < M && cv < N) {
                        float v = alpha * acc[mi][2 * p][e], gate = alpha * acc[mi][2 * p + 1][e];
                        if (hasBias) {
                            v += GmElem<HALF>::toFloat(bias[cv]);
                            gate += GmElem<HALF>::toFloat(bias[cv + 8]);
                        }
                        GmElem<HALF>::store(c, (long)bz * mi_n + (long)row * inner + (g0 >> 1) + (cv - g0), v * gm_gelu(gate));
                    }
                }
        return;
    }
    #pragma unroll
    for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 4; ni++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                int row = m0 + wm * 64 + mi * 16 + gr + (e >> 1) * 8;
                int cn = n0 + wn * 32 + ni * 8 + 2 * t + (e & 1);
                if (row < M && cn < N) {
                    long o = (long)row * N + cn;
                    if (splits > 1) {
                        ws[((long)sp * batch + bz) * mn + o] = acc[mi][ni][e];
                    } else if (!GEGLU) {
                        long oc = (long)bz * mn + gm_out_index(row, cn, N, outHw);
                        float v = alpha * acc[mi][ni][e];
                        if (hasBias) v += GmElem<HALF>::toFloat(bias[cn]);
                        if (hasRes) v = (v + GmElem<HALF>::toFloat(res[oc])) * beta;
                        GmElem<HALF>::store(c, oc, v);
                    }
                }
            }
}

template <bool HALF>
__device__ __forceinline__ void gm_conv(const typename GmElem<HALF>::T* x, const typename GmElem<HALF>::T* weight, const typename GmElem<HALF>::T* bias,
                                        typename GmElem<HALF>::T* out, int n, int cIn, int h, int w, int cOut, int ks, int stride, int pad,
                                        int hOut, int wOut, int hasBias, float* ws, int splits, int kPer,
                                        const typename GmElem<HALF>::T* res, int hasRes, float beta) {
    const int m0 = blockIdx.y * GM_BM, n0 = blockIdx.x * GM_BN;
    const int hw = hOut * wOut, ncols = n * hw, K = cIn * ks * ks;
    int bz, sp, kt0, kt1;
    gm_split(K, HALF ? 32 : 16, splits, kPer, bz, sp, kt0, kt1);
    int col = n0 + (threadIdx.x & 127);
    bool colOk = col < ncols;
    int img = colOk ? col / hw : 0, p = colOk ? col - img * hw : 0;
    GmIm2col<HALF> g;
    g.x = x + (long)img * cIn * h * w;
    g.h = h; g.w = w; g.ks = ks; g.K = K; g.colOk = colOk;
    g.iy0 = p / wOut * stride - pad;
    g.ix0 = p % wOut * stride - pad;
    GM_SMEM(smem);
    float acc[4][4][4];
    gm_core<HALF, false>(smem, acc, weight, weight, g, cOut, ncols, K, m0, n0, kt0, kt1);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wm = warp >> 2, wn = warp & 3, gr = lane >> 2, t = lane & 3;
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
                        if (hasBias) v += GmElem<HALF>::toFloat(bias[row]);
                        if (hasRes) v = (v + GmElem<HALF>::toFloat(res[o + (long)row * hw])) * beta;
                        GmElem<HALF>::store(out, o + (long)row * hw, v);
                    }
                }
        }
}

/* c = alpha * sum over splits of ws + bias, then (c + res) * beta when hasRes. hw == 0: c [batch][m][n], bias [n] (outHw > 0:
 * batch 1, c channels-first as gm_out_index); hw > 0 (conv): c NCHW with m = cOut, n = images*hw, bias [m]. res is laid out like c. */
template <bool HALF>
__device__ __forceinline__ void gm_reduce(const float* ws, const typename GmElem<HALF>::T* bias, typename GmElem<HALF>::T* c, int batch, int m, int n,
                                          int splits, int hasBias, float alpha, int hw, const typename GmElem<HALF>::T* res, int hasRes, float beta, int outHw) {
    long total = (long)batch * m * n;
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    float s = 0.0f;
    for (int q = 0; q < splits; q++) s += ws[(long)q * total + i];
    int col = (int)(i % n), row = (int)(i / n % m);
    float v = alpha * s;
    long o = i;
    if (hw == 0) {
        if (hasBias) v += GmElem<HALF>::toFloat(bias[col]);
        if (outHw > 0) o = gm_out_index(row, col, n, outHw);
    } else {
        if (hasBias) v += GmElem<HALF>::toFloat(bias[row]);
        o = (long)(col / hw) * m * hw + (long)row * hw + col % hw;
    }
    if (hasRes) v = (v + GmElem<HALF>::toFloat(res[o])) * beta;
    GmElem<HALF>::store(c, o, v);
}

/* GEGLU after split-K: ws [splits][batch][m][n] raw sums over the permuted columns (n = 2*inner); c [batch][m][inner]. */
template <bool HALF>
__device__ __forceinline__ void gm_reduce_geglu(const float* ws, const typename GmElem<HALF>::T* bias, typename GmElem<HALF>::T* c, int batch, int m, int n,
                                                int splits, int hasBias, float alpha) {
    const int inner = n >> 1;
    long total = (long)batch * m * inner, wsTotal = (long)batch * m * n;
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    long r = i / inner;                                /* batch * m + row */
    int cv = gm_geglu_col((int)(i - r * inner));
    long o = r * n + cv;
    float v = 0.0f, gate = 0.0f;
    for (int q = 0; q < splits; q++) {
        v += ws[(long)q * wsTotal + o];
        gate += ws[(long)q * wsTotal + o + 8];
    }
    v *= alpha;
    gate *= alpha;
    if (hasBias) {
        v += GmElem<HALF>::toFloat(bias[cv]);
        gate += GmElem<HALF>::toFloat(bias[cv + 8]);
    }
    GmElem<HALF>::store(c, i, v * gm_gelu(gate));
}

KERNEL void __launch_bounds__(GM_THREADS, 2) gemm_mma_f16(const half_t* a, const half_t* b, const half_t* bias, half_t* c, int batch, int m, int n, int k,
                                                       int transB, int hasBias, float alpha, float* ws, int splits, int kPer,
                                                       const half_t* res, int hasRes, float beta, int outHw) {
    gm_gemm<true, false>(a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer, res, hasRes, beta, outHw);
}

KERNEL void __launch_bounds__(GM_THREADS, 2) gemm_mma_tf32(const float* a, const float* b, const float* bias, float* c, int batch, int m, int n, int k,
                                                        int transB, int hasBias, float alpha, float* ws, int splits, int kPer,
                                                        const float* res, int hasRes, float beta, int outHw) {
    gm_gemm<false, false>(a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer, res, hasRes, beta, outHw);
}

KERNEL void __launch_bounds__(GM_THREADS, 2) gemm_mma_geglu_f16(const half_t* a, const half_t* b, const half_t* bias, half_t* c, int batch, int m, int n, int k,
                                                             int transB, int hasBias, float alpha, float* ws, int splits, int kPer) {
    gm_gemm<true, true>(a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer, c, 0, 1.0f, 0);
}

KERNEL void __launch_bounds__(GM_THREADS, 2) gemm_mma_geglu_tf32(const float* a, const float* b, const float* bias, float* c, int batch, int m, int n, int k,
                                                              int transB, int hasBias, float alpha, float* ws, int splits, int kPer) {
    gm_gemm<false, true>(a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer, c, 0, 1.0f, 0);
}

KERNEL void __launch_bounds__(GM_THREADS, 2) conv2d_mma_f16(const half_t* x, const half_t* weight, const half_t* bias, half_t* out, int n, int cIn, int h, int w,
                                                         int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias, float* ws, int splits, int kPer,
                                                         const half_t* res, int hasRes, float beta) {
    gm_conv<true>(x, weight, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, ws, splits, kPer, res, hasRes, beta);
}

KERNEL void __launch_bounds__(GM_THREADS, 2) conv2d_mma_tf32(const float* x, const float* weight, const float* bias, float* out, int n, int cIn, int h, int w,
                                                          int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias, float* ws, int splits, int kPer,
                                                          const float* res, int hasRes, float beta) {
    gm_conv<false>(x, weight, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, ws, splits, kPer, res, hasRes, beta);
}

#ifdef JD_3XTF32
/* Strict fp32 on tensor cores (3xTF32, see gm_mma_3x): same arguments, launch and split-K as the tf32 kernels. */
#ifndef GM_3X_MIN_BLOCKS
#define GM_3X_MIN_BLOCKS 1
#endif
KERNEL void __launch_bounds__(GM_THREADS, GM_3X_MIN_BLOCKS) gemm_mma_3xtf32(const float* a, const float* b, const float* bias, float* c, int batch, int m, int n,
                                                                           int k, int transB, int hasBias, float alpha, float* ws, int splits, int kPer,
                                                                           const float* res, int hasRes, float beta, int outHw) {
    gm_gemm<false, false>(a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer, res, hasRes, beta, outHw);
}

KERNEL void __launch_bounds__(GM_THREADS, GM_3X_MIN_BLOCKS) gemm_mma_geglu_3xtf32(const float* a, const float* b, const float* bias, float* c, int batch, int m,
                                                                                 int n, int k, int transB, int hasBias, float alpha, float* ws, int splits, int kPer) {
    gm_gemm<false, true>(a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer, c, 0, 1.0f, 0);
}

KERNEL void __launch_bounds__(GM_THREADS, GM_3X_MIN_BLOCKS) conv2d_mma_3xtf32(const float* x, const float* weight, const float* bias, float* out, int n, int cIn,
                                                                             int h, int w, int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias,
                                                                             float* ws, int splits, int kPer, const float* res, int hasRes, float beta) {
    gm_conv<false>(x, weight, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, ws, splits, kPer, res, hasRes, beta);
}
#endif

KERNEL void gemm_splitk_reduce_f16(const float* ws, const half_t* bias, half_t* c, int batch, int m, int n, int splits, int hasBias, float alpha, int hw,
                                   const half_t* res, int hasRes, float beta, int outHw) {
    gm_reduce<true>(ws, bias, c, batch, m, n, splits, hasBias, alpha, hw, res, hasRes, beta, outHw);
}

KERNEL void gemm_splitk_reduce_f32(const float* ws, const float* bias, float* c, int batch, int m, int n, int splits, int hasBias, float alpha, int hw,
                                   const float* res, int hasRes, float beta, int outHw) {
    gm_reduce<false>(ws, bias, c, batch, m, n, splits, hasBias, alpha, hw, res, hasRes, beta, outHw);
}

KERNEL void gemm_splitk_geglu_f16(const float* ws, const half_t* bias, half_t* c, int batch, int m, int n, int splits, int hasBias, float alpha) {
    gm_reduce_geglu<true>(ws, bias, c, batch, m, n, splits, hasBias, alpha);
}

KERNEL void gemm_splitk_geglu_f32(const float* ws, const float* bias, float* c, int batch, int m, int n, int splits, int hasBias, float alpha) {
    gm_reduce_geglu<false>(ws, bias, c, batch, m, n, splits, hasBias, alpha);
}
