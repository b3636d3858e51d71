// CPU check of kernels/attention.cu without a GPU: a warp emulator (one std::thread per CUDA thread, barriers for
// __syncthreads/__shfl_xor_sync, mma rebuilt from the PTX fragment layouts) runs flash_attn_f16_mma (default) or
// flash_attn_tf32_mma (-DEMU_TF32) against a double reference; with -DEMU_VANILLA, attn_scores_mma_* + a host softmax +
// attn_pv_mma_* instead (fp16, or tf32 with -DEMU_TF32), the query rows in slices of `chunk` (7th argument) as CHUNKED.
//   fp16: g++ -O1 -std=c++20 -pthread -DDP=48 -DBK=64 -DNW=4 -DVEC8=1 attention_mma_emulator.cpp -o /tmp/emu && /tmp/emu 1 2 77 77 40 0
//   tf32: g++ -O1 -std=c++20 -pthread -DEMU_TF32 -DTDP=40 -DTBK=64 -DTNW=4 -DTQREG=1 -DVEC4=1 attention_mma_emulator.cpp -o /tmp/emu && /tmp/emu 1 2 77 77 40 0
//   vanilla: g++ -O1 -std=c++20 -pthread -DEMU_VANILLA [-DEMU_TF32] attention_mma_emulator.cpp -o /tmp/emu && /tmp/emu 1 2 77 77 40 0 30
//   args: batch heads seqQ seqK headDim causal [chunk]; the defines as Attention.mmaConfig / tf32MmaConfig pick them.
//   Exit 0 when rel L2 < 1e-2 (fp16) or < 2e-3 (tf32).
//   3xTF32 (strict fp32): add -DFA_3XTF32 to the tf32 build: flash_attn_3xtf32_mma, exit 0 when rel L2 < 1e-5.
//   v2 (kernels/flash_mma.cu, flash_attn_f16_v2): g++ ... -DEMU_V2 -DDP=48 -DBK=64 -DRM=2 -DNW=4 attention_mma_emulator.cpp;
//   cp.async is a plain copy (zero-fill when invalid), ldmatrix.x4 (.trans) is rebuilt from the 32 lanes' row addresses;
//   add -DFM_TF32 for flash_attn_tf32_v2 (DP a multiple of 8).
// Emulated: m16n8k16 f16 (A a0..a3 = (g,2t..), (g+8,2t..), (g,2t+8..), (g+8,2t+8..); B (k 2t.., n g), (k 2t+8.., n g)) and
// m16n8k8 tf32 (A a0..a3 = (g,t), (g+8,t), (g,t+4), (g+8,t+4); B b0 = (k t, n g), b1 = (k t+4, n g)); C c0,c1 = (g, 2t..2t+1),
// c2,c3 = (g+8, 2t..2t+1); tf32 operands use only their top 19 bits, as the tensor cores do; cvt.rna.tf32.f32 rounds to
// nearest, ties away from zero.
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>
struct jd_dim3 { unsigned x, y, z; };
thread_local jd_dim3 threadIdx, blockIdx;
static jd_dim3 gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static
#define FA_EMULATED_MMA 1
#ifndef MMA_RZ
#define MMA_RZ 1   // tf32 mma: C + the products summed once and rounded toward zero (the measured tensor-core behaviour); 0: plain fp32
#endif
typedef unsigned short half_t;
static inline float jd_h2f(unsigned short h) { _Float16 f; __builtin_memcpy(&f, &h, 2); return (float)f; }
static inline unsigned short jd_f2h(float x) { _Float16 f = (_Float16)x; unsigned short h; __builtin_memcpy(&h, &f, 2); return h; }
#define INFINITY_F INFINITY
#ifndef NW
#define NW 4
#endif
#ifndef TNW
#define TNW 4
#endif
#if defined(EMU_V2)
#define EMU_NW NW
#define FA_NO_F16 1
#define FA_NO_TF32 1
#define FA_NO_VANILLA 1
#elif defined(EMU_VANILLA)
#define EMU_NW 4
#define FA_NO_F16 1
#define FA_NO_TF32 1
#elif defined(EMU_TF32)
#define EMU_NW TNW
#define FA_NO_F16 1
#define FA_NO_VANILLA 1
#else
#define EMU_NW NW
#define FA_NO_TF32 1
#define FA_NO_VANILLA 1
#endif
static std::barrier<>* blockBar;
static std::barrier<>* warpBar[EMU_NW];
static float slotF[EMU_NW][32];
static unsigned slotA[EMU_NW][32][4], slotB[EMU_NW][32][2];
static inline void __syncthreads() { blockBar->arrive_and_wait(); }
static inline float __shfl_xor_sync(unsigned, float v, int m) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    slotF[w][l] = v; warpBar[w]->arrive_and_wait();
    float r = slotF[w][l ^ m]; warpBar[w]->arrive_and_wait();
    return r;
}
/* every lane posts its fragments; after the barrier each lane rebuilds the whole A and B of its warp */
static inline void post(const unsigned* a, unsigned b0, unsigned b1) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    for (int i = 0; i < 4; i++) slotA[w][l][i] = a[i];
    slotB[w][l][0] = b0; slotB[w][l][1] = b1;
    warpBar[w]->arrive_and_wait();
}
static inline void fa_mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    post(a, b0, b1);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    float A[16][16], B[16][8];
    for (int L = 0; L < 32; L++) {
        int g = L >> 2, t = L & 3;
        auto lo = [](unsigned r) { return jd_h2f(r & 0xffff); };
        auto hi = [](unsigned r) { return jd_h2f(r >> 16); };
        unsigned* ra = slotA[w][L];
        A[g][2*t] = lo(ra[0]); A[g][2*t+1] = hi(ra[0]);
        A[g+8][2*t] = lo(ra[1]); A[g+8][2*t+1] = hi(ra[1]);
        A[g][2*t+8] = lo(ra[2]); A[g][2*t+9] = hi(ra[2]);
        A[g+8][2*t+8] = lo(ra[3]); A[g+8][2*t+9] = hi(ra[3]);
        B[2*t][g] = lo(slotB[w][L][0]); B[2*t+1][g] = hi(slotB[w][L][0]);
        B[2*t+8][g] = lo(slotB[w][L][1]); B[2*t+9][g] = hi(slotB[w][L][1]);
    }
    warpBar[w]->arrive_and_wait();
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        float s = 0; for (int k = 0; k < 16; k++) s += A[row][k] * B[k][col];
        c[i] += s;
    }
}
static inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
static inline float tf32val(unsigned bits) { bits &= 0xffffe000u; float f; std::memcpy(&f, &bits, 4); return f; }
static inline unsigned fa_tf32(float x) {   // cvt.rna.tf32.f32
    unsigned u; std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return u;
}
static inline void fa_mma_tf32(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    post(a, b0, b1);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    float A[16][8], B[8][8];
    for (int L = 0; L < 32; L++) {
        int g = L >> 2, t = L & 3;
        unsigned* ra = slotA[w][L];
        A[g][t] = tf32val(ra[0]); A[g+8][t] = tf32val(ra[1]); A[g][t+4] = tf32val(ra[2]); A[g+8][t+4] = tf32val(ra[3]);
        B[t][g] = tf32val(slotB[w][L][0]); B[t+4][g] = tf32val(slotB[w][L][1]);
    }
    warpBar[w]->arrive_and_wait();
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
#if MMA_RZ
        double s = c[i]; for (int k = 0; k < 8; k++) s += (double)A[row][k] * B[k][col];   // exact products, one rounding
        float r = (float)s;
        if (std::fabs((double)r) > std::fabs(s)) r = std::nextafter(r, 0.0f);               // toward zero, as the tensor cores
        c[i] = r;
#else
        float s = 0; for (int k = 0; k < 8; k++) s += A[row][k] * B[k][col];
        c[i] += s;
#endif
    }
}
#include "../../main/resources/kernels/attention.cu"

#ifdef EMU_V2
#define FM_EMULATED 1
static inline int min(int a, int b) { return a < b ? a : b; }
static const half_t* slotP[EMU_NW][32];
static inline void fm_cp16(half_t* dst, const half_t* src, bool valid) {
    if (((uintptr_t)dst & 15) != 0 || (valid && ((uintptr_t)src & 15) != 0)) { fprintf(stderr, "cp.async address not 16-byte aligned\n"); abort(); }
    if (valid) std::memcpy(dst, src, 16); else std::memset(dst, 0, 16);
}
static inline void fm_cp16f(float* dst, const float* src, bool valid) {
    if (((uintptr_t)dst & 15) != 0 || (valid && ((uintptr_t)src & 15) != 0)) { fprintf(stderr, "cp.async address not 16-byte aligned\n"); abort(); }
    if (valid) std::memcpy(dst, src, 16); else std::memset(dst, 0, 16);
}
static inline unsigned fm_tf32(float x) { return fa_tf32(x); }
static inline void fm_mma_tf32(float* c, const unsigned* a, unsigned b0, unsigned b1) { fa_mma_tf32(c, a, b0, b1); }
static inline void fm_commit() {}
template <int N> static inline void fm_wait() {}
/* ldmatrix.x4: lane 8j+i posts row i of matrix j; register j of lane l = halves 2(l%4), 2(l%4)+1 of row l/4 (trans: rows 2(l%4), 2(l%4)+1 of column l/4) */
static inline void fm_ldsm(unsigned* r, const half_t* p, bool trans) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    if (((uintptr_t)p & 15) != 0) { fprintf(stderr, "ldmatrix row address not 16-byte aligned\n"); abort(); }
    slotP[w][l] = p;
    warpBar[w]->arrive_and_wait();
    for (int j = 0; j < 4; j++) {
        unsigned lo, hi;
        if (!trans) { const half_t* row = slotP[w][8 * j + (l >> 2)]; lo = row[2 * (l & 3)]; hi = row[2 * (l & 3) + 1]; }
        else { lo = slotP[w][8 * j + 2 * (l & 3)][l >> 2]; hi = slotP[w][8 * j + 2 * (l & 3) + 1][l >> 2]; }
        r[j] = lo | (hi << 16);
    }
    warpBar[w]->arrive_and_wait();
}
static inline void fm_ldsm4(unsigned* r, const half_t* p) { fm_ldsm(r, p, false); }
static inline void fm_ldsm4t(unsigned* r, const half_t* p) { fm_ldsm(r, p, true); }
static inline void fm_mma(float* c, const unsigned* a, unsigned b0, unsigned b1) { fa_mma(c, a, b0, b1); }
static inline float fm_ex2(float x) { return std::exp2(x); }
static inline unsigned fm_pack(float lo, float hi) { return (unsigned)jd_f2h(lo) | ((unsigned)jd_f2h(hi) << 16); }
#include "../../main/resources/kernels/flash_mma.cu"
#endif

#if defined(EMU_TF32) || defined(FM_TF32)
typedef float elem_t;
static inline float val(float x) { return x; }
static inline float make(float x) { return x; }
#if defined(FM_TF32)
static const double TOL = 2e-3;
#define EMU_KERNEL flash_attn_tf32_v2
#elif defined(FA_3XTF32)
static const double TOL = 1e-5;
#define EMU_KERNEL flash_attn_3xtf32_mma
#else
static const double TOL = 2e-3;
#define EMU_KERNEL flash_attn_tf32_mma
#endif
#define EMU_SCORES attn_scores_mma_tf32
#define EMU_PV attn_pv_mma_tf32
#ifdef FA_3XTF32
#define EMU_NAME "3xtf32"
#else
#define EMU_NAME "tf32"
#endif
#else
typedef half_t elem_t;
static inline float val(half_t x) { return jd_h2f(x); }
static inline half_t make(float x) { return jd_f2h(x); }
static const double TOL = 1e-2;
#ifdef EMU_V2
#define EMU_KERNEL flash_attn_f16_v2
#else
#define EMU_KERNEL flash_attn_f16_mma
#endif
#define EMU_SCORES attn_scores_mma_f16
#define EMU_PV attn_pv_mma_f16
#define EMU_NAME "f16"
#endif

int main(int argc, char** argv) {
    if (argc < 7) { fprintf(stderr, "usage: emu batch heads seqQ seqK headDim causal\n"); return 2; }
    int B = atoi(argv[1]), H = atoi(argv[2]), SQ = atoi(argv[3]), SK = atoi(argv[4]), D = atoi(argv[5]), causal = atoi(argv[6]);
    long hd = (long)H * D;
    std::mt19937 rng(42); std::uniform_real_distribution<float> u(-2, 2);
    std::vector<elem_t> q(B * SQ * hd), k(B * SK * hd), v(B * SK * hd), o(B * SQ * hd, make(12345.0f));
    for (auto& x : q) x = make(u(rng)); for (auto& x : k) x = make(u(rng)); for (auto& x : v) x = make(u(rng) * 0.5f);
    float scale = 1.0f / std::sqrt((float)D);
    /* runs body(t) on 32*EMU_NW threads per block over the grid gx x gy x gz */
    auto launch = [&](int gx, int gy, int gz, auto body) {
        gridDim = {(unsigned)gx, (unsigned)gy, (unsigned)gz};
        for (int bz = 0; bz < gz; bz++) for (int by = 0; by < gy; by++) for (int bx = 0; bx < gx; bx++) {
            std::barrier<> bb(32 * EMU_NW); blockBar = &bb;
            for (int w = 0; w < EMU_NW; w++) warpBar[w] = new std::barrier<>(32);
            std::vector<std::thread> th;
            for (int t = 0; t < 32 * EMU_NW; t++) th.emplace_back([&, t] { threadIdx = {(unsigned)t, 0, 0}; blockIdx = {(unsigned)bx, (unsigned)by, (unsigned)bz}; body(); });
            for (auto& x : th) x.join();
            for (int w = 0; w < EMU_NW; w++) delete warpBar[w];
        }
    };
#ifdef EMU_VANILLA
    int chunk = argc > 7 ? atoi(argv[7]) : SQ, bhCount = B * H;
    std::vector<elem_t> s((size_t)bhCount * chunk * SK, make(777.0f));
    for (int q0 = 0; q0 < SQ; q0 += chunk) {
        int rows = std::min(chunk, SQ - q0), gz = std::min(bhCount, 2);   /* 2: the blockIdx.z stride loop runs */
        launch((SK + 63) / 64, (rows + 63) / 64, gz, [&] { EMU_SCORES(q.data(), k.data(), s.data(), bhCount, H, SQ, SK, D, scale, q0, rows); });
        for (int bh = 0; bh < bhCount; bh++) for (int r = 0; r < rows; r++) {   /* host softmax, as attn_softmax */
            elem_t* row = &s[((size_t)bh * rows + r) * SK];
            int valid = causal ? std::min(SK, q0 + r + 1) : SK;
            double m = -1e300, sum = 0;
            for (int j = 0; j < valid; j++) m = std::max(m, (double)val(row[j]));
            for (int j = 0; j < valid; j++) sum += std::exp(val(row[j]) - m);
            for (int j = 0; j < SK; j++) row[j] = make(j < valid ? (float)(std::exp(val(row[j]) - m) / sum) : 0.0f);
        }
        launch((D + 63) / 64, (rows + 63) / 64, gz, [&] { EMU_PV(s.data(), v.data(), o.data(), bhCount, H, SQ, SK, D, q0, rows); });
    }
#else
#ifdef EMU_V2
    int rowsPerBlock = 16 * RM * EMU_NW;
#else
    int rowsPerBlock = 16 * EMU_NW;
#endif
    launch(B * H, (SQ + rowsPerBlock - 1) / rowsPerBlock, 1, [&] { EMU_KERNEL(q.data(), k.data(), v.data(), o.data(), B * H, H, SQ, SK, D, scale, causal); });
#endif
    double num = 0, den = 0;
    for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int i = 0; i < SQ; i++) {
        int valid = causal ? std::min(SK, i + 1) : SK;
        std::vector<double> p(valid); double m = -1e300, sum = 0;
        for (int j = 0; j < valid; j++) { double d = 0; for (int e = 0; e < D; e++) d += (double)val(q[(b*SQ+i)*hd + h*D + e]) * val(k[(b*SK+j)*hd + h*D + e]); p[j] = d * scale; m = std::max(m, p[j]); }
        for (int j = 0; j < valid; j++) sum += p[j] = std::exp(p[j] - m);
        for (int e = 0; e < D; e++) { double acc = 0; for (int j = 0; j < valid; j++) acc += p[j] * val(v[(b*SK+j)*hd + h*D + e]); acc /= sum;
            double got = val(o[(b*SQ+i)*hd + h*D + e]); num += (got - acc) * (got - acc); den += acc * acc; }
    }
    double rel = std::sqrt(num / den);
    bool ok = rel < TOL;   // NaN fails too
#ifdef EMU_VANILLA
    printf("vanilla ");
#endif
    printf("%s B%d H%d SQ%d SK%d D%d causal%d: rel L2 %.3e %s\n", EMU_NAME, B, H, SQ, SK, D, causal, rel, ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}
