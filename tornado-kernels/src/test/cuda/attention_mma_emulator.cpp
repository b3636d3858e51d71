// CPU check of kernels/attention.cu (flash_attn_f16_mma) without a GPU: a warp emulator (one std::thread per CUDA thread,
// barriers for __syncthreads/__shfl_xor_sync, mma.m16n8k16 rebuilt from the PTX fragment layout) against a double reference.
//   g++ -O1 -std=c++20 -pthread -DDP=48 -DBK=64 -DNW=4 -DVEC8=1 attention_mma_emulator.cpp -o /tmp/emu && /tmp/emu 1 2 77 77 40 0
//   args: batch heads seqQ seqK headDim causal; DP/BK/NW/VEC8 as Attention.mmaConfig picks them. Exit 0 when rel L2 < 1e-2.
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>
struct jd_dim3 { unsigned x, y, z; };
thread_local jd_dim3 threadIdx, blockIdx;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static
#define FA_EMULATED_MMA 1
typedef unsigned short half_t;
static inline float jd_h2f(unsigned short h) { _Float16 f; __builtin_memcpy(&f, &h, 2); return (float)f; }
static inline unsigned short jd_f2h(float x) { _Float16 f = (_Float16)x; unsigned short h; __builtin_memcpy(&h, &f, 2); return h; }
#define INFINITY_F INFINITY
#ifndef NW
#define NW 4
#endif
static std::barrier<>* blockBar;
static std::barrier<>* warpBar[NW];
static float slotF[NW][32];
static unsigned slotA[NW][32][4], slotB[NW][32][2];
static inline void __syncthreads() { blockBar->arrive_and_wait(); }
static inline float __shfl_xor_sync(unsigned, float v, int m) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    slotF[w][l] = v; warpBar[w]->arrive_and_wait();
    float r = slotF[w][l ^ m]; warpBar[w]->arrive_and_wait();
    return r;
}
static inline void fa_mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    for (int i = 0; i < 4; i++) slotA[w][l][i] = a[i];
    slotB[w][l][0] = b0; slotB[w][l][1] = b1;
    warpBar[w]->arrive_and_wait();
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
#include "../../main/resources/kernels/attention.cu"

int main(int argc, char** argv) {
    int B = atoi(argv[1]), H = atoi(argv[2]), SQ = atoi(argv[3]), SK = atoi(argv[4]), D = atoi(argv[5]), causal = atoi(argv[6]);
    long hd = (long)H * D;
    std::mt19937 rng(42); std::uniform_real_distribution<float> u(-2, 2);
    std::vector<half_t> q(B * SQ * hd), k(B * SK * hd), v(B * SK * hd), o(B * SQ * hd, 0);
    for (auto& x : q) x = jd_f2h(u(rng)); for (auto& x : k) x = jd_f2h(u(rng)); for (auto& x : v) x = jd_f2h(u(rng) * 0.5f);
    float scale = 1.0f / std::sqrt((float)D);
    int gx = B * H, gy = (SQ + 16 * NW - 1) / (16 * NW);
    for (int by = 0; by < gy; by++) for (int bx = 0; bx < gx; bx++) {
        std::barrier<> bb(32 * NW); blockBar = &bb;
        std::vector<std::barrier<>*> wb; for (int w = 0; w < NW; w++) { warpBar[w] = new std::barrier<>(32); }
        std::vector<std::thread> th;
        for (int t = 0; t < 32 * NW; t++) th.emplace_back([&, t] { threadIdx = {(unsigned)t, 0, 0}; blockIdx = {(unsigned)bx, (unsigned)by, 0};
            flash_attn_f16_mma(q.data(), k.data(), v.data(), o.data(), B * H, H, SQ, SK, D, scale, causal); });
        for (auto& x : th) x.join();
        for (int w = 0; w < NW; w++) delete warpBar[w];
    }
    double num = 0, den = 0;
    for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int i = 0; i < SQ; i++) {
        int valid = causal ? std::min(SK, i + 1) : SK;
        std::vector<double> p(valid); double m = -1e300, sum = 0;
        for (int j = 0; j < valid; j++) { double d = 0; for (int e = 0; e < D; e++) d += (double)jd_h2f(q[(b*SQ+i)*hd + h*D + e]) * jd_h2f(k[(b*SK+j)*hd + h*D + e]); p[j] = d * scale; m = std::max(m, p[j]); }
        for (int j = 0; j < valid; j++) sum += p[j] = std::exp(p[j] - m);
        for (int e = 0; e < D; e++) { double acc = 0; for (int j = 0; j < valid; j++) acc += p[j] * jd_h2f(v[(b*SK+j)*hd + h*D + e]); acc /= sum;
            double got = jd_h2f(o[(b*SQ+i)*hd + h*D + e]); num += (got - acc) * (got - acc); den += acc * acc; }
    }
    double rel = std::sqrt(num / den);
    printf("B%d H%d SQ%d SK%d D%d causal%d: rel L2 %.3e %s\n", B, H, SQ, SK, D, causal, rel, rel < 1e-2 ? "OK" : "FAIL");
    return rel < 1e-2 ? 0 : 1;
}
