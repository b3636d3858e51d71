/*
 * What the two standalone harnesses of kernels/gemm_wgmma.cu share: bench/cuda/wgmma_check.cu (the fp16 kernels) and
 * bench/cuda/wgmma_tf32_check.cu (the TF32 ones). The kernel sources are included as the engine's NVRTC sees them
 * (JD_CUDA, prelude.h, then the family sources); then CUDA error checking, random fill / NaN poison / relative L2 check,
 * the fp32 reference kernels (GEMM, GEGLU, direct conv), event timing (median), Gemm's tile pick and split-K plan, the
 * test cases of both harnesses, and the engine's build of the module (NVRTC and the driver API, both dlopen'ed).
 * The harnesses are built with -I tornado-kernels/src/main/resources/kernels (see their .sh scripts).
 */
#pragma once
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
#include <initializer_list>
#include <dlfcn.h>
#include <cuda.h>

#define JD_CUDA 1
#include "prelude.h"
#include "gemm_wgmma.cu"
#include "gemm_mma.cu"
#include "conv_mma.cu"

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, cudaGetErrorString(e_)); exit(2); } } while (0)

static int smCount;
static double* dSums;                                /* compare's two sums and its count of bad values */
static unsigned long long* dBad;

/* Prints the device line; false (and the message needs) unless it is an sm_90 GPU. Then makes the primary context current
 * (for the driver calls too) and allocates what the checks use. */
static bool openDevice(cudaDeviceProp& prop, const std::string& parts, const char* needs) {
    CK(cudaGetDeviceProperties(&prop, 0));
    smCount = prop.multiProcessorCount;
    printf("device: %s (sm_%d%d, %d SMs), parts: %s\n", prop.name, prop.major, prop.minor, smCount, parts.c_str());
    if (prop.major != 9 || prop.minor != 0) { printf("%s\n", needs); return false; }
    CK(cudaFree(0));
    CK(cudaMalloc(&dSums, 2 * sizeof(double)));
    CK(cudaMalloc(&dBad, sizeof(unsigned long long)));
    return true;
}

/* ---- a case (the tables of both harnesses: further below) ---- */

/* A GEMM or GEGLU case (GEGLU: N = 2 * inner, no residual). */
struct Case {
    const char* what;
    int batch, M, N, K, hasBias, hasRes, outHw;
    float alpha, beta;
    bool timed;
};

/* A conv case (NCHW, weights [cOut][cIn][ks][ks]). */
struct CCase {
    const char* what;
    int n, cIn, h, w, cOut, ks, stride, pad, hasBias, hasRes;
    float beta;
    bool timed;
    int xoff = 0;                                    /* x starts this many elements into its buffer (misaligned: no row path) */
    int hOut() const { return (h + 2 * pad - ks) / stride + 1; }
    int wOut() const { return (w + 2 * pad - ks) / stride + 1; }
    long cols() const { return (long)n * hOut() * wOut(); }
};

/* ---- random fill, poison, references, compare (E: half_t for fp16, float for TF32; GwT<E> converts) ---- */
__device__ __forceinline__ unsigned hash32(unsigned x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}
/* uniform [-1, 1], a function of (seed, index) */
template <typename E>
__global__ void fill_uniform(E* p, long n, unsigned seed) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        unsigned h = hash32((unsigned)i * 2654435761U ^ hash32(seed + (unsigned)(i >> 32)));
        float u = (h >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
        p[i] = GwT<E>::from(u);
    }
}
/* NaN everywhere (fp16 0xFFFF, fp32 0x7fffffff): what a kernel leaves unwritten fails the check */
template <typename E>
__global__ void fill_nan(E* p, long n) {
    E nan;
    if constexpr (sizeof(E) == 2) nan = (E)0xFFFFu;
    else nan = __uint_as_float(0x7fffffffu);
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) p[i] = nan;
}
/* Fresh inputs, one seed each (seed advances): a, b, bias and, where res is not null, res. */
template <typename E>
static void fillInputs(unsigned& seed, E* a, long nA, E* b, long nB, E* bias, long nBias, E* res = nullptr, long nRes = 0) {
    fill_uniform<<<1024, 256>>>(a, nA, seed++);
    fill_uniform<<<1024, 256>>>(b, nB, seed++);
    fill_uniform<<<64, 256>>>(bias, nBias, seed++);
    if (res) fill_uniform<<<1024, 256>>>(res, nRes, seed++);
}

/* out (laid out like c) = epilogue(alpha * A . B^T), fp32, no rounding. grid (ceil(N/16), ceil(M/16), batch), block (16, 16). */
template <typename E>
__global__ void ref_gemm(const E* A, const E* B, const E* bias, const E* res, float* out, int M, int N, int K, int hasBias, float alpha, int hasRes,
                         float beta, int outHw) {
    __shared__ float As[16][17], Bs[16][17];
    const int tx = threadIdx.x, ty = threadIdx.y, row = blockIdx.y * 16 + ty, col = blockIdx.x * 16 + tx, brow = blockIdx.x * 16 + ty;
    const long bz = blockIdx.z;
    A += bz * M * K; B += bz * N * K; out += bz * M * N; res += bz * M * N;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += 16) {
        As[ty][tx] = row < M ? GwT<E>::f(A[(long)row * K + k0 + tx]) : 0.0f;
        Bs[ty][tx] = brow < N ? GwT<E>::f(B[(long)brow * K + k0 + tx]) : 0.0f;
        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < 16; kk++) acc = fmaf(As[ty][kk], Bs[tx][kk], acc);
        __syncthreads();
    }
    if (row >= M || col >= N) return;
    long o = outHw > 0 ? ((long)(row / outHw) * N + col) * outHw + row % outHw : (long)row * N + col;
    float v = alpha * acc + (hasBias ? GwT<E>::f(bias[col]) : 0.0f);
    if (hasRes) v = (v + GwT<E>::f(res[o])) * beta;
    out[o] = v;
}
/* ref_gemm over the case's [batch][M][N] */
template <typename E>
static void refGemm(const Case& cs, const E* A, const E* B, const E* bias, const E* res, float* out) {
    ref_gemm<<<dim3((cs.N + 15) / 16, (cs.M + 15) / 16, cs.batch), dim3(16, 16)>>>(A, B, bias, res, out, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha, cs.hasRes,
                                                                                 cs.beta, cs.outHw);
}
/* GEGLU over interleaved 16-column groups (8 values, their 8 gates) of raw [batch][M][N] (alpha and bias applied) -> [batch][M][N / 2]:
 * value * erf-GELU(gate) */
__global__ void ref_geglu(const float* raw, float* out, long rows, int N) {
    const int inner = N / 2;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < rows * inner; i += (long)gridDim.x * blockDim.x) {
        const long row = i / inner;
        const int j = (int)(i - row * inner), g = j / 8, r = j % 8;
        const float v = raw[row * N + 16 * g + r], gt = raw[row * N + 16 * g + 8 + r];
        out[i] = v * (0.5f * gt * (1.0f + erff(gt * 0.70710678118654752f)));
    }
}
/* Direct convolution in fp32 from the original weight layout [cOut][cIn][ks][ks]: out (NCHW) = conv + bias, then (+ res) * beta.
 * grid (ceil(hw / 128), ceil(cOut / 16), n), block 128: one output pixel and 16 output channels per thread. */
template <typename E>
__global__ void ref_conv(const E* x, const E* wgt, const E* bias, const E* res, float* out, int cIn, int h, int w, int cOut, int ks, int stride, int pad,
                         int hOut, int wOut, int hasBias, int hasRes, float beta) {
    const int hw = hOut * wOut, p = blockIdx.x * 128 + threadIdx.x, co0 = blockIdx.y * 16, img = blockIdx.z;
    if (p >= hw) return;
    const int oy = p / wOut, ox = p % wOut;
    float acc[16];
    for (int j = 0; j < 16; j++) acc[j] = 0.0f;
    const long plane = (long)h * w;
    for (int ky = 0; ky < ks; ky++)
        for (int kx = 0; kx < ks; kx++) {
            const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const E* xp = x + (long)img * cIn * plane + iy * w + ix;
            for (int ci = 0; ci < cIn; ci++) {
                const float xv = GwT<E>::f(xp[ci * plane]);
                #pragma unroll
                for (int j = 0; j < 16; j++)
                    if (co0 + j < cOut) acc[j] = fmaf(xv, GwT<E>::f(wgt[(((long)(co0 + j) * cIn + ci) * ks + ky) * ks + kx]), acc[j]);
            }
        }
    for (int j = 0; j < 16 && co0 + j < cOut; j++) {
        const long o = ((long)img * cOut + co0 + j) * hw + p;
        float v = acc[j] + (hasBias ? GwT<E>::f(bias[co0 + j]) : 0.0f);
        if (hasRes) v = (v + GwT<E>::f(res[o])) * beta;
        out[o] = v;
    }
}
/* ref_conv over the case's output (x: where the case's input starts) */
template <typename E>
static void refConv(const CCase& cs, const E* x, const E* wgt, const E* bias, const E* res, float* out) {
    const int hw = cs.hOut() * cs.wOut();
    ref_conv<<<dim3((hw + 127) / 128, (cs.cOut + 15) / 16, cs.n), 128>>>(x, wgt, bias, res, out, cs.cIn, cs.h, cs.w, cs.cOut, cs.ks, cs.stride, cs.pad,
                                                                        cs.hOut(), cs.wOut(), cs.hasBias, cs.hasRes, cs.beta);
}
/* sums[0] += ||c - ref||^2, sums[1] += ||ref||^2, bad += values of c that are NaN / inf (beyond the format's largest finite) */
template <typename E>
__global__ void compare(const E* c, const float* ref, long n, double* sums, unsigned long long* bad) {
    const float finite = sizeof(E) == 2 ? 65504.0f : 3.0e38f;
    double d2 = 0.0, r2 = 0.0;
    unsigned long long nb = 0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float x = GwT<E>::f(c[i]), r = ref[i];
        if (!(fabsf(x) <= finite)) { nb++; continue; }
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

/* c (n values) against ref (fp32): relative L2 ||c - ref|| / ||ref|| <= 2e-3 and every value finite; a failure prints
 * a FAIL line (who in a field whoWidth wide). */
template <typename E>
static bool checkRel(const E* c, const float* ref, long n, int whoWidth, const char* who, const char* what, double* relOut) {
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemset(dSums, 0, 2 * sizeof(double)));
    CK(cudaMemset(dBad, 0, sizeof(unsigned long long)));
    compare<<<1024, 256>>>(c, ref, n, dSums, dBad);
    double sums[2];
    unsigned long long bad;
    CK(cudaMemcpy(sums, dSums, sizeof sums, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&bad, dBad, sizeof bad, cudaMemcpyDeviceToHost));
    double rel = sqrt(sums[0] / std::max(sums[1], 1e-30));
    bool ok = bad == 0 && rel <= 2e-3;
    if (relOut) *relOut = rel;
    if (!ok) printf("  FAIL %-*s %s: rel L2 %.3e, %llu NaN/inf/unwritten\n", whoWidth, who, what, rel, bad);
    return ok;
}
/* c poisoned with NaN, launch(), then checkRel */
template <typename E, typename L>
static bool poisonCheck(E* c, const float* ref, long n, int whoWidth, const char* who, const char* what, double* relOut, L launch) {
    fill_nan<<<1024, 256>>>(c, n);
    launch();
    return checkRel(c, ref, n, whoWidth, who, what, relOut);
}

/* Median of 25 launches queued back to back (as in a CUDA graph), each between two events, after 3 warm-ups. */
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

/* A finished table row: into the table and onto stdout. */
static void emit(std::string& table, const char* line) {
    table += line;
    printf("%s", line);
    fflush(stdout);
}

/* ---- what Gemm.java decides ---- */

/* Mirror of Gemm.wgmmaConfig (keep in sync): 128 x 160 or 128 x 128 tiles, whichever pads N less (ties: 160), 3 stages,
 * drain, 2 blocks per SM. */
static int pickBn(int n) { return (n + 159L) / 160 * 160 <= (n + 127L) / 128 * 128 ? 160 : 128; }
/* dynamic shared memory of such a tile (2 warpgroups, 3 stages) */
static int smemOf(int bn) { return gw_smem_bytes(bn, 2, 3); }
/* Gemm.splitPlan + Gemm.split, defaults (maxSplits 16, splitKMiB 64): k tiles of kt elements (32 halves / 16 floats). */
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

/* ---- the case tables of both harnesses ---- */

/* Which harness runs a case: wgmma_check (F16), wgmma_tf32_check (TF32) or both; each keeps the order of the table. */
enum Harness { F16 = 1, TF32 = 2, BOTH = 3 };
template <typename C>
struct Tagged {
    int in;
    C c;
};
template <typename C>
static std::vector<C> casesOf(int harness, const std::vector<Tagged<C>>& all) {
    std::vector<C> r;
    for (auto& t : all)
        if (t.in & harness) r.push_back(t.c);
    return r;
}

static std::vector<Case> gemmCases(int harness) {
    static const std::vector<Tagged<Case>> all = {
        /* the SD1.5 UNet shapes at batch 16 (bias on, like the Linears) */
        {BOTH, {"65536x320x320", 1, 65536, 320, 320, 1, 0, 0, 1.0f, 1.0f, true}},
        {F16, {"65536x2560x320", 1, 65536, 2560, 320, 1, 0, 0, 1.0f, 1.0f, true}},
        {BOTH, {"65536x320x1280", 1, 65536, 320, 1280, 1, 0, 0, 1.0f, 1.0f, true}},
        {BOTH, {"16384x640x640", 1, 16384, 640, 640, 1, 0, 0, 1.0f, 1.0f, true}},
        {BOTH, {"16384x640x2560", 1, 16384, 640, 2560, 1, 0, 0, 1.0f, 1.0f, true}},
        {BOTH, {"4096x1280x1280", 1, 4096, 1280, 1280, 1, 0, 0, 1.0f, 1.0f, true}},
        {BOTH, {"4096x1280x5120", 1, 4096, 1280, 5120, 1, 0, 0, 1.0f, 1.0f, true}},
        {BOTH, {"1232x320x768", 1, 1232, 320, 768, 1, 0, 0, 1.0f, 1.0f, true}},
        {TF32, {"1232x640x768", 1, 1232, 640, 768, 1, 0, 0, 1.0f, 1.0f, true}},
        {TF32, {"1232x1280x768", 1, 1232, 1280, 768, 1, 0, 0, 1.0f, 1.0f, true}},
        {TF32, {"1024x1280x1280", 1, 1024, 1280, 1280, 1, 0, 0, 1.0f, 1.0f, true}},
        {TF32, {"1024x1280x5120", 1, 1024, 1280, 5120, 1, 0, 0, 1.0f, 1.0f, true}},
        /* ragged shapes and epilogue paths */
        {F16, {"1000x64x64", 1, 1000, 64, 64, 0, 0, 0, 1.0f, 1.0f, false}},
        {TF32, {"1000x64x32", 1, 1000, 64, 32, 0, 0, 0, 1.0f, 1.0f, false}},
        {BOTH, {"1000x200x128 bias", 1, 1000, 200, 128, 1, 0, 0, 1.0f, 1.0f, false}},
        {BOTH, {"77x33x64 odd N", 1, 77, 33, 64, 1, 0, 0, 0.5f, 1.0f, false}},
        {BOTH, {"1x8x192", 1, 1, 8, 192, 1, 0, 0, 1.0f, 1.0f, false}},
        {F16, {"b3 300x160x128", 3, 300, 160, 128, 1, 0, 0, 1.0f, 1.0f, false}},
        {TF32, {"b3 300x160x96", 3, 300, 160, 96, 1, 0, 0, 1.0f, 1.0f, false}},
        {BOTH, {"b2 130x72x64 res", 2, 130, 72, 64, 1, 1, 0, 0.7f, 0.5f, false}},
        {F16, {"1000x320x256 res", 1, 1000, 320, 256, 1, 1, 0, 0.125f, 0.8f, false}},
        {BOTH, {"1000x322x256 res", 1, 1000, 322, 256, 1, 1, 0, 1.0f, 0.8f, false}},
        {BOTH, {"outHw 4x256 res", 1, 1024, 320, 128, 1, 1, 256, 1.0f, 0.5f, false}},
        {BOTH, {"outHw 16x77 res", 1, 1232, 320, 64, 1, 1, 77, 1.0f, 1.0f, false}},
        {BOTH, {"outHw 3x100 N=90", 1, 300, 90, 192, 0, 0, 100, 2.0f, 1.0f, false}},
        {F16, {"outHw 2x4096", 1, 8192, 640, 640, 1, 1, 4096, 1.0f, 1.0f, false}},
        {BOTH, {"16384x1280x320 res", 1, 16384, 1280, 320, 1, 1, 0, 1.0f, 1.0f, false}},
    };
    return casesOf(harness, all);
}

static std::vector<Case> gegluCases(int harness) {
    static const std::vector<Tagged<Case>> all = {
        /* SD1.5 net.0.proj at batch 16: M tokens, N = 2 * inner, K */
        {BOTH, {"65536x2560x320", 1, 65536, 2560, 320, 1, 0, 0, 1.0f, 1.0f, true}},
        {BOTH, {"16384x5120x640", 1, 16384, 5120, 640, 1, 0, 0, 1.0f, 1.0f, true}},
        {BOTH, {"4096x10240x1280", 1, 4096, 10240, 1280, 1, 0, 0, 1.0f, 1.0f, true}},
        /* ragged */
        {F16, {"1000x320x128", 1, 1000, 320, 128, 1, 0, 0, 1.0f, 1.0f, false}},
        {F16, {"77x160x64 a=.5", 1, 77, 160, 64, 1, 0, 0, 0.5f, 1.0f, false}},
        {F16, {"1x336x192", 1, 1, 336, 192, 1, 0, 0, 1.0f, 1.0f, false}},
        {F16, {"b3 300x336x128 nob", 3, 300, 336, 128, 0, 0, 0, 1.0f, 1.0f, false}},
        {F16, {"b2 130x2560x320", 2, 130, 2560, 320, 1, 0, 0, 1.0f, 1.0f, false}},
        {F16, {"999x1264x640", 1, 999, 1264, 640, 1, 0, 0, 1.0f, 1.0f, false}},
        {TF32, {"1000x336x64 nob", 1, 1000, 336, 64, 0, 0, 0, 1.0f, 1.0f, false}},
        {TF32, {"b2 77x160x96 a", 2, 77, 160, 96, 1, 0, 0, 0.5f, 1.0f, false}},
        {TF32, {"300x1280x320", 1, 300, 1280, 320, 1, 0, 0, 1.0f, 1.0f, false}},
    };
    return casesOf(harness, all);
}

static std::vector<CCase> convCases(int harness) {
    static const std::vector<Tagged<CCase>> all = {
        /* SD1.5 UNet convs at batch 16 (cIn -> cOut, spatial; bias on) */
        {BOTH, {"320>320 64x64", 16, 320, 64, 64, 320, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"320>320 64 +res", 16, 320, 64, 64, 320, 3, 1, 1, 1, 1, 1.0f, true}},
        {BOTH, {"640>320 64x64", 16, 640, 64, 64, 320, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"960>320 64x64", 16, 960, 64, 64, 320, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"640>640 64x64", 16, 640, 64, 64, 640, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"320>640 32x32", 16, 320, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"640>640 32x32", 16, 640, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"960>640 32x32", 16, 960, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"1280>640 32x32", 16, 1280, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"1920>640 32x32", 16, 1920, 32, 32, 640, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"1280>1280 32x32", 16, 1280, 32, 32, 1280, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"640>1280 16x16", 16, 640, 16, 16, 1280, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"1280>1280 16x16", 16, 1280, 16, 16, 1280, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"1920>1280 16x16", 16, 1920, 16, 16, 1280, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"2560>1280 16x16", 16, 2560, 16, 16, 1280, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"1x1 960>320 64", 16, 960, 64, 64, 320, 1, 1, 0, 1, 0, 1.0f, true}},
        {BOTH, {"1x1 640>320 64", 16, 640, 64, 64, 320, 1, 1, 0, 1, 0, 1.0f, true}},
        {BOTH, {"1x1 320>640 32", 16, 320, 32, 32, 640, 1, 1, 0, 1, 0, 1.0f, true}},
        {BOTH, {"1x1 1920>640 32", 16, 1920, 32, 32, 640, 1, 1, 0, 1, 0, 1.0f, true}},
        {BOTH, {"1x1 640>1280 16", 16, 640, 16, 16, 1280, 1, 1, 0, 1, 0, 1.0f, true}},
        {BOTH, {"1x1 2560>1280 16", 16, 2560, 16, 16, 1280, 1, 1, 0, 1, 0, 1.0f, true}},
        {BOTH, {"s2 320 64>32", 16, 320, 64, 64, 320, 3, 2, 1, 1, 0, 1.0f, true}},
        {BOTH, {"s2 640 32>16", 16, 640, 32, 32, 640, 3, 2, 1, 1, 0, 1.0f, true}},
        {BOTH, {"s2 1280 16>8", 16, 1280, 16, 16, 1280, 3, 2, 1, 1, 0, 1.0f, true}},
        {BOTH, {"1280>1280 8x8", 16, 1280, 8, 8, 1280, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"2560>1280 8x8", 16, 2560, 8, 8, 1280, 3, 1, 1, 1, 0, 1.0f, true}},
        {BOTH, {"conv_out 320>4 64", 16, 320, 64, 64, 4, 3, 1, 1, 1, 0, 1.0f, true}},
        /* ragged: odd spatial sizes, cOut not a multiple of the tile, several images, stride 2 on odd sizes, 1x1, residual */
        {BOTH, {"n3 64>40 7x7", 3, 64, 7, 7, 40, 3, 1, 1, 1, 0, 1.0f, false}},
        {BOTH, {"n3 128>200 9x9 res", 3, 128, 9, 9, 200, 3, 1, 1, 1, 1, 0.5f, false}},
        {BOTH, {"n2 64>200 9x9 s2", 2, 64, 9, 9, 200, 3, 2, 1, 1, 0, 1.0f, false}},
        {BOTH, {"n3 192>40 9x9 1x1 res", 3, 192, 9, 9, 40, 1, 1, 0, 0, 1, 0.8f, false}},
        {F16, {"n2 64>320 8x8 res", 2, 64, 8, 8, 320, 3, 1, 1, 1, 1, 0.7f, false}},
        {F16, {"n1 128>160 16x12", 1, 128, 16, 12, 160, 3, 1, 1, 1, 0, 1.0f, false}},
        {F16, {"n2 64>96 15x13 s2 res", 2, 64, 15, 13, 96, 3, 2, 1, 1, 1, 1.0f, false}},
        {TF32, {"n2 32>96 15x13 s2 res", 2, 32, 15, 13, 96, 3, 2, 1, 1, 1, 1.0f, false}},
        {F16, {"n5 320>200 7x9 nob", 5, 320, 7, 9, 200, 3, 1, 1, 0, 0, 1.0f, false}},
        {TF32, {"n5 96>200 7x9 nob", 5, 96, 7, 9, 200, 3, 1, 1, 0, 0, 1.0f, false}},
        {BOTH, {"n3 64>1 9x9", 3, 64, 9, 9, 1, 3, 1, 1, 1, 0, 1.0f, false}},
        /* row-path shapes (the fp16 conv): a ragged last tile, rectangles, tiles across images, 128-wide rows, 1x1 */
        {F16, {"rows n3 64>40 8x8", 3, 64, 8, 8, 40, 3, 1, 1, 1, 0, 1.0f, false}},
        {F16, {"rows n2 128>96 32x16 res", 2, 128, 32, 16, 96, 3, 1, 1, 1, 1, 0.5f, false}},
        {F16, {"rows n3 64>200 5x32", 3, 64, 5, 32, 200, 3, 1, 1, 1, 0, 1.0f, false}},
        {F16, {"rows n1 64>160 3x128", 1, 64, 3, 128, 160, 3, 1, 1, 0, 0, 1.0f, false}},
        {F16, {"rows n3 192>200 16x16 1x1 res", 3, 192, 16, 16, 200, 1, 1, 0, 1, 1, 0.8f, false}},
        {F16, {"rows n2 64>64 16x16 x+1 (pix)", 2, 64, 16, 16, 64, 3, 1, 1, 1, 0, 1.0f, false, 1}},
        {TF32, {"n2 32>64 16x16 x+1", 2, 32, 16, 16, 64, 3, 1, 1, 1, 0, 1.0f, false, 1}},
        {TF32, {"n1 160>160 16x12 res", 1, 160, 16, 12, 160, 3, 1, 1, 1, 1, 0.7f, false}},
    };
    return casesOf(harness, all);
}

/* ---- the engine's build: NVRTC + driver API, both dlopen'ed (no link-time dependency) ---- */
static std::string readFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) { fprintf(stderr, "cannot read %s\n", path.c_str()); exit(2); }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

static void* dlopenAny(std::initializer_list<const char*> names) {
    for (const char* n : names) {
        void* h = dlopen(n, RTLD_NOW | RTLD_GLOBAL);
        if (h) return h;
    }
    return nullptr;
}

/* The entry points of libnvrtc and libcuda the harnesses call (null handles: a library is missing). */
struct Nvrtc {
    void *nv = nullptr, *cu = nullptr;
    int (*create)(void**, const char*, const char*, int, const char* const*, const char* const*);
    int (*compile)(void*, int, const char* const*);
    int (*logSize)(void*, size_t*);
    int (*getLog)(void*, char*);
    int (*cubinSize)(void*, size_t*);
    int (*getCubin)(void*, char*);
    CUresult (*load)(CUmodule*, const void*);
    CUresult (*getFn)(CUfunction*, CUmodule, const char*);
    CUresult (*setAttr)(CUfunction, CUfunction_attribute, int);
    CUresult (*occ)(int*, CUfunction, int, size_t);
    CUresult (*getAttr)(int*, CUfunction_attribute, CUfunction);
    CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void**, void**);
};

template <typename F>
static void sym(F& f, void* lib, const char* name) { f = (F)dlsym(lib, name); }

static const Nvrtc& nvrtc() {
    static Nvrtc n = [] {
        Nvrtc d;
        d.nv = dlopenAny({"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so"});
        d.cu = dlopenAny({"libcuda.so.1", "libcuda.so"});
        if (!d.nv || !d.cu) return d;
        sym(d.create, d.nv, "nvrtcCreateProgram");
        sym(d.compile, d.nv, "nvrtcCompileProgram");
        sym(d.logSize, d.nv, "nvrtcGetProgramLogSize");
        sym(d.getLog, d.nv, "nvrtcGetProgramLog");
        sym(d.cubinSize, d.nv, "nvrtcGetCUBINSize");
        sym(d.getCubin, d.nv, "nvrtcGetCUBIN");
        sym(d.load, d.cu, "cuModuleLoadData");
        sym(d.getFn, d.cu, "cuModuleGetFunction");
        sym(d.setAttr, d.cu, "cuFuncSetAttribute");
        sym(d.occ, d.cu, "cuOccupancyMaxActiveBlocksPerMultiprocessor");
        sym(d.getAttr, d.cu, "cuFuncGetAttribute");
        sym(d.launch, d.cu, "cuLaunchKernel");
        return d;
    }();
    return n;
}

/* registers and local memory (bytes) of a kernel of a loaded module */
static void fnAttrs(CUfunction f, int* regs, int* local) {
    nvrtc().getAttr(regs, CU_FUNC_ATTRIBUTE_NUM_REGS, f);
    nvrtc().getAttr(local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, f);
}

/* gemm_wgmma.cu compiled by NVRTC from the text KernelSource.cuda gives it (JD_CUDA, prelude.h, the family source) with
 * Gemm.Wgmma's options for tile width bn (2 warpgroups, 3 stages, drain, 2 blocks per SM, --gpu-architecture=sm_90a), as
 * CudaBackend does; ptxasVerbose adds --ptxas-options=-v. Returns NVRTC's rc (-1: nvrtcCreateProgram failed); log gets
 * the program log, cubin the binary when rc is 0. Needs nvrtc() loaded. */
static int nvrtcCompile(const std::string& kernelsDir, int bn, bool ptxasVerbose, std::string& log, std::vector<char>& cubin) {
    const Nvrtc& d = nvrtc();
    std::string src = "#define JD_CUDA 1\n" + readFile(kernelsDir + "/prelude.h") + "\n#line 1\n" + readFile(kernelsDir + "/gemm_wgmma.cu");
    std::vector<std::string> opts = {"--gpu-architecture=sm_90a", "--std=c++17", "-DGW_BN=" + std::to_string(bn), "-DGW_WG=2", "-DGW_STAGES=3", "-DGW_DRAIN=1",
                                     "-DGW_MINB=2", "-DJD_SMEM=" + std::to_string(smemOf(bn)), "-DJD_ARCH_SUFFIX=a"};
    if (ptxasVerbose) opts.push_back("--ptxas-options=-v");
    std::vector<const char*> o;
    for (auto& x : opts) o.push_back(x.c_str());
    void* prog = nullptr;
    if (d.create(&prog, src.c_str(), "gemm_wgmma.cu", 0, nullptr, nullptr) != 0) return -1;
    int rc = d.compile(prog, (int)o.size(), o.data());
    size_t n = 0;
    d.logSize(prog, &n);
    log.assign(n, '\0');
    d.getLog(prog, &log[0]);
    if (rc != 0) return rc;
    d.cubinSize(prog, &n);
    cubin.resize(n);
    d.getCubin(prog, cubin.data());
    return 0;
}
