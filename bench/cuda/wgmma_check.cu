/*
 * Standalone check + benchmark of kernels/gemm_wgmma.cu (Hopper wgmma GEMM, GEGLU and conv) against plain fp32
 * references and against the kernels they would replace: gemm_mma_f16 / gemm_mma_geglu_f16 (kernels/gemm_mma.cu) and
 * conv2d_v3_f16 (kernels/conv_mma.cu). No Java: the kernel sources are
 * included as the engine's NVRTC sees them (JD_CUDA, prelude.h, then the family source), and the module is also built
 * the engine's way: NVRTC (dlopen'ed) on the text KernelSource.cuda gives it, with the options of Gemm's two Wgmma
 * configurations and --gpu-architecture=sm_90a, loaded and launched through the driver API (dlopen'ed libcuda): the
 * "nvrtc ..." variants, which are what Gemm / Conv2d run. Build and run with bench/cuda/wgmma_check.sh (sm_90a, H100/H200):
 *   wgmma_check [table-file|"" [kernels-dir [parts [conv-case-filter [once]]]]]
 * parts: a comma list of gemm, geglu, conv (default all three); conv-case-filter: only the conv cases whose name
 * contains it; once: checks only, no timing (for ncu).
 * GEGLU part: fp32 reference = ref_gemm over the interleaved columns, then ref_geglu (value * erf-GELU(gate)); ragged M,
 * batch, a ragged last N tile (N = 336), no bias, alpha; timed on SD1.5's three net.0.proj shapes against gemm_mma_geglu_f16.
 * Conv part: random x / weights [cOut][cIn][k][k] / bias / residual, conv_taps_f16 makes the tap-major wt both convs read,
 * fp32 reference = ref_conv (direct, on the GPU, from the original weights); every SD1.5 conv at batch 16 and ragged
 * cases (odd sizes, cOut 1 / 40 / 200, several images, stride 2 on odd sizes, 1x1, residual, tiles across images,
 * x misaligned so the row path must not run); timed against conv2d_v3_f16 with the split-K plan Conv2d would use.
 *
 * Correctness: every case gets fresh random inputs (uniform [-1, 1]), the output is poisoned with fp16 NaN first, and
 * each kernel's output is compared with the fp32 reference (same epilogue, no rounding): relative L2 error
 * ||c - ref|| / ||ref|| <= 2e-3 and no NaN. All tile variants below run every case (ragged M / N, batch, bias,
 * residual, alpha / beta, channels-first outHw with and without the vector path), plus the module's own
 * gemm_wgmma_f16 entry point (-D defaults) and gemm_mma_f16.
 * Timing (the UNet shapes): 25 launches queued back to back with an event between each two, median, after 3 warm-ups; gemm_mma_f16 both with one
 * split and with the split-K plan Gemm.splitPlan would choose (plus its reduce kernel), every wgmma variant, and the
 * variant Gemm.java picks (Gemm.wgmmaConfig, mirrored in pickBn() of wgmma_common.cuh). What both wgmma harnesses
 * share (helpers, references, cases, the NVRTC build) is in bench/cuda/wgmma_common.cuh.
 */
#include "wgmma_common.cuh"

/* ---- the builds under test: tile configurations of the module's templates, each its own kernel ---- */

/* gw_gemm (the module's gemm_wgmma_f16 is one of these, chosen by -D) */
template <int BN, int WG, int S, int MINB, bool DRAIN>
__global__ void __launch_bounds__(128 * WG, MINB) gw_variant(const half_t* a, const half_t* b, const half_t* bias, half_t* c, int batch, int m, int n, int k,
                                                             int transB, int hasBias, float alpha, float* ws, int splits, int kPer, const half_t* res,
                                                             int hasRes, float beta, int outHw) {
    extern __shared__ uint4 sm[];
    gw_gemm<BN, WG, S, DRAIN>(a, b, bias, c, batch, m, n, k, hasBias, alpha, res, hasRes, beta, outHw, (unsigned char*)sm);
}

/* gw_gemm with the GEGLU epilogue (gemm_wgmma_geglu_f16) */
template <int BN, int WG, int S, int MINB, bool DRAIN>
__global__ void __launch_bounds__(128 * WG, MINB) gg_variant(const half_t* a, const half_t* b, const half_t* bias, half_t* c, int batch, int m, int n, int k,
                                                             int transB, int hasBias, float alpha, float* ws, int splits, int kPer) {
    extern __shared__ uint4 sm[];
    gw_gemm<BN, WG, S, DRAIN, true>(a, b, bias, c, batch, m, n, k, hasBias, alpha, c, 0, 1.0f, 0, (unsigned char*)sm);
}

/* gw_conv's row path where it applies (ROWS, as conv2d_wgmma_f16 does; RPREF: its loads one k tile ahead), else the
 * per-pixel gather (PPREF: its loads one k tile ahead; conv2d_wgmma_f16: true). */
template <int BN, int WG, int S, int MINB, bool ROWS, bool RPREF, bool PPREF>
__global__ void __launch_bounds__(128 * WG, MINB) gc_variant(const half_t* x, const half_t* wt, const half_t* bias, half_t* out, int n, int cIn, int h, int w,
                                                             int cOut, int ks, int stride, int pad, int hOut, int wOut, int hasBias, float* ws, int splits,
                                                             int kPer, const half_t* res, int hasRes, float beta) {
    extern __shared__ uint4 sm[];
    if (ROWS && gw_conv_rows(x, h, w, ks, stride, pad, hOut, wOut))
        gw_conv<BN, WG, S, RPREF, true>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, res, hasRes, beta, (unsigned char*)sm);
    else
        gw_conv<BN, WG, S, PPREF, false>(x, wt, bias, out, n, cIn, h, w, cOut, ks, stride, pad, hOut, wOut, hasBias, res, hasRes, beta, (unsigned char*)sm);
}

/* A GEMM, GEGLU or conv build: a kernel of this binary (fn) or of an NVRTC-built module (drv; a module's GEMM entry
 * also carries the module's gemm_wgmma_geglu_f16 / conv2d_wgmma_f16 in drvGeglu / drvConv). */
struct Variant {
    std::string name;
    const void* fn = nullptr;
    CUfunction drv = nullptr, drvGeglu = nullptr, drvConv = nullptr;
    int bn = 0, wg = 0, stages = 0, smem = 0, perSm = 0;
    int regs = 0, local = 0;
};

template <typename F>
static Variant variant(const std::string& name, F fn, int bn, int wg, int stages) {
    Variant v;
    v.name = name;
    v.fn = (const void*)fn;
    v.bn = bn; v.wg = wg; v.stages = stages; v.smem = gw_smem_bytes(bn, wg, stages);
    CK(cudaFuncSetAttribute(v.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, v.smem));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v.perSm, v.fn, 128 * wg, v.smem));
    cudaFuncAttributes at = {};
    CK(cudaFuncGetAttributes(&at, v.fn));
    v.regs = at.numRegs; v.local = (int)at.localSizeBytes;
    return v;
}

/* gw_variant (GEGLU: gg_variant) named BMxBN/s<stages>[/x2: __launch_bounds__ minimum 2 blocks per SM][/d: drain] */
template <int BN, int WG, int S, int MINB, bool DRAIN, bool GEGLU = false>
static Variant tileVariant() {
    char buf[64];
    snprintf(buf, sizeof buf, "%dx%d/s%d%s%s", 64 * WG, BN, S, MINB > 1 ? "/x2" : "", DRAIN ? "/d" : "");
    if constexpr (GEGLU) return variant(buf, gg_variant<BN, WG, S, MINB, DRAIN>, BN, WG, S);
    else return variant(buf, gw_variant<BN, WG, S, MINB, DRAIN>, BN, WG, S);
}

/* kernel f of the NVRTC module m, under m's name and tile */
static Variant fromNvrtc(const Variant& m, CUfunction f) {
    Variant v = m;
    v.drv = f;
    fnAttrs(f, &v.regs, &v.local);
    nvrtc().occ(&v.perSm, f, 128 * m.wg, m.smem);
    return v;
}

/* gemm_wgmma_f16 compiled by NVRTC with Gemm.Wgmma's options for bn (see nvrtcCompile), as CudaBackend does, with the
 * module's GEGLU and conv kernels; false (and a message) when NVRTC or the driver library is missing. */
static bool nvrtcVariant(const std::string& kernelsDir, int bn, Variant& v) {
    const Nvrtc& d = nvrtc();
    if (!d.nv || !d.cu) { printf("NVRTC build skipped: %s\n", !d.nv ? "no libnvrtc" : "no libcuda"); return false; }
    std::string log;
    std::vector<char> cubin;
    const int rc = nvrtcCompile(kernelsDir, bn, true, log, cubin), smem = smemOf(bn);
    if (rc < 0) { printf("nvrtcCreateProgram failed\n"); return false; }
    if (rc != 0) { printf("NVRTC could not compile gemm_wgmma.cu (BN %d): rc %d\n%s\n", bn, rc, log.c_str()); exit(2); }
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
        if (line.find("registers") != std::string::npos || line.find("spill") != std::string::npos || line.find("arning") != std::string::npos)
            printf("  nvrtc BN %d: %s\n", bn, line.c_str());
    CUmodule mod;
    CUfunction fn;
    if (d.load(&mod, cubin.data()) != CUDA_SUCCESS || d.getFn(&fn, mod, "gemm_wgmma_f16") != CUDA_SUCCESS) { printf("loading the NVRTC cubin failed\n"); exit(2); }
    if (d.setAttr(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem) != CUDA_SUCCESS) { printf("cuFuncSetAttribute failed\n"); exit(2); }
    for (auto [name, dst] : {std::pair<const char*, CUfunction*>{"gemm_wgmma_geglu_f16", &v.drvGeglu}, {"conv2d_wgmma_f16", &v.drvConv}}) {
        if (d.getFn(dst, mod, name) != CUDA_SUCCESS || d.setAttr(*dst, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem) != CUDA_SUCCESS) {
            printf("NVRTC module: no %s\n", name);
            exit(2);
        }
        int r = 0, l = 0;
        fnAttrs(*dst, &r, &l);
        printf("  nvrtc BN %d: %s: %d registers, %d B local\n", bn, name, r, l);
    }
    v.name = "nvrtc 128x" + std::to_string(bn) + "/s3/x2/d";
    v.bn = bn; v.wg = 2; v.stages = 3; v.smem = smem;
    v = fromNvrtc(v, fn);
    return true;
}

static void printVariants(const char* label, int width, const std::vector<Variant>& vs) {
    for (auto& v : vs)
        printf("%s %-*s regs %3d, local %d B, dynamic smem %6d B, %d block(s)/SM\n", label, width, v.name.c_str(), v.regs, v.local, v.smem, v.perSm);
}

/* Kernel arguments as the engine passes them, launched from this binary (cudaLaunchKernel) or the NVRTC module
 * (cuLaunchKernel): a 1-D grid, one block of 128 * wg threads per tile, -DJD_SMEM bytes. */
static void launchK(const Variant& v, long tiles, void** params) {
    if (v.drv) {
        CUresult r = nvrtc().launch(v.drv, (unsigned)tiles, 1, 1, 128 * v.wg, 1, 1, v.smem, (CUstream)0, params, nullptr);
        if (r != CUDA_SUCCESS) { fprintf(stderr, "cuLaunchKernel failed: %d\n", (int)r); exit(2); }
    } else {
        CK(cudaLaunchKernel(v.fn, dim3((unsigned)tiles), dim3(128 * v.wg), params, v.smem, 0));
    }
}

/* ---- device buffers, grown on demand (the parts below share them) ---- */
static half_t *dA, *dB, *dBias, *dRes, *dC;
static half_t* dWt;                                  /* the tap-major copy of the conv weights */
static float *dRef, *dWs;
static float* dTmp;                                  /* the GEGLU reference's raw [M][N] */
static size_t capA, capB, capBias, capRes, capC, capRef, capTmp, capWt;
static std::string caseFilter;                       /* argv[4]: only the conv cases whose name contains it */
static bool noTiming;                                /* argv[5] == "once": conv checks only (one launch each, for ncu) */

template <typename T>
static void ensure(T*& p, size_t& cap, size_t count) {
    if (count <= cap) return;
    if (p) CK(cudaFree(p));
    CK(cudaMalloc(&p, count * sizeof(T)));
    cap = count;
}
/* room for a, b, bias, res, and c and its reference (c values each) */
static void ensureAll(size_t a, size_t b, size_t bias, size_t res, size_t c) {
    ensure(dA, capA, a);
    ensure(dB, capB, b);
    ensure(dBias, capBias, bias);
    ensure(dRes, capRes, res);
    ensure(dC, capC, c);
    ensure(dRef, capRef, c);
}

/* ---- checking and timing every variant on a case ---- */

/* dC (n fp16 values), poisoned, then launch(), against dRef: relative L2 <= 2e-3 and every value finite. */
template <typename L>
static bool check(const char* who, const char* what, long n, double* relOut, L launch) {
    return poisonCheck(dC, dRef, n, 14, who, what, relOut, launch);
}

/* launch(v) checked for every variant: the failures, and the worst relative L2 error in worst */
template <typename L>
static int checkVariants(const std::vector<Variant>& vs, const char* what, long n, double& worst, L launch) {
    int fails = 0;
    worst = 0;
    for (auto& v : vs) {
        double rel;
        if (!check(v.name.c_str(), what, n, &rel, [&] { launch(v); })) fails++;
        worst = std::max(worst, rel);
    }
    return fails;
}

/* launch(v) timed for every variant but module-default: "name TF/s" of each appended to all; the time of chosen (0: none) */
template <typename L>
static float timeVariants(const std::vector<Variant>& vs, double flop, const std::string& chosen, std::string& all, L launch) {
    float tpick = 0;
    for (auto& v : vs) {
        if (v.name == "module-default") continue;
        float t = timeMs([&] { launch(v); });
        char b[64];
        snprintf(b, sizeof b, "%s %.0f  ", v.name.c_str(), flop / t / 1e9);
        all += b;
        if (v.name == chosen) tpick = t;
    }
    return tpick;
}

/* The configuration Gemm.wgmmaConfig picks for n columns (pickBn): the NVRTC-built module, as the engine runs it. */
static std::string pick(int n) { return "nvrtc 128x" + std::to_string(pickBn(n)) + "/s3/x2/d"; }

/* ------------------------------------------- GEMM and GEGLU ------------------------------------------- */

/* A gw_variant / gg_variant build as Gemm launches it (splits 1; the engine passes c as the unused ws). A GEGLU kernel
 * takes the first 14 of these arguments. */
static void launchVariant(const Variant& v, const Case& cs) {
    long tiles = (long)cs.batch * ((cs.N + v.bn - 1) / v.bn) * ((cs.M + 64 * v.wg - 1) / (64 * v.wg));
    int batch = cs.batch, m = cs.M, n = cs.N, k = cs.K, transB = 1, hasBias = cs.hasBias, splits = 1, kPer = cs.K, hasRes = cs.hasRes, outHw = cs.outHw;
    float alpha = cs.alpha, beta = cs.beta;
    float* ws = (float*)dC;
    const half_t* bias = cs.hasBias ? dBias : dC;
    const half_t* res = cs.hasRes ? dRes : dC;
    void* params[] = {&dA, &dB, &bias, &dC, &batch, &m, &n, &k, &transB, &hasBias, &alpha, &ws, &splits, &kPer, &res, &hasRes, &beta, &outHw};
    launchK(v, tiles, params);
}

/* gemm_mma_f16 as Gemm.appendMma launches it: splits 1 (fused epilogue) or split-K + gemm_splitk_reduce_f16;
 * GEGLU: gemm_mma_geglu_f16 (splits 1). */
static void launchMma(bool geglu, const Case& cs, int splits, int kPer) {
    dim3 grid((cs.N + 127) / 128, (cs.M + 127) / 128, cs.batch * splits);
    const half_t* bias = cs.hasBias ? dBias : dC;
    const half_t* res = cs.hasRes ? dRes : dC;
    if (geglu) {
        gemm_mma_geglu_f16<<<grid, 256>>>(dA, dB, bias, dC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias, cs.alpha, dWs, 1, cs.K);
        return;
    }
    gemm_mma_f16<<<grid, 256>>>(dA, dB, bias, dC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias, cs.alpha, dWs, splits, kPer, res, cs.hasRes, cs.beta, cs.outHw);
    if (splits > 1) {
        long total = (long)cs.batch * cs.M * cs.N;
        gemm_splitk_reduce_f16<<<(unsigned)((total + 255) / 256), 256>>>(dWs, bias, dC, cs.batch, cs.M, cs.N, splits, cs.hasBias, cs.alpha, 0, res, cs.hasRes,
                                                                         cs.beta, cs.outHw);
    }
}

/* GEMM: every tile variant, the module's entry point and the NVRTC modules against ref_gemm, gemm_mma_f16 (and split-K);
 * GEGLU (geglu): the same for the GEGLU epilogue against ref_gemm + ref_geglu and gemm_mma_geglu_f16. */
static int runGemm(bool geglu, const std::vector<Variant>& mods, std::string& table) {
    std::vector<Variant> vs;
    if (geglu)
        vs = {tileVariant<160, 2, 3, 2, true, true>(), tileVariant<128, 2, 3, 2, true, true>(), tileVariant<160, 2, 3, 2, false, true>(),
              variant("module-default", gemm_wgmma_geglu_f16, GW_BN, GW_WG, GW_STAGES)};
    else                 /* BN WG S MINB DRAIN; then the module's own entry point with its -D defaults */
        vs = {tileVariant<128, 2, 3, 2, true>(), tileVariant<160, 2, 3, 2, true>(), tileVariant<160, 2, 3, 2, false>(), tileVariant<192, 2, 3, 1, true>(),
              tileVariant<256, 2, 4, 1, false>(), tileVariant<256, 2, 3, 1, true>(), tileVariant<160, 4, 4, 1, false>(), tileVariant<160, 4, 3, 1, true>(),
              variant("module-default", gemm_wgmma_f16, GW_BN, GW_WG, GW_STAGES)};
    for (auto& m : mods) vs.push_back(geglu ? fromNvrtc(m, m.drvGeglu) : m);
    printVariants(geglu ? "geglu variant" : "variant", geglu ? 22 : 20, vs);
    const std::vector<Case> cases = geglu ? gegluCases(F16) : gemmCases(F16);
    for (auto& c : cases) {
        const size_t nRaw = (size_t)c.batch * c.M * c.N;
        ensureAll((size_t)c.batch * c.M * c.K, (size_t)c.batch * c.N * c.K, (size_t)c.N, geglu ? 1 : nRaw, geglu ? nRaw / 2 : nRaw);
        if (geglu) ensure(dTmp, capTmp, nRaw);
    }
    int failures = 0;
    char line[1024];
    if (geglu)
        snprintf(line, sizeof line, "\nGEGLU (net.0.proj + GEGLU, N = 2 * inner)\n%-16s %9s %7s | %9s %7s %-16s | %7s | %s\n", "M x N x K", "mma ms", "TF/s",
                 "wgmma ms", "TF/s", "(nvrtc pick)", "speedup", "every wgmma variant: TF/s");
    else
        snprintf(line, sizeof line, "%-16s %9s %7s | %9s %7s %-10s | %9s %7s %-13s | %7s | %s\n", "M x N x K", "mma ms", "TF/s", "mma+splitK", "TF/s", "(splits)",
                 "wgmma ms", "TF/s", "(Gemm pick)", "speedup", "every wgmma variant: TF/s");
    table += line;
    unsigned seed = geglu ? 777 : 1234;
    for (auto& cs : cases) {
        const long nA = (long)cs.batch * cs.M * cs.K, nB = (long)cs.batch * cs.N * cs.K, nRaw = (long)cs.batch * cs.M * cs.N, nC = geglu ? nRaw / 2 : nRaw;
        fillInputs(seed, dA, nA, dB, nB, dBias, cs.N, geglu ? nullptr : dRes, nRaw);
        refGemm(cs, dA, dB, dBias, dRes, geglu ? dTmp : dRef);
        if (geglu) ref_geglu<<<1024, 256>>>(dTmp, dRef, (long)cs.batch * cs.M, cs.N);
        CK(cudaGetLastError());
        double worst, relMma, relMmaS = 0;
        int caseFail = checkVariants(vs, cs.what, nC, worst, [&](const Variant& v) { launchVariant(v, cs); });
        int splits = 1, kPer = cs.K;
        if (!geglu) splitPlan(cs.batch, cs.M, cs.N, cs.K, 32, splits, kPer);
        if (!check(geglu ? "gemm_mma_geglu" : "gemm_mma_f16", cs.what, nC, &relMma, [&] { launchMma(geglu, cs, 1, cs.K); })) caseFail++;
        if (splits > 1 && !check("gemm_mma+splitK", cs.what, nC, &relMmaS, [&] { launchMma(geglu, cs, splits, kPer); })) caseFail++;
        failures += caseFail;
        printf("%s%-20s %s  wgmma worst rel L2 %.2e (%zu variants), %s %.2e%s\n", geglu ? "geglu " : "", cs.what, caseFail ? "FAIL" : "ok  ", worst, vs.size(),
               geglu ? "gemm_mma_geglu" : "gemm_mma", relMma, splits > 1 ? " (split-K too)" : "");
        fflush(stdout);
        if (!cs.timed) continue;
        double flop = 2.0 * cs.batch * cs.M * cs.N * cs.K;
        float tm = timeMs([&] { launchMma(geglu, cs, 1, cs.K); });
        float tms = splits > 1 ? timeMs([&] { launchMma(geglu, cs, splits, kPer); }) : tm;
        std::string all, chosen = pick(cs.N);
        if (!geglu && std::none_of(vs.begin(), vs.end(), [&](const Variant& v) { return v.name == chosen; })) chosen = chosen.substr(6);   /* no NVRTC: the same tile */
        float tpick = timeVariants(vs, flop, chosen, all, [&](const Variant& v) { launchVariant(v, cs); });
        char sp[32];
        snprintf(sp, sizeof sp, "(%d)", splits);
        if (geglu)
            snprintf(line, sizeof line, "%-16s %9.4f %7.1f | %9.4f %7.1f %-16s | %6.2fx | %s\n", cs.what, tm, flop / tm / 1e9, tpick,
                     tpick > 0 ? flop / tpick / 1e9 : 0.0, chosen.c_str(), tpick > 0 ? tm / tpick : 0.0, all.c_str());
        else
            snprintf(line, sizeof line, "%-16s %9.4f %7.1f | %9.4f %7.1f %-10s | %9.4f %7.1f %-13s | %6.2fx | %s\n", cs.what, tm, flop / tm / 1e9, tms,
                     flop / tms / 1e9, sp, tpick, tpick > 0 ? flop / tpick / 1e9 : 0.0, chosen.c_str(), tpick > 0 ? std::min(tm, tms) / tpick : 0.0, all.c_str());
        emit(table, line);
    }
    return failures;
}

/* ---------------------------------------------- conv ---------------------------------------------- */

static void launchConv(const Variant& v, const CCase& cs) {
    int n = cs.n, cIn = cs.cIn, h = cs.h, w = cs.w, cOut = cs.cOut, ks = cs.ks, stride = cs.stride, pad = cs.pad, hOut = cs.hOut(), wOut = cs.wOut();
    int hasBias = cs.hasBias, splits = 1, kPer = cIn * ks * ks, hasRes = cs.hasRes;
    float beta = cs.beta;
    float* ws = dWs;
    const half_t* bias = cs.hasBias ? dBias : dC;
    const half_t* res = cs.hasRes ? dRes : dC;
    long tiles = (cs.cols() + 64 * v.wg - 1) / (64 * v.wg) * ((cOut + v.bn - 1) / v.bn);
    const half_t* x = dA + cs.xoff;
    void* params[] = {&x, &dWt, &bias, &dC, &n, &cIn, &h, &w, &cOut, &ks, &stride, &pad, &hOut, &wOut, &hasBias, &ws, &splits, &kPer, &res, &hasRes, &beta};
    launchK(v, tiles, params);
}

/* conv2d_v3_f16 as Conv2d.appendV3 launches it (and gemm_splitk_reduce_f16 with split-K). */
static void launchV3(const CCase& cs, int splits, int kPer) {
    const int hOut = cs.hOut(), wOut = cs.wOut(), cols = (int)cs.cols();
    const half_t* bias = cs.hasBias ? dBias : dC;
    const half_t* res = cs.hasRes ? dRes : dC;
    conv2d_v3_f16<<<dim3((cols + 127) / 128, (cs.cOut + 127) / 128, splits), 256>>>(dA + cs.xoff, dWt, bias, dC, cs.n, cs.cIn, cs.h, cs.w, cs.cOut, cs.ks, cs.stride,
                                                                                    cs.pad, hOut, wOut, cs.hasBias, dWs, splits, kPer, res, cs.hasRes, cs.beta);
    if (splits > 1)
        gemm_splitk_reduce_f16<<<(unsigned)(((long)cs.cOut * cols + 255) / 256), 256>>>(dWs, bias, dC, 1, cs.cOut, cols, splits, cs.hasBias, 1.0f, hOut * wOut,
                                                                                        res, cs.hasRes, cs.beta, 0);
}

static int runConv(const std::vector<Variant>& mods, std::string& table) {
    /* name: rows (the row path where it applies) or pix (always the per-pixel gather); /pref: that path's loads one k tile ahead */
    std::vector<Variant> vs = {
        variant("rows+pix/pref", gc_variant<160, 2, 3, 2, true, false, true>, 160, 2, 3),   /* = conv2d_wgmma_f16 */
        variant("rows/pref+pix", gc_variant<160, 2, 3, 2, true, true, false>, 160, 2, 3),
        variant("pix/pref", gc_variant<160, 2, 3, 2, false, false, true>, 160, 2, 3),
        variant("pix", gc_variant<160, 2, 3, 2, false, false, false>, 160, 2, 3),
        variant("128x160/s4 rows+pix/pref", gc_variant<160, 2, 4, 1, true, false, true>, 160, 2, 4),
        variant("module-default", conv2d_wgmma_f16, GW_BN, GW_WG, GW_STAGES),
    };
    for (auto& m : mods) vs.push_back(fromNvrtc(m, m.drvConv));
    printVariants("conv variant", 22, vs);
    const std::vector<CCase> cases = convCases(F16);
    for (auto& c : cases) {
        const size_t nW = (size_t)c.cOut * c.cIn * c.ks * c.ks, nC = (size_t)c.cOut * c.cols();
        ensureAll((size_t)c.n * c.cIn * c.h * c.w + c.xoff, nW, (size_t)c.cOut, nC, nC);
        ensure(dWt, capWt, nW);
    }
    int failures = 0;
    char line[1024];
    snprintf(line, sizeof line, "\nconv (implicit GEMM, NCHW, batch 16 unless ragged)\n%-18s %9s %7s %-9s | %9s %7s %-21s | %7s | %s\n", "conv", "v3 ms", "TF/s",
             "(splits)", "wgmma ms", "TF/s", "(Conv2d pick)", "speedup", "every wgmma variant: TF/s");
    table += line;
    unsigned seed = 4242;
    for (auto& cs : cases) {
        if (!caseFilter.empty() && std::string(cs.what).find(caseFilter) == std::string::npos) continue;
        const long nX = (long)cs.n * cs.cIn * cs.h * cs.w, taps = cs.ks * cs.ks, nW = (long)cs.cOut * cs.cIn * taps, nC = (long)cs.cOut * cs.cols();
        fillInputs(seed, dA, nX + cs.xoff, dB, nW, dBias, cs.cOut, dRes, nC);
        conv_taps_f16<<<(unsigned)((nW + 255) / 256), 256>>>(dB, dWt, cs.cOut, cs.cIn, (int)taps);
        refConv(cs, dA + cs.xoff, dB, dBias, dRes, dRef);
        CK(cudaGetLastError());
        double worst, relV3;
        int caseFail = checkVariants(vs, cs.what, nC, worst, [&](const Variant& v) { launchConv(v, cs); });
        /* Gemm.splitPlan(batch 1, M = cOut, N = cols, K = cIn * taps) and Gemm.split, fp16 k tiles of 32 */
        int splits, kPer;
        splitPlan(1, cs.cOut, (int)cs.cols(), (int)(cs.cIn * taps), 32, splits, kPer);
        if (!check("conv2d_v3_f16", cs.what, nC, &relV3, [&] { launchV3(cs, splits, kPer); })) caseFail++;
        failures += caseFail;
        printf("conv %-22s %s  wgmma worst rel L2 %.2e (%zu variants), conv2d_v3 %.2e (%d split%s)\n", cs.what, caseFail ? "FAIL" : "ok  ", worst, vs.size(), relV3,
               splits, splits > 1 ? "s" : "");
        fflush(stdout);
        if (!cs.timed || noTiming) continue;
        double flop = 2.0 * cs.cols() * cs.cOut * cs.cIn * taps;
        float tv3 = timeMs([&] { launchV3(cs, splits, kPer); });
        std::string all, chosen = pick(cs.cOut);   /* Conv2d: Gemm.wgmmaConfig(cols, cOut) */
        float tpick = timeVariants(vs, flop, chosen, all, [&](const Variant& v) { launchConv(v, cs); });
        char sp[16];
        snprintf(sp, sizeof sp, "(%d)", splits);
        snprintf(line, sizeof line, "%-18s %9.4f %7.1f %-9s | %9.4f %7.1f %-21s | %6.2fx | %s\n", cs.what, tv3, flop / tv3 / 1e9, sp, tpick,
                 tpick > 0 ? flop / tpick / 1e9 : 0.0, chosen.c_str(), tpick > 0 ? tv3 / tpick : 0.0, all.c_str());
        emit(table, line);
    }
    return failures;
}

/* ---------------------------------------------- main ---------------------------------------------- */

int main(int argc, char** argv) {
    const char* outPath = argc > 1 && argv[1][0] ? argv[1] : nullptr;
    std::string kernelsDir = argc > 2 ? argv[2] : "tornado-kernels/src/main/resources/kernels";
    std::string parts = argc > 3 ? argv[3] : "gemm,geglu,conv";
    caseFilter = argc > 4 ? argv[4] : "";
    noTiming = argc > 5 && std::string(argv[5]) == "once";
    cudaDeviceProp prop;
    if (!openDevice(prop, parts, "needs an sm_90 GPU (H100/H200)")) return 1;
    std::vector<Variant> mods;                       /* the NVRTC-built modules (Gemm.Wgmma's two configurations) */
    for (int bn : {160, 128}) {
        Variant v;
        if (nvrtcVariant(kernelsDir, bn, v)) mods.push_back(v);
    }
    CK(cudaMalloc(&dWs, 64L << 20));

    int failures = 0;
    std::string table;
    if (parts.find("gemm") != std::string::npos) failures += runGemm(false, mods, table);
    if (parts.find("geglu") != std::string::npos) failures += runGemm(true, mods, table);
    if (parts.find("conv") != std::string::npos) failures += runConv(mods, table);
    printf("\n%s\n%s\n", table.c_str(), failures ? "CHECK FAILED" : "all checks passed");
    if (outPath) {
        FILE* f = fopen(outPath, "w");
        if (f) {
            fprintf(f, "device: %s, %d SMs\n%s\n%s\n", prop.name, smCount, table.c_str(), failures ? "CHECK FAILED" : "all checks passed");
            fclose(f);
        }
    }
    return failures ? 1 : 0;
}
