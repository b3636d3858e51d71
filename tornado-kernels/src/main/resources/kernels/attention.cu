/* CUDA-only attention kernels (NVRTC; prelude.h is prepended with JD_CUDA defined; no #include, no CUDA headers).
 * -DFA_NO_F16 / -DFA_NO_TF32 / -DFA_NO_VANILLA leave kernels out of the module (Attention.java keeps only the ones a
 * launch needs); without them all build with their defaults (the compile check).
 *
 * flash_attn_f16_mma: FlashAttention-2 style forward for fp16 q/k/v/out with fp32 accumulation on tensor cores
 * (inline PTX mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32).
 *   block NW warps (NW*32 threads), BQ = 16*NW query rows per block, each warp owns 16 rows;
 *   launch: local (NW*32, 1), global (bhCount*NW*32, cover(seqQ, BQ)/BQ) -> blockIdx.x = b*heads + h, blockIdx.y = query block.
 *   compile-time: DP = head dim padded to a multiple of 16, BK = keys per shared-memory tile (multiple of 16),
 *                 NW = warps, VEC8 = 1 when D % 8 == 0 (16-byte global loads).
 *   Q is staged through shared memory once and kept as A fragments in registers; per K/V tile: S = Q K^T (mma),
 *   scale/mask in the log2 domain, online softmax (row max and sum reduced over the 4 threads of a quad), the
 *   accumulator rescaled by exp2(m_old - m_new), P re-packed from the S accumulator layout into fp16 A fragments,
 *   O += P V (mma) with V stored transposed in shared memory so B fragments are 32-bit loads.
 *   Shared memory: 2*(BQ*(DP+8) + BK*(DP+8) + DP*(BK+8)) bytes, chosen <= 48 KiB by Attention.java.
 *
 * Fragment layouts (PTX ISA, m16n8k16, f16 inputs, f32 accumulators; g = lane/4, t = lane%4):
 *   A (16x16, row): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..2t+1), a2 = (g, 2t+8..2t+9), a3 = (g+8, 2t+8..2t+9)
 *   B (16x8, col):  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
 *   C (16x8):       c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
 *
 * flash_attn_tf32_mma: the same algorithm for fp32 q/k/v/out on TF32 tensor cores (TaskGraph.tf32), inline PTX
 * mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32; operands rounded with cvt.rna.tf32.f32 when staged, softmax,
 * accumulators and output in fp32.
 *   launch as above with TNW warps, TBQ = 16*TNW rows per block.
 *   compile-time: TDP = head dim padded to a multiple of 8, TBK = keys per tile (multiple of 8), TNW = warps,
 *                 TQREG = 1 keeps the Q A fragments in registers (TDP/2 of them), 0 re-reads them per tile from
 *                 global memory (large head dims, where registers would spill), VEC4 = 1 when D % 4 == 0 (float4 loads).
 *   K and V tiles live row-major [key][dim] in shared memory as tf32 bits with row stride TKS = TDP+4 words
 *   (TKS % 8 == 4: the K fragment loads (g*TKS + t) and the V fragment loads (2t*TKS + g) hit 32 distinct banks).
 *   Shared memory: 2*TBK*(TDP+4)*4 bytes, chosen <= 48 KiB by Attention.java.
 *   P V without shuffles: within each 8-key block the thread holds P at keys 2t, 2t+1 (accumulator layout); the A
 *   operand's k index is permuted (A column t = key 2t, column t+4 = key 2t+1) and B's rows follow the same
 *   permutation (b0 = V[key 2t], b1 = V[key 2t+1]); the sum over keys is unchanged.
 *
 * -DFA_3XTF32 (with FA_NO_F16) builds it as flash_attn_3xtf32_mma, strict fp32 (TaskGraph.tf32 off) on the same tensor
 * cores: K and V tiles and Q fragments keep the raw fp32 bits, and at each mma both operands are split x = big + small
 * (big = cvt.rna.tf32(x), small = cvt.rna.tf32(x - big)); S and O accumulate As*Bb + Ab*Bs + Ab*Bb (small products
 * first) in fp32 ("3xTF32": about fp32 accuracy, not IEEE fp32 FMA order). P is split from its fp32 value alike.
 *
 * attn_scores_mma_f16 / _tf32 and attn_pv_mma_f16 / _tf32: VANILLA / CHUNKED's two products on tensor cores (same
 * arguments, layouts and score buffer as attn_scores / attn_pv of attention.cl; fp16 buffers with m16n8k16, fp32 buffers
 * of a TF32 graph with m16n8k8 and cvt.rna.tf32; fp32 accumulation). No shared memory: 4 warps, each 16 rows x 64
 * columns of the output tile, fragments loaded straight from global memory (the 4 warps share B through L1).
 *   launch: local (128, 1, 1), global (cover(cols, 64)/64*128, cover(rows, 64)/64, min(bhCount, 65535)), cols = seqK
 *   (scores) or D (pv); blockIdx.z strides over bh.
 *
 * Fragment layouts (PTX ISA, m16n8k8, tf32 inputs, f32 accumulators; g = lane/4, t = lane%4):
 *   A (16x8, row): a0 = (g, t), a1 = (g+8, t), a2 = (g, t+4), a3 = (g+8, t+4)
 *   B (8x8, col):  b0 = (k t, n g), b1 = (k t+4, n g)
 *   C (16x8):      c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
 */
struct alignas(16) fa_u4 { unsigned int x, y, z, w; };
struct alignas(16) fa_f4 { float x, y, z, w; };

#ifndef FA_EMULATED_MMA /* a host-side warp emulator (src/test/cuda) defines its own fa_mma, fa_tf32, fa_mma_tf32 */
__device__ __forceinline__ void fa_mma(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned int fa_tf32(float x) {
    unsigned int r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ void fa_mma_tf32(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

#ifndef FA_NO_F16
#ifndef DP
#define DP 64
#endif
#ifndef BK
#define BK 64
#endif
#ifndef NW
#define NW 4
#endif
#ifndef VEC8
#define VEC8 0
#endif
#define BQ (16 * NW)
#define QS (DP + 8)
#define KS (DP + 8)
#define VS (BK + 8)
#define NTHREADS (32 * NW)

__device__ __forceinline__ unsigned int fa_ld32(const half_t* p) { return *reinterpret_cast<const unsigned int*>(p); }

__device__ __forceinline__ unsigned int fa_pack(float lo, float hi) {
    return (unsigned int)jd_f2h(lo) | ((unsigned int)jd_f2h(hi) << 16);
}

extern "C" __global__ void __launch_bounds__(NTHREADS)
flash_attn_f16_mma(const half_t* q, const half_t* k, const half_t* v, half_t* out, int bhCount, int heads,
                   int seqQ, int seqK, int D, float scale, int causal) {
    __shared__ fa_u4 smem[(BQ * QS + BK * KS + DP * VS) / 8];   /* 16-byte aligned; every part is a multiple of 8 halves */
    half_t* Qs = reinterpret_cast<half_t*>(smem);
    half_t* Ks = Qs + BQ * QS;
    half_t* Vt = Ks + BK * KS;
    const float NEG_INF = INFINITY_F * -1.0f;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.x, b = bh / heads, h = bh % heads;
    const int q0 = blockIdx.y * BQ;
    const long hd = (long)heads * D;
    const half_t* qb = q + (long)b * seqQ * hd + (long)h * D;
    const half_t* kb = k + (long)b * seqK * hd + (long)h * D;
    const half_t* vb = v + (long)b * seqK * hd + (long)h * D;
    half_t* ob = out + (long)b * seqQ * hd + (long)h * D;
    const float sl2 = scale * 1.4426950408889634f;   /* scores in the log2 domain: exp(x) = exp2(x log2 e) */

    /* ---- Q tile -> shared -> A fragments ---- */
#if VEC8
    for (int e = tid; e < BQ * (DP / 8); e += NTHREADS) {
        int r = e / (DP / 8), c = (e % (DP / 8)) * 8;
        fa_u4 val = {0u, 0u, 0u, 0u};
        if (q0 + r < seqQ && c < D) val = *reinterpret_cast<const fa_u4*>(qb + (long)(q0 + r) * hd + c);
        *reinterpret_cast<fa_u4*>(&Qs[r * QS + c]) = val;
    }
#else
    for (int e = tid; e < BQ * DP; e += NTHREADS) {
        int r = e / DP, c = e % DP;
        Qs[r * QS + c] = (q0 + r < seqQ && c < D) ? qb[(long)(q0 + r) * hd + c] : (half_t)0;
    }
#endif
    __syncthreads();
    unsigned int qf[DP / 16][4];
#pragma unroll
    for (int ks = 0; ks < DP / 16; ks++) {
        const half_t* base = &Qs[(warp * 16 + g) * QS + ks * 16 + 2 * t];
        qf[ks][0] = fa_ld32(base);
        qf[ks][1] = fa_ld32(base + 8 * QS);
        qf[ks][2] = fa_ld32(base + 8);
        qf[ks][3] = fa_ld32(base + 8 * QS + 8);
    }

    float o[DP / 8][4];
#pragma unroll
    for (int nd = 0; nd < DP / 8; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;   /* rows rowA (g) and rowB (g+8) of this warp */
    const int rowA = q0 + warp * 16 + g, rowB = rowA + 8;
    int kEnd = seqK;
    if (causal && q0 + BQ < seqK) kEnd = q0 + BQ;

    for (int k0 = 0; k0 < kEnd; k0 += BK) {
        __syncthreads();                                        /* previous tile fully consumed */
        /* ---- K tile (row-major) and V tile (transposed) -> shared ---- */
#if VEC8
        for (int e = tid; e < BK * (DP / 8); e += NTHREADS) {
            int r = e / (DP / 8), c = (e % (DP / 8)) * 8;
            fa_u4 kv = {0u, 0u, 0u, 0u}, vv = {0u, 0u, 0u, 0u};
            if (k0 + r < seqK && c < D) {
                long off = (long)(k0 + r) * hd + c;
                kv = *reinterpret_cast<const fa_u4*>(kb + off);
                vv = *reinterpret_cast<const fa_u4*>(vb + off);
            }
            *reinterpret_cast<fa_u4*>(&Ks[r * KS + c]) = kv;
            const half_t* vh = reinterpret_cast<const half_t*>(&vv);
#pragma unroll
            for (int x = 0; x < 8; x++) Vt[(c + x) * VS + r] = vh[x];
        }
#else
        for (int e = tid; e < BK * DP; e += NTHREADS) {
            int r = e / DP, c = e % DP;
            half_t kx = 0, vx = 0;
            if (k0 + r < seqK && c < D) {
                long off = (long)(k0 + r) * hd + c;
                kx = kb[off];
                vx = vb[off];
            }
            Ks[r * KS + c] = kx;
            Vt[c * VS + r] = vx;
        }
#endif
        __syncthreads();

        /* ---- S = Q K^T for this warp's 16 rows x BK keys ---- */
        float s[BK / 8][4];
#pragma unroll
        for (int nb = 0; nb < BK / 8; nb++) {
            s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < DP / 16; ks++) {
                const half_t* kp = &Ks[(nb * 8 + g) * KS + ks * 16 + 2 * t];
                fa_mma(s[nb], qf[ks], fa_ld32(kp), fa_ld32(kp + 8));
            }
        }

        /* ---- scale, mask, online softmax ---- */
        float mx0 = NEG_INF, mx1 = NEG_INF;
#pragma unroll
        for (int nb = 0; nb < BK / 8; nb++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int col = k0 + nb * 8 + 2 * t + e;
                float x0 = s[nb][e] * sl2, x1 = s[nb][2 + e] * sl2;
                if (col >= seqK || (causal && col > rowA)) x0 = NEG_INF;
                if (col >= seqK || (causal && col > rowB)) x1 = NEG_INF;
                s[nb][e] = x0;
                s[nb][2 + e] = x1;
                mx0 = fmaxf(mx0, x0);
                mx1 = fmaxf(mx1, x1);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        float base0 = mn0 == NEG_INF ? 0.0f : mn0, base1 = mn1 == NEG_INF ? 0.0f : mn1;
        float al0 = exp2f(m0 - base0), al1 = exp2f(m1 - base1);   /* 0 while nothing was seen */
        m0 = mn0;
        m1 = mn1;
        l0 *= al0;                                              /* per-thread partial sums; the quad is summed at the end */
        l1 *= al1;
#pragma unroll
        for (int nb = 0; nb < BK / 8; nb++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float p0 = exp2f(s[nb][e] - base0), p1 = exp2f(s[nb][2 + e] - base1);
                s[nb][e] = p0;
                s[nb][2 + e] = p1;
                l0 += p0;
                l1 += p1;
            }
        }
#pragma unroll
        for (int nd = 0; nd < DP / 8; nd++) {
            o[nd][0] *= al0;
            o[nd][1] *= al0;
            o[nd][2] *= al1;
            o[nd][3] *= al1;
        }

        /* ---- O += P V: the S accumulators of key blocks 2kk, 2kk+1 are the A fragment of keys [16kk, 16kk+16) ---- */
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            unsigned int a[4];
            a[0] = fa_pack(s[2 * kk][0], s[2 * kk][1]);
            a[1] = fa_pack(s[2 * kk][2], s[2 * kk][3]);
            a[2] = fa_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = fa_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int nd = 0; nd < DP / 8; nd++) {
                const half_t* vp = &Vt[(nd * 8 + g) * VS + kk * 16 + 2 * t];
                fa_mma(o[nd], a, fa_ld32(vp), fa_ld32(vp + 8));
            }
        }
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int nd = 0; nd < DP / 8; nd++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int col = nd * 8 + 2 * t + e;
            if (col < D) {
                if (rowA < seqQ) ob[(long)rowA * hd + col] = jd_f2h(o[nd][e] * inv0);
                if (rowB < seqQ) ob[(long)rowB * hd + col] = jd_f2h(o[nd][2 + e] * inv1);
            }
        }
    }
}
#endif /* FA_NO_F16 */

#ifndef FA_NO_TF32
#ifndef TDP
#define TDP 64
#endif
#ifndef TBK
#define TBK 64
#endif
#ifndef TNW
#define TNW 4
#endif
#ifndef TQREG
#define TQREG 1
#endif
#ifndef VEC4
#define VEC4 0
#endif
#define TBQ (16 * TNW)
#ifdef FA_3XTF32
#define FA_TF32_KERNEL flash_attn_3xtf32_mma
/* operands are staged as raw fp32 bits and split at mma time (fa_mma3) */
__device__ __forceinline__ unsigned int fa_stage(float x) { return __float_as_uint(x); }
/* x = big + small, both tf32 words; x - big is exact in fp32 */
__device__ __forceinline__ void fa_split3(unsigned int x, unsigned int& big, unsigned int& small) {
    big = fa_tf32(__uint_as_float(x));
    small = fa_tf32(__uint_as_float(x) - __uint_as_float(big));
}
/* c += A B in 3xTF32 from the split A (ab, as) and raw fp32 B words b0, b1: As*Bb, Ab*Bs, then Ab*Bb */
__device__ __forceinline__ void fa_mma3(float* c, const unsigned int* ab, const unsigned int* as, unsigned int b0, unsigned int b1) {
    unsigned int b0b, b0s, b1b, b1s;
    fa_split3(b0, b0b, b0s);
    fa_split3(b1, b1b, b1s);
    fa_mma_tf32(c, as, b0b, b1b);
    fa_mma_tf32(c, ab, b0s, b1s);
    fa_mma_tf32(c, ab, b0b, b1b);
}
#else
#define FA_TF32_KERNEL flash_attn_tf32_mma
__device__ __forceinline__ unsigned int fa_stage(float x) { return fa_tf32(x); }
#endif
#define TKS (TDP + 4)
#define TTHREADS (32 * TNW)

/* q element (row, col) of this (batch, head) as tf32 bits, 0 outside [seqQ, D) */
__device__ __forceinline__ unsigned int fa_qtf32(const float* qb, long hd, int seqQ, int D, int row, int col) {
    return (row < seqQ && col < D) ? fa_stage(qb[(long)row * hd + col]) : 0u;
}

extern "C" __global__ void __launch_bounds__(TTHREADS)
FA_TF32_KERNEL(const float* q, const float* k, const float* v, float* out, int bhCount, int heads,
                    int seqQ, int seqK, int D, float scale, int causal) {
    __shared__ fa_u4 tsmem[2 * TBK * TKS / 4];                  /* 16-byte aligned; TKS is a multiple of 4 words */
    unsigned int* Ks = reinterpret_cast<unsigned int*>(tsmem);  /* [TBK][TKS] tf32 bits */
    unsigned int* Vs = Ks + TBK * TKS;                          /* [TBK][TKS] tf32 bits */
    const float NEG_INF = INFINITY_F * -1.0f;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.x, b = bh / heads, h = bh % heads;
    const int q0 = blockIdx.y * TBQ;
    const long hd = (long)heads * D;
    const float* qb = q + (long)b * seqQ * hd + (long)h * D;
    const float* kb = k + (long)b * seqK * hd + (long)h * D;
    const float* vb = v + (long)b * seqK * hd + (long)h * D;
    float* ob = out + (long)b * seqQ * hd + (long)h * D;
    const float sl2 = scale * 1.4426950408889634f;   /* scores in the log2 domain: exp(x) = exp2(x log2 e) */
    const int rowA = q0 + warp * 16 + g, rowB = rowA + 8;

#if TQREG
    unsigned int qf[TDP / 8][4];                      /* A fragments of this warp's 16 rows, k steps of 8 dims */
#pragma unroll
    for (int ks = 0; ks < TDP / 8; ks++) {
        qf[ks][0] = fa_qtf32(qb, hd, seqQ, D, rowA, ks * 8 + t);
        qf[ks][1] = fa_qtf32(qb, hd, seqQ, D, rowB, ks * 8 + t);
        qf[ks][2] = fa_qtf32(qb, hd, seqQ, D, rowA, ks * 8 + t + 4);
        qf[ks][3] = fa_qtf32(qb, hd, seqQ, D, rowB, ks * 8 + t + 4);
    }
#endif

    float o[TDP / 8][4];
#pragma unroll
    for (int nd = 0; nd < TDP / 8; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;   /* rows rowA (g) and rowB (g+8) of this warp */
    int kEnd = seqK;
    if (causal && q0 + TBQ < seqK) kEnd = q0 + TBQ;

    for (int k0 = 0; k0 < kEnd; k0 += TBK) {
        __syncthreads();                                        /* previous tile fully consumed */
        /* ---- K and V tiles (row-major, tf32 bits, zero outside [seqK, D)) -> shared ---- */
#if VEC4
        for (int e = tid; e < TBK * (TDP / 4); e += TTHREADS) {
            int r = e / (TDP / 4), c = (e % (TDP / 4)) * 4;
            fa_f4 kx = {0.0f, 0.0f, 0.0f, 0.0f}, vx = {0.0f, 0.0f, 0.0f, 0.0f};
            if (k0 + r < seqK && c < D) {                       /* D % 4 == 0: c < D covers c..c+3 */
                long off = (long)(k0 + r) * hd + c;
                kx = *reinterpret_cast<const fa_f4*>(kb + off);
                vx = *reinterpret_cast<const fa_f4*>(vb + off);
            }
            fa_u4 kt = {fa_stage(kx.x), fa_stage(kx.y), fa_stage(kx.z), fa_stage(kx.w)};
            fa_u4 vt = {fa_stage(vx.x), fa_stage(vx.y), fa_stage(vx.z), fa_stage(vx.w)};
            *reinterpret_cast<fa_u4*>(&Ks[r * TKS + c]) = kt;
            *reinterpret_cast<fa_u4*>(&Vs[r * TKS + c]) = vt;
        }
#else
        for (int e = tid; e < TBK * TDP; e += TTHREADS) {
            int r = e / TDP, c = e % TDP;
            unsigned int kx = 0u, vx = 0u;
            if (k0 + r < seqK && c < D) {
                long off = (long)(k0 + r) * hd + c;
                kx = fa_stage(kb[off]);
                vx = fa_stage(vb[off]);
            }
            Ks[r * TKS + c] = kx;
            Vs[r * TKS + c] = vx;
        }
#endif
        __syncthreads();

        /* ---- S = Q K^T for this warp's 16 rows x TBK keys: B = K^T, b0 = K[key nb*8+g][dim ks*8+t], b1 = dim +4 ---- */
        float s[TBK / 8][4];
#pragma unroll
        for (int nb = 0; nb < TBK / 8; nb++) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < TDP / 8; ks++) {
#if TQREG
            const unsigned int* a = qf[ks];
#else
            unsigned int a[4];
            a[0] = fa_qtf32(qb, hd, seqQ, D, rowA, ks * 8 + t);
            a[1] = fa_qtf32(qb, hd, seqQ, D, rowB, ks * 8 + t);
            a[2] = fa_qtf32(qb, hd, seqQ, D, rowA, ks * 8 + t + 4);
            a[3] = fa_qtf32(qb, hd, seqQ, D, rowB, ks * 8 + t + 4);
#endif
#ifdef FA_3XTF32
            unsigned int ab[4], as[4];
#pragma unroll
            for (int e = 0; e < 4; e++) fa_split3(a[e], ab[e], as[e]);
#pragma unroll
            for (int nb = 0; nb < TBK / 8; nb++) {
                const unsigned int* kp = &Ks[(nb * 8 + g) * TKS + ks * 8 + t];
                fa_mma3(s[nb], ab, as, kp[0], kp[4]);
            }
#else
#pragma unroll
            for (int nb = 0; nb < TBK / 8; nb++) {
                const unsigned int* kp = &Ks[(nb * 8 + g) * TKS + ks * 8 + t];
                fa_mma_tf32(s[nb], a, kp[0], kp[4]);
            }
#endif
        }

        /* ---- scale, mask, online softmax (s[nb][e] = S(g, nb*8+2t+e), s[nb][2+e] = S(g+8, nb*8+2t+e)) ---- */
        float mx0 = NEG_INF, mx1 = NEG_INF;
#pragma unroll
        for (int nb = 0; nb < TBK / 8; nb++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int col = k0 + nb * 8 + 2 * t + e;
                float x0 = s[nb][e] * sl2, x1 = s[nb][2 + e] * sl2;
                if (col >= seqK || (causal && col > rowA)) x0 = NEG_INF;
                if (col >= seqK || (causal && col > rowB)) x1 = NEG_INF;
                s[nb][e] = x0;
                s[nb][2 + e] = x1;
                mx0 = fmaxf(mx0, x0);
                mx1 = fmaxf(mx1, x1);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        float base0 = mn0 == NEG_INF ? 0.0f : mn0, base1 = mn1 == NEG_INF ? 0.0f : mn1;
        float al0 = exp2f(m0 - base0), al1 = exp2f(m1 - base1);   /* 0 while nothing was seen */
        m0 = mn0;
        m1 = mn1;
        l0 *= al0;                                              /* per-thread partial sums; the quad is summed at the end */
        l1 *= al1;
#pragma unroll
        for (int nb = 0; nb < TBK / 8; nb++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float p0 = exp2f(s[nb][e] - base0), p1 = exp2f(s[nb][2 + e] - base1);
                s[nb][e] = p0;
                s[nb][2 + e] = p1;
                l0 += p0;
                l1 += p1;
            }
        }
#pragma unroll
        for (int nd = 0; nd < TDP / 8; nd++) {
            o[nd][0] *= al0;
            o[nd][1] *= al0;
            o[nd][2] *= al1;
            o[nd][3] *= al1;
        }

        /* ---- O += P V per 8-key block kb8: A column t = key 2t, column t+4 = key 2t+1 (B rows permuted alike) ---- */
#ifndef FA_3XTF32
#pragma unroll
        for (int kb8 = 0; kb8 < TBK / 8; kb8++) {
            unsigned int a[4];
            a[0] = fa_stage(s[kb8][0]);   /* (g,   key 2t)   */
            a[1] = fa_stage(s[kb8][2]);   /* (g+8, key 2t)   */
            a[2] = fa_stage(s[kb8][1]);   /* (g,   key 2t+1) */
            a[3] = fa_stage(s[kb8][3]);   /* (g+8, key 2t+1) */
#pragma unroll
            for (int nd = 0; nd < TDP / 8; nd++) {
                const unsigned int* vp = &Vs[(kb8 * 8 + 2 * t) * TKS + nd * 8 + g];
                fa_mma_tf32(o[nd], a, vp[0], vp[TKS]);
            }
        }
#else
        /* 3xTF32: P split once per tile; per output block nd the tile's 3*TBK/8 mmas go into a zeroed sum added to o in
         * fp32 (the tensor cores round toward zero: thousands of mmas into o would bias it by ~1e-5 at 4096 keys) */
        unsigned int pb[TBK / 8][4], ps[TBK / 8][4];
#pragma unroll
        for (int kb8 = 0; kb8 < TBK / 8; kb8++) {
            fa_split3(fa_stage(s[kb8][0]), pb[kb8][0], ps[kb8][0]);   /* (g,   key 2t)   */
            fa_split3(fa_stage(s[kb8][2]), pb[kb8][1], ps[kb8][1]);   /* (g+8, key 2t)   */
            fa_split3(fa_stage(s[kb8][1]), pb[kb8][2], ps[kb8][2]);   /* (g,   key 2t+1) */
            fa_split3(fa_stage(s[kb8][3]), pb[kb8][3], ps[kb8][3]);   /* (g+8, key 2t+1) */
        }
#pragma unroll
        for (int nd = 0; nd < TDP / 8; nd++) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int kb8 = 0; kb8 < TBK / 8; kb8++) {
                const unsigned int* vp = &Vs[(kb8 * 8 + 2 * t) * TKS + nd * 8 + g];
                fa_mma3(part, pb[kb8], ps[kb8], vp[0], vp[TKS]);
            }
            o[nd][0] += part[0];
            o[nd][1] += part[1];
            o[nd][2] += part[2];
            o[nd][3] += part[3];
        }
#endif
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int nd = 0; nd < TDP / 8; nd++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int col = nd * 8 + 2 * t + e;
            if (col < D) {
                if (rowA < seqQ) ob[(long)rowA * hd + col] = o[nd][e] * inv0;
                if (rowB < seqQ) ob[(long)rowB * hd + col] = o[nd][2 + e] * inv1;
            }
        }
    }
}
#endif /* FA_NO_TF32 */

#ifndef FA_NO_VANILLA
/* element (row, col) of a row-major matrix with row stride ld as mma operand bits (fp16 bits, or tf32 bits of an
 * fp32), 0 outside rows x cols */
template <bool H>
__device__ __forceinline__ unsigned int at_bits(const void* base, long ld, int rows, int cols, int row, int col) {
    if (row >= rows || col >= cols) return 0u;
    if constexpr (H) return (unsigned int)reinterpret_cast<const half_t*>(base)[(long)row * ld + col];
    else return fa_tf32(reinterpret_cast<const float*>(base)[(long)row * ld + col]);
}

/* fp16 elements (row, col) and (row, col + 1) of a row-major matrix as one operand word (col in the low half), 0 outside
 * rows x cols: one 4-byte load where both are inside and the address is 4-byte aligned (always at SD's even head dims) */
__device__ __forceinline__ unsigned int at_pair(const void* base, long ld, int rows, int cols, int row, int col) {
    if (row < rows && col + 1 < cols) {
        const half_t* p = reinterpret_cast<const half_t*>(base) + (long)row * ld + col;
        if ((reinterpret_cast<unsigned long long>(p) & 3) == 0) return *reinterpret_cast<const unsigned int*>(p);
        return (unsigned int)p[0] | ((unsigned int)p[1] << 16);
    }
    return at_bits<true>(base, ld, rows, cols, row, col) | (at_bits<true>(base, ld, rows, cols, row, col + 1) << 16);
}

/* A fragment of the 16 x KSTEP block at (r, c) of row-major X (rows x cols, stride ld); KSTEP = 16 (fp16) or 8 (tf32) */
template <bool H>
__device__ __forceinline__ void at_frag_a(unsigned int* a, const void* x, long ld, int rows, int cols, int r, int c, int g, int t) {
    if constexpr (H) {
        a[0] = at_pair(x, ld, rows, cols, r + g, c + 2 * t);
        a[1] = at_pair(x, ld, rows, cols, r + g + 8, c + 2 * t);
        a[2] = at_pair(x, ld, rows, cols, r + g, c + 2 * t + 8);
        a[3] = at_pair(x, ld, rows, cols, r + g + 8, c + 2 * t + 8);
    } else {
        a[0] = at_bits<H>(x, ld, rows, cols, r + g, c + t);
        a[1] = at_bits<H>(x, ld, rows, cols, r + g + 8, c + t);
        a[2] = at_bits<H>(x, ld, rows, cols, r + g, c + t + 4);
        a[3] = at_bits<H>(x, ld, rows, cols, r + g + 8, c + t + 4);
    }
}

/* B fragment (KSTEP x 8, k x n) whose element (kk, n) is element (n0 + n, k0 + kk) of row-major Y (rows x cols, stride
 * ld) when trans (B = Y^T), else element (k0 + kk, n0 + n) */
template <bool H, bool TRANS>
__device__ __forceinline__ void at_frag_b(unsigned int* b, const void* y, long ld, int rows, int cols, int k0, int n0, int g, int t) {
    const int kk0 = H ? 2 * t : t, kk1 = H ? 2 * t + 8 : t + 4;
    if constexpr (TRANS && H) {
        b[0] = at_pair(y, ld, rows, cols, n0 + g, k0 + kk0);
        b[1] = at_pair(y, ld, rows, cols, n0 + g, k0 + kk1);
    } else if constexpr (TRANS) {
        b[0] = at_bits<H>(y, ld, rows, cols, n0 + g, k0 + kk0);
        b[1] = at_bits<H>(y, ld, rows, cols, n0 + g, k0 + kk1);
    } else {
        b[0] = at_bits<H>(y, ld, rows, cols, k0 + kk0, n0 + g);
        b[1] = at_bits<H>(y, ld, rows, cols, k0 + kk1, n0 + g);
        if constexpr (H) {
            b[0] |= at_bits<H>(y, ld, rows, cols, k0 + kk0 + 1, n0 + g) << 16;
            b[1] |= at_bits<H>(y, ld, rows, cols, k0 + kk1 + 1, n0 + g) << 16;
        }
    }
}

template <bool H>
__device__ __forceinline__ void at_mma(float* c, const unsigned int* a, const unsigned int* b) {
    if constexpr (H) fa_mma(c, a, b[0], b[1]);
    else fa_mma_tf32(c, a, b[0], b[1]);
}

template <bool H>
__device__ __forceinline__ void at_store(void* base, long i, float x) {
    if constexpr (H) reinterpret_cast<half_t*>(base)[i] = jd_f2h(x);
    else reinterpret_cast<float*>(base)[i] = x;
}

/* base[i] = x0 (ok0) and base[i + 1] = x1 (ok1): fp16 with both inside and 4-byte aligned as one 4-byte store */
template <bool H>
__device__ __forceinline__ void at_store2(void* base, long i, float x0, float x1, bool ok0, bool ok1) {
    if constexpr (H) {
        half_t* p = reinterpret_cast<half_t*>(base) + i;
        if (ok0 && ok1 && (reinterpret_cast<unsigned long long>(p) & 3) == 0) {
            *reinterpret_cast<unsigned int*>(p) = (unsigned int)jd_f2h(x0) | ((unsigned int)jd_f2h(x1) << 16);
            return;
        }
    }
    if (ok0) at_store<H>(base, i, x0);
    if (ok1) at_store<H>(base, i + 1, x1);
}

/* s[bh, r, j] = scale * q[b, q0 + r, h, :] . k[b, j, h, :] for r < rows, j < seqK */
template <bool H>
__device__ __forceinline__ void at_scores(const void* q, const void* k, void* s, int bhCount, int heads, int seqQ, int seqK,
                                          int D, float scale, int q0, int rows) {
    const int KSTEP = H ? 16 : 8, esz = H ? 2 : 4;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int r0 = blockIdx.y * 64 + warp * 16, j0 = blockIdx.x * 64;
    const long hd = (long)heads * D;
    for (int bh = blockIdx.z; bh < bhCount; bh += gridDim.z) {
        const int b = bh / heads, h = bh % heads;
        const char* qb = reinterpret_cast<const char*>(q) + (((long)b * seqQ + q0) * hd + (long)h * D) * esz;
        const char* kb = reinterpret_cast<const char*>(k) + ((long)b * seqK * hd + (long)h * D) * esz;
        float c[8][4];
#pragma unroll
        for (int nb = 0; nb < 8; nb++) c[nb][0] = c[nb][1] = c[nb][2] = c[nb][3] = 0.0f;
        for (int kk = 0; kk < D; kk += KSTEP) {
            unsigned int a[4], bf[2];
            at_frag_a<H>(a, qb, hd, rows, D, r0, kk, g, t);
#pragma unroll
            for (int nb = 0; nb < 8; nb++) {
                if (j0 + nb * 8 < seqK) {                        /* warp-uniform */
                    at_frag_b<H, true>(bf, kb, hd, seqK, D, kk, j0 + nb * 8, g, t);
                    at_mma<H>(c[nb], a, bf);
                }
            }
        }
#pragma unroll
        for (int nb = 0; nb < 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e += 2) {                           /* columns col and col + 1 of one row */
                int row = r0 + g + (e >= 2 ? 8 : 0), col = j0 + nb * 8 + 2 * t;
                if (row < rows) at_store2<H>(s, ((long)bh * rows + row) * seqK + col, c[nb][e] * scale, c[nb][e + 1] * scale, col < seqK, col + 1 < seqK);
            }
    }
}

/* out[b, q0 + r, h, :] = p[bh, r, :] v[b, :, h, :] for r < rows */
template <bool H>
__device__ __forceinline__ void at_pv(const void* p, const void* v, void* out, int bhCount, int heads, int seqQ, int seqK,
                                      int D, int q0, int rows) {
    const int KSTEP = H ? 16 : 8, esz = H ? 2 : 4;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int r0 = blockIdx.y * 64 + warp * 16, d0 = blockIdx.x * 64;
    const long hd = (long)heads * D;
    for (int bh = blockIdx.z; bh < bhCount; bh += gridDim.z) {
        const int b = bh / heads, h = bh % heads;
        const char* pb = reinterpret_cast<const char*>(p) + (long)bh * rows * seqK * esz;
        const char* vb = reinterpret_cast<const char*>(v) + ((long)b * seqK * hd + (long)h * D) * esz;
        float c[8][4];
#pragma unroll
        for (int nb = 0; nb < 8; nb++) c[nb][0] = c[nb][1] = c[nb][2] = c[nb][3] = 0.0f;
        for (int j = 0; j < seqK; j += KSTEP) {
            unsigned int a[4], bf[2];
            at_frag_a<H>(a, pb, seqK, rows, seqK, r0, j, g, t);
#pragma unroll
            for (int nb = 0; nb < 8; nb++) {
                if (d0 + nb * 8 < D) {                           /* warp-uniform */
                    at_frag_b<H, false>(bf, vb, hd, seqK, D, j, d0 + nb * 8, g, t);
                    at_mma<H>(c[nb], a, bf);
                }
            }
        }
        char* ob = reinterpret_cast<char*>(out) + (((long)b * seqQ + q0) * hd + (long)h * D) * esz;
#pragma unroll
        for (int nb = 0; nb < 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e += 2) {
                int row = r0 + g + (e >= 2 ? 8 : 0), col = d0 + nb * 8 + 2 * t;
                if (row < rows) at_store2<H>(ob, (long)row * hd + col, c[nb][e], c[nb][e + 1], col < D, col + 1 < D);
            }
    }
}

extern "C" __global__ void __launch_bounds__(128)
attn_scores_mma_f16(const half_t* q, const half_t* k, half_t* s, int bhCount, int heads, int seqQ, int seqK, int D, float scale, int q0, int rows) {
    at_scores<true>(q, k, s, bhCount, heads, seqQ, seqK, D, scale, q0, rows);
}

extern "C" __global__ void __launch_bounds__(128)
attn_scores_mma_tf32(const float* q, const float* k, float* s, int bhCount, int heads, int seqQ, int seqK, int D, float scale, int q0, int rows) {
    at_scores<false>(q, k, s, bhCount, heads, seqQ, seqK, D, scale, q0, rows);
}

extern "C" __global__ void __launch_bounds__(128)
attn_pv_mma_f16(const half_t* p, const half_t* v, half_t* out, int bhCount, int heads, int seqQ, int seqK, int D, int q0, int rows) {
    at_pv<true>(p, v, out, bhCount, heads, seqQ, seqK, D, q0, rows);
}

extern "C" __global__ void __launch_bounds__(128)
attn_pv_mma_tf32(const float* p, const float* v, float* out, int bhCount, int heads, int seqQ, int seqK, int D, int q0, int rows) {
    at_pv<false>(p, v, out, bhCount, heads, seqQ, seqK, D, q0, rows);
}
#endif /* FA_NO_VANILLA */
