/*
 * Standalone check + benchmark of the TF32 kernels of kernels/gemm_wgmma.cu (gemm_wgmma_tf32, gemm_wgmma_geglu_tf32,
 * conv2d_wgmma_tf32: fp32 buffers, wgmma m64nNk8 .tf32) against plain fp32 references and against the mma.sync TF32
 * kernels they replace in tf32 graphs: gemm_mma_tf32 / gemm_mma_geglu_tf32 (kernels/gemm_mma.cu, one split and the split-K
 * plan Gemm.splitPlan picks, + gemm_splitk_reduce_f32 / gemm_splitk_geglu_f32) and conv2d_v3_tf32 (kernels/conv_mma.cu,
 * with Conv2d's split-K plan). The fp16 wgmma kernels (gemm_wgmma_f16, gemm_wgmma_geglu_f16, conv2d_wgmma_f16, same
 * tile pick) are timed on the same shapes (their correctness: bench/cuda/wgmma_check.sh). The module is also compiled by
 * NVRTC (dlopen'ed) with Gemm.Wgmma's options for BN 160 and 128 (--gpu-architecture=sm_90a), as the engine does, and the
 * registers / local memory of its six kernels printed. Build and run: bash bench/cuda/wgmma_tf32_check.sh [parts] (gemm,geglu,conv).
 *
 * Correctness: random uniform [-1, 1] inputs, output poisoned with NaN, relative L2 ||c - ref|| / ||ref|| <= 2e-3 and no NaN.
 * Timing: median of 25 back-to-back launches (events between them) after 3 warm-ups.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <algorithm>
#include <string>
#include <functional>
#include <fstream>
#include <sstream>
#include <dlfcn.h>
#include <cuda.h>

#define JD_CUDA 1
#include "prelude.h"
#include "gemm_wgmma.cu"
#include "gemm_mma.cu"
#include "conv_mma.cu"

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, cudaGetErrorString(e_)); exit(2); } } while (0)

/* tile variants of the module's templates (the module's entry points are the BN = GW_BN (160) ones) */
template <int BN, typename E>
__global__ void __launch_bounds__(256, 2) k_gemm(const E* a, const E* b, const E* bias, E* c, int batch, int m, int n, int k, int hasBias, float alpha,
                                                 const E* res, int hasRes, float beta, int outHw) {
    extern __shared__ uint4 sm[];
    gw_gemm<BN, 2, 3, true, false, E>(a, b, bias, c, batch, m, n, k, hasBias, alpha, res, hasRes, beta, outHw, (unsigned char*)sm);
}
template <int BN, typename E>
__global__ void __launch_bounds__(256, 2) k_geglu(const E* a, const E* b, const E* bias, E* c, int batch, int m, int n, int k, int hasBias, float alpha) {
    extern __shared__ uint4 sm[];
    gw_gemm<BN, 2, 3, true, true, E>(a, b, bias, c, batch, m, n, k, hasBias, alpha, c, 0, 1.0f, 0, (unsigned char*)sm);
}
template <int BN, typename E>
__global__ void __launch_bounds__(256, 2) k_conv(const E* x, const E* wt, const E* bias, E* out, int n, int cIn, int h, int w, int cOut, int ks, int stride,
                                                 int pad, int hOut, int wOut, int hasBias, const E* res, int hasRes, float beta) {
    extern __shared__ uint4 sm[];
    if constexpr (sizeof(E) == 2) {
        if (gw_conv_rows(x, h, w, ks, stride, pad, hOut, wOut)) {
            gw_conv<BN, 2, 3, false, true, E>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, res, hasRes, beta, (unsigned char*)sm);
            return;
        }
    }
    gw_conv<BN, 2, 3, true, false, E>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, res, hasRes, beta, (unsigned char*)sm);
}

/* ---- helpers ---- */
__device__ __forceinline__ unsigned hash32(unsigned x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}
template <typename E>
__global__ void fill_uniform(E* p, long n, unsigned seed) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        unsigned h = hash32((unsigned)i * 2654435761U ^ hash32(seed + (unsigned)(i >> 32)));
        float u = (h >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
        p[i] = GwT<E>::from(u);
    }
}
__global__ void fill_nan(float* p, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) p[i] = __uint_as_float(0x7fffffffu);
}
__global__ void ref_gemm(const float* A, const float* B, const float* bias, const float* res, float* out, int M, int N, int K, int hasBias, float alpha,
                         int hasRes, float beta, int outHw) {
    __shared__ float As[16][17], Bs[16][17];
    const int tx = threadIdx.x, ty = threadIdx.y, row = blockIdx.y * 16 + ty, col = blockIdx.x * 16 + tx, brow = blockIdx.x * 16 + ty;
    const long bz = blockIdx.z;
    A += bz * M * K; B += bz * N * K; out += bz * M * N; res += bz * M * N;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += 16) {
        As[ty][tx] = row < M ? A[(long)row * K + k0 + tx] : 0.0f;
        Bs[ty][tx] = brow < N ? B[(long)brow * K + k0 + tx] : 0.0f;
        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < 16; kk++) acc = fmaf(As[ty][kk], Bs[tx][kk], acc);
        __syncthreads();
    }
    if (row >= M || col >= N) return;
    long o = outHw > 0 ? ((long)(row / outHw) * N + col) * outHw + row % outHw : (long)row * N + col;
    float v = alpha * acc + (hasBias ? bias[col] : 0.0f);
    if (hasRes) v = (v + res[o]) * beta;
    out[o] = v;
}
/* GEGLU over interleaved 16-column groups (8 values, their 8 gates) of raw [batch][M][N] (alpha and bias applied) -> [batch][M][N / 2] */
__global__ void ref_geglu(const float* raw, float* out, long rows, int N) {
    const int inner = N / 2;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < rows * inner; i += (long)gridDim.x * blockDim.x) {
        const long row = i / inner;
        const int j = (int)(i - row * inner), g = j / 8, r = j % 8;
        const float v = raw[row * N + 16 * g + r], gt = raw[row * N + 16 * g + 8 + r];
        out[i] = v * (0.5f * gt * (1.0f + erff(gt * 0.70710678118654752f)));
    }
}
/* direct conv from weight [cOut][cIn][ks][ks]: grid (ceil(hw / 128), ceil(cOut / 16), n), block 128 */
__global__ void ref_conv(const float* x, const float* wgt, const float* bias, const float* res, float* out, int cIn, int h, int w, int cOut, int ks, int stride,
                         int pad, int hOut, int wOut, int hasBias, int hasRes, float beta) {
    const int hw = hOut * wOut, p = blockIdx.x * 128 + threadIdx.x, co0 = blockIdx.y * 16, img = blockIdx.z;
    if (p >= hw) return;
    const int oy = p / wOut, ox = p % wOut;
    float acc[16];
    for (int j = 0; j < 16; j++) acc[j] = 0.0f;
    for (int ci = 0; ci < cIn; ci++)
        for (int ky = 0; ky < ks; ky++) {
            const int iy = oy * stride - pad + ky;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < ks; kx++) {
                const int ix = ox * stride - pad + kx;
                if (ix < 0 || ix >= w) continue;
                const float xv = x[(((long)img * cIn + ci) * h + iy) * w + ix];
                for (int j = 0; j < 16 && co0 + j < cOut; j++) acc[j] = fmaf(xv, wgt[(((long)(co0 + j) * cIn + ci) * ks + ky) * ks + kx], acc[j]);
            }
        }
    for (int j = 0; j < 16 && co0 + j < cOut; j++) {
        const long o = ((long)img * cOut + co0 + j) * hw + p;
        float v = acc[j] + (hasBias ? bias[co0 + j] : 0.0f);
        if (hasRes) v = (v + res[o]) * beta;
        out[o] = v;
    }
}
__global__ void compare(const float* c, const float* ref, long n, double* sums, unsigned long long* bad) {
    double d2 = 0.0, r2 = 0.0;
    unsigned long long nb = 0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float x = c[i], r = ref[i];
        if (!(fabsf(x) <= 3.0e38f)) { nb++; continue; }
        double d = (double)x - r;
        d2 += d * d;
        r2 += (double)r * r;
    }
    for (int o = 16; o > 0; o >>= 1) {
        d2 += __shfl_down_sync(0xffffffffu, d2, o);
        r2 += __shfl_down_sync(0xffffffffu, r2, o);
        nb += __shfl_down_sync(0xffffffffu, nb, o);
    }
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(&sums[0], d2);
        atomicAdd(&sums[1], r2);
        atomicAdd(bad, nb);
    }
}

static float *fA, *fB, *fBias, *fRes, *fC, *fRef, *fTmp, *fWt, *fWs;
static half_t *hA, *hB, *hBias, *hC, *hWt;
static double* dSums;
static unsigned long long* dBad;
static int smCount;
static const long CAP_A = 128L << 20, CAP_B = 40L << 20, CAP_C = 192L << 20, CAP_RES = 64L << 20;

static bool checkN(const char* who, const char* what, long n, double* relOut) {
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemset(dSums, 0, 2 * sizeof(double)));
    CK(cudaMemset(dBad, 0, sizeof(unsigned long long)));
    compare<<<1024, 256>>>(fC, fRef, n, dSums, dBad);
    double sums[2];
    unsigned long long bad;
    CK(cudaMemcpy(sums, dSums, sizeof sums, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&bad, dBad, sizeof bad, cudaMemcpyDeviceToHost));
    double rel = sqrt(sums[0] / std::max(sums[1], 1e-30));
    bool ok = bad == 0 && rel <= 2e-3;
    *relOut = rel;
    if (!ok) printf("  FAIL %-22s %s: rel L2 %.3e, %llu NaN/inf/unwritten\n", who, what, rel, bad);
    return ok;
}

static float timeMs(const std::function<void()>& launch) {
    for (int i = 0; i < 3; i++) launch();
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    const int n = 25;
    std::vector<cudaEvent_t> ev(n + 1);
    for (auto& e : ev) CK(cudaEventCreate(&e));
    CK(cudaEventRecord(ev[0]));
    for (int i = 0; i < n; i++) {
        launch();
        CK(cudaEventRecord(ev[i + 1]));
    }
    CK(cudaEventSynchronize(ev[n]));
    std::vector<float> t;
    for (int i = 0; i < n; i++) {
        float ms;
        CK(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
        t.push_back(ms);
    }
    for (auto& e : ev) CK(cudaEventDestroy(e));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

/* Gemm.wgmmaConfig: 160 unless 128 pads N less */
static int pickBn(int n) { return (n + 159L) / 160 * 160 <= (n + 127L) / 128 * 128 ? 160 : 128; }
static int smemOf(int bn) { return gw_smem_bytes(bn, 2, 3); }
/* Gemm.splitPlan + Gemm.split: k tiles of 32 halves / 16 floats */
static void splitPlan(int batch, int M, int N, int K, int kt, int& splits, int& kPer) {
    long ktiles = (K + kt - 1) / kt, blocks = (long)batch * ((M + 127) / 128) * ((N + 127) / 128), outputs = (long)batch * M * N;
    long s = 1;
    if (blocks < smCount) s = std::min(2L * smCount / blocks, std::min(16L, ktiles / 8));
    s = std::min(s, (64L << 20) / (4 * outputs));
    s = std::min(s, 65535L / batch);
    long per = (ktiles + std::max(1L, std::min(s, ktiles)) - 1) / std::max(1L, std::min(s, ktiles));
    splits = (int)((ktiles + per - 1) / per);
    kPer = (int)(per * kt);
}

template <typename F>
static void prep(F fn, int smem) {
    CK(cudaFuncSetAttribute((const void*)fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
}
template <typename F>
static void attrs(const char* name, F fn) {
    cudaFuncAttributes at = {};
    CK(cudaFuncGetAttributes(&at, (const void*)fn));
    printf("  nvcc %-28s %3d registers, %zu B local\n", name, at.numRegs, at.localSizeBytes);
}

struct GCase {
    const char* what;
    int batch, M, N, K, hasBias, hasRes, outHw;
    float alpha, beta;
    bool timed;
};

template <typename E>
static void launchWg(int bn, bool geglu, const E* a, const E* b, const E* bias, E* c, const GCase& cs, const E* res) {
    const long tiles = (long)cs.batch * ((cs.M + 127) / 128) * ((cs.N + bn - 1) / bn);
    const int smem = smemOf(bn);
    if (geglu) {
        if (bn == 160) k_geglu<160, E><<<(unsigned)tiles, 256, smem>>>(a, b, bias, c, cs.batch, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha);
        else k_geglu<128, E><<<(unsigned)tiles, 256, smem>>>(a, b, bias, c, cs.batch, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha);
    } else {
        if (bn == 160)
            k_gemm<160, E><<<(unsigned)tiles, 256, smem>>>(a, b, bias, c, cs.batch, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha, res, cs.hasRes, cs.beta, cs.outHw);
        else k_gemm<128, E><<<(unsigned)tiles, 256, smem>>>(a, b, bias, c, cs.batch, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha, res, cs.hasRes, cs.beta, cs.outHw);
    }
}
static void launchMmaTf32(bool geglu, const GCase& cs, int splits, int kPer) {
    dim3 grid((cs.N + 127) / 128, (cs.M + 127) / 128, cs.batch * splits);
    const float* res = cs.hasRes ? fRes : fC;
    if (geglu) {
        gemm_mma_geglu_tf32<<<grid, 256>>>(fA, fB, fBias, fC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias, cs.alpha, fWs, splits, kPer);
        if (splits > 1)
            gemm_splitk_geglu_f32<<<(unsigned)(((long)cs.batch * cs.M * (cs.N / 2) + 255) / 256), 256>>>(fWs, fBias, fC, cs.batch, cs.M, cs.N, splits,
                                                                                                      cs.hasBias, cs.alpha);
    } else {
        gemm_mma_tf32<<<grid, 256>>>(fA, fB, fBias, fC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias, cs.alpha, fWs, splits, kPer, res, cs.hasRes, cs.beta,
                                    cs.outHw);
        if (splits > 1)
            gemm_splitk_reduce_f32<<<(unsigned)(((long)cs.batch * cs.M * cs.N + 255) / 256), 256>>>(fWs, fBias, fC, cs.batch, cs.M, cs.N, splits, cs.hasBias,
                                                                                                 cs.alpha, 0, res, cs.hasRes, cs.beta, cs.outHw);
    }
}

static int runGemm(bool geglu, std::string& table) {
    std::vector<GCase> cases;
    if (!geglu) cases = {
        {"65536x320x320", 1, 65536, 320, 320, 1, 0, 0, 1.0f, 1.0f, true},
        {"65536x320x1280", 1, 65536, 320, 1280, 1, 0, 0, 1.0f, 1.0f, true},
        {"16384x640x640", 1, 16384, 640, 640, 1, 0, 0, 1.0f, 1.0f, true},
        {"16384x640x2560", 1, 16384, 640, 2560, 1, 0, 0, 1.0f, 1.0f, true},
        {"4096x1280x1280", 1, 4096, 1280, 1280, 1, 0, 0, 1.0f, 1.0f, true},
        {"4096x1280x5120", 1, 4096, 1280, 5120, 1, 0, 0, 1.0f, 1.0f, true},
        {"1232x320x768", 1, 1232, 320, 768, 1, 0, 0, 1.0f, 1.0f, true},
        {"1232x640x768", 1, 1232, 640, 768, 1, 0, 0, 1.0f, 1.0f, true},
        {"1232x1280x768", 1, 1232, 1280, 768, 1, 0, 0, 1.0f, 1.0f, true},
        {"1024x1280x1280", 1, 1024, 1280, 1280, 1, 0, 0, 1.0f, 1.0f, true},
        {"1024x1280x5120", 1, 1024, 1280, 5120, 1, 0, 0, 1.0f, 1.0f, true},
        {"1000x64x32", 1, 1000, 64, 32, 0, 0, 0, 1.0f, 1.0f, false},
        {"1000x200x128 bias", 1, 1000, 200, 128, 1, 0, 0, 1.0f, 1.0f, false},
        {"77x33x64 odd N", 1, 77, 33, 64, 1, 0, 0, 0.5f, 1.0f, false},
        {"1x8x192", 1, 1, 8, 192, 1, 0, 0, 1.0f, 1.0f, false},
        {"b3 300x160x96", 3, 300, 160, 96, 1, 0, 0, 1.0f, 1.0f, false},
        {"b2 130x72x64 res", 2, 130, 72, 64, 1, 1, 0, 0.7f, 0.5f, false},
        {"1000x322x256 res", 1, 1000, 322, 256, 1, 1, 0, 1.0f, 0.8f, false},
        {"outHw 4x256 res", 1, 1024, 320, 128, 1, 1, 256, 1.0f, 0.5f, false},
        {"outHw 16x77 res", 1, 1232, 320, 64, 1, 1, 77, 1.0f, 1.0f, false},
        {"outHw 3x100 N=90", 1, 300, 90, 192, 0, 0, 100, 2.0f, 1.0f, false},
        {"16384x1280x320 res", 1, 16384, 1280, 320, 1, 1, 0, 1.0f, 1.0f, false},
    };
    else cases = {
        {"65536x2560x320", 1, 65536, 2560, 320, 1, 0, 0, 1.0f, 1.0f, true},
        {"16384x5120x640", 1, 16384, 5120, 640, 1, 0, 0, 1.0f, 1.0f, true},
        {"4096x10240x1280", 1, 4096, 10240, 1280, 1, 0, 0, 1.0f, 1.0f, true},
        {"1000x336x64 nob", 1, 1000, 336, 64, 0, 0, 0, 1.0f, 1.0f, false},
        {"b2 77x160x96 a", 2, 77, 160, 96, 1, 0, 0, 0.5f, 1.0f, false},
        {"300x1280x320", 1, 300, 1280, 320, 1, 0, 0, 1.0f, 1.0f, false},
    };
    int failures = 0;
    char line[512];
    snprintf(line, sizeof line, "\n%s\n%-18s | %8s %6s | %8s %6s %-5s | %8s %6s %-4s | %6s | %8s %6s (fp16 wgmma)\n", geglu ? "GEGLU (fp32 buffers, TF32)" : "GEMM (fp32 buffers, TF32)",
             "M x N x K", "mma ms", "TF/s", "mma+sK", "TF/s", "(spl)", "wgmma ms", "TF/s", "(bn)", "speedup", "f16 ms", "TF/s");
    table += line;
    printf("%s", line);
    unsigned seed = geglu ? 777 : 1234;
    for (auto& cs : cases) {
        const long nA = (long)cs.batch * cs.M * cs.K, nB = (long)cs.batch * cs.N * cs.K, nRaw = (long)cs.batch * cs.M * cs.N;
        const long nC = geglu ? nRaw / 2 : nRaw;
        if (nA > CAP_A || nB > CAP_B || nRaw > CAP_C || (cs.hasRes && nRaw > CAP_RES)) { printf("%s: too big\n", cs.what); exit(2); }
        fill_uniform<<<1024, 256>>>(fA, nA, seed++);
        fill_uniform<<<1024, 256>>>(fB, nB, seed++);
        fill_uniform<<<64, 256>>>(fBias, cs.N, seed++);
        if (cs.hasRes) fill_uniform<<<1024, 256>>>(fRes, nRaw, seed++);
        dim3 rg((cs.N + 15) / 16, (cs.M + 15) / 16, cs.batch);
        if (geglu) {
            ref_gemm<<<rg, dim3(16, 16)>>>(fA, fB, fBias, fRes, fTmp, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha, 0, 1.0f, 0);
            ref_geglu<<<1024, 256>>>(fTmp, fRef, (long)cs.batch * cs.M, cs.N);
        } else {
            ref_gemm<<<rg, dim3(16, 16)>>>(fA, fB, fBias, fRes, fRef, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha, cs.hasRes, cs.beta, cs.outHw);
        }
        CK(cudaGetLastError());
        const float* res = cs.hasRes ? fRes : fC;
        const int bn = pickBn(cs.N);
        int fails = 0;
        double rel[5] = {0, 0, 0, 0, 0};
        /* the picked tile, the other tile, the module's entry point (BN 160) */
        for (int v = 0; v < 3; v++) {
            fill_nan<<<1024, 256>>>(fC, nC);
            const long tiles = (long)cs.batch * ((cs.M + 127) / 128) * ((cs.N + 159) / 160);
            if (v < 2) launchWg<float>(v == 0 ? bn : 288 - bn, geglu, fA, fB, fBias, fC, cs, res);
            else if (geglu) gemm_wgmma_geglu_tf32<<<(unsigned)tiles, 256, smemOf(160)>>>(fA, fB, fBias, fC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias, cs.alpha, fWs, 1, cs.K);
            else gemm_wgmma_tf32<<<(unsigned)tiles, 256, smemOf(160)>>>(fA, fB, fBias, fC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias, cs.alpha, fWs, 1, cs.K, res,
                                                                      cs.hasRes, cs.beta, cs.outHw);
            if (!checkN(v == 0 ? "wgmma_tf32 pick" : v == 1 ? "wgmma_tf32 other" : "wgmma_tf32 entry", cs.what, nC, &rel[v])) fails++;
        }
        int splits, kPer;
        splitPlan(cs.batch, cs.M, cs.N, cs.K, 16, splits, kPer);
        fill_nan<<<1024, 256>>>(fC, nC);
        launchMmaTf32(geglu, cs, 1, cs.K);
        if (!checkN("mma_tf32", cs.what, nC, &rel[3])) fails++;
        if (splits > 1) {
            fill_nan<<<1024, 256>>>(fC, nC);
            launchMmaTf32(geglu, cs, splits, kPer);
            if (!checkN("mma_tf32+splitK", cs.what, nC, &rel[4])) fails++;
        }
        failures += fails;
        printf("%-20s %s  rel L2: wgmma tf32 %.2e (bn %d) / %.2e / entry %.2e, mma tf32 %.2e%s\n", cs.what, fails ? "FAIL" : "ok  ", rel[0], bn, rel[1], rel[2],
               rel[3], splits > 1 ? " (+split-K)" : "");
        fflush(stdout);
        if (!cs.timed) continue;
        const double flop = 2.0 * cs.batch * cs.M * cs.N * cs.K;
        const float tm = timeMs([&] { launchMmaTf32(geglu, cs, 1, cs.K); });
        const float tms = splits > 1 ? timeMs([&] { launchMmaTf32(geglu, cs, splits, kPer); }) : tm;
        const float tw = timeMs([&] { launchWg<float>(bn, geglu, fA, fB, fBias, fC, cs, res); });
        fill_uniform<<<1024, 256>>>(hA, nA, 5);
        fill_uniform<<<1024, 256>>>(hB, nB, 6);
        fill_uniform<<<64, 256>>>(hBias, cs.N, 7);
        const float th = timeMs([&] { launchWg<half_t>(bn, geglu, hA, hB, hBias, hC, cs, hC); });
        char sp[16];
        snprintf(sp, sizeof sp, "(%d)", splits);
        snprintf(line, sizeof line, "%-18s | %8.4f %6.1f | %8.4f %6.1f %-5s | %8.4f %6.1f %-4d | %6.2fx | %8.4f %6.1f\n", cs.what, tm, flop / tm / 1e9, tms,
                 flop / tms / 1e9, sp, tw, flop / tw / 1e9, bn, std::min(tm, tms) / tw, th, flop / th / 1e9);
        table += line;
        printf("%s", line);
        fflush(stdout);
    }
    return failures;
}

struct CCase {
    const char* what;
    int n, cIn, h, w, cOut, ks, stride, pad, hasBias, hasRes;
    float beta;
    bool timed;
    int xoff = 0;
    int hOut() const { return (h + 2 * pad - ks) / stride + 1; }
    int wOut() const { return (w + 2 * pad - ks) / stride + 1; }
    long cols() const { return (long)n * hOut() * wOut(); }
};

template <typename E>
static void launchConvWg(int bn, const E* x, const E* wt, const E* bias, E* out, const CCase& cs, const E* res, bool entry = false) {
    const long tiles = (cs.cols() + 127) / 128 * ((cs.cOut + bn - 1) / bn);
    const int smem = smemOf(bn);
    if (entry) {
        conv2d_wgmma_tf32<<<(unsigned)tiles, 256, smem>>>((const float*)x, (const float*)wt, (const float*)bias, (float*)out, cs.n, cs.cIn, cs.h, cs.w, cs.cOut,
                                                          cs.ks, cs.stride, cs.pad, cs.hOut(), cs.wOut(), cs.hasBias, fWs, 1, cs.cIn * cs.ks * cs.ks,
                                                          (const float*)res, cs.hasRes, cs.beta);
        return;
    }
    if (bn == 160)
        k_conv<160, E><<<(unsigned)tiles, 256, smem>>>(x, wt, bias, out, cs.n, cs.cIn, cs.h, cs.w, cs.cOut, cs.ks, cs.stride, cs.pad, cs.hOut(), cs.wOut(),
                                                      cs.hasBias, res, cs.hasRes, cs.beta);
    else
        k_conv<128, E><<<(unsigned)tiles, 256, smem>>>(x, wt, bias, out, cs.n, cs.cIn, cs.h, cs.w, cs.cOut, cs.ks, cs.stride, cs.pad, cs.hOut(), cs.wOut(),
                                                      cs.hasBias, res, cs.hasRes, cs.beta);
}
static void launchV3Tf32(const CCase& cs, int splits, int kPer) {
    const int hOut = cs.hOut(), wOut = cs.wOut(), cols = (int)cs.cols();
    const float* res = cs.hasRes ? fRes : fC;
    conv2d_v3_tf32<<<dim3((cols + 127) / 128, (cs.cOut + 127) / 128, splits), 256>>>(fA + cs.xoff, fWt, fBias, fC, cs.n, cs.cIn, cs.h, cs.w, cs.cOut, cs.ks,
                                                                                     cs.stride, cs.pad, hOut, wOut, cs.hasBias, fWs, splits, kPer, res,
                                                                                     cs.hasRes, cs.beta);
    if (splits > 1)
        gemm_splitk_reduce_f32<<<(unsigned)(((long)cs.cOut * cols + 255) / 256), 256>>>(fWs, fBias, fC, 1, cs.cOut, cols, splits, cs.hasBias, 1.0f, hOut * wOut,
                                                                                       res, cs.hasRes, cs.beta, 0);
}

static std::string caseFilter;

static int runConv(std::string& table) {
    std::vector<CCase> cases = {
        {"320>320 64x64", 16, 320, 64, 64, 320, 3, 1, 1, 1, 0, 1.0f, true},
        {"320>320 64 +res", 16, 320, 64, 64, 320, 3, 1, 1, 1, 1, 1.0f, true},
        {"640>320 64x64", 16, 640, 64, 64, 320, 3, 1, 1, 1, 0, 1.0f, true},
        {"960>320 64x64", 16, 960, 64, 64, 320, 3, 1, 1, 1, 0, 1.0f, true},
        {"640>640 64x64", 16, 640, 64, 64, 640, 3, 1, 1, 1, 0, 1.0f, true},
        {"320>640 32x32", 16, 320, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true},
        {"640>640 32x32", 16, 640, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true},
        {"960>640 32x32", 16, 960, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true},
        {"1280>640 32x32", 16, 1280, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true},
        {"1920>640 32x32", 16, 1920, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true},
        {"1280>1280 32x32", 16, 1280, 32, 32, 1280, 3, 1, 1, 1, 0, 1.0f, true},
        {"640>1280 16x16", 16, 640, 16, 16, 1280, 3, 1, 1, 1, 0, 1.0f, true},
        {"1280>1280 16x16", 16, 1280, 16, 16, 1280, 3, 1, 1, 1, 0, 1.0f, true},
        {"1920>1280 16x16", 16, 1920, 16, 16, 1280, 3, 1, 1, 1, 0, 1.0f, true},
        {"2560>1280 16x16", 16, 2560, 16, 16, 1280, 3, 1, 1, 1, 0, 1.0f, true},
        {"1x1 960>320 64", 16, 960, 64, 64, 320, 1, 1, 0, 1, 0, 1.0f, true},
        {"1x1 640>320 64", 16, 640, 64, 64, 320, 1, 1, 0, 1, 0, 1.0f, true},
        {"1x1 320>640 32", 16, 320, 32, 32, 640, 1, 1, 0, 1, 0, 1.0f, true},
        {"1x1 1920>640 32", 16, 1920, 32, 32, 640, 1, 1, 0, 1, 0, 1.0f, true},
        {"1x1 640>1280 16", 16, 640, 16, 16, 1280, 1, 1, 0, 1, 0, 1.0f, true},
        {"1x1 2560>1280 16", 16, 2560, 16, 16, 1280, 1, 1, 0, 1, 0, 1.0f, true},
        {"s2 320 64>32", 16, 320, 64, 64, 320, 3, 2, 1, 1, 0, 1.0f, true},
        {"s2 640 32>16", 16, 640, 32, 32, 640, 3, 2, 1, 1, 0, 1.0f, true},
        {"s2 1280 16>8", 16, 1280, 16, 16, 1280, 3, 2, 1, 1, 0, 1.0f, true},
        {"1280>1280 8x8", 16, 1280, 8, 8, 1280, 3, 1, 1, 1, 0, 1.0f, true},
        {"2560>1280 8x8", 16, 2560, 8, 8, 1280, 3, 1, 1, 1, 0, 1.0f, true},
        {"conv_out 320>4 64", 16, 320, 64, 64, 4, 3, 1, 1, 1, 0, 1.0f, true},
        {"n3 64>40 7x7", 3, 64, 7, 7, 40, 3, 1, 1, 1, 0, 1.0f, false},
        {"n3 128>200 9x9 res", 3, 128, 9, 9, 200, 3, 1, 1, 1, 1, 0.5f, false},
        {"n2 64>200 9x9 s2", 2, 64, 9, 9, 200, 3, 2, 1, 1, 0, 1.0f, false},
        {"n3 192>40 9x9 1x1 res", 3, 192, 9, 9, 40, 1, 1, 0, 0, 1, 0.8f, false},
        {"n2 32>96 15x13 s2 res", 2, 32, 15, 13, 96, 3, 2, 1, 1, 1, 1.0f, false},
        {"n5 96>200 7x9 nob", 5, 96, 7, 9, 200, 3, 1, 1, 0, 0, 1.0f, false},
        {"n3 64>1 9x9", 3, 64, 9, 9, 1, 3, 1, 1, 1, 0, 1.0f, false},
        {"n2 32>64 16x16 x+1", 2, 32, 16, 16, 64, 3, 1, 1, 1, 0, 1.0f, false, 1},
        {"n1 160>160 16x12 res", 1, 160, 16, 12, 160, 3, 1, 1, 1, 1, 0.7f, false},
    };
    int failures = 0;
    char line[512];
    snprintf(line, sizeof line, "\nconv (fp32 buffers, TF32; NCHW, batch 16 unless ragged)\n%-18s | %8s %6s %-5s | %8s %6s %-4s | %6s | %8s %6s (fp16 wgmma)\n", "conv",
             "v3 ms", "TF/s", "(spl)", "wgmma ms", "TF/s", "(bn)", "speedup", "f16 ms", "TF/s");
    table += line;
    printf("%s", line);
    unsigned seed = 4242;
    for (auto& cs : cases) {
        if (!caseFilter.empty() && std::string(cs.what).find(caseFilter) == std::string::npos) continue;
        const long nX = (long)cs.n * cs.cIn * cs.h * cs.w, taps = cs.ks * cs.ks, nW = (long)cs.cOut * cs.cIn * taps, nC = (long)cs.cOut * cs.cols();
        if (nX + cs.xoff > CAP_A || nW > CAP_B || nC > CAP_RES) { printf("%s: too big\n", cs.what); exit(2); }
        fill_uniform<<<1024, 256>>>(fA, nX + cs.xoff, seed++);
        fill_uniform<<<1024, 256>>>(fB, nW, seed++);
        fill_uniform<<<64, 256>>>(fBias, cs.cOut, seed++);
        if (cs.hasRes) fill_uniform<<<1024, 256>>>(fRes, nC, seed++);
        conv_taps_f32<<<(unsigned)((nW + 255) / 256), 256>>>(fB, fWt, cs.cOut, cs.cIn, (int)taps);
        const int hw = cs.hOut() * cs.wOut();
        ref_conv<<<dim3((hw + 127) / 128, (cs.cOut + 15) / 16, cs.n), 128>>>(fA + cs.xoff, fB, fBias, fRes, fRef, cs.cIn, cs.h, cs.w, cs.cOut, cs.ks, cs.stride,
                                                                            cs.pad, cs.hOut(), cs.wOut(), cs.hasBias, cs.hasRes, cs.beta);
        CK(cudaGetLastError());
        const float* res = cs.hasRes ? fRes : fC;
        const int bn = pickBn(cs.cOut);
        int fails = 0;
        double rel[4] = {0, 0, 0, 0};
        for (int v = 0; v < 3; v++) {
            fill_nan<<<1024, 256>>>(fC, nC);
            launchConvWg<float>(v == 2 ? 160 : v == 0 ? bn : 288 - bn, fA + cs.xoff, fWt, fBias, fC, cs, res, v == 2);
            if (!checkN(v == 0 ? "conv_wgmma_tf32 pick" : v == 1 ? "conv_wgmma_tf32 other" : "conv_wgmma_tf32 entry", cs.what, nC, &rel[v])) fails++;
        }
        int splits, kPer;
        splitPlan(1, cs.cOut, (int)cs.cols(), (int)(cs.cIn * taps), 16, splits, kPer);
        fill_nan<<<1024, 256>>>(fC, nC);
        launchV3Tf32(cs, splits, kPer);
        if (!checkN("conv2d_v3_tf32", cs.what, nC, &rel[3])) fails++;
        failures += fails;
        printf("conv %-24s %s  rel L2: wgmma tf32 %.2e (bn %d) / %.2e / entry %.2e, v3 tf32 %.2e (%d split%s)\n", cs.what, fails ? "FAIL" : "ok  ", rel[0], bn,
               rel[1], rel[2], rel[3], splits, splits > 1 ? "s" : "");
        fflush(stdout);
        if (!cs.timed) continue;
        const double flop = 2.0 * cs.cols() * cs.cOut * cs.cIn * taps;
        const float tv = timeMs([&] { launchV3Tf32(cs, splits, kPer); });
        const float tw = timeMs([&] { launchConvWg<float>(bn, fA, fWt, fBias, fC, cs, res); });
        fill_uniform<<<1024, 256>>>(hA, nX, 5);
        fill_uniform<<<1024, 256>>>(hWt, nW, 6);
        fill_uniform<<<64, 256>>>(hBias, cs.cOut, 7);
        const float th = timeMs([&] { launchConvWg<half_t>(bn, hA, hWt, hBias, hC, cs, hC); });
        char sp[16];
        snprintf(sp, sizeof sp, "(%d)", splits);
        snprintf(line, sizeof line, "%-18s | %8.4f %6.1f %-5s | %8.4f %6.1f %-4d | %6.2fx | %8.4f %6.1f\n", cs.what, tv, flop / tv / 1e9, sp, tw, flop / tw / 1e9, bn,
                 tv / tw, th, flop / th / 1e9);
        table += line;
        printf("%s", line);
        fflush(stdout);
    }
    return failures;
}

/* the module as the engine builds it: NVRTC on the prelude + gemm_wgmma.cu with Gemm.Wgmma's options */
static void nvrtcCheck(const std::string& kernelsDir) {
    void* nv = nullptr;
    for (const char* n : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}) if (!nv) nv = dlopen(n, RTLD_NOW | RTLD_GLOBAL);
    void* cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!nv || !cu) { printf("NVRTC check skipped (no libnvrtc / libcuda)\n"); return; }
    typedef int (*Create)(void**, const char*, const char*, int, const char* const*, const char* const*);
    typedef int (*Compile)(void*, int, const char* const*);
    typedef int (*Size)(void*, size_t*);
    typedef int (*Get)(void*, char*);
    auto create = (Create)dlsym(nv, "nvrtcCreateProgram");
    auto compile = (Compile)dlsym(nv, "nvrtcCompileProgram");
    auto logSize = (Size)dlsym(nv, "nvrtcGetProgramLogSize");
    auto getLog = (Get)dlsym(nv, "nvrtcGetProgramLog");
    auto cubinSize = (Size)dlsym(nv, "nvrtcGetCUBINSize");
    auto getCubin = (Get)dlsym(nv, "nvrtcGetCUBIN");
    auto load = (CUresult(*)(CUmodule*, const void*))dlsym(cu, "cuModuleLoadData");
    auto getFn = (CUresult(*)(CUfunction*, CUmodule, const char*))dlsym(cu, "cuModuleGetFunction");
    auto getAttr = (CUresult(*)(int*, CUfunction_attribute, CUfunction))dlsym(cu, "cuFuncGetAttribute");
    auto rd = [](const std::string& p) { std::ifstream in(p); std::stringstream ss; ss << in.rdbuf(); return ss.str(); };
    std::string src = "#define JD_CUDA 1\n" + rd(kernelsDir + "/prelude.h") + "\n#line 1\n" + rd(kernelsDir + "/gemm_wgmma.cu");
    for (int bn : {160, 128}) {
        std::vector<std::string> opts = {"--gpu-architecture=sm_90a", "--std=c++17", "-DGW_BN=" + std::to_string(bn), "-DGW_WG=2", "-DGW_STAGES=3",
                                         "-DGW_DRAIN=1", "-DGW_MINB=2", "-DJD_SMEM=" + std::to_string(smemOf(bn)), "-DJD_ARCH_SUFFIX=a"};
        std::vector<const char*> o;
        for (auto& x : opts) o.push_back(x.c_str());
        void* prog = nullptr;
        create(&prog, src.c_str(), "gemm_wgmma.cu", 0, nullptr, nullptr);
        int rc = compile(prog, (int)o.size(), o.data());
        size_t n = 0;
        logSize(prog, &n);
        std::string log(n, '\0');
        getLog(prog, &log[0]);
        if (rc != 0) { printf("NVRTC could not compile gemm_wgmma.cu (BN %d): %s\n", bn, log.c_str()); exit(2); }
        if (log.size() > 1) printf("NVRTC log (BN %d): %s\n", bn, log.c_str());
        cubinSize(prog, &n);
        std::vector<char> cubin(n);
        getCubin(prog, cubin.data());
        CUmodule mod;
        if (load(&mod, cubin.data()) != CUDA_SUCCESS) { printf("cuModuleLoadData failed\n"); exit(2); }
        for (const char* k : {"gemm_wgmma_f16", "gemm_wgmma_geglu_f16", "conv2d_wgmma_f16", "gemm_wgmma_tf32", "gemm_wgmma_geglu_tf32", "conv2d_wgmma_tf32"}) {
            CUfunction fn;
            if (getFn(&fn, mod, k) != CUDA_SUCCESS) { printf("NVRTC module (BN %d): no %s\n", bn, k); exit(2); }
            int r = 0, l = 0;
            getAttr(&r, CU_FUNC_ATTRIBUTE_NUM_REGS, fn);
            getAttr(&l, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, fn);
            printf("  nvrtc BN %d %-24s %3d registers, %d B local\n", bn, k, r, l);
        }
    }
}

int main(int argc, char** argv) {
    std::string parts = argc > 1 ? argv[1] : "gemm,geglu,conv";
    std::string kernelsDir = argc > 2 ? argv[2] : "tornado-kernels/src/main/resources/kernels";
    caseFilter = argc > 3 ? argv[3] : "";
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    smCount = prop.multiProcessorCount;
    printf("device: %s (sm_%d%d, %d SMs), parts: %s\n", prop.name, prop.major, prop.minor, smCount, parts.c_str());
    if (prop.major != 9 || prop.minor != 0) { printf("needs an sm_90 GPU\n"); return 1; }
    CK(cudaFree(0));
    nvrtcCheck(kernelsDir);
    prep(k_gemm<160, float>, smemOf(160)); prep(k_gemm<128, float>, smemOf(128));
    prep(k_geglu<160, float>, smemOf(160)); prep(k_geglu<128, float>, smemOf(128));
    prep(k_conv<160, float>, smemOf(160)); prep(k_conv<128, float>, smemOf(128));
    prep(k_gemm<160, half_t>, smemOf(160)); prep(k_gemm<128, half_t>, smemOf(128));
    prep(k_geglu<160, half_t>, smemOf(160)); prep(k_geglu<128, half_t>, smemOf(128));
    prep(k_conv<160, half_t>, smemOf(160)); prep(k_conv<128, half_t>, smemOf(128));
    prep(gemm_wgmma_tf32, smemOf(160)); prep(gemm_wgmma_geglu_tf32, smemOf(160)); prep(conv2d_wgmma_tf32, smemOf(160));
    attrs("gemm_wgmma_tf32 (160)", gemm_wgmma_tf32); attrs("gemm_wgmma_geglu_tf32 (160)", gemm_wgmma_geglu_tf32);
    attrs("conv2d_wgmma_tf32 (160)", conv2d_wgmma_tf32); attrs("k_gemm<128, float>", k_gemm<128, float>);
    attrs("k_conv<128, float>", k_conv<128, float>);
    CK(cudaMalloc(&fA, CAP_A * 4)); CK(cudaMalloc(&fB, CAP_B * 4)); CK(cudaMalloc(&fWt, CAP_B * 4)); CK(cudaMalloc(&fBias, 65536 * 4));
    CK(cudaMalloc(&fC, CAP_C * 4)); CK(cudaMalloc(&fRef, CAP_C * 4)); CK(cudaMalloc(&fTmp, CAP_C * 4)); CK(cudaMalloc(&fRes, CAP_RES * 4));
    CK(cudaMalloc(&fWs, 64L << 20));
    CK(cudaMalloc(&hA, CAP_A * 2)); CK(cudaMalloc(&hB, CAP_B * 2)); CK(cudaMalloc(&hWt, CAP_B * 2)); CK(cudaMalloc(&hBias, 65536 * 2));
    CK(cudaMalloc(&hC, CAP_C * 2));
    CK(cudaMalloc(&dSums, 2 * sizeof(double)));
    CK(cudaMalloc(&dBad, sizeof(unsigned long long)));
    int failures = 0;
    std::string table;
    if (parts.find("gemm") != std::string::npos) failures += runGemm(false, table);
    if (parts.find("geglu") != std::string::npos) failures += runGemm(true, table);
    if (parts.find("conv") != std::string::npos) failures += runConv(table);
    printf("\n=== summary ===\n%s\n%s\n", table.c_str(), failures ? "CHECK FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
