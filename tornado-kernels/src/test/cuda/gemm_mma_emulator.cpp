// CPU check of kernels/gemm_mma.cu without a GPU: one std::thread per CUDA thread (256 per block), block and warp
// barriers, and the PTX the kernels use rebuilt from the ISA: mma.m16n8k16 (f16) and m16n8k8 (tf32) fragment layouts,
// ldmatrix.x4 (lane 8*j+i gives row i of matrix j; lane l gets word l&3 of row l>>2 of each matrix), cp.async with
// src-size zero fill and commit/wait groups (CP_EAGER=1: copy at issue; 0: copy only at the wait that retires the
// group, so a stage read before its wait sees poison). Shared memory, the split-K workspace and the output start as
// NaN, so any word read before it is written shows up. Build with -fsanitize=address to catch global overreads.
//   g++ -O1 -std=c++20 -pthread -fsanitize=address -DCP_EAGER=0 gemm_mma_emulator.cpp -o /tmp/gemu
//   /tmp/gemu gemm HALF batch M N K transB splits [res [outHw]]      /tmp/gemu conv HALF n cIn h w cOut ks stride pad splits [res]
//   /tmp/gemu conv3 ...same as conv...: kernels/conv_mma.cu (conv_taps_* then conv2d_v3_*; needs cIn % k tile == 0)
//   /tmp/gemu geglu HALF batch M N K transB splits: gemm_mma_geglu_* (+ gemm_splitk_geglu_*), N = 2*inner, inner % 8 == 0;
//     B's columns (the weight rows) permuted as Gemm.gegluInterleave does; c [batch][M][inner] = value * gelu(gate)
// res (epilogue residual, c = (alpha*AB + bias + res) * beta with beta 0.5): 0 none, 1 its own buffer, 2 res is c itself
// (c holds the residual before the launch: each element must be read before it is written).
// outHw > 0 (gemm, batch 1, M % outHw == 0): rows are tokens, c and res channels-first [M/outHw][N][outHw].
// splits as the host asks (Gemm.splitPlan rounds kPer to whole k tiles the same way). Exit 0 when within tolerance.
// -DJD_3XTF32 builds the strict-fp32 module: HALF=0 runs gemm_mma_3xtf32 / conv2d_mma_3xtf32 (big + small split of raw
// fp32 fragments, 3 tf32 mmas) and must match the double reference to fp32 accuracy (rel L2 <= 1e-5); first a self-check
// of the split: big and small are tf32 words (low 13 bits 0) and big + small recovers x to ~2^-22 relative.
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <functional>
#include <vector>
struct jd_dim3 { unsigned x, y, z; };
thread_local jd_dim3 threadIdx, blockIdx;
static jd_dim3 blockDim = {256, 1, 1};
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define KERNEL
typedef unsigned short half_t;
struct uint4 { unsigned x, y, z, w; };
static inline float jd_h2f(unsigned short h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }
static inline unsigned short jd_f2h(float x) { _Float16 f = (_Float16)x; unsigned short h; memcpy(&h, &f, 2); return h; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
typedef unsigned int gm_u32;

#define GM_EMULATED 1
#ifndef MMA_RZ
#define MMA_RZ 1   // mma sums C + the products once and rounds toward zero (the measured tensor-core behaviour); 0: plain fp32
#endif
#ifndef CP_EAGER
#define CP_EAGER 0
#endif
static gm_u32 emuSmem[3 * 2 * 128 * 16 + 1024];
#define GM_SMEM(name) gm_u32* name = emuSmem
static std::barrier<>* blockBar;
static std::barrier<>* warpBar[8];
static inline void __syncthreads() { blockBar->arrive_and_wait(); }

struct Copy { gm_u32* dst; const void* src; bool valid; };
thread_local std::vector<Copy> cpOpen;
thread_local std::vector<std::vector<Copy>> cpGroups;
static const char* gBase; static size_t gBytes; // the operand buffers cp.async may read: checked below
static const char* gBase2; static size_t gBytes2;
static void doCopy(const Copy& c) {
    if (!c.valid) { memset(c.dst, 0, 16); return; }
    const char* s = (const char*)c.src;
    bool in1 = s >= gBase && s + 16 <= gBase + gBytes, in2 = s >= gBase2 && s + 16 <= gBase2 + gBytes2;
    if (!in1 && !in2) { fprintf(stderr, "cp.async reads outside the operands\n"); abort(); }
    if (((uintptr_t)s & 15) != 0 || ((uintptr_t)c.dst & 15) != 0) { fprintf(stderr, "cp.async misaligned\n"); abort(); }
    memcpy(c.dst, s, 16);
}
static inline void gm_cp_async16(gm_u32* dst, const void* src, bool valid) {
    Copy c{dst, src, valid};
    if (CP_EAGER) doCopy(c); else cpOpen.push_back(c);
}
static inline void gm_cp_commit() { cpGroups.push_back(cpOpen); cpOpen.clear(); }
template <int N> static inline void gm_cp_wait() {
    while ((int)cpGroups.size() > N) { for (auto& c : cpGroups.front()) doCopy(c); cpGroups.erase(cpGroups.begin()); }
}
static const gm_u32* ldAddr[8][32];
static inline void gm_ldmatrix_x4(gm_u32* r, const gm_u32* p) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    if (((uintptr_t)p & 15) != 0) { fprintf(stderr, "ldmatrix row address not 16-byte aligned\n"); abort(); }
    ldAddr[w][l] = p;
    warpBar[w]->arrive_and_wait();
    for (int j = 0; j < 4; j++) r[j] = ldAddr[w][8 * j + (l >> 2)][l & 3];
    warpBar[w]->arrive_and_wait();
}
static gm_u32 slotA[8][32][4], slotB[8][32][2];
static float tf(gm_u32 bits) { return __uint_as_float(bits & 0xffffe000u); } // tensor cores read the tf32 bits only
static inline void emuMma(float* d, const gm_u32* a, const gm_u32* b, bool half) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    for (int i = 0; i < 4; i++) slotA[w][l][i] = a[i];
    slotB[w][l][0] = b[0]; slotB[w][l][1] = b[1];
    warpBar[w]->arrive_and_wait();
    float A[16][16], B[16][8];
    int kk = half ? 16 : 8;
    for (int L = 0; L < 32; L++) {
        int g = L >> 2, t = L & 3;
        gm_u32* ra = slotA[w][L];
        gm_u32* rb = slotB[w][L];
        if (half) {
            auto lo = [](gm_u32 r) { return jd_h2f(r & 0xffff); };
            auto hi = [](gm_u32 r) { return jd_h2f(r >> 16); };
            A[g][2*t] = lo(ra[0]); A[g][2*t+1] = hi(ra[0]);
            A[g+8][2*t] = lo(ra[1]); A[g+8][2*t+1] = hi(ra[1]);
            A[g][2*t+8] = lo(ra[2]); A[g][2*t+9] = hi(ra[2]);
            A[g+8][2*t+8] = lo(ra[3]); A[g+8][2*t+9] = hi(ra[3]);
            B[2*t][g] = lo(rb[0]); B[2*t+1][g] = hi(rb[0]);
            B[2*t+8][g] = lo(rb[1]); B[2*t+9][g] = hi(rb[1]);
        } else {
            A[g][t] = tf(ra[0]); A[g+8][t] = tf(ra[1]); A[g][t+4] = tf(ra[2]); A[g+8][t+4] = tf(ra[3]);
            B[t][g] = tf(rb[0]); B[t+4][g] = tf(rb[1]);
        }
    }
    warpBar[w]->arrive_and_wait();
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
#if MMA_RZ
        double s = d[i]; for (int k = 0; k < kk; k++) s += (double)A[row][k] * B[k][col];   // exact products, one rounding
        float r = (float)s;
        if (std::fabs((double)r) > std::fabs(s)) r = std::nextafter(r, 0.0f);               // toward zero, as the tensor cores
        d[i] = r;
#else
        float s = 0; for (int k = 0; k < kk; k++) s += A[row][k] * B[k][col];
        d[i] += s;
#endif
    }
}
static inline void gm_mma_f16(float* d, const gm_u32* a, const gm_u32* b) { emuMma(d, a, b, true); }
static inline void gm_mma_tf32(float* d, const gm_u32* a, const gm_u32* b) { emuMma(d, a, b, false); }
static inline gm_u32 gm_rna(gm_u32 bits) { // cvt.rna.tf32.f32: round to nearest, ties away, 10 mantissa bits
    if ((bits & 0x7f800000u) == 0x7f800000u) return bits;
    return (bits + 0x1000u) & 0xffffe000u;   // sign-magnitude: adding half an ulp of tf32 rounds |x| half-up = ties away
}
#include "../../main/resources/kernels/gemm_mma.cu"
// kernels/conv_mma.cu (conv v3) on the same emulated PTX
#define CV_SMEM(name) gm_u32* name = emuSmem
static inline void cv_cp_async16(gm_u32* dst, const void* src, bool valid) { gm_cp_async16(dst, src, valid); }
static inline void cv_cp_commit() { gm_cp_commit(); }
template <int N> static inline void cv_cp_wait() { gm_cp_wait<N>(); }
static inline void cv_ldmatrix_x4(gm_u32* r, const gm_u32* p) { gm_ldmatrix_x4(r, p); }
static inline void cv_mma_f16(float* d, const gm_u32* a, const gm_u32* b) { gm_mma_f16(d, a, b); }
static inline void cv_mma_tf32(float* d, const gm_u32* a, const gm_u32* b) { gm_mma_tf32(d, a, b); }
static inline gm_u32 cv_tf32(gm_u32 bits) { return gm_rna(bits); }   // cvt.rna (gm_tf32 is the identity under JD_3XTF32)
#include "../../main/resources/kernels/conv_mma.cu"

static void runBlocks(unsigned gx, unsigned gy, unsigned gz, const std::function<void()>& body) {
    for (unsigned bz = 0; bz < gz; bz++) for (unsigned by = 0; by < gy; by++) for (unsigned bx = 0; bx < gx; bx++) {
        for (auto& wd : emuSmem) wd = 0x7fc07fc0u; // NaN as f32 and as both f16 halves
        std::barrier<> bb(256); blockBar = &bb;
        for (int w = 0; w < 8; w++) warpBar[w] = new std::barrier<>(32);
        std::vector<std::thread> th;
        for (unsigned t = 0; t < 256; t++) th.emplace_back([&, t] { threadIdx = {t, 0, 0}; blockIdx = {bx, by, bz};
            cpOpen.clear(); cpGroups.clear(); body();
            if (!cpOpen.empty() || !cpGroups.empty()) { fprintf(stderr, "cp.async left pending at exit\n"); abort(); } });
        for (auto& x : th) x.join();
        for (int w = 0; w < 8; w++) delete warpBar[w];
    }
}

static void runReduce(long total, const std::function<void()>& body) {
    for (long b = 0; b < (total + 255) / 256; b++) for (unsigned t = 0; t < 256; t++) { blockIdx = {(unsigned)b, 0, 0}; threadIdx = {t, 0, 0}; body(); }
}

/* The host's split plan (Gemm.splitPlan): k tiles per split rounded up, splits recounted so none is empty. */
static void plan(int K, int KT, int& splits, int& kPer) {
    int ktiles = (K + KT - 1) / KT;
    if (splits < 1) splits = 1;
    int per = (ktiles + splits - 1) / splits;
    splits = (ktiles + per - 1) / per;
    kPer = per * KT;
}

int main(int argc, char** argv) {
    if (argc < 2) { fprintf(stderr, "usage: see the header\n"); return 2; }
    bool v3 = !strcmp(argv[1], "conv3"), conv = v3 || !strcmp(argv[1], "conv"), geglu = !strcmp(argv[1], "geglu");
    int half = atoi(argv[2]);
    std::mt19937 rng(42); std::uniform_real_distribution<float> u(-1, 1);
    auto q = [&](float v) { return half ? jd_h2f(jd_f2h(v)) : v; };
    int batch, M, N, K, transB = 1, splits, kPer, resMode = 0, outHw = 0;
    int n = 0, cIn = 0, h = 0, w = 0, cOut = 0, ks = 0, st = 0, pad = 0, hOut = 0, wOut = 0;
    if (!conv) {
        batch = atoi(argv[3]); M = atoi(argv[4]); N = atoi(argv[5]); K = atoi(argv[6]); transB = atoi(argv[7]); splits = atoi(argv[8]);
        if (argc > 9) resMode = atoi(argv[9]);
        if (argc > 10) outHw = atoi(argv[10]);
    } else {
        n = atoi(argv[3]); cIn = atoi(argv[4]); h = atoi(argv[5]); w = atoi(argv[6]); cOut = atoi(argv[7]); ks = atoi(argv[8]); st = atoi(argv[9]); pad = atoi(argv[10]);
        splits = atoi(argv[11]);
        if (argc > 12) resMode = atoi(argv[12]);
        hOut = (h + 2 * pad - ks) / st + 1; wOut = (w + 2 * pad - ks) / st + 1;
        batch = 1; M = cOut; N = n * hOut * wOut; K = cIn * ks * ks;
    }
    if (geglu && (N % 16 != 0 || resMode != 0)) { fprintf(stderr, "geglu needs N = 2*inner with inner %% 8 == 0 and no residual\n"); return 2; }
    if (outHw > 0 && (batch != 1 || M % outHw != 0 || geglu)) { fprintf(stderr, "outHw needs gemm, batch 1 and M %% outHw == 0\n"); return 2; }
    const int inner = N / 2;
    const float beta = 0.5f;
    plan(K, half ? 32 : 16, splits, kPer);
#ifdef JD_3XTF32
    {   // the split the kernel uses, on values with every low bit pattern: exact tf32 words, |x - big - small| <= 2^-22 |x|
        std::mt19937 r2(7);
        for (int i = 0; i < 1000000; i++) {
            gm_u32 x = (r2() & 0x3fffffffu) | 0x3c000000u, big, small;   // normal floats in [2^-7, 2)
            if (i & 1) x |= 0x80000000u;
            gm_split3(x, big, small);
            double xv = __uint_as_float(x), e = xv - (double)__uint_as_float(big) - (double)__uint_as_float(small);
            if ((big & 0x1fffu) || (small & 0x1fffu) || std::fabs(e) > std::ldexp(std::fabs(xv), -22)) {
                fprintf(stderr, "3xTF32 split of %08x: big %08x small %08x error %.3e\n", x, big, small, e); return 1;
            }
        }
    }
#endif
    long aLen = conv ? (long)cOut * K : (long)batch * M * K, bLen = conv ? (long)n * cIn * h * w : (long)batch * N * K, cLen = (long)batch * M * N;
    long outLen = geglu ? cLen / 2 : cLen;
    std::vector<float> af(aLen), bf(bLen), biasf(conv ? M : N), resf(resMode ? cLen : 0);
    for (auto& x : af) x = q(u(rng)); for (auto& x : bf) x = q(u(rng)); for (auto& x : biasf) x = q(u(rng)); for (auto& x : resf) x = q(2 * u(rng));
    float alpha = conv ? 1.0f : 0.75f;
    // reference in double
    std::vector<double> ref(cLen);
    if (!conv) {
        for (int z = 0; z < batch; z++) for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)af[((long)z * M + i) * K + k] * (transB ? bf[((long)z * N + j) * K + k] : bf[((long)z * K + k) * N + j]);
            ref[((long)z * M + i) * N + j] = alpha * s + biasf[j];
        }
        if (geglu) {   // permuted columns: value j at (j/8)*16 + j%8, its gate 8 further; exact GELU in double
            std::vector<double> g(outLen);
            for (long r = 0; r < (long)batch * M; r++) for (int j = 0; j < inner; j++) {
                int cv = (j / 8) * 16 + j % 8;
                double v = ref[r * N + cv], gate = ref[r * N + cv + 8];
                g[r * inner + j] = v * 0.5 * gate * (1.0 + std::erf(gate / std::sqrt(2.0)));
            }
            ref = g;
        }
    } else {
        for (int b = 0; b < n; b++) for (int co = 0; co < cOut; co++) for (int oy = 0; oy < hOut; oy++) for (int ox = 0; ox < wOut; ox++) {
            double s = biasf[co];
            for (int ci = 0; ci < cIn; ci++) for (int ky = 0; ky < ks; ky++) for (int kx = 0; kx < ks; kx++) {
                int iy = oy * st - pad + ky, ix = ox * st - pad + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                s += (double)bf[(((long)b * cIn + ci) * h + iy) * w + ix] * af[(((long)co * cIn + ci) * ks + ky) * ks + kx];
            }
            ref[(((long)b * cOut + co) * hOut + oy) * wOut + ox] = s;
        }
    }
    if (outHw > 0) {   // channels-first c: element (row, col) at ((row / outHw) * N + col) * outHw + row % outHw
        std::vector<double> t(cLen);
        for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) t[((long)(i / outHw) * N + j) * outHw + i % outHw] = ref[(long)i * N + j];
        ref = t;
    }
    if (resMode) for (long i = 0; i < cLen; i++) ref[i] = (ref[i] + resf[i]) * beta;   // res in c's layout (NCHW for convs and outHw)
    std::vector<float> ws(splits > 1 ? (long)splits * cLen : 1, NAN);
    std::vector<float> got(outLen);
    unsigned gx = (N + 127) / 128, gy = (M + 127) / 128, gz = batch * splits;
    int hasRes = resMode ? 1 : 0;
    if (half) {
        std::vector<half_t> a(aLen), b(bLen), bias(biasf.size()), c(outLen, 0x7e00), resh(resf.size());
        for (long i = 0; i < aLen; i++) a[i] = jd_f2h(af[i]); for (long i = 0; i < bLen; i++) b[i] = jd_f2h(bf[i]);
        for (size_t i = 0; i < bias.size(); i++) bias[i] = jd_f2h(biasf[i]);
        for (size_t i = 0; i < resh.size(); i++) resh[i] = jd_f2h(resf[i]);
        if (resMode == 2) c = resh;
        const half_t* res = resMode == 1 ? resh.data() : c.data();
        gBase = (const char*)a.data(); gBytes = aLen * 2; gBase2 = (const char*)b.data(); gBytes2 = bLen * 2;
        if (geglu) runBlocks(gx, gy, gz, [&] { gemm_mma_geglu_f16(a.data(), b.data(), bias.data(), c.data(), batch, M, N, K, transB, 1, alpha, ws.data(), splits, kPer); });
        else if (!conv) runBlocks(gx, gy, gz, [&] { gemm_mma_f16(a.data(), b.data(), bias.data(), c.data(), batch, M, N, K, transB, 1, alpha, ws.data(), splits, kPer, res, hasRes, beta, outHw); });
        else if (!v3) runBlocks(gx, gy, gz, [&] { conv2d_mma_f16(b.data(), a.data(), bias.data(), c.data(), n, cIn, h, w, cOut, ks, st, pad, hOut, wOut, 1, ws.data(), splits, kPer, res, hasRes, beta); });
        else {
            std::vector<half_t> wt(aLen, 0x7e00);
            runReduce(aLen, [&] { conv_taps_f16(a.data(), wt.data(), cOut, cIn, ks * ks); });
            gBase = (const char*)wt.data();
            runBlocks(gx, gy, gz, [&] { conv2d_v3_f16(b.data(), wt.data(), bias.data(), c.data(), n, cIn, h, w, cOut, ks, st, pad, hOut, wOut, 1, ws.data(), splits, kPer, res, hasRes, beta); });
        }
        if (splits > 1 && geglu) runReduce(outLen, [&] { gemm_splitk_geglu_f16(ws.data(), bias.data(), c.data(), batch, M, N, splits, 1, alpha); });
        else if (splits > 1) runReduce(cLen, [&] { gemm_splitk_reduce_f16(ws.data(), bias.data(), c.data(), batch, M, N, splits, 1, alpha, conv ? hOut * wOut : 0, res, hasRes, beta, outHw); });
        for (long i = 0; i < outLen; i++) got[i] = jd_h2f(c[i]);
    } else {
        std::vector<float> c(outLen, NAN);
        if (resMode == 2) c = resf;
        const float* res = resMode == 1 ? resf.data() : c.data();
        gBase = (const char*)af.data(); gBytes = aLen * 4; gBase2 = (const char*)bf.data(); gBytes2 = bLen * 4;
#ifdef JD_3XTF32
#define GEMM_F32 gemm_mma_3xtf32
#define GEGLU_F32 gemm_mma_geglu_3xtf32
#define CONV_F32 conv2d_mma_3xtf32
#else
#define GEMM_F32 gemm_mma_tf32
#define GEGLU_F32 gemm_mma_geglu_tf32
#define CONV_F32 conv2d_mma_tf32
#endif
        if (geglu) runBlocks(gx, gy, gz, [&] { GEGLU_F32(af.data(), bf.data(), biasf.data(), c.data(), batch, M, N, K, transB, 1, alpha, ws.data(), splits, kPer); });
        else if (!conv) runBlocks(gx, gy, gz, [&] { GEMM_F32(af.data(), bf.data(), biasf.data(), c.data(), batch, M, N, K, transB, 1, alpha, ws.data(), splits, kPer, res, hasRes, beta, outHw); });
        else if (!v3) runBlocks(gx, gy, gz, [&] { CONV_F32(bf.data(), af.data(), biasf.data(), c.data(), n, cIn, h, w, cOut, ks, st, pad, hOut, wOut, 1, ws.data(), splits, kPer, res, hasRes, beta); });
        else {  // conv v3 (kernels/conv_mma.cu) is tf32 only
            std::vector<float> wt(aLen, NAN);
            runReduce(aLen, [&] { conv_taps_f32(af.data(), wt.data(), cOut, cIn, ks * ks); });
            gBase = (const char*)wt.data();
            runBlocks(gx, gy, gz, [&] { conv2d_v3_tf32(bf.data(), wt.data(), biasf.data(), c.data(), n, cIn, h, w, cOut, ks, st, pad, hOut, wOut, 1, ws.data(), splits, kPer, res, hasRes, beta); });
        }
        if (splits > 1 && geglu) runReduce(outLen, [&] { gemm_splitk_geglu_f32(ws.data(), biasf.data(), c.data(), batch, M, N, splits, 1, alpha); });
        else if (splits > 1) runReduce(cLen, [&] { gemm_splitk_reduce_f32(ws.data(), biasf.data(), c.data(), batch, M, N, splits, 1, alpha, conv ? hOut * wOut : 0, res, hasRes, beta, outHw); });
        got = c;
    }
    double num = 0, den = 0, maxErr = 0, maxRef = 0;
    long bad = 0;
    for (long i = 0; i < outLen; i++) {
        if (!std::isfinite(got[i])) { bad++; continue; }
        double d = got[i] - ref[i];
        num += d * d; den += ref[i] * ref[i];
        maxErr = std::fmax(maxErr, std::fabs(d)); maxRef = std::fmax(maxRef, std::fabs(ref[i]));
    }
#ifdef JD_3XTF32
    double tol = half ? 1e-2 : 1e-5;
#else
    double tol = half ? 1e-2 : 2e-3;
#endif
    double rel = std::sqrt(num / den), relMax = maxErr / maxRef;
    bool ok = bad == 0 && rel <= tol && relMax <= 4 * tol;
    printf("%s %s%s M%d N%d K%d batch%d transB%d splits%d kPer%d res%d outHw%d eager%d: rel L2 %.3e, max %.3e, non-finite %ld %s\n",
           v3 ? "conv3" : conv ? "conv" : geglu ? "geglu" : "gemm", half ? "f16" : "tf32",
#ifdef JD_3XTF32
           half ? "" : " (3xTF32)",
#else
           "",
#endif
           M, N, K, batch, transB, splits, kPer, resMode, outHw, CP_EAGER, rel, relMax, bad, ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}
