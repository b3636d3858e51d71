package jdiffusion.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * FFM bindings to the CUDA driver API (libcuda.so.1). Signatures follow cuda.h of CUDA 13 with the symbol each
 * macro resolves to (cuMemAlloc -> cuMemAlloc_v2, ...): CUresult and enums are int, CUdevice is int, handles are
 * pointers, CUdeviceptr is a 64-bit unsigned long long, size_t is long. Library lookup order:
 * -Djdiffusion.cuda.lib=path, the sonames through the dynamic loader, then the CUDA directories.
 */
final class CudaDriver {
    static final int CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_OUT_OF_MEMORY = 2, CUDA_ERROR_STUB_LIBRARY = 34,
            CUDA_ERROR_NO_DEVICE = 100, CUDA_ERROR_NOT_FOUND = 500;
    static final int ATTR_MAX_SHARED_MEMORY_PER_BLOCK = 8, ATTR_MULTIPROCESSOR_COUNT = 16, ATTR_COMPUTE_CAPABILITY_MAJOR = 75,
            ATTR_COMPUTE_CAPABILITY_MINOR = 76, ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
    static final int FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
    static final int STREAM_NON_BLOCKING = 1;
    static final int EVENT_DEFAULT = 0;
    static final int STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
    static final int JIT_ERROR_LOG_BUFFER = 5, JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

    private static final Map<String, CudaDriver> LOADED = new ConcurrentHashMap<>();

    final String library;
    private final MethodHandle cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute,
            cuDeviceTotalMem, cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuStreamCreate, cuStreamDestroy,
            cuStreamSynchronize, cuMemAlloc, cuMemFree, cuMemGetInfo, cuMemAllocHost, cuMemFreeHost, cuMemcpyHtoDAsync,
            cuMemcpyDtoHAsync, cuMemcpyDtoDAsync, cuMemsetD32Async, cuModuleLoadDataEx, cuModuleUnload, cuModuleGetFunction,
            cuFuncSetAttribute, cuLaunchKernel, cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy,
            cuGetErrorName, cuGetErrorString, cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiateWithFlags, cuGraphLaunch,
            cuGraphExecDestroy, cuGraphDestroy;
    /** The exported names actually bound, in binding order (for the report and `devices`). */
    final List<String> bound = new ArrayList<>();

    /** The driver named by -Djdiffusion.cuda.lib or found by the default search. */
    static CudaDriver get() {
        return get(System.getProperty("jdiffusion.cuda.lib", ""));
    }

    /** The driver at {@code override} (a full path), or found by the default search when it is empty. */
    static CudaDriver get(String override) {
        CudaDriver d = LOADED.get(override);
        if (d != null) return d;
        synchronized (LOADED) {
            return LOADED.computeIfAbsent(override, o -> new CudaDriver(open("the CUDA driver library", "jdiffusion.cuda.lib", o, List.of("libcuda.so.1", "libcuda.so"))));
        }
    }

    /** A loaded shared library: its symbols and where it was found. */
    record Library(SymbolLookup symbols, String path) {
    }

    /** Search directories after the dynamic loader: $CUDA_PATH/lib64, /usr/local/cuda/lib64, targets/x86_64-linux/lib, the multiarch lib dir. */
    static List<Path> searchDirs() {
        Set<Path> dirs = new LinkedHashSet<>();
        String cudaPath = System.getenv("CUDA_PATH");
        if (cudaPath != null && !cudaPath.isBlank()) dirs.add(Path.of(cudaPath, "lib64"));
        dirs.add(Path.of("/usr/local/cuda/lib64"));
        dirs.add(Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));
        dirs.add(Path.of("/usr/lib/x86_64-linux-gnu"));
        return List.copyOf(dirs);
    }

    /** Opens a library: the override path if given, else each soname through dlopen, else each soname in {@link #searchDirs}. */
    static Library open(String what, String property, String override, List<String> sonames) {
        SignalHandlers.capture(); // before a driver library is in the process
        List<String> tried = new ArrayList<>();
        if (override != null && !override.isBlank()) {
            Path p = Path.of(override);
            if (!Files.exists(p)) throw new KernelException("cannot load " + what + ": -D" + property + "=" + override + " does not exist");
            try {
                return new Library(SymbolLookup.libraryLookup(p, Arena.global()), p.toString());
            } catch (IllegalArgumentException e) {
                throw new KernelException("cannot load " + what + " from -D" + property + "=" + override + ": " + e.getMessage(), e);
            }
        }
        for (String soname : sonames) {
            try {
                return new Library(SymbolLookup.libraryLookup(soname, Arena.global()), soname);
            } catch (IllegalArgumentException e) {
                tried.add(soname + " through the dynamic loader");
            }
        }
        for (Path dir : searchDirs()) {
            for (String soname : sonames) {
                Path p = dir.resolve(soname);
                if (!Files.exists(p)) continue;
                try {
                    return new Library(SymbolLookup.libraryLookup(p, Arena.global()), p.toString());
                } catch (IllegalArgumentException e) {
                    tried.add(p + " (" + e.getMessage() + ")");
                }
            }
        }
        throw new KernelException("cannot load " + what + ": looked for " + sonames + " through the dynamic loader and in " + searchDirs()
                + " (tried: " + String.join("; ", tried) + "); install the NVIDIA driver / CUDA toolkit or set -D" + property + "=/full/path");
    }

    private CudaDriver(Library lib) {
        this.library = lib.path();
        Linker linker = Linker.nativeLinker();
        FunctionDescriptor iA = FunctionDescriptor.of(JAVA_INT, ADDRESS);
        FunctionDescriptor iAA = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS);
        FunctionDescriptor iAI = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT);
        FunctionDescriptor iI = FunctionDescriptor.of(JAVA_INT, JAVA_INT);
        FunctionDescriptor iIA = FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS);
        // CUresult cuInit(unsigned int Flags)
        cuInit = bind(lib, linker, iI, "cuInit");
        // CUresult cuDriverGetVersion(int *driverVersion)
        cuDriverGetVersion = bind(lib, linker, iA, "cuDriverGetVersion");
        // CUresult cuDeviceGetCount(int *count)
        cuDeviceGetCount = bind(lib, linker, iA, "cuDeviceGetCount");
        // CUresult cuDeviceGet(CUdevice *device, int ordinal)
        cuDeviceGet = bind(lib, linker, iAI, "cuDeviceGet");
        // CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
        cuDeviceGetName = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), "cuDeviceGetName");
        // CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
        cuDeviceGetAttribute = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), "cuDeviceGetAttribute");
        // CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
        cuDeviceTotalMem = bind(lib, linker, iAI, "cuDeviceTotalMem_v2");
        // CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
        cuDevicePrimaryCtxRetain = bind(lib, linker, iAI, "cuDevicePrimaryCtxRetain");
        // CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
        cuDevicePrimaryCtxRelease = bind(lib, linker, iI, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease");
        // CUresult cuCtxSetCurrent(CUcontext ctx)
        cuCtxSetCurrent = bind(lib, linker, iA, "cuCtxSetCurrent");
        // CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags)
        cuStreamCreate = bind(lib, linker, iAI, "cuStreamCreate");
        // CUresult cuStreamDestroy_v2(CUstream hStream)
        cuStreamDestroy = bind(lib, linker, iA, "cuStreamDestroy_v2", "cuStreamDestroy");
        // CUresult cuStreamSynchronize(CUstream hStream)
        cuStreamSynchronize = bind(lib, linker, iA, "cuStreamSynchronize");
        // CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
        cuMemAlloc = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), "cuMemAlloc_v2");
        // CUresult cuMemFree_v2(CUdeviceptr dptr)
        cuMemFree = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, JAVA_LONG), "cuMemFree_v2");
        // CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
        cuMemGetInfo = bind(lib, linker, iAA, "cuMemGetInfo_v2");
        // CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
        cuMemAllocHost = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), "cuMemAllocHost_v2");
        // CUresult cuMemFreeHost(void *p)
        cuMemFreeHost = bind(lib, linker, iA, "cuMemFreeHost");
        // CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream)
        cuMemcpyHtoDAsync = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS), "cuMemcpyHtoDAsync_v2");
        // CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream)
        cuMemcpyDtoHAsync = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS), "cuMemcpyDtoHAsync_v2");
        // CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream)
        cuMemcpyDtoDAsync = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), "cuMemcpyDtoDAsync_v2");
        // CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream)
        cuMemsetD32Async = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS), "cuMemsetD32Async");
        // CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int numOptions, CUjit_option *options, void **optionValues)
        cuModuleLoadDataEx = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS), "cuModuleLoadDataEx");
        // CUresult cuModuleUnload(CUmodule hmod)
        cuModuleUnload = bind(lib, linker, iA, "cuModuleUnload");
        // CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
        cuModuleGetFunction = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS), "cuModuleGetFunction");
        // CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value)
        cuFuncSetAttribute = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), "cuFuncSetAttribute");
        // CUresult cuLaunchKernel(CUfunction f, unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,
        //                         unsigned sharedMemBytes, CUstream hStream, void **kernelParams, void **extra)
        cuLaunchKernel = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, ADDRESS, ADDRESS, ADDRESS), "cuLaunchKernel");
        // CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags)
        cuEventCreate = bind(lib, linker, iAI, "cuEventCreate");
        // CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
        cuEventRecord = bind(lib, linker, iAA, "cuEventRecord");
        // CUresult cuEventSynchronize(CUevent hEvent)
        cuEventSynchronize = bind(lib, linker, iA, "cuEventSynchronize");
        // CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd) (12.8+; the unversioned one before)
        cuEventElapsedTime = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS), "cuEventElapsedTime_v2", "cuEventElapsedTime");
        // CUresult cuEventDestroy_v2(CUevent hEvent)
        cuEventDestroy = bind(lib, linker, iA, "cuEventDestroy_v2", "cuEventDestroy");
        // CUresult cuGetErrorName(CUresult error, const char **pStr) / cuGetErrorString(CUresult error, const char **pStr)
        cuGetErrorName = bind(lib, linker, iIA, "cuGetErrorName");
        cuGetErrorString = bind(lib, linker, iIA, "cuGetErrorString");
        // CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode)
        cuStreamBeginCapture = bind(lib, linker, iAI, "cuStreamBeginCapture_v2");
        // CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph)
        cuStreamEndCapture = bind(lib, linker, iAA, "cuStreamEndCapture");
        // CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags)
        cuGraphInstantiateWithFlags = bind(lib, linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG), "cuGraphInstantiateWithFlags");
        // CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
        cuGraphLaunch = bind(lib, linker, iAA, "cuGraphLaunch");
        // CUresult cuGraphExecDestroy(CUgraphExec hGraphExec) / cuGraphDestroy(CUgraph hGraph)
        cuGraphExecDestroy = bind(lib, linker, iA, "cuGraphExecDestroy");
        cuGraphDestroy = bind(lib, linker, iA, "cuGraphDestroy");
    }

    private MethodHandle bind(Library lib, Linker linker, FunctionDescriptor fd, String... names) {
        for (String n : names) {
            var sym = lib.symbols().find(n);
            if (sym.isPresent()) {
                bound.add(n);
                return linker.downcallHandle(sym.get(), fd);
            }
        }
        throw new KernelException("the CUDA driver library " + library + " has no " + String.join(" or ", names) + " (driver too old?)");
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new KernelException("CUDA driver call failed: " + t, t);
    }

    static String cString(MemorySegment p) {
        return p.equals(MemorySegment.NULL) ? "" : p.reinterpret(Integer.MAX_VALUE).getString(0);
    }

    // ---- error handling ----

    /** "CUDA_ERROR_OUT_OF_MEMORY (2: out of memory)". */
    String describe(int rc) {
        String name = "CUDA error " + rc, text = "";
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            if ((int) cuGetErrorName.invokeExact(rc, p) == CUDA_SUCCESS) name = cString(p.get(ADDRESS, 0));
            if ((int) cuGetErrorString.invokeExact(rc, p) == CUDA_SUCCESS) text = cString(p.get(ADDRESS, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return name + " (" + rc + (text.isEmpty() ? "" : ": " + text) + ")";
    }

    /** Throws a KernelException naming the call, the error and what was being done. */
    void check(int rc, String call, String what) {
        if (rc != CUDA_SUCCESS) throw new KernelException(call + " failed with " + describe(rc) + " while " + what);
    }

    // ---- typed calls (each returns the raw CUresult) ----

    int init(int flags) {
        try {
            int rc = (int) cuInit.invokeExact(flags);
            SignalHandlers.check();
            return rc;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int driverGetVersion(MemorySegment version) {
        try {
            return (int) cuDriverGetVersion.invokeExact(version);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int deviceGetCount(MemorySegment count) {
        try {
            return (int) cuDeviceGetCount.invokeExact(count);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int deviceGet(MemorySegment device, int ordinal) {
        try {
            return (int) cuDeviceGet.invokeExact(device, ordinal);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int deviceGetName(MemorySegment name, int len, int device) {
        try {
            return (int) cuDeviceGetName.invokeExact(name, len, device);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int deviceGetAttribute(MemorySegment value, int attribute, int device) {
        try {
            return (int) cuDeviceGetAttribute.invokeExact(value, attribute, device);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int deviceTotalMem(MemorySegment bytes, int device) {
        try {
            return (int) cuDeviceTotalMem.invokeExact(bytes, device);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int devicePrimaryCtxRetain(MemorySegment ctx, int device) {
        try {
            return (int) cuDevicePrimaryCtxRetain.invokeExact(ctx, device);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int devicePrimaryCtxRelease(int device) {
        try {
            return (int) cuDevicePrimaryCtxRelease.invokeExact(device);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int ctxSetCurrent(MemorySegment ctx) {
        try {
            return (int) cuCtxSetCurrent.invokeExact(ctx);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int streamCreate(MemorySegment stream, int flags) {
        try {
            return (int) cuStreamCreate.invokeExact(stream, flags);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int streamDestroy(MemorySegment stream) {
        try {
            return (int) cuStreamDestroy.invokeExact(stream);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int streamSynchronize(MemorySegment stream) {
        try {
            return (int) cuStreamSynchronize.invokeExact(stream);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memAlloc(MemorySegment dptr, long bytes) {
        try {
            return (int) cuMemAlloc.invokeExact(dptr, bytes);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memFree(long dptr) {
        try {
            return (int) cuMemFree.invokeExact(dptr);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memGetInfo(MemorySegment free, MemorySegment total) {
        try {
            return (int) cuMemGetInfo.invokeExact(free, total);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memAllocHost(MemorySegment pp, long bytes) {
        try {
            return (int) cuMemAllocHost.invokeExact(pp, bytes);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memFreeHost(MemorySegment p) {
        try {
            return (int) cuMemFreeHost.invokeExact(p);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memcpyHtoDAsync(long dst, MemorySegment src, long bytes, MemorySegment stream) {
        try {
            return (int) cuMemcpyHtoDAsync.invokeExact(dst, src, bytes, stream);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memcpyDtoHAsync(MemorySegment dst, long src, long bytes, MemorySegment stream) {
        try {
            return (int) cuMemcpyDtoHAsync.invokeExact(dst, src, bytes, stream);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memcpyDtoDAsync(long dst, long src, long bytes, MemorySegment stream) {
        try {
            return (int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int memsetD32Async(long dst, int value, long words, MemorySegment stream) {
        try {
            return (int) cuMemsetD32Async.invokeExact(dst, value, words, stream);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int moduleLoadDataEx(MemorySegment module, MemorySegment image, int numOptions, MemorySegment options, MemorySegment optionValues) {
        try {
            int rc = (int) cuModuleLoadDataEx.invokeExact(module, image, numOptions, options, optionValues);
            SignalHandlers.check();
            return rc;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int moduleUnload(MemorySegment module) {
        try {
            return (int) cuModuleUnload.invokeExact(module);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int moduleGetFunction(MemorySegment function, MemorySegment module, MemorySegment name) {
        try {
            return (int) cuModuleGetFunction.invokeExact(function, module, name);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int funcSetAttribute(MemorySegment function, int attribute, int value) {
        try {
            return (int) cuFuncSetAttribute.invokeExact(function, attribute, value);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int launchKernel(MemorySegment f, int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes, MemorySegment stream, MemorySegment params, MemorySegment extra) {
        try {
            return (int) cuLaunchKernel.invokeExact(f, gx, gy, gz, bx, by, bz, sharedBytes, stream, params, extra);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int eventCreate(MemorySegment event, int flags) {
        try {
            return (int) cuEventCreate.invokeExact(event, flags);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int eventRecord(MemorySegment event, MemorySegment stream) {
        try {
            return (int) cuEventRecord.invokeExact(event, stream);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int eventSynchronize(MemorySegment event) {
        try {
            return (int) cuEventSynchronize.invokeExact(event);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int eventElapsedTime(MemorySegment millis, MemorySegment start, MemorySegment end) {
        try {
            return (int) cuEventElapsedTime.invokeExact(millis, start, end);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int eventDestroy(MemorySegment event) {
        try {
            return (int) cuEventDestroy.invokeExact(event);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int streamBeginCapture(MemorySegment stream, int mode) {
        try {
            return (int) cuStreamBeginCapture.invokeExact(stream, mode);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int streamEndCapture(MemorySegment stream, MemorySegment graph) {
        try {
            return (int) cuStreamEndCapture.invokeExact(stream, graph);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int graphInstantiateWithFlags(MemorySegment exec, MemorySegment graph, long flags) {
        try {
            return (int) cuGraphInstantiateWithFlags.invokeExact(exec, graph, flags);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int graphLaunch(MemorySegment exec, MemorySegment stream) {
        try {
            return (int) cuGraphLaunch.invokeExact(exec, stream);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int graphExecDestroy(MemorySegment exec) {
        try {
            return (int) cuGraphExecDestroy.invokeExact(exec);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int graphDestroy(MemorySegment graph) {
        try {
            return (int) cuGraphDestroy.invokeExact(graph);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** "13.0" from 13000. */
    static String versionString(int v) {
        return (v / 1000) + "." + (v % 1000) / 10;
    }
}
