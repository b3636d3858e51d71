/*
 * GEMM version 4 (CUDA sm_90a only, opt-in: Gemm with -Djdiffusion.gemm.wgmma=true): fp16 in, fp32 accumulation on
 * Hopper's wgmma (warpgroup-level asynchronous tensor-core MMA) with both operands in 128-byte-swizzled shared memory, a
 * cp.async multi-stage pipeline and the version-3 epilogue. Inline PTX only (no CUDA headers), like gemm_mma.cu. Built
 * for sm_90a (the module's options carry -DJD_ARCH_SUFFIX=a: NVRTC --gpu-architecture=sm_90a; nvcc
 * -gencode=arch=compute_90a,code=sm_90a): plain sm_90 rejects wgmma, and sm_90a code runs on compute capability 9.0 only.
 * bench/cuda/wgmma_check.sh checks it against an fp32 reference and times it against gemm_mma_f16 (and the GEGLU / conv
 * entry points against gemm_mma_geglu_f16 / conv2d_v3_f16).
 *
 *   gemm_wgmma_f16        (a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer, res, hasRes, beta, outHw)
 *   gemm_wgmma_geglu_f16  (a, b, bias, c, batch, m, n, k, transB, hasBias, alpha, ws, splits, kPer)
 *   conv2d_wgmma_f16      (x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, ws, splits, kPer, res, hasRes, beta)
 *
 * Same argument list as gemm_mma_f16, narrower contract (the host checks it): transB = 1 only (B = weights [N][K], k
 * contiguous; transB is not read), splits = 1 (ws, splits and kPer are ignored), K % 64 == 0 (K >= 64), a and b
 * 16-byte aligned. M and N are free (rows past them are zero-filled, stores guarded). Epilogue as gemm_mma.cu, in fp32
 * before the one rounding:
 *   v = alpha * acc + bias[col];  hasRes: v = (v + res) * beta   (res laid out like c; each element of res is read by
 *   the thread that then writes that element of c, so res may be c);
 *   outHw == 0: c [batch][M][N] row-major; outHw > 0 (batch 1, M % outHw == 0): rows are tokens (image row / outHw,
 *   position row % outHw) and c (and res) are channels-first, c [M / outHw][N][outHw].
 *
 * Tile (compile-time, -D): GW_WG warpgroups (default 2: 256 threads), each 64 rows, so BM = 64 * GW_WG rows of A;
 * GW_BN columns (default 160; wgmma wrappers below for 64, 96, 128, 160, 192 and 256); k tile 64 halves (128 bytes, one
 * swizzle row); GW_STAGES shared stages (default 3). Every thread issues cp.async (no producer warps, no TMA).
 * Warpgroup w computes rows [64w, 64w + 64) x all BN columns with one m64nBNk16 wgmma per 16 k, 4 per k tile, into
 * BN / 2 fp32 accumulator registers per thread (fragment d[4j + e]: row 16 * warp + lane / 4 + 8 * (e >> 1) of the
 * warpgroup's 64, column 8j + 2 * (lane % 4) + (e & 1)).
 *
 * Shared memory (dynamic, its base rounded up to 1024 bytes in the kernel): stage s at s * (BM + BN) * 128 bytes holds
 * A [BM rows][64 halves] then B [BN rows][64 halves]; row r is 128 bytes at r * 128 and its 16-byte chunk c (halves
 * 8c .. 8c+7) sits at chunk position c ^ (r & 7): the 128-byte swizzle of the wgmma descriptors (K-major, swizzle mode 1,
 * stride byte offset 1024 = one 8-row group, leading byte offset unused; the 16-k steps add 32 bytes to the start
 * address). The cp.async writes of 8 consecutive threads (one 128-byte row) hit 8 distinct 16-byte bank groups.
 * Pipeline, one barrier per k tile: k tile i waits for its own cp.async group, fences the async proxy
 * (fence.proxy.async: the wgmma reads shared memory through it), barriers, issues the cp.async of k tile i + LEAD into
 * the stage whose wgmmas every warpgroup has finished, then the 4 wgmmas of k tile i and a commit. GW_DRAIN 1 (default):
 * wgmma.wait_group 0 after each k tile, loads LEAD = STAGES - 1 k tiles ahead (the other block on the SM fills the
 * tensor cores meanwhile); GW_DRAIN 0: wait_group 1 (one group stays in flight), LEAD = STAGES - 2.
 * Epilogue through shared memory (the stages are dead by then): alpha * acc as fp32, row-major [BM][BN + 8]
 * (outHw == 0) or column-major [BN][BM + 4] (outHw > 0), padded so that the fragment writes of a warp hit distinct
 * banks; then each thread takes units of 4 consecutive elements of c (4 columns of a row, or 4 positions of a column;
 * consecutive threads, consecutive units: a warp stores 256 contiguous bytes), GW_EPI_CHUNK (8) units at a time: first
 * the 8-byte bias and residual loads of the chunk, then bias, residual, rounding and 8-byte stores, when N % 4 == 0
 * (outHw % 4 == 0) and c / res / bias are 8-byte aligned, else element by element. (Loads issued one by one behind the
 * stores, which may alias them, cost 5-10% on the K = 320 shapes.)
 * Dynamic shared memory bytes (the host passes them: Java -DJD_SMEM=...; the kernel traps if it got fewer):
 *   gw_smem_bytes = max(STAGES * (BM + BN) * 128, BM * (BN + 8) * 4, BN * (BM + 4) * 4) + 1024
 *   default (BN 160, WG 2, STAGES 3): 111616, two blocks per SM (GW_MINB 2: __launch_bounds__(256, 2), <= 128 registers);
 *   BN 128: 99328.
 * Launch: one block per output tile, 1-D: grid batch * ceil(M / BM) * ceil(N / BN) (block x -> batch, M tile, N tile, N
 * tiles fastest so that consecutive blocks share their A rows in L2), block 128 * GW_WG (global (tiles * 128 * GW_WG, 1, 1),
 * local (128 * GW_WG, 1, 1)), gw_smem_bytes of dynamic shared memory (above 48 KiB: cuFuncSetAttribute
 * MAX_DYNAMIC_SHARED_SIZE_BYTES first; CudaBackend does it for -DJD_SMEM).
 * Measured on an H100 SXM (bench/cuda/wgmma_check.sh, SD1.5 UNet shapes at batch 16, NVRTC build): 278-555 TFLOP/s with
 * the default tile, 2.3-3.0x gemm_mma_f16 (K = 320: 278-342, K >= 1280: 434-555).
 *
 * GEGLU (gemm_wgmma_geglu_f16; diffusers' GEGLU after net.0.proj, gemm_mma_geglu_f16's contract and column mapping): the
 * GEMM above with the B rows interleaved by the host (Gemm.gegluInterleave: each 16-column group holds hidden units
 * j .. j+7, then their 8 gates; N = 2 * inner, inner % 8 == 0) and c [batch][M][N / 2]:
 *   c[row][(group start) / 2 + r] = (alpha * acc[value] + bias[value col]) * gelu(alpha * acc[gate] + bias[gate col]),
 *   gelu(x) = 0.5 x (1 + erf(x / sqrt 2)) in fp32 (exact erf, as gemm_mma.cu). transB = 1, splits = 1, K % 64 == 0, BN % 16 == 0.
 * A thread's fragments j = 2q and 2q + 1 are value and gate of the same output, so the GEGLU runs in registers; the
 * 128 x BN / 2 fp32 result is staged row-major [BM][BN / 2 + 8] in the dead stages and stored 4 outputs (8 bytes) per
 * thread and unit. Same tiles, launch and shared memory as the GEMM. 300-460 TFLOP/s on the SD shapes, 1.7-1.8x gemm_mma_geglu_f16.
 *
 * Convolution (conv2d_wgmma_f16; conv2d_v3_f16's contract: NCHW x and out, the tap-major weights wt [cOut][ks*ks][cIn]
 * of conv_taps_f16, cIn % 64 == 0 so that a 64-k tile is one tap and 64 consecutive channels, splits = 1 (ws, splits, kPer
 * unread), wt 16-byte aligned): an implicit GEMM with M = the output pixels of all images (n * hOut * wOut, rows of A:
 * the patches, gathered), N = cOut (B = wt, cp.async exactly like the GEMM's B) and K = ks * ks * cIn; pixels as M let
 * the 128-pixel x 160-channel tile divide cOut = 320 / 640 / 1280 and reuse the channels-first epilogue (outHw = hOut * wOut):
 *   out[(img * cOut + co) * hw + p] = acc + bias[co];  hasRes: (that + res[same index]) * beta   (res NCHW like out).
 * Two A paths (gw_conv): the row path (stride 1, 3x3 pad 1 or 1x1 pad 0, w % 8 == 0 and 128 % w == 0, x 16-byte aligned:
 * every SD conv but the downsamplers) keeps A MN-major, pixels contiguous as in x, so a thread loads 8 pixels of a
 * channel with one 16-byte load and the tap's column shift of one pixel comes from the neighbouring lane (shfl); the
 * per-pixel path (anything else) gathers 16-bit loads a channel plane apart into the K-major layout. Launch as the GEMM
 * with m = n * hOut * wOut, n = cOut, batch 1: grid ceil(m / BM) * ceil(cOut / BN) blocks (cOut tiles fastest), same
 * shared memory. 400-475 TFLOP/s on the SD 3x3 convs (2.0-2.7x conv2d_v3_f16), 200-410 on the 1x1s, 230-290 stride 2;
 * the few-tile 8x8 convs (64 blocks) stay on conv2d_v3_f16's split-K.
 *
 * TF32 (fp32 buffers of a tf32 graph; the same templates with the element type E = float, see GwT):
 *   gemm_wgmma_tf32 / gemm_wgmma_geglu_tf32 / conv2d_wgmma_tf32: the argument lists of gemm_mma_tf32 / gemm_mma_geglu_tf32 /
 *   conv2d_v3_tf32, fp32 in and out. A k tile is still one 128-byte swizzle row, now 32 floats (K % 32 == 0, conv cIn % 32
 *   == 0), so stages, descriptors, tiles, launch and shared memory are the fp16 ones; each k tile is 4 wgmma m64nNk8
 *   .tf32 (32 bytes of each row apiece). The GEMM operands go raw by cp.async (the tensor cores ignore the low 13 mantissa
 *   bits: truncation), the conv's gathered patches are rounded (cvt.rna.tf32) on their way through registers. TF32 wgmma
 *   reads K-major operands only, so the conv always takes the per-pixel gather (16 4-byte loads per thread and k tile).
 *   bench/cuda/wgmma_tf32_check.sh (H100 SXM): rel. L2 vs fp32 ~7e-4 (GEMM), ~1.3e-3 (GEGLU), ~4.3e-4 (conv); GEMM 176-294
 *   TFLOP/s on the big SD shapes (2.4-2.9x gemm_mma_tf32), GEGLU 202-255 (2.0-2.2x), 3x3 convs 190-209 (2.0-3.2x
 *   conv2d_v3_tf32), 1x1 122-184, stride 2 119-139.
 */
#ifndef GW_BN
#define GW_BN 160
#endif
#ifndef GW_WG
#define GW_WG 2
#endif
#ifndef GW_STAGES
#define GW_STAGES 3
#endif
#ifndef GW_MINB
#define GW_MINB 2
#endif
#ifndef GW_DRAIN
#define GW_DRAIN 1
#endif

typedef unsigned int gw_u32;
typedef unsigned long long gw_u64;

/* Dynamic shared memory bytes of a configuration (see the header). */
__host__ __device__ constexpr int gw_max3(int x, int y, int z) { return x > y ? (x > z ? x : z) : (y > z ? y : z); }
__host__ __device__ constexpr int gw_smem_bytes(int bn, int wg, int stages) {
    return gw_max3(stages * (64 * wg + bn) * 128, 64 * wg * (bn + 8) * 4, bn * (64 * wg + 4) * 4) + 1024;
}

__device__ __forceinline__ gw_u32 gw_smem_addr(const void* p) { return (gw_u32)__cvta_generic_to_shared(p); }
/* 16-byte async copy global -> shared; !valid copies nothing and zero-fills (src-size 0). */
__device__ __forceinline__ void gw_cp16(gw_u32 dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void gw_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void gw_cp_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }
/* Orders this thread's generic-proxy writes to shared memory (cp.async included) before later async-proxy reads (wgmma). */
__device__ __forceinline__ void gw_fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void gw_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void gw_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void gw_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory"); }
/* Pins the accumulators (no code): the compiler must not move them across the asynchronous wgmma. */
template <int R> __device__ __forceinline__ void gw_pin(float* d) {
    #pragma unroll
    for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i]) :: "memory");
}

/* Shared-memory matrix descriptor of a K-major operand with the 128-byte swizzle: start address >> 4 (bits 0-13),
 * leading byte offset 16 >> 4 (bits 16-29, unused by this layout), stride byte offset 1024 >> 4 (bits 32-45: next
 * 8-row group), base offset 0 (bits 49-51: tiles are 1024-byte aligned), swizzle mode 1 = 128 bytes (bits 62-63). */
__device__ __forceinline__ gw_u64 gw_desc(gw_u32 saddr) {
    return (gw_u64)((saddr & 0x3FFFF) >> 4) | ((gw_u64)1 << 16) | ((gw_u64)(1024 >> 4) << 32) | ((gw_u64)1 << 62);
}

/* D[64 x N] += A[64 x K] . B[N x K]^T from descriptors, f32 accumulators d[N / 2]:
 *   GwMma<N>::run<TA>: wgmma.mma_async m64nNk16 .f16.f16 (K = 16 halves); TA: imm-trans-a (0: A K-major, 1: A MN-major;
 *   B is always K-major);
 *   GwMma<N>::tf32: wgmma.mma_async m64nNk8 .tf32.tf32 (K = 8 floats, fp32 bits read as TF32: the low 13 mantissa bits
 *   are ignored); both operands K-major (TF32 wgmma has no transpose).
 * Either one reads 32 bytes of each operand row. The accumulator operand lists are spelled once (GW_ACC_N / GW_REGS_N). */
#define GW_F8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define GW_F16(i) GW_F8(i), GW_F8(i + 8)
#define GW_R0 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
#define GW_R1 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define GW_R2 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47"
#define GW_R3 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define GW_R4 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79"
#define GW_R5 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"
#define GW_R6 "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111"
#define GW_R7 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define GW_ACC_64 GW_F16(0), GW_F16(16)
#define GW_REGS_64 GW_R0 ", " GW_R1
#define GW_ACC_96 GW_F16(0), GW_F16(16), GW_F16(32)
#define GW_REGS_96 GW_R0 ", " GW_R1 ", " GW_R2
#define GW_ACC_128 GW_F16(0), GW_F16(16), GW_F16(32), GW_F16(48)
#define GW_REGS_128 GW_R0 ", " GW_R1 ", " GW_R2 ", " GW_R3
#define GW_ACC_160 GW_F16(0), GW_F16(16), GW_F16(32), GW_F16(48), GW_F16(64)
#define GW_REGS_160 GW_R0 ", " GW_R1 ", " GW_R2 ", " GW_R3 ", " GW_R4
#define GW_ACC_192 GW_F16(0), GW_F16(16), GW_F16(32), GW_F16(48), GW_F16(64), GW_F16(80)
#define GW_REGS_192 GW_R0 ", " GW_R1 ", " GW_R2 ", " GW_R3 ", " GW_R4 ", " GW_R5
#define GW_ACC_256 GW_F16(0), GW_F16(16), GW_F16(32), GW_F16(48), GW_F16(64), GW_F16(80), GW_F16(96), GW_F16(112)
#define GW_REGS_256 GW_R0 ", " GW_R1 ", " GW_R2 ", " GW_R3 ", " GW_R4 ", " GW_R5 ", " GW_R6 ", " GW_R7
#define GW_MMA_DEF(N, IA, IB, IT)                                                                                                  \
    template <> struct GwMma<N> {                                                                                                     \
        template <int TA = 0> static __device__ __forceinline__ void run(float* d, gw_u64 da, gw_u64 db) {                            \
            asm volatile("wgmma.mma_async.sync.aligned.m64n" #N "k16.f32.f16.f16 {" GW_REGS_##N "}, " IA ", " IB ", 1, 1, 1, " IT ", 0;\n" \
                         : GW_ACC_##N : "l"(da), "l"(db), "n"(TA));                                                                   \
        }                                                                                                                             \
        static __device__ __forceinline__ void tf32(float* d, gw_u64 da, gw_u64 db) {                                                 \
            asm volatile("wgmma.mma_async.sync.aligned.m64n" #N "k8.f32.tf32.tf32 {" GW_REGS_##N "}, " IA ", " IB ", 1, 1, 1;\n"     \
                         : GW_ACC_##N : "l"(da), "l"(db));                                                                            \
        }                                                                                                                             \
    };
template <int N> struct GwMma;
GW_MMA_DEF(64, "%32", "%33", "%34")
GW_MMA_DEF(96, "%48", "%49", "%50")
GW_MMA_DEF(128, "%64", "%65", "%66")
GW_MMA_DEF(160, "%80", "%81", "%82")
GW_MMA_DEF(192, "%96", "%97", "%98")
GW_MMA_DEF(256, "%128", "%129", "%130")
/* The operand / output element type E: half_t (fp16 kernels) or float (TF32 kernels: fp32 buffers, the tensor cores read
 * the operands as TF32). A k tile is one 128-byte swizzle row of each operand: KE = 64 halves or 32 floats, four wgmma k
 * steps of 32 bytes (k16 f16 / k8 tf32). V4: 4 elements in one load (8 or 16 bytes). Raw: one element's bits. */
template <typename E> struct GwT;
template <> struct GwT<half_t> {
    static constexpr int KE = 64;
    typedef uint2 V4;
    typedef unsigned short Raw;
    static __device__ __forceinline__ float f(half_t v) { return jd_h2f(v); }
    static __device__ __forceinline__ half_t from(float v) { return jd_f2h(v); }
    static __device__ __forceinline__ V4 zero4() { V4 z; z.x = z.y = 0u; return z; }
    static __device__ __forceinline__ V4 ld4(const half_t* p) { return *(const uint2*)p; }
    static __device__ __forceinline__ float get(V4 v, int i) {
        const gw_u32 w = i < 2 ? v.x : v.y;
        return jd_h2f((half_t)((i & 1) ? w >> 16 : w & 0xFFFF));
    }
    static __device__ __forceinline__ void st4(half_t* p, float a, float b, float c, float d) {
        uint2 o;
        o.x = (gw_u32)jd_f2h(a) | ((gw_u32)jd_f2h(b) << 16);
        o.y = (gw_u32)jd_f2h(c) | ((gw_u32)jd_f2h(d) << 16);
        *(uint2*)p = o;
    }
    static __device__ __forceinline__ void ld2(const half_t* p, float& a, float& b) {
        const gw_u32 w = *(const gw_u32*)p;
        a = jd_h2f((half_t)(w & 0xFFFF)); b = jd_h2f((half_t)(w >> 16));
    }
    static __device__ __forceinline__ Raw raw(const half_t* p) { return *p; }
};
template <> struct GwT<float> {
    static constexpr int KE = 32;
    typedef float4 V4;
    typedef gw_u32 Raw;
    static __device__ __forceinline__ float f(float v) { return v; }
    static __device__ __forceinline__ float from(float v) { return v; }
    static __device__ __forceinline__ V4 zero4() { return make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
    static __device__ __forceinline__ V4 ld4(const float* p) { return *(const float4*)p; }
    static __device__ __forceinline__ float get(V4 v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }
    static __device__ __forceinline__ void st4(float* p, float a, float b, float c, float d) { *(float4*)p = make_float4(a, b, c, d); }
    static __device__ __forceinline__ void ld2(const float* p, float& a, float& b) {
        const float2 v = *(const float2*)p;
        a = v.x; b = v.y;
    }
    /* rounded to TF32 (cvt.rna: nearest, ties away; low 13 bits 0) where the value passes through registers anyway */
    static __device__ __forceinline__ Raw raw(const float* p) {
        gw_u32 r;
        asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(*p));
        return r;
    }
};
/* The 4 wgmmas of one k tile (32 bytes of each operand row apiece: +2 on the descriptors' 16-byte address field). */
template <int BN, typename E>
__device__ __forceinline__ void gw_mma_ktile(float* acc, gw_u64 da, gw_u64 db) {
    #pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        if constexpr (sizeof(E) == 4) GwMma<BN>::tf32(acc, da + 2 * kk, db + 2 * kk);
        else GwMma<BN>::run(acc, da + 2 * kk, db + 2 * kk);
    }
}

/* cp.async of k tile kt (KE elements = 128 bytes) of the block's A rows [m0, m0 + BM) and B rows [n0, n0 + BN) into the stage at shared
 * address st. Thread tid copies 16-byte chunk tid & 7 of rows tid / 8 + j * T / 8: its swizzled chunk position
 * ((tid & 7) ^ (row & 7)) is the same for all its rows. Rows past M / N are zero-filled (src-size 0, from the valid
 * address a). ga / gb: this thread's first A / B row at k 0; rowA / rowB: their indices. */
template <int BN, int WG, typename E>
__device__ __forceinline__ void gw_load(gw_u32 st, const E* ga, const E* gb, const E* a, int M, int N, int K, int rowA, int rowB,
                                        int lrow, gw_u32 soff, int kt) {
    constexpr int T = 128 * WG, BM = 64 * WG, RS = T / 8;        /* rows per pass of all threads */
    constexpr int AIT = BM / RS, BIT = (BN + RS - 1) / RS;
    const long kOff = (long)kt * GwT<E>::KE, step = (long)RS * K;
    #pragma unroll
    for (int j = 0; j < AIT; j++) {
        const bool ok = rowA + j * RS < M;
        gw_cp16(st + soff + j * RS * 128, ok ? (const void*)(ga + j * step + kOff) : (const void*)a, ok);
    }
    #pragma unroll
    for (int j = 0; j < BIT; j++) {
        if (BN % RS == 0 || lrow + j * RS < BN) {
            const bool ok = rowB + j * RS < N;
            gw_cp16(st + BM * 128 + soff + j * RS * 128, ok ? (const void*)(gb + j * step + kOff) : (const void*)a, ok);
        }
    }
}


/*
 * Epilogue through shared memory (stage: the dead pipeline stages). The fragments go there as fp32 alpha * acc, row-major
 * [BM][BN + 8] or, outHw > 0, column-major [BN][BM + 4] (both layouts: the fragment writes of a warp fall into distinct
 * banks). Then each thread handles ITER units of 4 consecutive elements of c (4 columns of a row; outHw > 0: 4
 * positions of a column), consecutive threads consecutive units. On the vector path (N % 4 == 0, resp. outHw % 4 == 0,
 * and 8-byte aligned c / res / bias) it takes its units GW_EPI_CHUNK at a time: first the bias and residual loads of the
 * chunk, then the 8-byte stores (res may be c: each element is read and then written by the same thread), so the loads
 * overlap instead of queueing one by one behind stores that might alias them. Elsewhere element by element. c, res: this batch's.
 */
#ifndef GW_EPI_CHUNK
#define GW_EPI_CHUNK 8
#endif
template <int BN, int WG, typename E>
__device__ __forceinline__ void gw_epilogue(const float* acc, float* stage, E* c, const E* bias, const E* res, int M, int N, int m0, int n0,
                                            int r0, int t, int hasBias, float alpha, int hasRes, float beta, int outHw) {
    constexpr int T = 128 * WG, BM = 64 * WG, CH = GW_EPI_CHUNK;
    typedef GwT<E> X;
    typedef typename X::V4 V4;
    const int tid = threadIdx.x;
    const bool aligned8 = ((((gw_u64)c) | ((gw_u64)res) | ((gw_u64)bias)) & (4 * sizeof(E) - 1)) == 0;   /* 4-element vectors */
    if (outHw <= 0) {
        constexpr int SP = BN + 8, Q = BN / 4, UNITS = BM * Q, ITER = (UNITS + T - 1) / T;
        #pragma unroll
        for (int j = 0; j < BN / 8; j++) {
            const int col = 8 * j + 2 * t;
            float2 lo, hi;
            lo.x = alpha * acc[4 * j]; lo.y = alpha * acc[4 * j + 1];
            hi.x = alpha * acc[4 * j + 2]; hi.y = alpha * acc[4 * j + 3];
            *(float2*)&stage[r0 * SP + col] = lo;
            *(float2*)&stage[(r0 + 8) * SP + col] = hi;
        }
        __syncthreads();
        if ((N & 3) == 0 && aligned8) {
            #pragma unroll
            for (int i0 = 0; i0 < ITER; i0 += CH) {
                V4 rr[CH], bb[CH];
                #pragma unroll
                for (int i = 0; i < CH; i++) {
                    const int idx = tid + (i0 + i) * T, row = idx / Q, gr = m0 + row, gc = n0 + 4 * (idx - row * Q);
                    const bool ok = i0 + i < ITER && (UNITS % T == 0 || idx < UNITS) && gr < M && gc < N;
                    rr[i] = bb[i] = X::zero4();
                    if (ok && hasRes) rr[i] = X::ld4(res + (long)gr * N + gc);
                    if (ok && hasBias) bb[i] = X::ld4(bias + gc);
                }
                #pragma unroll
                for (int i = 0; i < CH; i++) {
                    const int idx = tid + (i0 + i) * T, row = idx / Q, q = idx - row * Q, gr = m0 + row, gc = n0 + 4 * q;
                    if (i0 + i < ITER && (UNITS % T == 0 || idx < UNITS) && gr < M && gc < N) {   /* N % 4 == 0: all 4 columns inside */
                        const float4 v4 = *(const float4*)&stage[row * SP + 4 * q];
                        float v[4] = {v4.x + X::get(bb[i], 0), v4.y + X::get(bb[i], 1), v4.z + X::get(bb[i], 2), v4.w + X::get(bb[i], 3)};
                        if (hasRes) {
                            v[0] = (v[0] + X::get(rr[i], 0)) * beta; v[1] = (v[1] + X::get(rr[i], 1)) * beta;
                            v[2] = (v[2] + X::get(rr[i], 2)) * beta; v[3] = (v[3] + X::get(rr[i], 3)) * beta;
                        }
                        X::st4(c + (long)gr * N + gc, v[0], v[1], v[2], v[3]);
                    }
                }
            }
        } else {
            for (int idx = tid; idx < BM * BN; idx += T) {
                const int row = idx / BN, col = idx - row * BN, gr = m0 + row, gc = n0 + col;
                if (gr >= M || gc >= N) continue;
                const long o = (long)gr * N + gc;
                float x = stage[row * SP + col];
                if (hasBias) x += X::f(bias[gc]);
                if (hasRes) x = (x + X::f(res[o])) * beta;
                c[o] = X::from(x);
            }
        }
    } else {
        constexpr int SP = BM + 4, R = BM / 4, UNITS = BN * R, ITER = (UNITS + T - 1) / T;
        #pragma unroll
        for (int j = 0; j < BN / 8; j++) {
            const int col = 8 * j + 2 * t;
            stage[col * SP + r0] = alpha * acc[4 * j];
            stage[(col + 1) * SP + r0] = alpha * acc[4 * j + 1];
            stage[col * SP + r0 + 8] = alpha * acc[4 * j + 2];
            stage[(col + 1) * SP + r0 + 8] = alpha * acc[4 * j + 3];
        }
        __syncthreads();
        if ((outHw & 3) == 0 && aligned8) {
            #pragma unroll
            for (int i0 = 0; i0 < ITER; i0 += CH) {
                V4 rr[CH];
                float bv[CH];
                #pragma unroll
                for (int i = 0; i < CH; i++) {
                    const int idx = tid + (i0 + i) * T, col = idx / R, gc = n0 + col, gr = m0 + 4 * (idx - col * R);
                    const bool ok = i0 + i < ITER && (UNITS % T == 0 || idx < UNITS) && gr < M && gc < N;
                    const int img = gr / outHw;                   /* gr % 4 == 0, outHw % 4 == 0: 4 positions of one image */
                    rr[i] = X::zero4();
                    bv[i] = 0.0f;
                    if (ok && hasRes) rr[i] = X::ld4(res + ((long)img * N + gc) * outHw + (gr - img * outHw));
                    if (ok && hasBias) bv[i] = X::f(bias[gc]);
                }
                #pragma unroll
                for (int i = 0; i < CH; i++) {
                    const int idx = tid + (i0 + i) * T, col = idx / R, rq = idx - col * R, gc = n0 + col, gr = m0 + 4 * rq;
                    if (i0 + i < ITER && (UNITS % T == 0 || idx < UNITS) && gr < M && gc < N) {
                        const int img = gr / outHw;
                        const long o = ((long)img * N + gc) * outHw + (gr - img * outHw);
                        const float4 v4 = *(const float4*)&stage[col * SP + 4 * rq];
                        float x[4] = {v4.x + bv[i], v4.y + bv[i], v4.z + bv[i], v4.w + bv[i]};
                        if (hasRes) {                             /* rows past M read res inside this image's row block: never past the buffer */
                            x[0] = (x[0] + X::get(rr[i], 0)) * beta; x[1] = (x[1] + X::get(rr[i], 1)) * beta;
                            x[2] = (x[2] + X::get(rr[i], 2)) * beta; x[3] = (x[3] + X::get(rr[i], 3)) * beta;
                        }
                        if (gr + 4 <= M) {
                            X::st4(c + o, x[0], x[1], x[2], x[3]);
                        } else {
                            #pragma unroll
                            for (int e = 0; e < 4; e++)
                                if (gr + e < M) c[o + e] = X::from(x[e]);
                        }
                    }
                }
            }
        } else {
            for (int idx = tid; idx < BM * BN; idx += T) {
                const int col = idx / BM, row = idx - col * BM, gr = m0 + row, gc = n0 + col;
                if (gr >= M || gc >= N) continue;
                const int img = gr / outHw;
                const long o = ((long)img * N + gc) * outHw + (gr - img * outHw);
                float x = stage[col * SP + row];
                if (hasBias) x += X::f(bias[gc]);
                if (hasRes) x = (x + X::f(res[o])) * beta;
                c[o] = X::from(x);
            }
        }
    }
}

/* Exact GELU as diffusers (erf form), in fp32: gm_gelu of gemm_mma.cu. */
__device__ __forceinline__ float gw_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

/*
 * GEGLU epilogue (gemm_wgmma_geglu_f16): the tile's columns are whole 16-column groups of the interleaved weight rows
 * (BN % 16 == 0, N % 16 == 0), so fragment j = 2q (values) and j = 2q + 1 (their gates) of a thread hold value and gate of
 * the same output in the same register slot: out = (alpha * value + bias[col]) * gelu(alpha * gate + bias[col + 8]) is
 * computed in registers and staged as fp32, row-major [BM][BN / 2 + 8] (the fragment writes of a warp hit distinct
 * banks); then each thread stores units of 4 consecutive outputs of a row (8-byte stores when c is 8-byte aligned).
 * c: this batch's [M][N / 2]; output column of tile column 16q + r (r < 8): n0 / 2 + 8q + r.
 */
template <int BN, int WG, typename E>
__device__ __forceinline__ void gw_epilogue_geglu(const float* acc, float* stage, E* c, const E* bias, int M, int N, int m0, int n0, int r0, int t,
                                                  int hasBias, float alpha) {
    typedef GwT<E> X;
    static_assert(BN % 16 == 0, "GEGLU tiles hold whole 16-column groups");
    constexpr int T = 128 * WG, BM = 64 * WG, HN = BN / 2, SP = HN + 8, Q = HN / 4, UNITS = BM * Q, ITER = (UNITS + T - 1) / T;
    const int tid = threadIdx.x, inner = N >> 1;
    const bool bias4 = ((gw_u64)bias & (2 * sizeof(E) - 1)) == 0;  /* pairs of elements */
    #pragma unroll
    for (int q = 0; q < BN / 16; q++) {
        const int cv = n0 + 16 * q + 2 * t;                       /* value column (permuted) of e & 1 == 0; its gate: cv + 8 */
        float bv0 = 0.0f, bv1 = 0.0f, bg0 = 0.0f, bg1 = 0.0f;
        if (hasBias && n0 + 16 * q < N) {                         /* N % 16 == 0: the whole group is inside */
            if (bias4) {
                X::ld2(bias + cv, bv0, bv1);
                X::ld2(bias + cv + 8, bg0, bg1);
            } else {
                bv0 = X::f(bias[cv]); bv1 = X::f(bias[cv + 1]); bg0 = X::f(bias[cv + 8]); bg1 = X::f(bias[cv + 9]);
            }
        }
        const float* va = acc + 8 * q;                            /* fragment j = 2q */
        const float* ga = acc + 8 * q + 4;                        /* fragment j = 2q + 1 */
        float2 lo, hi;
        lo.x = (alpha * va[0] + bv0) * gw_gelu(alpha * ga[0] + bg0);
        lo.y = (alpha * va[1] + bv1) * gw_gelu(alpha * ga[1] + bg1);
        hi.x = (alpha * va[2] + bv0) * gw_gelu(alpha * ga[2] + bg0);
        hi.y = (alpha * va[3] + bv1) * gw_gelu(alpha * ga[3] + bg1);
        const int col = 8 * q + 2 * t;
        *(float2*)&stage[r0 * SP + col] = lo;
        *(float2*)&stage[(r0 + 8) * SP + col] = hi;
    }
    __syncthreads();
    const int oc0 = n0 >> 1;
    const bool aligned8 = ((gw_u64)c & (4 * sizeof(E) - 1)) == 0;  /* inner % 8 == 0: rows stay aligned to 4 elements */
    #pragma unroll 2
    for (int i = 0; i < ITER; i++) {
        const int idx = tid + i * T, row = idx / Q, q = idx - row * Q, gr = m0 + row, oc = oc0 + 4 * q;
        if ((UNITS % T == 0 || idx < UNITS) && gr < M && oc < inner) {   /* inner % 4 == 0: all 4 outputs inside */
            const float4 v4 = *(const float4*)&stage[row * SP + 4 * q];
            E* dst = c + (long)gr * inner + oc;
            if (aligned8) {
                X::st4(dst, v4.x, v4.y, v4.z, v4.w);
            } else {
                dst[0] = X::from(v4.x); dst[1] = X::from(v4.y); dst[2] = X::from(v4.z); dst[3] = X::from(v4.w);
            }
        }
    }
}

/* The GEMM of block blockIdx.x = output tile (batch, M tile, N tile), N tiles fastest (see the header). DRAIN: wait
 * for each k tile's wgmmas (loads run STAGES - 1 k tiles ahead) instead of keeping one group in flight (STAGES - 2
 * ahead). GEGLU: c [batch][M][N / 2] through gw_epilogue_geglu (res, hasRes, beta, outHw unused). smem: the dynamic
 * shared memory. */
template <int BN, int WG, int STAGES, bool DRAIN, bool GEGLU = false, typename E = half_t>
__device__ __forceinline__ void gw_gemm(const E* a, const E* b, const E* bias, E* c, int batch, int M, int N, int K, int hasBias,
                                        float alpha, const E* res, int hasRes, float beta, int outHw, unsigned char* smem) {
    static_assert(STAGES >= (DRAIN ? 2 : 3), "too few stages");
    static_assert(BN % 8 == 0 && BN >= 8 && BN <= 256, "wgmma n");
    constexpr int BM = 64 * WG, STAGE = (BM + BN) * 128;
    constexpr int LEAD = DRAIN ? STAGES - 1 : STAGES - 2;         /* k tiles loaded ahead of the one computed */
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    {
        gw_u32 dyn;
        asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dyn));
        if (dyn < (gw_u32)gw_smem_bytes(BN, WG, STAGES)) __trap();
    }
    const int tilesN = (N + BN - 1) / BN, tilesMN = tilesN * ((M + BM - 1) / BM);
    const int tile = blockIdx.x, bz = tile / tilesMN, rt = tile - bz * tilesMN, mt = rt / tilesN, m0 = mt * BM, n0 = (rt - mt * tilesN) * BN;
    if (bz >= batch) return;
    a += (long)bz * M * K;
    b += (long)bz * N * K;
    const gw_u32 raw = gw_smem_addr(smem), base = (raw + 1023u) & ~1023u;
    float* stage = (float*)(smem + (base - raw));                 /* the epilogue's fp32 tile */

    const int lrow = tid >> 3, lch = tid & 7;
    const gw_u32 soff = lrow * 128 + ((lch ^ (lrow & 7)) << 4);
    const int rowA = m0 + lrow, rowB = n0 + lrow;
    constexpr int CE = 16 / sizeof(E);                            /* elements per 16-byte chunk */
    const E* ga = a + (long)rowA * K + lch * CE;
    const E* gb = b + (long)rowB * K + lch * CE;
    const int KT = K >> (sizeof(E) == 2 ? 6 : 5);                /* K / KE */

    float acc[BN / 2];
    #pragma unroll
    for (int i = 0; i < BN / 2; i++) acc[i] = 0.0f;

    #pragma unroll
    for (int s = 0; s < LEAD; s++) {
        if (s < KT) gw_load<BN, WG, E>(base + s * STAGE, ga, gb, a, M, N, K, rowA, rowB, lrow, soff, s);
        gw_cp_commit();
    }
    int cs = 0, ls = LEAD % STAGES;                               /* stage of k tile kt, of k tile kt + LEAD */
    for (int kt = 0; kt < KT; kt++) {
        gw_cp_wait<LEAD - 1>();                                   /* this thread's copies of k tile kt have landed */
        gw_fence_async_smem();
        __syncthreads();                                          /* everyone's have; the stage of k tile kt + LEAD is free */
        if (kt + LEAD < KT) gw_load<BN, WG, E>(base + ls * STAGE, ga, gb, a, M, N, K, rowA, rowB, lrow, soff, kt + LEAD);
        gw_cp_commit();
        const gw_u32 st = base + cs * STAGE;
        const gw_u64 da = gw_desc(st + wg * 64 * 128), db = gw_desc(st + BM * 128);
        gw_pin<BN / 2>(acc);
        gw_wgmma_fence();
        gw_mma_ktile<BN, E>(acc, da, db);                        /* +32 bytes per wgmma k step */
        gw_wgmma_commit();
        if (DRAIN) gw_wgmma_wait<0>();
        else gw_wgmma_wait<1>();
        gw_pin<BN / 2>(acc);
        cs = cs + 1 == STAGES ? 0 : cs + 1;
        ls = ls + 1 == STAGES ? 0 : ls + 1;
    }
    gw_wgmma_wait<0>();
    gw_pin<BN / 2>(acc);
    gw_cp_wait<0>();
    __syncthreads();                                              /* every warpgroup is done with the stages */
    const int r0 = wg * 64 + warp * 16 + (lane >> 2);
    if (GEGLU) {
        gw_epilogue_geglu<BN, WG, E>(acc, stage, c + (long)bz * M * (N >> 1), bias, M, N, m0, n0, r0, lane & 3, hasBias, alpha);
        return;
    }
    const long off = (long)bz * M * N;
    gw_epilogue<BN, WG, E>(acc, stage, c + off, bias, res + off, M, N, m0, n0, r0, lane & 3, hasBias, alpha, hasRes, beta, outHw);
}

/* Shared-memory descriptor of an MN-major operand with the 128-byte swizzle (see gw_conv): atoms of 64 MN-consecutive
 * halves (128 bytes) x 8 k rows (1024 bytes), leading byte offset = the next atom along MN (lbo), stride byte offset 1024 =
 * the next 8 k rows; used with imm-trans-a = 1. */
__device__ __forceinline__ gw_u64 gw_desc_mn(gw_u32 saddr, gw_u32 lbo) {
    return (gw_u64)((saddr & 0x3FFFF) >> 4) | ((gw_u64)(lbo >> 4) << 16) | ((gw_u64)(1024 >> 4) << 32) | ((gw_u64)1 << 62);
}

__device__ __forceinline__ gw_u32 gw_shfl_up1(gw_u32 v) {
    gw_u32 r;
    asm volatile("shfl.sync.up.b32 %0, %1, 1, 0, 0xffffffff;\n" : "=r"(r) : "r"(v));
    return r;
}
__device__ __forceinline__ gw_u32 gw_shfl_down1(gw_u32 v) {
    gw_u32 r;
    asm volatile("shfl.sync.down.b32 %0, %1, 1, 31, 0xffffffff;\n" : "=r"(r) : "r"(v));
    return r;
}
/* halves (hi of lo, lo of hi): the pair one element further along */
__device__ __forceinline__ gw_u32 gw_mid(gw_u32 lo, gw_u32 hi) { return __byte_perm(lo, hi, 0x5432); }

/*
 * The implicit-GEMM convolution (conv2d_wgmma_f16, see the header): M = output pixels of all images (A: the im2col patches,
 * gathered), N = cOut (B: the tap-major weights wt [cOut][ks*ks][cIn], k contiguous, by cp.async as the GEMM's B),
 * K = ks*ks*cIn in k tiles of 64 = one tap (ky, kx) and 64 consecutive channels (cIn % 64 == 0).
 * MN (the row path; stride 1, 'same' 3x3 / pad 1 or 1x1 / pad 0, w % 8 == 0, 128 % w == 0, x 16-byte aligned): A is kept
 * MN-major, pixels contiguous like x's channel planes: per warpgroup half of the tile and group of 8 k, a 1024-byte atom
 * of 8 k rows x 64 pixels, 16-byte chunk c (pixels 8c .. 8c+7) of row k at chunk position c ^ (k & 7) (the 128-byte
 * swizzle), read by the wgmma with imm-trans-a = 1. Thread tid owns pixel group tid & 15 (8 consecutive output pixels of
 * one row: tiles start at row starts) and channels tid / 16 + 16j (j < 4) of each k tile: per k tile and channel one
 * 16-byte load of the 8 input pixels under its outputs in row iy = oy + ky - pad; the tap's column shift kx - pad = -1 / +1
 * takes one element from the neighbouring lane's vector (shfl; at a row start / end the padding zero instead), so the
 * whole tile is 4 vector loads, 4 shuffles and 4 vector stores per thread.
 * Otherwise (stride 2, ragged widths, other paddings) the per-pixel gather: A K-major like the GEMM's; thread tid owns
 * pixel row tid % BM of the tile and channels 32 * (tid / BM) .. + 31 of each k tile (its 16-byte chunks
 * 4 * (tid / BM) .. + 3 of the row); per k tile it finds its input pixel (iy, ix) and validity once and issues 32 16-bit
 * loads a channel plane apart (a warp: 32 consecutive pixels per load), then packs them 8 channels per chunk.
 * Pipeline (drain, LEAD = STAGES - 1): at k tile kt, after the barrier, the weights of k tile kt + LEAD go out by cp.async;
 * PREF 0: the gather loads of k tile kt + LEAD are issued, then the wgmmas of k tile kt, then the stores (the loads'
 * latency runs under the tensor cores); PREF 1: the loads of k tile kt + LEAD were issued one k tile earlier (after that
 * tile's stores) and only the stores follow the wgmmas. fence.proxy.async + barrier at the top of each k tile publish the
 * stores to the wgmmas. Epilogue: gw_epilogue's channels-first path (outHw = hOut * wOut, alpha 1, bias per cOut):
 * out[(img * cOut + co) * hw + p] = (acc + bias[co]) (+ res, * beta), res NCHW like out.
 */
template <int BN, int WG, int STAGES, bool PREF, bool MN, typename E = half_t>
__device__ __forceinline__ void gw_conv(const E* __restrict__ x, const E* __restrict__ wt, const E* bias, E* out, int n, int cIn, int h,
                                        int w, int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias, const E* res, int hasRes,
                                        float beta, unsigned char* smem) {
    static_assert(STAGES >= 2, "too few stages");
    static_assert(!MN || WG == 2, "the row path maps 256 threads onto 16 pixel groups x 16 channels");
    static_assert(!MN || sizeof(E) == 2, "the row path keeps A MN-major: fp16 only (TF32 wgmma reads K-major operands only)");
    constexpr int BM = 64 * WG, T = 128 * WG, STAGE = (BM + BN) * 128, LEAD = STAGES - 1;
    constexpr int KE = GwT<E>::KE, CE = 16 / sizeof(E);           /* elements per k tile, per 16-byte chunk */
    constexpr int CPT = KE / (T / BM);                            /* per-pixel path: channels per thread and k tile (4 chunks) */
    static_assert(CPT * sizeof(E) == 64, "per-pixel path: 4 chunks per thread");
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    {
        gw_u32 dyn;
        asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dyn));
        if (dyn < (gw_u32)gw_smem_bytes(BN, WG, STAGES)) __trap();
    }
    const int hw = hOut * wOut, M = n * hw, N = cOut, K = ks * ks * cIn, KT = K >> (sizeof(E) == 2 ? 6 : 5);
    const int tilesN = (N + BN - 1) / BN;
    const int tile = blockIdx.x, mt = tile / tilesN, m0 = mt * BM, n0 = (tile - mt * tilesN) * BN;
    if (m0 >= M) return;
    const gw_u32 raw = gw_smem_addr(smem), base = (raw + 1023u) & ~1023u;
    float* stage = (float*)(smem + (base - raw));

    /* weights (B): cp.async as gw_load's B part */
    constexpr int RS = T / 8, BIT = (BN + RS - 1) / RS;
    const int lrow = tid >> 3, lch = tid & 7;
    const gw_u32 soff = BM * 128 + lrow * 128 + ((lch ^ (lrow & 7)) << 4);
    const int rowB = n0 + lrow;
    const E* gb = wt + (long)rowB * K + lch * CE;
    auto loadB = [&](gw_u32 st, int kt) {
        const long kOff = (long)kt * KE, step = (long)RS * K;
        #pragma unroll
        for (int j = 0; j < BIT; j++) {
            if (BN % RS == 0 || lrow + j * RS < BN) {
                const bool ok = rowB + j * RS < N;
                gw_cp16(st + soff + j * RS * 128, ok ? (const void*)(gb + j * step + kOff) : (const void*)wt, ok);
            }
        }
    };
    const long plane = (long)h * w;
    int ky = 0, kx = 0, ci0 = 0;                                  /* tap and first channel of the next k tile to gather */
    auto step = [&]() {
        ci0 += KE;
        if (ci0 == cIn) {
            ci0 = 0;
            if (++kx == ks) { kx = 0; ky++; }
        }
    };

    /* ---- patches (A), row path: pixel group pg (8 pixels of one row), channels cs + 16j ---- */
    const int pg = tid & 15, cs = tid >> 4;
    uint4 rv[4];
    int shift = 0;                                                /* column shift kx - pad of the loaded k tile */
    bool rowOk = false;
    /* ---- patches (A), per-pixel path: pixel pr, channels CPT * cg .. + CPT - 1 ---- */
    const int pr = tid % BM, cg = tid / BM;
    typename GwT<E>::Raw v[MN ? 1 : CPT];

    const E* xp;                                                  /* MN: channel cs at the group's first pixel; else channel CPT * cg of the image */
    int oyg = 0, edge = 0, iy0 = 0, ix0 = 0;                      /* MN: output row, bit 0 row start, bit 1 row end */
    bool colOk;
    if (MN) {
        const int gp0 = m0 + 8 * pg;
        colOk = gp0 < M;                                          /* M % 8 == 0: the group is wholly inside or outside */
        const int img = colOk ? gp0 / hw : 0, p = colOk ? gp0 - img * hw : 0, ox0 = p % w;
        oyg = p / w;
        edge = (ox0 == 0 ? 1 : 0) | (ox0 + 8 == w ? 2 : 0);
        xp = x + ((long)img * cIn + cs) * plane + (long)p;
    } else {
        const int gp = m0 + pr;
        colOk = gp < M;
        const int img = colOk ? gp / hw : 0, p = colOk ? gp - img * hw : 0, oy = p / wOut;
        iy0 = oy * stride - pad;
        ix0 = (p - oy * wOut) * stride - pad;
        xp = x + ((long)img * cIn + CPT * cg) * plane;
    }
    const gw_u32 arow = pr * 128, asw = pr & 7;

    auto gatherLoad = [&]() {                                     /* loads of the next k tile into registers, then steps the walk */
        if (MN) {
            const int dy = ky - pad, iy = oyg + dy;
            rowOk = colOk && (unsigned)iy < (unsigned)h;
            shift = kx - pad;
            const E* q = rowOk ? xp + (long)ci0 * plane + dy * w : x;        /* outside: any aligned address, masked */
            const long cstep = rowOk ? 16 * plane : 0;
            #pragma unroll
            for (int j = 0; j < 4; j++) rv[j] = *(const uint4*)(q + j * cstep);
        } else {
            const int iy = iy0 + ky, ix = ix0 + kx;
            const bool ok = colOk && (unsigned)iy < (unsigned)h && (unsigned)ix < (unsigned)w;
            const E* q = xp + (long)ci0 * plane + (ok ? iy * w + ix : 0);   /* outside: pixel 0 of the same channels, masked */
            #pragma unroll
            for (int i = 0; i < CPT; i++) v[i] = GwT<E>::raw(q + i * plane);
            if (!ok) {
                #pragma unroll
                for (int i = 0; i < CPT; i++) v[i] = 0;
            }
        }
        step();
    };
    auto gatherStore = [&](gw_u32 st) {
        if (MN) {
            #pragma unroll
            for (int j = 0; j < 4; j++) {
                uint4 o = rv[j];
                if (shift < 0) {                                  /* pixel ox - 1: the left lane's last element, or padding */
                    gw_u32 nb = gw_shfl_up1(rv[j].w);
                    if (edge & 1) nb = 0u;
                    o.x = gw_mid(nb, rv[j].x); o.y = gw_mid(rv[j].x, rv[j].y); o.z = gw_mid(rv[j].y, rv[j].z); o.w = gw_mid(rv[j].z, rv[j].w);
                } else if (shift > 0) {                           /* pixel ox + 1: the right lane's first element, or padding */
                    gw_u32 nb = gw_shfl_down1(rv[j].x);
                    if (edge & 2) nb = 0u;
                    o.x = gw_mid(rv[j].x, rv[j].y); o.y = gw_mid(rv[j].y, rv[j].z); o.z = gw_mid(rv[j].z, rv[j].w); o.w = gw_mid(rv[j].w, nb);
                }
                if (!rowOk) o = make_uint4(0u, 0u, 0u, 0u);
                const int k = cs + 16 * j, r = k & 7;             /* k row of the tile: atom (pg / 8, k / 8), row k % 8 */
                const gw_u32 dst = st + ((pg >> 3) * 8 + (k >> 3)) * 1024 + r * 128 + (((pg & 7) ^ r) << 4);
                asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" :: "r"(dst), "r"(o.x), "r"(o.y), "r"(o.z), "r"(o.w) : "memory");
            }
        } else {
            #pragma unroll
            for (int c4 = 0; c4 < 4; c4++) {
                gw_u32 wd[4];
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    if constexpr (sizeof(E) == 4) wd[e] = v[4 * c4 + e];   /* one float (TF32 bits) per word */
                    else wd[e] = (gw_u32)v[8 * c4 + 2 * e] | ((gw_u32)v[8 * c4 + 2 * e + 1] << 16);
                }
                const gw_u32 dst = st + arow + (((4 * cg + c4) ^ asw) << 4);
                asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" :: "r"(dst), "r"(wd[0]), "r"(wd[1]), "r"(wd[2]), "r"(wd[3]) : "memory");
            }
        }
    };

    float acc[BN / 2];
    #pragma unroll
    for (int i = 0; i < BN / 2; i++) acc[i] = 0.0f;

    #pragma unroll
    for (int s = 0; s < LEAD; s++) {
        if (s < KT) {
            loadB(base + s * STAGE, s);
            gatherLoad();
            gatherStore(base + s * STAGE);
        }
        gw_cp_commit();
    }
    if (PREF && LEAD < KT) gatherLoad();
    int cs_ = 0, ls = LEAD % STAGES;
    for (int kt = 0; kt < KT; kt++) {
        gw_cp_wait<LEAD - 1>();
        gw_fence_async_smem();                                    /* this thread's st.shared / cp.async of k tile kt, to the async proxy */
        __syncthreads();
        const bool more = kt + LEAD < KT;
        if (more) {
            loadB(base + ls * STAGE, kt + LEAD);
            if (!PREF) gatherLoad();
        }
        gw_cp_commit();
        const gw_u32 st = base + cs_ * STAGE;
        gw_pin<BN / 2>(acc);
        gw_wgmma_fence();
        if constexpr (MN) {                                       /* A (fp16 only): this warpgroup's 8 atoms, 2 per 16 k */
            #pragma unroll
            for (int kk = 0; kk < 4; kk++)
                GwMma<BN>::template run<1>(acc, gw_desc_mn(st + wg * 8192 + kk * 2048, 8192), gw_desc(st + BM * 128) + 2 * kk);
        } else {
            gw_mma_ktile<BN, E>(acc, gw_desc(st + wg * 64 * 128), gw_desc(st + BM * 128));
        }
        gw_wgmma_commit();
        if (more) {
            gatherStore(base + ls * STAGE);
            if (PREF && kt + LEAD + 1 < KT) gatherLoad();
        }
        gw_wgmma_wait<0>();
        gw_pin<BN / 2>(acc);
        cs_ = cs_ + 1 == STAGES ? 0 : cs_ + 1;
        ls = ls + 1 == STAGES ? 0 : ls + 1;
    }
    gw_wgmma_wait<0>();
    gw_pin<BN / 2>(acc);
    gw_cp_wait<0>();
    __syncthreads();
    gw_epilogue<BN, WG, E>(acc, stage, out, bias, res, M, N, m0, n0, wg * 64 + warp * 16 + (lane >> 2), lane & 3, hasBias, 1.0f, hasRes, beta, hw);
}

/* The row path of gw_conv applies: stride 1, 'same' 3x3 (pad 1) or 1x1 (pad 0), rows of 8..128 pixels that divide 128, x 16-byte aligned. */
template <typename E>
__device__ __forceinline__ bool gw_conv_rows(const E* x, int h, int w, int ks, int stride, int pad, int hOut, int wOut) {
    return stride == 1 && hOut == h && wOut == w && ((ks == 3 && pad == 1) || (ks == 1 && pad == 0)) && (w & 7) == 0 && 128 % w == 0 &&
           ((gw_u64)x & 15) == 0;
}

KERNEL void __launch_bounds__(128 * GW_WG, GW_MINB) gemm_wgmma_f16(const half_t* a, const half_t* b, const half_t* bias, half_t* c, int batch, int m, int n,
                                                                 int k, int transB, int hasBias, float alpha, float* ws, int splits, int kPer,
                                                                 const half_t* res, int hasRes, float beta, int outHw) {
    extern __shared__ uint4 gw_smem[];                        /* 16-byte aligned; gw_gemm rounds its base up to 1024 */
    gw_gemm<GW_BN, GW_WG, GW_STAGES, GW_DRAIN != 0>(a, b, bias, c, batch, m, n, k, hasBias, alpha, res, hasRes, beta, outHw, (unsigned char*)gw_smem);
}

/* GEGLU after net.0.proj (see the header): gemm_mma_geglu_f16's argument list; transB = 1, splits = 1 only. */
KERNEL void __launch_bounds__(128 * GW_WG, GW_MINB) gemm_wgmma_geglu_f16(const half_t* a, const half_t* b, const half_t* bias, half_t* c, int batch, int m,
                                                                       int n, int k, int transB, int hasBias, float alpha, float* ws, int splits, int kPer) {
    extern __shared__ uint4 gw_smem[];
    gw_gemm<GW_BN, GW_WG, GW_STAGES, GW_DRAIN != 0, true>(a, b, bias, c, batch, m, n, k, hasBias, alpha, c, 0, 1.0f, 0, (unsigned char*)gw_smem);
}

/* The implicit-GEMM convolution (see the header): conv2d_v3_f16's argument list; splits = 1, cIn % 64 == 0 only. */
KERNEL void __launch_bounds__(128 * GW_WG, GW_MINB) conv2d_wgmma_f16(const half_t* x, const half_t* wt, const half_t* bias, half_t* out, int n, int cIn,
                                                                   int h, int w, int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias,
                                                                   float* ws, int splits, int kPer, const half_t* res, int hasRes, float beta) {
    extern __shared__ uint4 gw_smem[];
    if (gw_conv_rows(x, h, w, ks, stride, pad, hOut, wOut))   /* the row path, loads after the barrier */
        gw_conv<GW_BN, GW_WG, GW_STAGES, false, true>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, res, hasRes, beta,
                                                     (unsigned char*)gw_smem);
    else                                                      /* the per-pixel gather, loads one k tile ahead */
        gw_conv<GW_BN, GW_WG, GW_STAGES, true, false>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, res, hasRes, beta,
                                                     (unsigned char*)gw_smem);
}


/* ---- TF32 (fp32 buffers of a tf32 graph; see the header): the same GEMM, GEGLU and conv on wgmma m64nNk8 .tf32 ---- */

/* gemm_mma_tf32's argument list; transB = 1, splits = 1, K % 32 == 0, a and b 16-byte aligned. */
KERNEL void __launch_bounds__(128 * GW_WG, GW_MINB) gemm_wgmma_tf32(const float* a, const float* b, const float* bias, float* c, int batch, int m, int n,
                                                                  int k, int transB, int hasBias, float alpha, float* ws, int splits, int kPer,
                                                                  const float* res, int hasRes, float beta, int outHw) {
    extern __shared__ uint4 gw_smem[];
    gw_gemm<GW_BN, GW_WG, GW_STAGES, GW_DRAIN != 0, false, float>(a, b, bias, c, batch, m, n, k, hasBias, alpha, res, hasRes, beta, outHw,
                                                                 (unsigned char*)gw_smem);
}

/* gemm_mma_geglu_tf32's argument list; transB = 1, splits = 1, K % 32 == 0. */
KERNEL void __launch_bounds__(128 * GW_WG, GW_MINB) gemm_wgmma_geglu_tf32(const float* a, const float* b, const float* bias, float* c, int batch, int m,
                                                                        int n, int k, int transB, int hasBias, float alpha, float* ws, int splits, int kPer) {
    extern __shared__ uint4 gw_smem[];
    gw_gemm<GW_BN, GW_WG, GW_STAGES, GW_DRAIN != 0, true, float>(a, b, bias, c, batch, m, n, k, hasBias, alpha, c, 0, 1.0f, 0, (unsigned char*)gw_smem);
}

/* conv2d_v3_tf32's argument list; splits = 1, cIn % 32 == 0; always the per-pixel gather (K-major A), loads one k tile ahead. */
KERNEL void __launch_bounds__(128 * GW_WG, GW_MINB) conv2d_wgmma_tf32(const float* x, const float* wt, const float* bias, float* out, int n, int cIn,
                                                                    int h, int w, int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias,
                                                                    float* ws, int splits, int kPer, const float* res, int hasRes, float beta) {
    extern __shared__ uint4 gw_smem[];
    gw_conv<GW_BN, GW_WG, GW_STAGES, true, false, float>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, res, hasRes, beta,
                                                        (unsigned char*)gw_smem);
}
