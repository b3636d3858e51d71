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
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * FFM bindings to NVRTC (libnvrtc.so.13 / .12 / libnvrtc.so; -Djdiffusion.nvrtc.lib=path overrides): CUDA C++ source
 * to CUBIN for a real architecture (sm_XY) or PTX for a virtual one (compute_XY). nvrtcResult is an int enum,
 * nvrtcProgram a pointer, size_t a long. libnvrtc-builtins.so.M.m next to the library is preloaded, because NVRTC
 * dlopens it by soname and fails (NVRTC_ERROR_BUILTIN_OPERATION_FAILURE) when its directory is not on the loader path.
 */
final class Nvrtc {
    static final int NVRTC_SUCCESS = 0, NVRTC_ERROR_INVALID_OPTION = 5, NVRTC_ERROR_COMPILATION = 6;

    private static final Map<String, Nvrtc> LOADED = new ConcurrentHashMap<>();

    final String library;
    final int major, minor;
    private final MethodHandle nvrtcVersion, nvrtcGetErrorString, nvrtcCreateProgram, nvrtcCompileProgram, nvrtcGetProgramLogSize,
            nvrtcGetProgramLog, nvrtcGetCUBINSize, nvrtcGetCUBIN, nvrtcGetPTXSize, nvrtcGetPTX, nvrtcDestroyProgram;
    final List<String> bound = new ArrayList<>();

    /** What a compilation produced: a CUBIN (ELF) or NUL-terminated PTX text, and the options that made it. */
    record Binary(byte[] image, boolean cubin, List<String> options, String log) {
    }

    static Nvrtc get() {
        return get(System.getProperty("jdiffusion.nvrtc.lib", ""));
    }

    static Nvrtc get(String override) {
        Nvrtc n = LOADED.get(override);
        if (n != null) return n;
        synchronized (LOADED) {
            return LOADED.computeIfAbsent(override, o -> new Nvrtc(CudaDriver.open("the NVRTC library", "jdiffusion.nvrtc.lib", o,
                    List.of("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"))));
        }
    }

    private Nvrtc(CudaDriver.Library lib) {
        this.library = lib.path();
        Linker linker = Linker.nativeLinker();
        FunctionDescriptor iAA = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS);
        // nvrtcResult nvrtcVersion(int *major, int *minor)
        nvrtcVersion = bind(lib.symbols(), linker, iAA, "nvrtcVersion");
        // const char *nvrtcGetErrorString(nvrtcResult result)
        nvrtcGetErrorString = bind(lib.symbols(), linker, FunctionDescriptor.of(ADDRESS, JAVA_INT), "nvrtcGetErrorString");
        // nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
        //                                const char * const *headers, const char * const *includeNames)
        nvrtcCreateProgram = bind(lib.symbols(), linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS), "nvrtcCreateProgram");
        // nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char * const *options)
        nvrtcCompileProgram = bind(lib.symbols(), linker, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS), "nvrtcCompileProgram");
        // nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet) / nvrtcGetProgramLog(nvrtcProgram prog, char *log)
        nvrtcGetProgramLogSize = bind(lib.symbols(), linker, iAA, "nvrtcGetProgramLogSize");
        nvrtcGetProgramLog = bind(lib.symbols(), linker, iAA, "nvrtcGetProgramLog");
        // nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet) / nvrtcGetCUBIN(nvrtcProgram prog, char *cubin)
        nvrtcGetCUBINSize = bind(lib.symbols(), linker, iAA, "nvrtcGetCUBINSize");
        nvrtcGetCUBIN = bind(lib.symbols(), linker, iAA, "nvrtcGetCUBIN");
        // nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet) / nvrtcGetPTX(nvrtcProgram prog, char *ptx)
        nvrtcGetPTXSize = bind(lib.symbols(), linker, iAA, "nvrtcGetPTXSize");
        nvrtcGetPTX = bind(lib.symbols(), linker, iAA, "nvrtcGetPTX");
        // nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog)
        nvrtcDestroyProgram = bind(lib.symbols(), linker, FunctionDescriptor.of(JAVA_INT, ADDRESS), "nvrtcDestroyProgram");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment maj = a.allocate(JAVA_INT), min = a.allocate(JAVA_INT);
            check((int) nvrtcVersion.invokeExact(maj, min), "nvrtcVersion", "querying the NVRTC version");
            major = maj.get(JAVA_INT, 0);
            minor = min.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw CudaDriver.rethrow(t);
        }
        preloadBuiltins(lib.path());
    }

    private void preloadBuiltins(String nvrtcPath) {
        String name = "libnvrtc-builtins.so." + major + "." + minor;
        List<Path> dirs = new ArrayList<>();
        if (nvrtcPath.contains("/")) dirs.add(Path.of(nvrtcPath).toAbsolutePath().getParent());
        dirs.addAll(CudaDriver.searchDirs());
        for (Path dir : dirs) {
            Path p = dir.resolve(name);
            if (!Files.exists(p)) continue;
            try {
                SymbolLookup.libraryLookup(p, Arena.global());
                return;
            } catch (IllegalArgumentException ignored) {
                // NVRTC reports it in the compile log if it really cannot find it
            }
        }
    }

    private MethodHandle bind(SymbolLookup lookup, Linker linker, FunctionDescriptor fd, String name) {
        var sym = lookup.find(name);
        if (sym.isEmpty()) throw new KernelException("the NVRTC library " + library + " has no " + name + " (NVRTC 11.2 or newer is needed)");
        bound.add(name);
        return linker.downcallHandle(sym.get(), fd);
    }

    String version() {
        return major + "." + minor;
    }

    String errorString(int rc) {
        try {
            return CudaDriver.cString((MemorySegment) nvrtcGetErrorString.invokeExact(rc)) + " (" + rc + ")";
        } catch (Throwable t) {
            throw CudaDriver.rethrow(t);
        }
    }

    private void check(int rc, String call, String what) {
        if (rc != NVRTC_SUCCESS) throw new KernelException(call + " failed with " + errorString(rc) + " while " + what);
    }

    /**
     * Compiles {@code source} for {@code sm_XY} to a CUBIN; when NVRTC rejects the real architecture (an NVRTC older
     * than the GPU) or yields no CUBIN, compiles for {@code compute_XY} to PTX that the driver JIT-compiles.
     * A compile error is a KernelException naming {@code what} with NVRTC's full log.
     */
    Binary compile(String source, String programName, int ccMajor, int ccMinor, List<String> options, String what) {
        return compile(source, programName, ccMajor, ccMinor, "", options, what);
    }

    /**
     * As above for the architecture-specific target {@code sm_XY<archSuffix>} / {@code compute_XY<archSuffix>} ("a":
     * sm_90a, whose wgmma / setmaxnreg plain sm_90 rejects; such code runs only on that exact compute capability).
     */
    Binary compile(String source, String programName, int ccMajor, int ccMinor, String archSuffix, List<String> options, String what) {
        List<String> real = new ArrayList<>(options);
        real.addFirst("--gpu-architecture=sm_" + ccMajor + ccMinor + archSuffix);
        Binary b = compileOnce(source, programName, real, true, what);
        if (b != null) return b;
        List<String> virtual = new ArrayList<>(options);
        virtual.addFirst("--gpu-architecture=compute_" + ccMajor + ccMinor + archSuffix);
        return compileOnce(source, programName, virtual, false, what);
    }

    /** Null when {@code wantCubin} and NVRTC rejected the option or produced no CUBIN (the caller retries with PTX). */
    private Binary compileOnce(String source, String programName, List<String> options, boolean wantCubin, String what) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment progOut = a.allocate(ADDRESS);
            check((int) nvrtcCreateProgram.invokeExact(progOut, a.allocateFrom(source), a.allocateFrom(programName), 0,
                    MemorySegment.NULL, MemorySegment.NULL), "nvrtcCreateProgram", "creating the program for " + what);
            MemorySegment prog = progOut.get(ADDRESS, 0);
            try {
                MemorySegment opts = a.allocate(ADDRESS, Math.max(1, options.size()));
                for (int i = 0; i < options.size(); i++) opts.setAtIndex(ADDRESS, i, a.allocateFrom(options.get(i)));
                int rc = (int) nvrtcCompileProgram.invokeExact(prog, options.size(), opts);
                SignalHandlers.check();
                String log = log(a, prog);
                if (rc == NVRTC_ERROR_INVALID_OPTION && wantCubin) return null;
                if (rc != NVRTC_SUCCESS)
                    throw new KernelException("NVRTC " + version() + " could not compile " + what + " (" + errorString(rc) + ", options " + options + "):\n" + log);
                MemorySegment size = a.allocate(JAVA_LONG);
                if (wantCubin) {
                    int src = (int) nvrtcGetCUBINSize.invokeExact(prog, size);
                    long n = size.get(JAVA_LONG, 0);
                    if (src != NVRTC_SUCCESS || n <= 0) return null;
                    MemorySegment buf = a.allocate(n);
                    check((int) nvrtcGetCUBIN.invokeExact(prog, buf), "nvrtcGetCUBIN", "fetching the CUBIN of " + what);
                    return new Binary(buf.toArray(JAVA_BYTE), true, List.copyOf(options), log);
                }
                check((int) nvrtcGetPTXSize.invokeExact(prog, size), "nvrtcGetPTXSize", "fetching the PTX of " + what);
                long n = size.get(JAVA_LONG, 0);
                MemorySegment buf = a.allocate(n + 1); // the size includes the NUL; one spare byte keeps it terminated regardless
                check((int) nvrtcGetPTX.invokeExact(prog, buf), "nvrtcGetPTX", "fetching the PTX of " + what);
                byte[] ptx = buf.asSlice(0, n).toArray(JAVA_BYTE);
                if (ptx.length == 0 || ptx[ptx.length - 1] != 0) ptx = java.util.Arrays.copyOf(ptx, ptx.length + 1);
                return new Binary(ptx, false, List.copyOf(options), log);
            } finally {
                MemorySegment p = a.allocate(ADDRESS);
                p.set(ADDRESS, 0, prog);
                int ignored = (int) nvrtcDestroyProgram.invokeExact(p);
            }
        } catch (Throwable t) {
            throw CudaDriver.rethrow(t);
        }
    }

    private String log(Arena a, MemorySegment prog) throws Throwable {
        MemorySegment size = a.allocate(JAVA_LONG);
        if ((int) nvrtcGetProgramLogSize.invokeExact(prog, size) != NVRTC_SUCCESS) return "(no log)";
        long n = size.get(JAVA_LONG, 0);
        if (n <= 1) return "";
        MemorySegment buf = a.allocate(n + 1);
        if ((int) nvrtcGetProgramLog.invokeExact(prog, buf) != NVRTC_SUCCESS) return "(no log)";
        return buf.getString(0).strip();
    }
}
