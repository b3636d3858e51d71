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
 * What both wgmma harnesses share (helpers, references, cases, the NVRTC build) is in bench/cuda/wgmma_common.cuh.
 */
#include "wgmma_common.cuh"

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

static float *fA, *fB, *fBias, *fRes, *fC, *fRef, *fTmp, *fWt, *fWs;
static half_t *hA, *hB, *hBias, *hC, *hWt;
static const long CAP_A = 128L << 20, CAP_B = 40L << 20, CAP_C = 192L << 20, CAP_RES = 64L << 20;
static std::string caseFilter;                       /* argv[3]: only the conv cases whose name contains it */

/* fC (n values), poisoned, then launch(), against fRef: relative L2 <= 2e-3 and every value finite. */
template <typename L>
static bool check(const char* who, const char* what, long n, double* relOut, L launch) {
    return poisonCheck(fC, fRef, n, 22, who, what, relOut, launch);
}
/* launch(v) checked for the picked tile (v 0), the other tile (1) and the module's entry point (BN 160, 2), as
 * who + " pick" / " other" / " entry": the failures; their errors in rel[0..2] */
template <typename L>
static int checkWgmma(const char* who, const char* what, long n, double* rel, L launch) {
    static const char* const which[] = {" pick", " other", " entry"};
    int fails = 0;
    for (int v = 0; v < 3; v++)
        if (!check((std::string(who) + which[v]).c_str(), what, n, &rel[v], [&] { launch(v); })) fails++;
    return fails;
}

template <typename F>
static void prep(F fn, int smem) {
    CK(cudaFuncSetAttribute((const void*)fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
}
/* the dynamic shared memory of the tile variants of width BN */
template <int BN, typename E>
static void prepTile() {
    prep(k_gemm<BN, E>, smemOf(BN));
    prep(k_geglu<BN, E>, smemOf(BN));
    prep(k_conv<BN, E>, smemOf(BN));
}
template <typename F>
static void attrs(const char* name, F fn) {
    cudaFuncAttributes at = {};
    CK(cudaFuncGetAttributes(&at, (const void*)fn));
    printf("  nvcc %-28s %3d registers, %zu B local\n", name, at.numRegs, at.localSizeBytes);
}

/* ------------------------------------------- GEMM and GEGLU ------------------------------------------- */

/* k_gemm / k_geglu of tile width bn, or (entry; E = float) the module's gemm_wgmma_tf32 / gemm_wgmma_geglu_tf32 (bn 160) */
template <typename E>
static void launchWg(int bn, bool geglu, const E* a, const E* b, const E* bias, E* c, const Case& cs, const E* res, bool entry = false) {
    const long tiles = (long)cs.batch * ((cs.M + 127) / 128) * ((cs.N + bn - 1) / bn);
    const int smem = smemOf(bn);
    if (entry && geglu)
        gemm_wgmma_geglu_tf32<<<(unsigned)tiles, 256, smem>>>((const float*)a, (const float*)b, (const float*)bias, (float*)c, cs.batch, cs.M, cs.N, cs.K, 1,
                                                              cs.hasBias, cs.alpha, fWs, 1, cs.K);
    else if (entry)
        gemm_wgmma_tf32<<<(unsigned)tiles, 256, smem>>>((const float*)a, (const float*)b, (const float*)bias, (float*)c, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias,
                                                        cs.alpha, fWs, 1, cs.K, (const float*)res, cs.hasRes, cs.beta, cs.outHw);
    else if (geglu) {
        if (bn == 160) k_geglu<160, E><<<(unsigned)tiles, 256, smem>>>(a, b, bias, c, cs.batch, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha);
        else k_geglu<128, E><<<(unsigned)tiles, 256, smem>>>(a, b, bias, c, cs.batch, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha);
    } else {
        if (bn == 160)
            k_gemm<160, E><<<(unsigned)tiles, 256, smem>>>(a, b, bias, c, cs.batch, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha, res, cs.hasRes, cs.beta, cs.outHw);
        else k_gemm<128, E><<<(unsigned)tiles, 256, smem>>>(a, b, bias, c, cs.batch, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha, res, cs.hasRes, cs.beta, cs.outHw);
    }
}
static void launchMmaTf32(bool geglu, const Case& cs, int splits, int kPer) {
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
    const std::vector<Case> cases = geglu ? gegluCases(TF32) : gemmCases(TF32);
    int failures = 0;
    char line[512];
    snprintf(line, sizeof line, "\n%s\n%-18s | %8s %6s | %8s %6s %-5s | %8s %6s %-4s | %6s | %8s %6s (fp16 wgmma)\n", geglu ? "GEGLU (fp32 buffers, TF32)" : "GEMM (fp32 buffers, TF32)",
             "M x N x K", "mma ms", "TF/s", "mma+sK", "TF/s", "(spl)", "wgmma ms", "TF/s", "(bn)", "speedup", "f16 ms", "TF/s");
    emit(table, line);
    unsigned seed = geglu ? 777 : 1234;
    for (auto& cs : cases) {
        const long nA = (long)cs.batch * cs.M * cs.K, nB = (long)cs.batch * cs.N * cs.K, nRaw = (long)cs.batch * cs.M * cs.N;
        const long nC = geglu ? nRaw / 2 : nRaw;
        if (nA > CAP_A || nB > CAP_B || nRaw > CAP_C || (cs.hasRes && nRaw > CAP_RES)) { printf("%s: too big\n", cs.what); exit(2); }
        fillInputs(seed, fA, nA, fB, nB, fBias, cs.N, cs.hasRes ? fRes : nullptr, nRaw);
        refGemm(cs, fA, fB, fBias, fRes, geglu ? fTmp : fRef);
        if (geglu) ref_geglu<<<1024, 256>>>(fTmp, fRef, (long)cs.batch * cs.M, cs.N);
        CK(cudaGetLastError());
        const float* res = cs.hasRes ? fRes : fC;
        const int bn = pickBn(cs.N);
        double rel[5] = {0, 0, 0, 0, 0};
        int fails = checkWgmma("wgmma_tf32", cs.what, nC, rel,
                               [&](int v) { launchWg<float>(v == 2 ? 160 : v == 0 ? bn : 288 - bn, geglu, fA, fB, fBias, fC, cs, res, v == 2); });
        int splits, kPer;
        splitPlan(cs.batch, cs.M, cs.N, cs.K, 16, splits, kPer);
        if (!check("mma_tf32", cs.what, nC, &rel[3], [&] { launchMmaTf32(geglu, cs, 1, cs.K); })) fails++;
        if (splits > 1 && !check("mma_tf32+splitK", cs.what, nC, &rel[4], [&] { launchMmaTf32(geglu, cs, splits, kPer); })) fails++;
        failures += fails;
        printf("%-20s %s  rel L2: wgmma tf32 %.2e (bn %d) / %.2e / entry %.2e, mma tf32 %.2e%s\n", cs.what, fails ? "FAIL" : "ok  ", rel[0], bn, rel[1], rel[2],
               rel[3], splits > 1 ? " (+split-K)" : "");
        fflush(stdout);
        if (!cs.timed) continue;
        const double flop = 2.0 * cs.batch * cs.M * cs.N * cs.K;
        const float tm = timeMs([&] { launchMmaTf32(geglu, cs, 1, cs.K); });
        const float tms = splits > 1 ? timeMs([&] { launchMmaTf32(geglu, cs, splits, kPer); }) : tm;
        const float tw = timeMs([&] { launchWg<float>(bn, geglu, fA, fB, fBias, fC, cs, res); });
        unsigned hseed = 5;                          /* the fp16 kernels on fp16 copies of the shape */
        fillInputs(hseed, hA, nA, hB, nB, hBias, cs.N);
        const float th = timeMs([&] { launchWg<half_t>(bn, geglu, hA, hB, hBias, hC, cs, hC); });
        char sp[16];
        snprintf(sp, sizeof sp, "(%d)", splits);
        snprintf(line, sizeof line, "%-18s | %8.4f %6.1f | %8.4f %6.1f %-5s | %8.4f %6.1f %-4d | %6.2fx | %8.4f %6.1f\n", cs.what, tm, flop / tm / 1e9, tms,
                 flop / tms / 1e9, sp, tw, flop / tw / 1e9, bn, std::min(tm, tms) / tw, th, flop / th / 1e9);
        emit(table, line);
    }
    return failures;
}

/* ---------------------------------------------- conv ---------------------------------------------- */

/* k_conv of tile width bn, or (entry; E = float) the module's conv2d_wgmma_tf32 (bn 160) */
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

static int runConv(std::string& table) {
    const std::vector<CCase> cases = convCases(TF32);
    int failures = 0;
    char line[512];
    snprintf(line, sizeof line, "\nconv (fp32 buffers, TF32; NCHW, batch 16 unless ragged)\n%-18s | %8s %6s %-5s | %8s %6s %-4s | %6s | %8s %6s (fp16 wgmma)\n", "conv",
             "v3 ms", "TF/s", "(spl)", "wgmma ms", "TF/s", "(bn)", "speedup", "f16 ms", "TF/s");
    emit(table, line);
    unsigned seed = 4242;
    for (auto& cs : cases) {
        if (!caseFilter.empty() && std::string(cs.what).find(caseFilter) == std::string::npos) continue;
        const long nX = (long)cs.n * cs.cIn * cs.h * cs.w, taps = cs.ks * cs.ks, nW = (long)cs.cOut * cs.cIn * taps, nC = (long)cs.cOut * cs.cols();
        if (nX + cs.xoff > CAP_A || nW > CAP_B || nC > CAP_RES) { printf("%s: too big\n", cs.what); exit(2); }
        fillInputs(seed, fA, nX + cs.xoff, fB, nW, fBias, cs.cOut, cs.hasRes ? fRes : nullptr, nC);
        conv_taps_f32<<<(unsigned)((nW + 255) / 256), 256>>>(fB, fWt, cs.cOut, cs.cIn, (int)taps);
        refConv(cs, fA + cs.xoff, fB, fBias, fRes, fRef);
        CK(cudaGetLastError());
        const float* res = cs.hasRes ? fRes : fC;
        const int bn = pickBn(cs.cOut);
        double rel[4] = {0, 0, 0, 0};
        int fails = checkWgmma("conv_wgmma_tf32", cs.what, nC, rel,
                               [&](int v) { launchConvWg<float>(v == 2 ? 160 : v == 0 ? bn : 288 - bn, fA + cs.xoff, fWt, fBias, fC, cs, res, v == 2); });
        int splits, kPer;
        splitPlan(1, cs.cOut, (int)cs.cols(), (int)(cs.cIn * taps), 16, splits, kPer);
        if (!check("conv2d_v3_tf32", cs.what, nC, &rel[3], [&] { launchV3Tf32(cs, splits, kPer); })) fails++;
        failures += fails;
        printf("conv %-24s %s  rel L2: wgmma tf32 %.2e (bn %d) / %.2e / entry %.2e, v3 tf32 %.2e (%d split%s)\n", cs.what, fails ? "FAIL" : "ok  ", rel[0], bn,
               rel[1], rel[2], rel[3], splits, splits > 1 ? "s" : "");
        fflush(stdout);
        if (!cs.timed) continue;
        const double flop = 2.0 * cs.cols() * cs.cOut * cs.cIn * taps;
        const float tv = timeMs([&] { launchV3Tf32(cs, splits, kPer); });
        const float tw = timeMs([&] { launchConvWg<float>(bn, fA, fWt, fBias, fC, cs, res); });
        unsigned hseed = 5;                          /* the fp16 kernel on fp16 copies of the shape */
        fillInputs(hseed, hA, nX, hWt, nW, hBias, cs.cOut);
        const float th = timeMs([&] { launchConvWg<half_t>(bn, hA, hWt, hBias, hC, cs, hC); });
        char sp[16];
        snprintf(sp, sizeof sp, "(%d)", splits);
        snprintf(line, sizeof line, "%-18s | %8.4f %6.1f %-5s | %8.4f %6.1f %-4d | %6.2fx | %8.4f %6.1f\n", cs.what, tv, flop / tv / 1e9, sp, tw, flop / tw / 1e9, bn,
                 tv / tw, th, flop / th / 1e9);
        emit(table, line);
    }
    return failures;
}

/* the module as the engine builds it: NVRTC on the prelude + gemm_wgmma.cu with Gemm.Wgmma's options (nvrtcCompile);
 * the registers / local memory of its six kernels */
static void nvrtcCheck(const std::string& kernelsDir) {
    const Nvrtc& d = nvrtc();
    if (!d.nv || !d.cu) { printf("NVRTC check skipped (no libnvrtc / libcuda)\n"); return; }
    for (int bn : {160, 128}) {
        std::string log;
        std::vector<char> cubin;
        if (nvrtcCompile(kernelsDir, bn, false, log, cubin) != 0) { printf("NVRTC could not compile gemm_wgmma.cu (BN %d): %s\n", bn, log.c_str()); exit(2); }
        if (log.size() > 1) printf("NVRTC log (BN %d): %s\n", bn, log.c_str());
        CUmodule mod;
        if (d.load(&mod, cubin.data()) != CUDA_SUCCESS) { printf("cuModuleLoadData failed\n"); exit(2); }
        for (const char* k : {"gemm_wgmma_f16", "gemm_wgmma_geglu_f16", "conv2d_wgmma_f16", "gemm_wgmma_tf32", "gemm_wgmma_geglu_tf32", "conv2d_wgmma_tf32"}) {
            CUfunction fn;
            if (d.getFn(&fn, mod, k) != CUDA_SUCCESS) { printf("NVRTC module (BN %d): no %s\n", bn, k); exit(2); }
            int r = 0, l = 0;
            fnAttrs(fn, &r, &l);
            printf("  nvrtc BN %d %-24s %3d registers, %d B local\n", bn, k, r, l);
        }
    }
}

int main(int argc, char** argv) {
    std::string parts = argc > 1 ? argv[1] : "gemm,geglu,conv";
    std::string kernelsDir = argc > 2 ? argv[2] : "tornado-kernels/src/main/resources/kernels";
    caseFilter = argc > 3 ? argv[3] : "";
    cudaDeviceProp prop;
    if (!openDevice(prop, parts, "needs an sm_90 GPU")) return 1;
    nvrtcCheck(kernelsDir);
    prepTile<160, float>(); prepTile<128, float>(); prepTile<160, half_t>(); prepTile<128, half_t>();
    prep(gemm_wgmma_tf32, smemOf(160)); prep(gemm_wgmma_geglu_tf32, smemOf(160)); prep(conv2d_wgmma_tf32, smemOf(160));
    attrs("gemm_wgmma_tf32 (160)", gemm_wgmma_tf32); attrs("gemm_wgmma_geglu_tf32 (160)", gemm_wgmma_geglu_tf32);
    attrs("conv2d_wgmma_tf32 (160)", conv2d_wgmma_tf32); attrs("k_gemm<128, float>", k_gemm<128, float>);
    attrs("k_conv<128, float>", k_conv<128, float>);
    CK(cudaMalloc(&fA, CAP_A * 4)); CK(cudaMalloc(&fB, CAP_B * 4)); CK(cudaMalloc(&fWt, CAP_B * 4)); CK(cudaMalloc(&fBias, 65536 * 4));
    CK(cudaMalloc(&fC, CAP_C * 4)); CK(cudaMalloc(&fRef, CAP_C * 4)); CK(cudaMalloc(&fTmp, CAP_C * 4)); CK(cudaMalloc(&fRes, CAP_RES * 4));
    CK(cudaMalloc(&fWs, 64L << 20));
    CK(cudaMalloc(&hA, CAP_A * 2)); CK(cudaMalloc(&hB, CAP_B * 2)); CK(cudaMalloc(&hWt, CAP_B * 2)); CK(cudaMalloc(&hBias, 65536 * 2));
    CK(cudaMalloc(&hC, CAP_C * 2));
    int failures = 0;
    std::string table;
    if (parts.find("gemm") != std::string::npos) failures += runGemm(false, table);
    if (parts.find("geglu") != std::string::npos) failures += runGemm(true, table);
    if (parts.find("conv") != std::string::npos) failures += runConv(table);
    printf("\n=== summary ===\n%s\n%s\n", table.c_str(), failures ? "CHECK FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
