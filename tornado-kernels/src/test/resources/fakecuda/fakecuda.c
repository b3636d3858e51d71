/*
 * A host-memory stand-in for libcuda + libnvrtc, for CudaFakeDriverTest on machines without a GPU. Built with the real
 * cuda.h so every driver function is defined with the toolkit's own prototype and exported under the symbol its macro
 * maps to (cuMemAlloc -> cuMemAlloc_v2, cuGraphInstantiate -> cuGraphInstantiateWithFlags, ...); NVRTC prototypes are
 * declared from the NVRTC documentation. "Device" pointers are host pointers; the kernels of kernels/cudatest.cl and
 * kernels/cudatest.cu are implemented in C over the launch grid; stream capture records launches for graph replay.
 */
#include <cuda.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAKE_TOTAL (1ull << 30)

/* ---------- bookkeeping ---------- */

static int initialized, ctx_refs, ctx_storage, launches, compiles, max_dyn_shared_set;
static CUcontext current;
static size_t in_use;

int fake_compiles(void) { return compiles; }
int fake_launches(void) { return launches; }
int fake_ctx_refs(void) { return ctx_refs; }
long long fake_in_use(void) { return (long long)in_use; }

struct alloc { void *p; size_t n; struct alloc *next; };
static struct alloc *allocs;

static struct alloc *find_alloc(CUdeviceptr d, size_t n) {
    for (struct alloc *a = allocs; a; a = a->next) {
        uintptr_t lo = (uintptr_t)a->p, hi = lo + a->n;
        if ((uintptr_t)d >= lo && (uintptr_t)d + n <= hi) return a;
    }
    return NULL;
}

#define NEED_INIT if (!initialized) return CUDA_ERROR_NOT_INITIALIZED
#define NEED_CTX NEED_INIT; if (current != (CUcontext)&ctx_storage || ctx_refs <= 0) return CUDA_ERROR_INVALID_CONTEXT

/* ---------- kernels ---------- */

typedef struct { unsigned g[3], b[3], shared; } dims;
typedef CUresult (*kernel_fn)(const dims *d, void **p, int maxDynShared);
struct fake_kernel { const char *name; int nparams; int sizes[6]; kernel_fn run; };

#define FOR_ALL_THREADS(d) \
    for (unsigned gz = 0; gz < (d)->g[2] * (d)->b[2]; gz++) \
    for (unsigned gy = 0; gy < (d)->g[1] * (d)->b[1]; gy++) \
    for (unsigned gx = 0; gx < (d)->g[0] * (d)->b[0]; gx++)

static CUresult k_saxpy(const dims *d, void **p, int m) {
    float *y = *(float **)p[0]; const float *x = *(const float **)p[1]; float a = *(float *)p[2]; int n = *(int *)p[3];
    if (!find_alloc((CUdeviceptr)(uintptr_t)y, (size_t)n * 4) || !find_alloc((CUdeviceptr)(uintptr_t)x, (size_t)n * 4)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    FOR_ALL_THREADS(d) if ((int)gx < n && gy == 0 && gz == 0) y[gx] = a * x[gx] + y[gx];
    return CUDA_SUCCESS;
}

static CUresult k_scale_half(const dims *d, void **p, int m) {
    _Float16 *out = *(_Float16 **)p[0]; const _Float16 *in = *(const _Float16 **)p[1]; float s = *(float *)p[2]; long long n = *(long long *)p[3];
    if (!find_alloc((CUdeviceptr)(uintptr_t)out, (size_t)n * 2) || !find_alloc((CUdeviceptr)(uintptr_t)in, (size_t)n * 2)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    FOR_ALL_THREADS(d) if ((long long)gx < n && gy == 0 && gz == 0) out[gx] = (_Float16)(s * (float)in[gx]);
    return CUDA_SUCCESS;
}

static CUresult k_iota(const dims *d, void **p, int m) {
    int *out = *(int **)p[0]; int start = *(int *)p[1]; int n = *(int *)p[2];
    if (!find_alloc((CUdeviceptr)(uintptr_t)out, (size_t)n * 4)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    FOR_ALL_THREADS(d) if ((int)gx < n && gy == 0 && gz == 0) out[gx] = start + (int)gx;
    return CUDA_SUCCESS;
}

static CUresult k_row_sum(const dims *d, void **p, int m) {
    float *out = *(float **)p[0]; const float *x = *(const float **)p[1]; int rows = *(int *)p[2], cols = *(int *)p[3];
    if (d->b[0] != 64 || d->g[0] != 1) return CUDA_ERROR_INVALID_VALUE; /* the kernel needs exactly 64 lanes per row */
    if (!find_alloc((CUdeviceptr)(uintptr_t)out, (size_t)rows * 4) || !find_alloc((CUdeviceptr)(uintptr_t)x, (size_t)rows * cols * 4)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    for (unsigned r = 0; r < d->g[1] * d->b[1]; r++) {
        if ((int)r >= rows) continue;
        float acc = 0;
        for (int c = 0; c < cols; c++) acc += x[(long)r * cols + c];
        out[r] = acc;
    }
    return CUDA_SUCCESS;
}

static CUresult k_fill3d(const dims *d, void **p, int m) {
    int *out = *(int **)p[0]; int nx = *(int *)p[1], ny = *(int *)p[2], nz = *(int *)p[3];
    if (!find_alloc((CUdeviceptr)(uintptr_t)out, (size_t)nx * ny * nz * 4)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    FOR_ALL_THREADS(d) if ((int)gx < nx && (int)gy < ny && (int)gz < nz) out[((long)gz * ny + gy) * nx + gx] = (int)gx + 100 * (int)gy + 10000 * (int)gz;
    return CUDA_SUCCESS;
}

static CUresult k_reverse_tiles(const dims *d, void **p, int maxDyn) {
    float *out = *(float **)p[0]; const float *in = *(const float **)p[1]; int n = *(int *)p[2];
    if (d->shared > 48 * 1024 && (int)d->shared > maxDyn) return CUDA_ERROR_INVALID_VALUE; /* as the driver: the attribute must be raised */
    int per = (int)d->shared / 4;
    if (per <= 0) return CUDA_ERROR_INVALID_VALUE;
    for (unsigned blk = 0; blk < d->g[0]; blk++) {
        long base = (long)blk * per;
        long count = n - base < per ? n - base : per;
        for (long i = 0; i < count; i++) out[base + i] = in[base + count - 1 - i];
    }
    return CUDA_SUCCESS;
}

static struct fake_kernel KERNELS[] = {
    {"saxpy", 4, {8, 8, 4, 4}, k_saxpy},
    {"scale_half", 4, {8, 8, 4, 8}, k_scale_half},
    {"iota", 3, {8, 4, 4}, k_iota},
    {"row_sum", 4, {8, 8, 4, 4}, k_row_sum},
    {"fill3d", 4, {8, 4, 4, 4}, k_fill3d},
    {"reverse_tiles", 3, {8, 8, 4}, k_reverse_tiles},
};

struct fake_function { struct fake_kernel *k; int maxDynShared; };
struct fake_module { char *image; struct fake_function fns[sizeof KERNELS / sizeof KERNELS[0]]; };

struct launch_rec { struct fake_function *f; dims d; unsigned char params[6][8]; struct launch_rec *next; };
struct fake_stream { int capturing; struct launch_rec *head, *tail; };
struct fake_graph { struct launch_rec *head; };

static CUresult run_launch(struct fake_function *f, const dims *d, void **params) {
    launches++;
    return f->k->run(d, params, f->maxDynShared);
}

static CUresult run_record(struct launch_rec *r) {
    void *ptrs[6];
    for (int i = 0; i < r->f->k->nparams; i++) ptrs[i] = r->params[i];
    return run_launch(r->f, &r->d, ptrs);
}

/* ---------- driver API ---------- */

CUresult CUDAAPI cuInit(unsigned int Flags) {
    if (Flags != 0) return CUDA_ERROR_INVALID_VALUE;
    initialized = 1;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDriverGetVersion(int *driverVersion) { *driverVersion = 13000; return CUDA_SUCCESS; }

CUresult CUDAAPI cuDeviceGetCount(int *count) { NEED_INIT; *count = 1; return CUDA_SUCCESS; }

CUresult CUDAAPI cuDeviceGet(CUdevice *device, int ordinal) {
    NEED_INIT;
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *device = 0;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char *name, int len, CUdevice dev) {
    NEED_INIT;
    if (dev != 0 || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "Fake H100 80GB HBM3");
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev) {
    NEED_INIT;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (attrib) {
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *pi = 9; return CUDA_SUCCESS;
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *pi = 0; return CUDA_SUCCESS;
        case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *pi = 132; return CUDA_SUCCESS;
        case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *pi = 232448; return CUDA_SUCCESS;
        default: return CUDA_ERROR_INVALID_VALUE;
    }
}

CUresult CUDAAPI cuDeviceTotalMem(size_t *bytes, CUdevice dev) { NEED_INIT; *bytes = FAKE_TOTAL; return CUDA_SUCCESS; }

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
    NEED_INIT;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    ctx_refs++;
    *pctx = (CUcontext)&ctx_storage;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev) {
    NEED_INIT;
    if (dev != 0 || ctx_refs <= 0) return CUDA_ERROR_INVALID_VALUE;
    ctx_refs--;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx) {
    NEED_INIT;
    if (ctx != NULL && ctx != (CUcontext)&ctx_storage) return CUDA_ERROR_INVALID_CONTEXT;
    current = ctx;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamCreate(CUstream *phStream, unsigned int Flags) {
    NEED_CTX;
    if (Flags != CU_STREAM_NON_BLOCKING && Flags != CU_STREAM_DEFAULT) return CUDA_ERROR_INVALID_VALUE;
    *phStream = (CUstream)calloc(1, sizeof(struct fake_stream));
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamDestroy(CUstream hStream) { NEED_CTX; if (!hStream) return CUDA_ERROR_INVALID_HANDLE; free(hStream); return CUDA_SUCCESS; }

CUresult CUDAAPI cuStreamSynchronize(CUstream hStream) {
    NEED_CTX;
    if (!hStream) return CUDA_ERROR_INVALID_HANDLE;
    if (((struct fake_stream *)hStream)->capturing) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAlloc(CUdeviceptr *dptr, size_t bytesize) {
    NEED_CTX;
    if (bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    if (bytesize > FAKE_TOTAL - in_use) return CUDA_ERROR_OUT_OF_MEMORY;
    void *p = malloc(bytesize);
    if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
    memset(p, 0xAB, bytesize); /* garbage, so the backend must zero it */
    struct alloc *a = malloc(sizeof *a);
    a->p = p; a->n = bytesize; a->next = allocs; allocs = a;
    in_use += bytesize;
    *dptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemFree(CUdeviceptr dptr) {
    NEED_CTX;
    for (struct alloc **pa = &allocs; *pa; pa = &(*pa)->next) {
        if ((CUdeviceptr)(uintptr_t)(*pa)->p == dptr) {
            struct alloc *a = *pa;
            *pa = a->next;
            in_use -= a->n;
            free(a->p);
            free(a);
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuMemGetInfo(size_t *free_, size_t *total) { NEED_CTX; *free_ = FAKE_TOTAL - in_use; *total = FAKE_TOTAL; return CUDA_SUCCESS; }

CUresult CUDAAPI cuMemAllocHost(void **pp, size_t bytesize) {
    NEED_CTX;
    *pp = aligned_alloc(4096, (bytesize + 4095) / 4096 * 4096);
    return *pp ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult CUDAAPI cuMemFreeHost(void *p) { NEED_CTX; free(p); return CUDA_SUCCESS; }

static CUresult stream_ok(CUstream s) {
    if (!s) return CUDA_ERROR_INVALID_HANDLE; /* the backend never uses the legacy NULL stream */
    if (((struct fake_stream *)s)->capturing) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyHtoDAsync(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream) {
    NEED_CTX;
    CUresult rc = stream_ok(hStream);
    if (rc) return rc;
    if (!find_alloc(dstDevice, ByteCount)) return CUDA_ERROR_INVALID_VALUE;
    memcpy((void *)(uintptr_t)dstDevice, srcHost, ByteCount);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyDtoHAsync(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream) {
    NEED_CTX;
    CUresult rc = stream_ok(hStream);
    if (rc) return rc;
    if (!find_alloc(srcDevice, ByteCount)) return CUDA_ERROR_INVALID_VALUE;
    memcpy(dstHost, (void *)(uintptr_t)srcDevice, ByteCount);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyDtoDAsync(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream) {
    NEED_CTX;
    CUresult rc = stream_ok(hStream);
    if (rc) return rc;
    if (!find_alloc(srcDevice, ByteCount) || !find_alloc(dstDevice, ByteCount)) return CUDA_ERROR_INVALID_VALUE;
    memmove((void *)(uintptr_t)dstDevice, (void *)(uintptr_t)srcDevice, ByteCount);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream) {
    NEED_CTX;
    CUresult rc = stream_ok(hStream);
    if (rc) return rc;
    if (!find_alloc(dstDevice, N * 4)) return CUDA_ERROR_INVALID_VALUE;
    unsigned int *p = (unsigned int *)(uintptr_t)dstDevice;
    for (size_t i = 0; i < N; i++) p[i] = ui;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int numOptions, CUjit_option *options, void **optionValues) {
    NEED_CTX;
    char *log = NULL;
    unsigned int logSize = 0;
    for (unsigned int i = 0; i < numOptions; i++) {
        if (options[i] == CU_JIT_ERROR_LOG_BUFFER) log = (char *)optionValues[i];
        else if (options[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) logSize = (unsigned int)(uintptr_t)optionValues[i];
        else return CUDA_ERROR_INVALID_VALUE;
    }
    const char *img = (const char *)image;
    int elf = memcmp(img, "\177ELF", 4) == 0;
    int ptx = strncmp(img, "//fake ptx", 10) == 0;
    if (ptx && memchr(img, 0, 1 << 16) == NULL) ptx = 0; /* PTX must be NUL-terminated */
    if (!elf && !ptx) {
        if (log && logSize > 0) snprintf(log, logSize, "fake jit: image is neither a cubin nor NUL-terminated PTX");
        return CUDA_ERROR_INVALID_IMAGE;
    }
    struct fake_module *m = calloc(1, sizeof *m);
    m->image = strdup(elf ? img + 4 : img);
    for (size_t i = 0; i < sizeof KERNELS / sizeof KERNELS[0]; i++) m->fns[i].k = &KERNELS[i];
    *module = (CUmodule)m;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleUnload(CUmodule hmod) {
    NEED_CTX;
    struct fake_module *m = (struct fake_module *)hmod;
    if (!m) return CUDA_ERROR_INVALID_HANDLE;
    free(m->image);
    free(m);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name) {
    NEED_CTX;
    struct fake_module *m = (struct fake_module *)hmod;
    if (!m) return CUDA_ERROR_INVALID_HANDLE;
    for (size_t i = 0; i < sizeof KERNELS / sizeof KERNELS[0]; i++) {
        if (strcmp(KERNELS[i].name, name) == 0) {
            *hfunc = (CUfunction)&m->fns[i];
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_NOT_FOUND;
}

CUresult CUDAAPI cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value) {
    NEED_CTX;
    if (attrib != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || value < 0 || value > 232448) return CUDA_ERROR_INVALID_VALUE;
    ((struct fake_function *)hfunc)->maxDynShared = value;
    max_dyn_shared_set = value;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                                unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                                unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra) {
    NEED_CTX;
    struct fake_function *fn = (struct fake_function *)f;
    if (!fn || !hStream || extra != NULL || kernelParams == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (gridDimX == 0 || gridDimY == 0 || gridDimZ == 0 || blockDimX * blockDimY * blockDimZ > 1024 || blockDimX * blockDimY * blockDimZ == 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (sharedMemBytes > 48 * 1024 && (int)sharedMemBytes > fn->maxDynShared) return CUDA_ERROR_INVALID_VALUE;
    dims d = {{gridDimX, gridDimY, gridDimZ}, {blockDimX, blockDimY, blockDimZ}, sharedMemBytes};
    struct fake_stream *s = (struct fake_stream *)hStream;
    if (s->capturing) { /* parameters are copied at launch time, as the driver does */
        struct launch_rec *r = calloc(1, sizeof *r);
        r->f = fn;
        r->d = d;
        for (int i = 0; i < fn->k->nparams; i++) memcpy(r->params[i], kernelParams[i], (size_t)fn->k->sizes[i]);
        if (s->tail) s->tail->next = r; else s->head = r;
        s->tail = r;
        return CUDA_SUCCESS;
    }
    return run_launch(fn, &d, kernelParams);
}

struct fake_event { double t; int recorded; };

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

CUresult CUDAAPI cuEventCreate(CUevent *phEvent, unsigned int Flags) {
    NEED_CTX;
    if (Flags != CU_EVENT_DEFAULT) return CUDA_ERROR_INVALID_VALUE;
    *phEvent = (CUevent)calloc(1, sizeof(struct fake_event));
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventRecord(CUevent hEvent, CUstream hStream) {
    NEED_CTX;
    CUresult rc = stream_ok(hStream);
    if (rc) return rc;
    ((struct fake_event *)hEvent)->t = now_ms();
    ((struct fake_event *)hEvent)->recorded = 1;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventSynchronize(CUevent hEvent) { NEED_CTX; return ((struct fake_event *)hEvent)->recorded ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE; }

CUresult CUDAAPI cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd) {
    NEED_CTX;
    struct fake_event *a = (struct fake_event *)hStart, *b = (struct fake_event *)hEnd;
    if (!a->recorded || !b->recorded) return CUDA_ERROR_NOT_READY;
    *pMilliseconds = (float)(b->t - a->t);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventDestroy(CUevent hEvent) { NEED_CTX; free(hEvent); return CUDA_SUCCESS; }

CUresult CUDAAPI cuGetErrorName(CUresult error, const char **pStr) {
    switch (error) {
        case CUDA_SUCCESS: *pStr = "CUDA_SUCCESS"; return CUDA_SUCCESS;
        case CUDA_ERROR_INVALID_VALUE: *pStr = "CUDA_ERROR_INVALID_VALUE"; return CUDA_SUCCESS;
        case CUDA_ERROR_OUT_OF_MEMORY: *pStr = "CUDA_ERROR_OUT_OF_MEMORY"; return CUDA_SUCCESS;
        case CUDA_ERROR_NOT_FOUND: *pStr = "CUDA_ERROR_NOT_FOUND"; return CUDA_SUCCESS;
        case CUDA_ERROR_INVALID_IMAGE: *pStr = "CUDA_ERROR_INVALID_IMAGE"; return CUDA_SUCCESS;
        case CUDA_ERROR_ILLEGAL_ADDRESS: *pStr = "CUDA_ERROR_ILLEGAL_ADDRESS"; return CUDA_SUCCESS;
        default: *pStr = NULL; return CUDA_ERROR_INVALID_VALUE;
    }
}

CUresult CUDAAPI cuGetErrorString(CUresult error, const char **pStr) {
    switch (error) {
        case CUDA_ERROR_OUT_OF_MEMORY: *pStr = "out of memory"; return CUDA_SUCCESS;
        case CUDA_ERROR_INVALID_VALUE: *pStr = "invalid argument"; return CUDA_SUCCESS;
        default: *pStr = "fake error"; return CUDA_SUCCESS;
    }
}

CUresult CUDAAPI cuStreamBeginCapture(CUstream hStream, CUstreamCaptureMode mode) {
    NEED_CTX;
    struct fake_stream *s = (struct fake_stream *)hStream;
    if (!s || s->capturing || mode > CU_STREAM_CAPTURE_MODE_RELAXED) return CUDA_ERROR_INVALID_VALUE;
    s->capturing = 1;
    s->head = s->tail = NULL;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamEndCapture(CUstream hStream, CUgraph *phGraph) {
    NEED_CTX;
    struct fake_stream *s = (struct fake_stream *)hStream;
    if (!s || !s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
    struct fake_graph *g = calloc(1, sizeof *g);
    g->head = s->head;
    s->capturing = 0;
    s->head = s->tail = NULL;
    *phGraph = (CUgraph)g;
    return CUDA_SUCCESS;
}

/* cuda.h maps cuGraphInstantiate to cuGraphInstantiateWithFlags */
CUresult CUDAAPI cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags) {
    NEED_CTX;
    if (!hGraph || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    struct fake_graph *exec = calloc(1, sizeof *exec);
    struct launch_rec **tail = &exec->head;
    for (struct launch_rec *r = ((struct fake_graph *)hGraph)->head; r; r = r->next) { /* the exec owns a copy */
        struct launch_rec *c = malloc(sizeof *c);
        *c = *r;
        c->next = NULL;
        *tail = c;
        tail = &c->next;
    }
    *phGraphExec = (CUgraphExec)exec;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
    NEED_CTX;
    CUresult rc = stream_ok(hStream);
    if (rc) return rc;
    for (struct launch_rec *r = ((struct fake_graph *)hGraphExec)->head; r; r = r->next) {
        rc = run_record(r);
        if (rc) return rc;
    }
    return CUDA_SUCCESS;
}

static void free_recs(struct launch_rec *r) {
    while (r) {
        struct launch_rec *n = r->next;
        free(r);
        r = n;
    }
}

CUresult CUDAAPI cuGraphExecDestroy(CUgraphExec hGraphExec) { NEED_CTX; free_recs(((struct fake_graph *)hGraphExec)->head); free(hGraphExec); return CUDA_SUCCESS; }

CUresult CUDAAPI cuGraphDestroy(CUgraph hGraph) { NEED_CTX; free_recs(((struct fake_graph *)hGraph)->head); free(hGraph); return CUDA_SUCCESS; }

/* ---------- NVRTC (prototypes as documented for nvrtc.h) ---------- */

typedef enum { NVRTC_SUCCESS = 0, NVRTC_ERROR_INVALID_INPUT = 3, NVRTC_ERROR_INVALID_PROGRAM = 4, NVRTC_ERROR_INVALID_OPTION = 5,
               NVRTC_ERROR_COMPILATION = 6 } nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;
struct _nvrtcProgram { char *src, *name, *log, *out; size_t outSize; int cubin; };

nvrtcResult nvrtcVersion(int *major, int *minor) { *major = 13; *minor = 0; return NVRTC_SUCCESS; }

const char *nvrtcGetErrorString(nvrtcResult result) {
    switch (result) {
        case NVRTC_SUCCESS: return "NVRTC_SUCCESS";
        case NVRTC_ERROR_INVALID_OPTION: return "NVRTC_ERROR_INVALID_OPTION";
        case NVRTC_ERROR_COMPILATION: return "NVRTC_ERROR_COMPILATION";
        default: return "NVRTC_ERROR unknown";
    }
}

nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
                               const char *const *headers, const char *const *includeNames) {
    if (!prog || !src || numHeaders != 0 || headers != NULL || includeNames != NULL) return NVRTC_ERROR_INVALID_INPUT;
    struct _nvrtcProgram *p = calloc(1, sizeof *p);
    p->src = strdup(src);
    p->name = strdup(name ? name : "default_program");
    *prog = p;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char *const *options) {
    if (!prog) return NVRTC_ERROR_INVALID_PROGRAM;
    compiles++;
    const char *arch = NULL;
    int breakIt = 0, noCubin = 0, std17 = 0;
    size_t optLen = 1;
    for (int i = 0; i < numOptions; i++) {
        if (strncmp(options[i], "--gpu-architecture=", 19) == 0) arch = options[i] + 19;
        if (strcmp(options[i], "-DJD_TEST_BREAK") == 0) breakIt = 1;
        if (strcmp(options[i], "-DFAKE_NO_CUBIN") == 0) noCubin = 1;
        if (strcmp(options[i], "--std=c++17") == 0) std17 = 1;
        optLen += strlen(options[i]) + 1;
    }
    if (!arch || !std17) return NVRTC_ERROR_INVALID_OPTION;
    if (strstr(prog->src, "#define JD_CUDA 1") != prog->src) return NVRTC_ERROR_INVALID_INPUT; /* KernelSource.cuda text */
    char *opts = calloc(1, optLen);
    for (int i = 0; i < numOptions; i++) { strcat(opts, options[i]); strcat(opts, " "); }
    free(prog->log);
    free(prog->out);
    prog->out = NULL;
    prog->log = NULL;
    if (breakIt) {
        size_t n = strlen(prog->name) + 128;
        prog->log = malloc(n);
        snprintf(prog->log, n, "%s(48): error: identifier \"undefined_identifier_xyz\" is undefined\n\n1 error detected", prog->name);
        free(opts);
        return NVRTC_ERROR_COMPILATION;
    }
    int real = strncmp(arch, "sm_", 3) == 0;
    if (real && noCubin) { free(opts); return NVRTC_ERROR_INVALID_OPTION; }
    size_t n = strlen(opts) + strlen(prog->name) + 64;
    prog->out = calloc(1, n);
    if (real) {
        memcpy(prog->out, "\177ELF", 4);
        snprintf(prog->out + 4, n - 4, "fake cubin %s %s", prog->name, opts);
        prog->outSize = 4 + strlen(prog->out + 4);
    } else {
        snprintf(prog->out, n, "//fake ptx %s %s", prog->name, opts);
        prog->outSize = strlen(prog->out) + 1; /* includes the NUL, as NVRTC does */
    }
    prog->cubin = real;
    prog->log = strdup("");
    free(opts);
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet) {
    if (!prog) return NVRTC_ERROR_INVALID_PROGRAM;
    *logSizeRet = (prog->log ? strlen(prog->log) : 0) + 1;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log) {
    if (!prog) return NVRTC_ERROR_INVALID_PROGRAM;
    strcpy(log, prog->log ? prog->log : "");
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet) {
    if (!prog || !prog->out) return NVRTC_ERROR_INVALID_PROGRAM;
    *cubinSizeRet = prog->cubin ? prog->outSize : 0;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin) {
    if (!prog || !prog->out || !prog->cubin) return NVRTC_ERROR_INVALID_PROGRAM;
    memcpy(cubin, prog->out, prog->outSize);
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet) {
    if (!prog || !prog->out || prog->cubin) return NVRTC_ERROR_INVALID_PROGRAM;
    *ptxSizeRet = prog->outSize;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx) {
    if (!prog || !prog->out || prog->cubin) return NVRTC_ERROR_INVALID_PROGRAM;
    memcpy(ptx, prog->out, prog->outSize);
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog) {
    if (!prog || !*prog) return NVRTC_ERROR_INVALID_PROGRAM;
    free((*prog)->src);
    free((*prog)->name);
    free((*prog)->log);
    free((*prog)->out);
    free(*prog);
    *prog = NULL;
    return NVRTC_SUCCESS;
}
