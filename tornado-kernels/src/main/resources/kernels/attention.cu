/* CUDA-only attention kernels (NVRTC; prelude.h is prepended with JD_CUDA defined; no #include, no CUDA headers).
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
 */
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

struct alignas(16) fa_u4 { unsigned int x, y, z, w; };

__device__ __forceinline__ unsigned int fa_ld32(const half_t* p) { return *reinterpret_cast<const unsigned int*>(p); }

__device__ __forceinline__ unsigned int fa_pack(float lo, float hi) {
    return (unsigned int)jd_f2h(lo) | ((unsigned int)jd_f2h(hi) << 16);
}

#ifndef FA_EMULATED_MMA /* a host-side warp emulator defines its own fa_mma to check this kernel on a CPU */
__device__ __forceinline__ void fa_mma(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

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
