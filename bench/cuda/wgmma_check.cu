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
 * variant Gemm.java picks (Gemm.wgmmaConfig, mirrored in pick() below).
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

typedef void (*GemmFn)(const half_t*, const half_t*, const half_t*, half_t*, int, int, int, int, int, int, float, float*, int, int, const half_t*, int, float, int);

/* A tile configuration of gw_gemm as its own kernel (the module's gemm_wgmma_f16 is one of these, chosen by -D). */
template <int BN, int WG, int S, int MINB, bool DRAIN>
__global__ void __launch_bounds__(128 * WG, MINB) gw_variant(const half_t* a, const half_t* b, const half_t* bias, half_t* c, int batch, int m, int n, int k,
                                                             int transB, int hasBias, float alpha, float* ws, int splits, int kPer, const half_t* res,
                                                             int hasRes, float beta, int outHw) {
    extern __shared__ uint4 sm[];
    gw_gemm<BN, WG, S, DRAIN>(a, b, bias, c, batch, m, n, k, hasBias, alpha, res, hasRes, beta, outHw, (unsigned char*)sm);
}

struct Variant {
    std::string name;
    GemmFn fn;                       /* a kernel of this binary, or null: */
    CUfunction drv = nullptr;        /* a kernel of an NVRTC-built module */
    CUfunction drvGeglu = nullptr, drvConv = nullptr;   /* gemm_wgmma_geglu_f16 / conv2d_wgmma_f16 of that module */
    int bn, wg, stages, smem, perSm;
    int regs = 0, local = 0;         /* of the NVRTC-built kernels (cuFuncGetAttribute) */
};

/* name: BMxBN/s<stages>[/x2: __launch_bounds__ minimum 2 blocks per SM][/d: drain] */
template <int BN, int WG, int S, int MINB, bool DRAIN>
static Variant variant() {
    Variant v;
    char buf[64];
    snprintf(buf, sizeof buf, "%dx%d/s%d%s%s", 64 * WG, BN, S, MINB > 1 ? "/x2" : "", DRAIN ? "/d" : "");
    v.name = buf;
    v.fn = gw_variant<BN, WG, S, MINB, DRAIN>;
    v.bn = BN; v.wg = WG; v.stages = S; v.smem = gw_smem_bytes(BN, WG, S);
    CK(cudaFuncSetAttribute((const void*)v.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, v.smem));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v.perSm, v.fn, 128 * WG, v.smem));
    return v;
}

/* ---- helpers: random fill, poison, reference, compare ---- */
__device__ __forceinline__ unsigned hash32(unsigned x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}
__global__ void fill_uniform(half_t* p, long n, unsigned seed, float scale) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        unsigned h = hash32((unsigned)i * 2654435761U ^ hash32(seed + (unsigned)(i >> 32)));
        float u = (h >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
        p[i] = jd_f2h(u * scale);
    }
}
__global__ void fill_bits(half_t* p, long n, unsigned short bits) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) p[i] = bits;
}
/* out (laid out like c) = epilogue(alpha * A . B^T), fp32, no rounding. grid (ceil(N/16), ceil(M/16), batch), block (16, 16). */
__global__ void ref_gemm(const half_t* A, const half_t* B, const half_t* bias, const half_t* res, float* out, int M, int N, int K, int hasBias, float alpha,
                         int hasRes, float beta, int outHw) {
    __shared__ float As[16][17], Bs[16][17];
    const int tx = threadIdx.x, ty = threadIdx.y, row = blockIdx.y * 16 + ty, col = blockIdx.x * 16 + tx, brow = blockIdx.x * 16 + ty;
    const long bz = blockIdx.z;
    A += bz * M * K; B += bz * N * K; out += bz * M * N; res += bz * M * N;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += 16) {
        As[ty][tx] = row < M ? jd_h2f(A[(long)row * K + k0 + tx]) : 0.0f;
        Bs[ty][tx] = brow < N ? jd_h2f(B[(long)brow * K + k0 + tx]) : 0.0f;
        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < 16; kk++) acc = fmaf(As[ty][kk], Bs[tx][kk], acc);
        __syncthreads();
    }
    if (row >= M || col >= N) return;
    long o = outHw > 0 ? ((long)(row / outHw) * N + col) * outHw + row % outHw : (long)row * N + col;
    float v = alpha * acc + (hasBias ? jd_h2f(bias[col]) : 0.0f);
    if (hasRes) v = (v + jd_h2f(res[o])) * beta;
    out[o] = v;
}
__global__ void compare(const half_t* c, const float* ref, long n, double* sums, unsigned long long* bad) {
    double d2 = 0.0, r2 = 0.0;
    unsigned long long nb = 0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float x = jd_h2f(c[i]), r = ref[i];
        if (!(fabsf(x) <= 65504.0f)) { nb++; continue; }
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

struct Case {
    const char* what;
    int batch, M, N, K, hasBias, hasRes, outHw;
    float alpha, beta;
    bool timed;
};

static half_t *dA, *dB, *dBias, *dRes, *dC;
static float *dRef, *dWs;
static double* dSums;
static unsigned long long* dBad;
static int smCount;

static CUresult (*pLaunch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void**, void**);

static void launchVariant(const Variant& v, const Case& cs) {
    long tiles = (long)cs.batch * ((cs.N + v.bn - 1) / v.bn) * ((cs.M + 64 * v.wg - 1) / (64 * v.wg));
    const half_t* bias = cs.hasBias ? dBias : dC;
    const half_t* res = cs.hasRes ? dRes : dC;
    if (v.drv) {                                     /* the engine's launch: 1-D grid, one block per tile, -DJD_SMEM bytes */
        int batch = cs.batch, m = cs.M, n = cs.N, k = cs.K, transB = 1, hasBias = cs.hasBias, splits = 1, kPer = cs.K, hasRes = cs.hasRes, outHw = cs.outHw;
        float alpha = cs.alpha, beta = cs.beta;
        float* ws = (float*)dC;
        half_t* c = dC;
        void* params[] = {&dA, &dB, &bias, &c, &batch, &m, &n, &k, &transB, &hasBias, &alpha, &ws, &splits, &kPer, &res, &hasRes, &beta, &outHw};
        CUresult r = pLaunch(v.drv, (unsigned)tiles, 1, 1, 128 * v.wg, 1, 1, v.smem, (CUstream)0, params, nullptr);
        if (r != CUDA_SUCCESS) { fprintf(stderr, "cuLaunchKernel failed: %d\n", (int)r); exit(2); }
        return;
    }
    dim3 grid((unsigned)tiles);                      /* one block per output tile */
    v.fn<<<grid, 128 * v.wg, v.smem>>>(dA, dB, bias, dC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias, cs.alpha, nullptr, 1, cs.K, res, cs.hasRes, cs.beta,
                                      cs.outHw);
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

/* gemm_wgmma_f16 compiled by NVRTC from KernelSource.cuda's text with Gemm.Wgmma's options (bn, 2 warpgroups, 3 stages,
 * drain, 2 blocks per SM), as CudaBackend does; false (and a message) when NVRTC or the driver library is missing. */
static bool nvrtcVariant(const std::string& kernelsDir, int bn, Variant& v) {
    static void *nv = dlopenAny({"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so"});
    static void *cu = dlopenAny({"libcuda.so.1", "libcuda.so"});
    if (!nv || !cu) { printf("NVRTC build skipped: %s\n", !nv ? "no libnvrtc" : "no libcuda"); return false; }
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
    auto setAttr = (CUresult(*)(CUfunction, CUfunction_attribute, int))dlsym(cu, "cuFuncSetAttribute");
    auto occ = (CUresult(*)(int*, CUfunction, int, size_t))dlsym(cu, "cuOccupancyMaxActiveBlocksPerMultiprocessor");
    auto getAttr = (CUresult(*)(int*, CUfunction_attribute, CUfunction))dlsym(cu, "cuFuncGetAttribute");
    pLaunch = (decltype(pLaunch))dlsym(cu, "cuLaunchKernel");
    std::string src = "#define JD_CUDA 1\n" + readFile(kernelsDir + "/prelude.h") + "\n#line 1\n" + readFile(kernelsDir + "/gemm_wgmma.cu");
    int smem = gw_smem_bytes(bn, 2, 3);
    std::vector<std::string> opts = {"--gpu-architecture=sm_90a", "--std=c++17", "-DGW_BN=" + std::to_string(bn), "-DGW_WG=2", "-DGW_STAGES=3", "-DGW_DRAIN=1",
                                     "-DGW_MINB=2", "-DJD_SMEM=" + std::to_string(smem), "-DJD_ARCH_SUFFIX=a", "--ptxas-options=-v"};
    std::vector<const char*> o;
    for (auto& x : opts) o.push_back(x.c_str());
    void* prog = nullptr;
    if (create(&prog, src.c_str(), "gemm_wgmma.cu", 0, nullptr, nullptr) != 0) { printf("nvrtcCreateProgram failed\n"); return false; }
    int rc = compile(prog, (int)o.size(), o.data());
    size_t n = 0;
    logSize(prog, &n);
    std::string log(n, '\0');
    getLog(prog, &log[0]);
    if (rc != 0) { printf("NVRTC could not compile gemm_wgmma.cu (BN %d): rc %d\n%s\n", bn, rc, log.c_str()); exit(2); }
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
        if (line.find("registers") != std::string::npos || line.find("spill") != std::string::npos || line.find("arning") != std::string::npos)
            printf("  nvrtc BN %d: %s\n", bn, line.c_str());
    cubinSize(prog, &n);
    std::vector<char> cubin(n);
    getCubin(prog, cubin.data());
    CUmodule mod;
    CUfunction fn;
    if (load(&mod, cubin.data()) != CUDA_SUCCESS || getFn(&fn, mod, "gemm_wgmma_f16") != CUDA_SUCCESS) { printf("loading the NVRTC cubin failed\n"); exit(2); }
    if (setAttr(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem) != CUDA_SUCCESS) { printf("cuFuncSetAttribute failed\n"); exit(2); }
    for (auto [name, dst] : {std::pair<const char*, CUfunction*>{"gemm_wgmma_geglu_f16", &v.drvGeglu}, {"conv2d_wgmma_f16", &v.drvConv}}) {
        if (getFn(dst, mod, name) != CUDA_SUCCESS || setAttr(*dst, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem) != CUDA_SUCCESS) {
            printf("NVRTC module: no %s\n", name);
            exit(2);
        }
        int r = 0, l = 0;
        getAttr(&r, CU_FUNC_ATTRIBUTE_NUM_REGS, *dst);
        getAttr(&l, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, *dst);
        printf("  nvrtc BN %d: %s: %d registers, %d B local\n", bn, name, r, l);
    }
    v.name = "nvrtc 128x" + std::to_string(bn) + "/s3/x2/d";
    v.fn = nullptr;
    v.drv = fn;
    v.bn = bn; v.wg = 2; v.stages = 3; v.smem = smem;
    occ(&v.perSm, fn, 256, smem);
    getAttr(&v.regs, CU_FUNC_ATTRIBUTE_NUM_REGS, fn);
    getAttr(&v.local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, fn);
    return true;
}

/* gemm_mma_f16 as Gemm.appendMma launches it: splits 1 (fused epilogue) or split-K + gemm_splitk_reduce_f16. */
static void launchMma(const Case& cs, int splits, int kPer) {
    dim3 grid((cs.N + 127) / 128, (cs.M + 127) / 128, cs.batch * splits);
    const half_t* bias = cs.hasBias ? dBias : dC;
    const half_t* res = cs.hasRes ? dRes : dC;
    gemm_mma_f16<<<grid, 256>>>(dA, dB, bias, dC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias, cs.alpha, dWs, splits, kPer, res, cs.hasRes, cs.beta, cs.outHw);
    if (splits > 1) {
        long total = (long)cs.batch * cs.M * cs.N;
        gemm_splitk_reduce_f16<<<(unsigned)((total + 255) / 256), 256>>>(dWs, bias, dC, cs.batch, cs.M, cs.N, splits, cs.hasBias, cs.alpha, 0, res, cs.hasRes,
                                                                         cs.beta, cs.outHw);
    }
}

/* Gemm.splitPlan + Gemm.split for fp16 (k tiles of 32), defaults (maxSplits 16, splitKMiB 64). */
static void splitPlan(const Case& cs, int& splits, int& kPer) {
    long ktiles = (cs.K + 31) / 32, blocks = (long)cs.batch * ((cs.M + 127) / 128) * ((cs.N + 127) / 128), outputs = (long)cs.batch * cs.M * cs.N;
    long s = 1;
    if (blocks < smCount) s = std::min(2L * smCount / blocks, std::min(16L, ktiles / 8));
    s = std::min(s, (64L << 20) / (4 * outputs));
    s = std::min(s, 65535L / cs.batch);
    long per = (ktiles + std::max(1L, std::min(s, ktiles)) - 1) / std::max(1L, std::min(s, ktiles));
    splits = (int)((ktiles + per - 1) / per);
    kPer = (int)(per * 32);
}

/* c (n fp16 values) against dRef (fp32): relative L2 <= 2e-3 and every value finite. */
static bool checkN(const char* who, const char* what, long n, double* relOut = nullptr) {
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemset(dSums, 0, 2 * sizeof(double)));
    CK(cudaMemset(dBad, 0, sizeof(unsigned long long)));
    compare<<<1024, 256>>>(dC, dRef, n, dSums, dBad);
    double sums[2];
    unsigned long long bad;
    CK(cudaMemcpy(sums, dSums, sizeof sums, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&bad, dBad, sizeof bad, cudaMemcpyDeviceToHost));
    double rel = sqrt(sums[0] / std::max(sums[1], 1e-30));
    bool ok = bad == 0 && rel <= 2e-3;
    if (relOut) *relOut = rel;
    if (!ok) printf("  FAIL %-14s %s: rel L2 %.3e, %llu NaN/inf/unwritten\n", who, what, rel, bad);
    return ok;
}

static bool check(const char* who, const Case& cs, double* relOut = nullptr) {
    return checkN(who, cs.what, (long)cs.batch * cs.M * cs.N, relOut);
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

/* Device buffers that grow on demand (the parts below share them). */
template <typename T>
static void ensure(T*& p, size_t& cap, size_t count) {
    if (count <= cap) return;
    if (p) CK(cudaFree(p));
    CK(cudaMalloc(&p, count * sizeof(T)));
    cap = count;
}
static size_t capA, capB, capBias, capRes, capC, capRef, capTmp;
static float* dTmp;                                  /* the GEGLU reference's raw [M][N] */

/* ---------------------------------------------- GEMM ---------------------------------------------- */

/* The configuration Gemm.wgmmaConfig picks for (m, n): index into the variant list by name. */
static std::string pick(int m, int n);

static int runGemm(std::vector<Variant>& vs, std::string& table) {
    std::vector<Case> cases = {
        /* the SD1.5 UNet shapes at batch 16 (bias on, like the Linears) */
        {"65536x320x320", 1, 65536, 320, 320, 1, 0, 0, 1.0f, 1.0f, true},
        {"65536x2560x320", 1, 65536, 2560, 320, 1, 0, 0, 1.0f, 1.0f, true},
        {"65536x320x1280", 1, 65536, 320, 1280, 1, 0, 0, 1.0f, 1.0f, true},
        {"16384x640x640", 1, 16384, 640, 640, 1, 0, 0, 1.0f, 1.0f, true},
        {"16384x640x2560", 1, 16384, 640, 2560, 1, 0, 0, 1.0f, 1.0f, true},
        {"4096x1280x1280", 1, 4096, 1280, 1280, 1, 0, 0, 1.0f, 1.0f, true},
        {"4096x1280x5120", 1, 4096, 1280, 5120, 1, 0, 0, 1.0f, 1.0f, true},
        {"1232x320x768", 1, 1232, 320, 768, 1, 0, 0, 1.0f, 1.0f, true},
        /* ragged shapes and epilogue paths */
        {"1000x64x64", 1, 1000, 64, 64, 0, 0, 0, 1.0f, 1.0f, false},
        {"1000x200x128 bias", 1, 1000, 200, 128, 1, 0, 0, 1.0f, 1.0f, false},
        {"77x33x64 odd N", 1, 77, 33, 64, 1, 0, 0, 0.5f, 1.0f, false},
        {"1x8x192", 1, 1, 8, 192, 1, 0, 0, 1.0f, 1.0f, false},
        {"b3 300x160x128", 3, 300, 160, 128, 1, 0, 0, 1.0f, 1.0f, false},
        {"b2 130x72x64 res", 2, 130, 72, 64, 1, 1, 0, 0.7f, 0.5f, false},
        {"1000x320x256 res", 1, 1000, 320, 256, 1, 1, 0, 0.125f, 0.8f, false},
        {"1000x322x256 res", 1, 1000, 322, 256, 1, 1, 0, 1.0f, 0.8f, false},
        {"outHw 4x256 res", 1, 1024, 320, 128, 1, 1, 256, 1.0f, 0.5f, false},
        {"outHw 16x77 res", 1, 1232, 320, 64, 1, 1, 77, 1.0f, 1.0f, false},
        {"outHw 3x100 N=90", 1, 300, 90, 192, 0, 0, 100, 2.0f, 1.0f, false},
        {"outHw 2x4096", 1, 8192, 640, 640, 1, 1, 4096, 1.0f, 1.0f, false},
        {"16384x1280x320 res", 1, 16384, 1280, 320, 1, 1, 0, 1.0f, 1.0f, false},
    };
    for (auto& c : cases) {
        ensure(dA, capA, (size_t)c.batch * c.M * c.K);
        ensure(dB, capB, (size_t)c.batch * c.N * c.K);
        ensure(dBias, capBias, (size_t)c.N);
        ensure(dRes, capRes, (size_t)c.batch * c.M * c.N);
        ensure(dC, capC, (size_t)c.batch * c.M * c.N);
        ensure(dRef, capRef, (size_t)c.batch * c.M * c.N);
    }
    int failures = 0;
    char line[1024];
    snprintf(line, sizeof line, "%-16s %9s %7s | %9s %7s %-10s | %9s %7s %-13s | %7s | %s\n", "M x N x K", "mma ms", "TF/s", "mma+splitK", "TF/s", "(splits)",
             "wgmma ms", "TF/s", "(Gemm pick)", "speedup", "every wgmma variant: TF/s");
    table += line;
    unsigned seed = 1234;
    for (auto& cs : cases) {
        long nA = (long)cs.batch * cs.M * cs.K, nB = (long)cs.batch * cs.N * cs.K, nC = (long)cs.batch * cs.M * cs.N;
        fill_uniform<<<1024, 256>>>(dA, nA, seed++, 1.0f);
        fill_uniform<<<1024, 256>>>(dB, nB, seed++, 1.0f);
        fill_uniform<<<64, 256>>>(dBias, cs.N, seed++, 1.0f);
        fill_uniform<<<1024, 256>>>(dRes, nC, seed++, 1.0f);
        ref_gemm<<<dim3((cs.N + 15) / 16, (cs.M + 15) / 16, cs.batch), dim3(16, 16)>>>(dA, dB, dBias, dRes, dRef, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha,
                                                                                     cs.hasRes, cs.beta, cs.outHw);
        CK(cudaGetLastError());
        double worst = 0;
        int caseFail = 0;
        for (auto& v : vs) {
            fill_bits<<<1024, 256>>>(dC, nC, 0xFFFF);
            launchVariant(v, cs);
            double rel;
            if (!check(v.name.c_str(), cs, &rel)) caseFail++;
            worst = std::max(worst, rel);
        }
        int splits, kPer;
        splitPlan(cs, splits, kPer);
        double relMma, relMmaS = 0;
        fill_bits<<<1024, 256>>>(dC, nC, 0xFFFF);
        launchMma(cs, 1, cs.K);
        if (!check("gemm_mma_f16", cs, &relMma)) caseFail++;
        if (splits > 1) {
            fill_bits<<<1024, 256>>>(dC, nC, 0xFFFF);
            launchMma(cs, splits, kPer);
            if (!check("gemm_mma+splitK", cs, &relMmaS)) caseFail++;
        }
        failures += caseFail;
        printf("%-20s %s  wgmma worst rel L2 %.2e (%zu variants), gemm_mma %.2e%s\n", cs.what, caseFail ? "FAIL" : "ok  ", worst, vs.size(), relMma,
               splits > 1 ? " (split-K too)" : "");
        fflush(stdout);
        if (!cs.timed) continue;
        double flop = 2.0 * cs.batch * cs.M * cs.N * cs.K;
        float tm = timeMs([&] { launchMma(cs, 1, cs.K); });
        float tms = splits > 1 ? timeMs([&] { launchMma(cs, splits, kPer); }) : tm;
        std::string all, chosen = pick(cs.M, cs.N);
        if (std::none_of(vs.begin(), vs.end(), [&](const Variant& v) { return v.name == chosen; })) chosen = chosen.substr(6);   /* no NVRTC: the same tile */
        float tpick = 0;
        for (auto& v : vs) {
            if (v.name == "module-default") continue;
            float t = timeMs([&] { launchVariant(v, cs); });
            char b[64];
            snprintf(b, sizeof b, "%s %.0f  ", v.name.c_str(), flop / t / 1e9);
            all += b;
            if (v.name == chosen) tpick = t;
        }
        float best = std::min(tm, tms);
        char sp[32];
        snprintf(sp, sizeof sp, "(%d)", splits);
        snprintf(line, sizeof line, "%-16s %9.4f %7.1f | %9.4f %7.1f %-10s | %9.4f %7.1f %-13s | %6.2fx | %s\n", cs.what, tm, flop / tm / 1e9, tms,
                 flop / tms / 1e9, sp, tpick, tpick > 0 ? flop / tpick / 1e9 : 0.0, chosen.c_str(), tpick > 0 ? best / tpick : 0.0, all.c_str());
        table += line;
        printf("%s", line);
        fflush(stdout);
    }
    return failures;
}

/* Mirror of Gemm.wgmmaConfig (keep in sync): 128 x 160 or 128 x 128 tiles, whichever pads N less (ties: 160),
 * 3 stages, drain, 2 blocks per SM; the NVRTC-built module, as the engine runs it. */
static std::string pick(int m, int n) {
    (void)m;
    long p160 = (n + 159L) / 160 * 160, p128 = (n + 127L) / 128 * 128;
    return p160 <= p128 ? "nvrtc 128x160/s3/x2/d" : "nvrtc 128x128/s3/x2/d";
}

/* ---------------------------------------------- GEGLU ---------------------------------------------- */

typedef void (*GegluFn)(const half_t*, const half_t*, const half_t*, half_t*, int, int, int, int, int, int, float, float*, int, int);

template <int BN, int WG, int S, int MINB, bool DRAIN>
__global__ void __launch_bounds__(128 * WG, MINB) gg_variant(const half_t* a, const half_t* b, const half_t* bias, half_t* c, int batch, int m, int n, int k,
                                                             int transB, int hasBias, float alpha, float* ws, int splits, int kPer) {
    extern __shared__ uint4 sm[];
    gw_gemm<BN, WG, S, DRAIN, true>(a, b, bias, c, batch, m, n, k, hasBias, alpha, c, 0, 1.0f, 0, (unsigned char*)sm);
}

/* A GEGLU or conv build: a kernel of this binary (fn) or of the NVRTC module (drv). */
struct KVariant {
    std::string name;
    const void* fn = nullptr;
    CUfunction drv = nullptr;
    int bn, wg, stages, smem, perSm = 0, regs = 0, local = 0;
};

template <typename F>
static KVariant kvariant(const char* name, F fn, int bn, int wg, int stages) {
    KVariant v;
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

static KVariant fromNvrtc(const Variant& m, CUfunction f) {
    KVariant v;
    v.name = m.name;
    v.drv = f;
    v.bn = m.bn; v.wg = m.wg; v.stages = m.stages; v.smem = m.smem;
    static auto getAttr = (CUresult(*)(int*, CUfunction_attribute, CUfunction))dlsym(dlopenAny({"libcuda.so.1", "libcuda.so"}), "cuFuncGetAttribute");
    static auto occ = (CUresult(*)(int*, CUfunction, int, size_t))dlsym(dlopenAny({"libcuda.so.1", "libcuda.so"}), "cuOccupancyMaxActiveBlocksPerMultiprocessor");
    getAttr(&v.regs, CU_FUNC_ATTRIBUTE_NUM_REGS, f);
    getAttr(&v.local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, f);
    occ(&v.perSm, f, 128 * m.wg, m.smem);
    return v;
}

/* Kernel arguments as the engine passes them, launched from this binary (<<<>>> through cudaLaunchKernel) or the NVRTC module. */
static void launchK(const KVariant& v, unsigned blocks, void** params) {
    if (v.drv) {
        CUresult r = pLaunch(v.drv, blocks, 1, 1, 128 * v.wg, 1, 1, v.smem, (CUstream)0, params, nullptr);
        if (r != CUDA_SUCCESS) { fprintf(stderr, "cuLaunchKernel failed: %d\n", (int)r); exit(2); }
    } else {
        CK(cudaLaunchKernel(v.fn, dim3(blocks), dim3(128 * v.wg), params, v.smem, 0));
    }
}

/* refG [batch][M][N/2] = value * gelu(gate) from tmp [batch][M][N] (alpha and bias applied), the interleaved column order. */
__global__ void ref_geglu(const float* tmp, float* out, long rows, int N) {
    const int inner = N / 2;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < rows * inner; i += (long)gridDim.x * blockDim.x) {
        long r = i / inner;
        int j = (int)(i - r * inner), cv = ((j >> 3) << 4) + (j & 7);
        float v = tmp[r * N + cv], g = tmp[r * N + cv + 8];
        out[i] = v * (0.5f * g * (1.0f + erff(g * 0.70710678118654752f)));
    }
}

struct GCase {
    const char* what;
    int batch, M, N, K, hasBias;
    float alpha;
    bool timed;
};

static void launchGeglu(const KVariant& v, const GCase& cs) {
    long tiles = (long)cs.batch * ((cs.N + v.bn - 1) / v.bn) * ((cs.M + 64 * v.wg - 1) / (64 * v.wg));
    int batch = cs.batch, m = cs.M, n = cs.N, k = cs.K, transB = 1, hasBias = cs.hasBias, splits = 1, kPer = cs.K;
    float alpha = cs.alpha;
    float* ws = (float*)dC;
    const half_t* bias = cs.hasBias ? dBias : dC;
    void* params[] = {&dA, &dB, &bias, &dC, &batch, &m, &n, &k, &transB, &hasBias, &alpha, &ws, &splits, &kPer};
    launchK(v, (unsigned)tiles, params);
}

static void launchMmaGeglu(const GCase& cs) {
    const half_t* bias = cs.hasBias ? dBias : dC;
    gemm_mma_geglu_f16<<<dim3((cs.N + 127) / 128, (cs.M + 127) / 128, cs.batch), 256>>>(dA, dB, bias, dC, cs.batch, cs.M, cs.N, cs.K, 1, cs.hasBias,
                                                                                          cs.alpha, dWs, 1, cs.K);
}

static int runGeglu(const std::vector<Variant>& mods, std::string& table) {
    std::vector<KVariant> vs;
    vs.push_back(kvariant("128x160/s3/x2/d", gg_variant<160, 2, 3, 2, true>, 160, 2, 3));
    vs.push_back(kvariant("128x128/s3/x2/d", gg_variant<128, 2, 3, 2, true>, 128, 2, 3));
    vs.push_back(kvariant("128x160/s3/x2", gg_variant<160, 2, 3, 2, false>, 160, 2, 3));
    vs.push_back(kvariant("module-default", gemm_wgmma_geglu_f16, GW_BN, GW_WG, GW_STAGES));
    for (auto& m : mods) vs.push_back(fromNvrtc(m, m.drvGeglu));
    for (auto& v : vs)
        printf("geglu variant %-22s regs %3d, local %d B, dynamic smem %6d B, %d block(s)/SM\n", v.name.c_str(), v.regs, v.local, v.smem, v.perSm);
    std::vector<GCase> cases = {
        /* SD1.5 net.0.proj at batch 16: M tokens, N = 2 * inner, K */
        {"65536x2560x320", 1, 65536, 2560, 320, 1, 1.0f, true},
        {"16384x5120x640", 1, 16384, 5120, 640, 1, 1.0f, true},
        {"4096x10240x1280", 1, 4096, 10240, 1280, 1, 1.0f, true},
        /* ragged */
        {"1000x320x128", 1, 1000, 320, 128, 1, 1.0f, false},
        {"77x160x64 a=.5", 1, 77, 160, 64, 1, 0.5f, false},
        {"1x336x192", 1, 1, 336, 192, 1, 1.0f, false},
        {"b3 300x336x128 nob", 3, 300, 336, 128, 0, 1.0f, false},
        {"b2 130x2560x320", 2, 130, 2560, 320, 1, 1.0f, false},
        {"999x1264x640", 1, 999, 1264, 640, 1, 1.0f, false},
    };
    for (auto& c : cases) {
        ensure(dA, capA, (size_t)c.batch * c.M * c.K);
        ensure(dB, capB, (size_t)c.batch * c.N * c.K);
        ensure(dBias, capBias, (size_t)c.N);
        ensure(dC, capC, (size_t)c.batch * c.M * c.N / 2);
        ensure(dRef, capRef, (size_t)c.batch * c.M * c.N / 2);
        ensure(dTmp, capTmp, (size_t)c.batch * c.M * c.N);
        ensure(dRes, capRes, (size_t)1);
    }
    int failures = 0;
    char line[1024];
    snprintf(line, sizeof line, "\nGEGLU (net.0.proj + GEGLU, N = 2 * inner)\n%-16s %9s %7s | %9s %7s %-16s | %7s | %s\n", "M x N x K", "mma ms", "TF/s", "wgmma ms",
             "TF/s", "(nvrtc pick)", "speedup", "every wgmma variant: TF/s");
    table += line;
    unsigned seed = 777;
    for (auto& cs : cases) {
        long nA = (long)cs.batch * cs.M * cs.K, nB = (long)cs.batch * cs.N * cs.K, nC = (long)cs.batch * cs.M * cs.N / 2;
        fill_uniform<<<1024, 256>>>(dA, nA, seed++, 1.0f);
        fill_uniform<<<1024, 256>>>(dB, nB, seed++, 1.0f);
        fill_uniform<<<64, 256>>>(dBias, cs.N, seed++, 1.0f);
        ref_gemm<<<dim3((cs.N + 15) / 16, (cs.M + 15) / 16, cs.batch), dim3(16, 16)>>>(dA, dB, dBias, dRes, dTmp, cs.M, cs.N, cs.K, cs.hasBias, cs.alpha, 0,
                                                                                     1.0f, 0);
        ref_geglu<<<1024, 256>>>(dTmp, dRef, (long)cs.batch * cs.M, cs.N);
        CK(cudaGetLastError());
        double worst = 0;
        int caseFail = 0;
        for (auto& v : vs) {
            fill_bits<<<1024, 256>>>(dC, nC, 0xFFFF);
            launchGeglu(v, cs);
            double rel;
            if (!checkN(v.name.c_str(), cs.what, nC, &rel)) caseFail++;
            worst = std::max(worst, rel);
        }
        double relMma;
        fill_bits<<<1024, 256>>>(dC, nC, 0xFFFF);
        launchMmaGeglu(cs);
        if (!checkN("gemm_mma_geglu", cs.what, nC, &relMma)) caseFail++;
        failures += caseFail;
        printf("geglu %-20s %s  wgmma worst rel L2 %.2e (%zu variants), gemm_mma_geglu %.2e\n", cs.what, caseFail ? "FAIL" : "ok  ", worst, vs.size(), relMma);
        fflush(stdout);
        if (!cs.timed) continue;
        double flop = 2.0 * cs.batch * cs.M * cs.N * cs.K;
        float tm = timeMs([&] { launchMmaGeglu(cs); });
        std::string all, chosen = pick(cs.M, cs.N);
        float tpick = 0;
        for (auto& v : vs) {
            if (v.name == "module-default") continue;
            float t = timeMs([&] { launchGeglu(v, cs); });
            char b[64];
            snprintf(b, sizeof b, "%s %.0f  ", v.name.c_str(), flop / t / 1e9);
            all += b;
            if (v.name == chosen) tpick = t;
        }
        snprintf(line, sizeof line, "%-16s %9.4f %7.1f | %9.4f %7.1f %-16s | %6.2fx | %s\n", cs.what, tm, flop / tm / 1e9, tpick,
                 tpick > 0 ? flop / tpick / 1e9 : 0.0, chosen.c_str(), tpick > 0 ? tm / tpick : 0.0, all.c_str());
        table += line;
        printf("%s", line);
        fflush(stdout);
    }
    return failures;
}

/* ---------------------------------------------- conv ---------------------------------------------- */

typedef void (*ConvFn)(const half_t*, const half_t*, const half_t*, half_t*, int, int, int, int, int, int, int, int, int, int, int, float*, int, int,
                       const half_t*, int, float);

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

/* Direct convolution in fp32 from the original weight layout [cOut][cIn][ks][ks]: out (NCHW) = conv + bias, then (+ res) * beta.
 * grid (ceil(hw / 128), ceil(cOut / 16), n), block 128: one output pixel and 16 output channels per thread. */
__global__ void ref_conv(const half_t* x, const half_t* wgt, const half_t* bias, const half_t* res, float* out, int cIn, int h, int w, int cOut, int ks,
                         int stride, int pad, int hOut, int wOut, int hasBias, int hasRes, float beta) {
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
            const half_t* xp = x + (long)img * cIn * plane + iy * w + ix;
            for (int ci = 0; ci < cIn; ci++) {
                const float xv = jd_h2f(xp[ci * plane]);
                #pragma unroll
                for (int j = 0; j < 16; j++)
                    if (co0 + j < cOut) acc[j] = fmaf(xv, jd_h2f(wgt[(((long)(co0 + j) * cIn + ci) * ks + ky) * ks + kx]), acc[j]);
            }
        }
    for (int j = 0; j < 16 && co0 + j < cOut; j++) {
        const long o = ((long)img * cOut + co0 + j) * hw + p;
        float v = acc[j] + (hasBias ? jd_h2f(bias[co0 + j]) : 0.0f);
        if (hasRes) v = (v + jd_h2f(res[o])) * beta;
        out[o] = v;
    }
}

struct CCase {
    const char* what;
    int n, cIn, h, w, cOut, ks, stride, pad, hasBias, hasRes;
    float beta;
    bool timed;
    int xoff = 0;                                    /* x starts this many halves into its buffer (misaligned: no row path) */
    int hOut() const { return (h + 2 * pad - ks) / stride + 1; }
    int wOut() const { return (w + 2 * pad - ks) / stride + 1; }
    long cols() const { return (long)n * hOut() * wOut(); }
};

static half_t* dWt;                                  /* the tap-major copy of the weights */
static std::string caseFilter;                       /* argv[4]: only the conv cases whose name contains it */
static bool noTiming;                                /* argv[5] == "once": checks only (one launch each, for ncu) */
static size_t capWt;

static void launchConv(const KVariant& v, const CCase& cs) {
    int n = cs.n, cIn = cs.cIn, h = cs.h, w = cs.w, cOut = cs.cOut, ks = cs.ks, stride = cs.stride, pad = cs.pad, hOut = cs.hOut(), wOut = cs.wOut();
    int hasBias = cs.hasBias, splits = 1, kPer = cIn * ks * ks, hasRes = cs.hasRes;
    float beta = cs.beta;
    float* ws = dWs;
    const half_t* bias = cs.hasBias ? dBias : dC;
    const half_t* res = cs.hasRes ? dRes : dC;
    long tiles = (cs.cols() + 64 * v.wg - 1) / (64 * v.wg) * ((cOut + v.bn - 1) / v.bn);
    const half_t* x = dA + cs.xoff;
    void* params[] = {&x, &dWt, &bias, &dC, &n, &cIn, &h, &w, &cOut, &ks, &stride, &pad, &hOut, &wOut, &hasBias, &ws, &splits, &kPer, &res, &hasRes, &beta};
    launchK(v, (unsigned)tiles, params);
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
    std::vector<KVariant> vs;
    /* name: rows (the row path where it applies) or pix (always the per-pixel gather); /pref: that path's loads one k tile ahead */
    vs.push_back(kvariant("rows+pix/pref", gc_variant<160, 2, 3, 2, true, false, true>, 160, 2, 3));   /* = conv2d_wgmma_f16 */
    vs.push_back(kvariant("rows/pref+pix", gc_variant<160, 2, 3, 2, true, true, false>, 160, 2, 3));
    vs.push_back(kvariant("pix/pref", gc_variant<160, 2, 3, 2, false, false, true>, 160, 2, 3));
    vs.push_back(kvariant("pix", gc_variant<160, 2, 3, 2, false, false, false>, 160, 2, 3));
    vs.push_back(kvariant("128x160/s4 rows+pix/pref", gc_variant<160, 2, 4, 1, true, false, true>, 160, 2, 4));
    vs.push_back(kvariant("module-default", conv2d_wgmma_f16, GW_BN, GW_WG, GW_STAGES));
    for (auto& m : mods) vs.push_back(fromNvrtc(m, m.drvConv));
    for (auto& v : vs)
        printf("conv variant %-22s regs %3d, local %d B, dynamic smem %6d B, %d block(s)/SM\n", v.name.c_str(), v.regs, v.local, v.smem, v.perSm);
    std::vector<CCase> cases = {
        /* SD1.5 UNet convs at batch 16 (cIn -> cOut, spatial; bias on) */
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
        /* ragged: odd spatial sizes, cOut not a multiple of the tile, several images, stride 2 on odd sizes, 1x1, residual */
        {"n3 64>40 7x7", 3, 64, 7, 7, 40, 3, 1, 1, 1, 0, 1.0f, false},
        {"n3 128>200 9x9 res", 3, 128, 9, 9, 200, 3, 1, 1, 1, 1, 0.5f, false},
        {"n2 64>200 9x9 s2", 2, 64, 9, 9, 200, 3, 2, 1, 1, 0, 1.0f, false},
        {"n3 192>40 9x9 1x1 res", 3, 192, 9, 9, 40, 1, 1, 0, 0, 1, 0.8f, false},
        {"n2 64>320 8x8 res", 2, 64, 8, 8, 320, 3, 1, 1, 1, 1, 0.7f, false},
        {"n1 128>160 16x12", 1, 128, 16, 12, 160, 3, 1, 1, 1, 0, 1.0f, false},
        {"n2 64>96 15x13 s2 res", 2, 64, 15, 13, 96, 3, 2, 1, 1, 1, 1.0f, false},
        {"n5 320>200 7x9 nob", 5, 320, 7, 9, 200, 3, 1, 1, 0, 0, 1.0f, false},
        {"n3 64>1 9x9", 3, 64, 9, 9, 1, 3, 1, 1, 1, 0, 1.0f, false},
        /* row-path shapes: a ragged last tile, rectangles, tiles across images, 128-wide rows, 1x1 */
        {"rows n3 64>40 8x8", 3, 64, 8, 8, 40, 3, 1, 1, 1, 0, 1.0f, false},
        {"rows n2 128>96 32x16 res", 2, 128, 32, 16, 96, 3, 1, 1, 1, 1, 0.5f, false},
        {"rows n3 64>200 5x32", 3, 64, 5, 32, 200, 3, 1, 1, 1, 0, 1.0f, false},
        {"rows n1 64>160 3x128", 1, 64, 3, 128, 160, 3, 1, 1, 0, 0, 1.0f, false},
        {"rows n3 192>200 16x16 1x1 res", 3, 192, 16, 16, 200, 1, 1, 0, 1, 1, 0.8f, false},
        {"rows n2 64>64 16x16 x+1 (pix)", 2, 64, 16, 16, 64, 3, 1, 1, 1, 0, 1.0f, false, 1},
    };
    for (auto& c : cases) {
        ensure(dA, capA, (size_t)c.n * c.cIn * c.h * c.w + c.xoff);
        ensure(dB, capB, (size_t)c.cOut * c.cIn * c.ks * c.ks);
        ensure(dWt, capWt, (size_t)c.cOut * c.cIn * c.ks * c.ks);
        ensure(dBias, capBias, (size_t)c.cOut);
        ensure(dRes, capRes, (size_t)c.cOut * c.cols());
        ensure(dC, capC, (size_t)c.cOut * c.cols());
        ensure(dRef, capRef, (size_t)c.cOut * c.cols());
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
        fill_uniform<<<1024, 256>>>(dA, nX + cs.xoff, seed++, 1.0f);
        fill_uniform<<<1024, 256>>>(dB, nW, seed++, 1.0f);
        fill_uniform<<<64, 256>>>(dBias, cs.cOut, seed++, 1.0f);
        fill_uniform<<<1024, 256>>>(dRes, nC, seed++, 1.0f);
        conv_taps_f16<<<(unsigned)((nW + 255) / 256), 256>>>(dB, dWt, cs.cOut, cs.cIn, (int)taps);
        const int hw = cs.hOut() * cs.wOut();
        ref_conv<<<dim3((hw + 127) / 128, (cs.cOut + 15) / 16, cs.n), 128>>>(dA + cs.xoff, dB, dBias, dRes, dRef, cs.cIn, cs.h, cs.w, cs.cOut, cs.ks, cs.stride, cs.pad,
                                                                            cs.hOut(), cs.wOut(), cs.hasBias, cs.hasRes, cs.beta);
        CK(cudaGetLastError());
        double worst = 0;
        int caseFail = 0;
        for (auto& v : vs) {
            fill_bits<<<1024, 256>>>(dC, nC, 0xFFFF);
            launchConv(v, cs);
            double rel;
            if (!checkN(v.name.c_str(), cs.what, nC, &rel)) caseFail++;
            worst = std::max(worst, rel);
        }
        /* Gemm.splitPlan(batch 1, M = cOut, N = cols, K = cIn * taps) and Gemm.split, fp16 k tiles of 32 */
        Case gc = {cs.what, 1, cs.cOut, (int)cs.cols(), (int)(cs.cIn * taps), 0, 0, 0, 1.0f, 1.0f, false};
        int splits, kPer;
        splitPlan(gc, splits, kPer);
        double relV3;
        fill_bits<<<1024, 256>>>(dC, nC, 0xFFFF);
        launchV3(cs, splits, kPer);
        if (!checkN("conv2d_v3_f16", cs.what, nC, &relV3)) caseFail++;
        failures += caseFail;
        printf("conv %-22s %s  wgmma worst rel L2 %.2e (%zu variants), conv2d_v3 %.2e (%d split%s)\n", cs.what, caseFail ? "FAIL" : "ok  ", worst, vs.size(), relV3,
               splits, splits > 1 ? "s" : "");
        fflush(stdout);
        if (!cs.timed || noTiming) continue;
        double flop = 2.0 * cs.cols() * cs.cOut * cs.cIn * taps;
        float tv3 = timeMs([&] { launchV3(cs, splits, kPer); });
        std::string all, chosen = pick((int)cs.cols(), cs.cOut);   /* Conv2d: Gemm.wgmmaConfig(cols, cOut) */
        float tpick = 0;
        for (auto& v : vs) {
            if (v.name == "module-default") continue;
            float t = timeMs([&] { launchConv(v, cs); });
            char b[64];
            snprintf(b, sizeof b, "%s %.0f  ", v.name.c_str(), flop / t / 1e9);
            all += b;
            if (v.name == chosen) tpick = t;
        }
        char sp[16];
        snprintf(sp, sizeof sp, "(%d)", splits);
        snprintf(line, sizeof line, "%-18s %9.4f %7.1f %-9s | %9.4f %7.1f %-21s | %6.2fx | %s\n", cs.what, tv3, flop / tv3 / 1e9, sp, tpick,
                 tpick > 0 ? flop / tpick / 1e9 : 0.0, chosen.c_str(), tpick > 0 ? tv3 / tpick : 0.0, all.c_str());
        table += line;
        printf("%s", line);
        fflush(stdout);
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
    CK(cudaGetDeviceProperties(&prop, 0));
    smCount = prop.multiProcessorCount;
    printf("device: %s (sm_%d%d, %d SMs), parts: %s\n", prop.name, prop.major, prop.minor, smCount, parts.c_str());
    if (prop.major != 9 || prop.minor != 0) { printf("needs an sm_90 GPU (H100/H200)\n"); return 1; }

    std::vector<Variant> vs;
    if (parts.find("gemm") != std::string::npos) {
        /*                   BN WG S MINB DRAIN */
        vs.push_back(variant<128, 2, 3, 2, true>());
        vs.push_back(variant<160, 2, 3, 2, true>());
        vs.push_back(variant<160, 2, 3, 2, false>());
        vs.push_back(variant<192, 2, 3, 1, true>());
        vs.push_back(variant<256, 2, 4, 1, false>());
        vs.push_back(variant<256, 2, 3, 1, true>());
        vs.push_back(variant<160, 4, 4, 1, false>());
        vs.push_back(variant<160, 4, 3, 1, true>());
        Variant d;                                   /* the module's own entry point with its -D defaults */
        d.name = "module-default";
        d.fn = gemm_wgmma_f16;
        d.bn = GW_BN; d.wg = GW_WG; d.stages = GW_STAGES; d.smem = gw_smem_bytes(GW_BN, GW_WG, GW_STAGES);
        CK(cudaFuncSetAttribute((const void*)d.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, d.smem));
        CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&d.perSm, d.fn, 128 * GW_WG, d.smem));
        vs.push_back(d);
    }
    CK(cudaFree(0));                                 /* the primary context, current for the driver calls too */
    std::vector<Variant> mods;                       /* the NVRTC-built modules (Gemm.Wgmma's two configurations) */
    for (int bn : {160, 128}) {
        Variant v;
        if (nvrtcVariant(kernelsDir, bn, v)) {
            mods.push_back(v);
            if (parts.find("gemm") != std::string::npos) vs.push_back(v);
        }
    }
    for (auto& v : vs) {
        cudaFuncAttributes at = {};
        if (v.fn) CK(cudaFuncGetAttributes(&at, (const void*)v.fn));
        else { at.numRegs = v.regs; at.localSizeBytes = v.local; }
        printf("variant %-20s regs %3d, local %zu B, dynamic smem %6d B, %d block(s)/SM\n", v.name.c_str(), at.numRegs, at.localSizeBytes, v.smem, v.perSm);
    }
    CK(cudaMalloc(&dWs, 64L << 20));
    CK(cudaMalloc(&dSums, 2 * sizeof(double)));
    CK(cudaMalloc(&dBad, sizeof(unsigned long long)));

    int failures = 0;
    std::string table;
    if (parts.find("gemm") != std::string::npos) failures += runGemm(vs, table);
    if (parts.find("geglu") != std::string::npos) failures += runGeglu(mods, table);
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
