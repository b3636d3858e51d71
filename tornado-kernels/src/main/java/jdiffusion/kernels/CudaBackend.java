package jdiffusion.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The CUDA backend: kernels are compiled by NVRTC to a CUBIN for the running GPU (PTX for compute_XY when NVRTC does
 * not know the GPU), cached by {@link KernelCache}, loaded with the driver API and launched on one non-blocking stream
 * of the device's primary context; task lists are replayed as captured CUDA graphs. Everything goes through
 * java.lang.foreign ({@link CudaDriver}, {@link Nvrtc}).
 * Kernel options: -D/-U defines pass to NVRTC; -cl-fast-relaxed-math, --use_fast_math or -DJD_FAST_MATH turn on
 * --use_fast_math; other -cl-* options are dropped; -DJD_SMEM=bytes sets the launch's dynamic shared memory (raising
 * the function's limit when above 48 KiB); -DJD_ARCH_SUFFIX=a compiles the module for the architecture-specific target
 * (sm_90a on an sm_90 GPU: wgmma; the define reaches the source too, and the options are part of the cache key).
 * Knobs: -Djdiffusion.cuda.device (ordinal for {@link #open()}), -Djdiffusion.cuda.graphs=false (plain launches),
 * -Djdiffusion.cuda.stagingMiB (host staging buffer, default 16), -Djdiffusion.cuda.nvrtcOptions (extra NVRTC options),
 * -Djdiffusion.cuda.lib / -Djdiffusion.nvrtc.lib (library paths).
 */
public final class CudaBackend implements Backend, TaskGraph.Replayable {
    private static final ThreadLocal<Long> CURRENT = new ThreadLocal<>();
    private static final AtomicLong SERIALS = new AtomicLong();
    private static final Pattern SMEM = Pattern.compile("-DJD_SMEM=(\\d+)");
    private static final Pattern ARCH_SUFFIX = Pattern.compile("-DJD_ARCH_SUFFIX=([a-z]*)");
    private static final int STATIC_SHARED_LIMIT = 48 * 1024;

    /** A device as the driver describes it. */
    public record DeviceInfo(int ordinal, String name, int ccMajor, int ccMinor, int smCount, int sharedPerBlockOptin, long totalMemory) {
        public String arch() {
            return "sm_" + ccMajor + ccMinor;
        }
    }

    private record Module(String key, MemorySegment handle, boolean cubin) {
    }

    private record Fn(MemorySegment handle, int sharedBytes, Module module) {
    }

    /** Device memory of this backend; {@code ptr} is the CUdeviceptr (0 for an empty buffer). */
    public final class CudaBuffer implements Buffer {
        public final String what;
        public final DType dtype;
        public final long length;
        public final long ptr;
        private boolean freed;

        CudaBuffer(String what, DType dtype, long length, long ptr) {
            this.what = what;
            this.dtype = dtype;
            this.length = length;
            this.ptr = ptr;
        }

        @Override
        public Backend backend() {
            return CudaBackend.this;
        }

        @Override
        public DType dtype() {
            return dtype;
        }

        @Override
        public long length() {
            return length;
        }

        @Override
        public void close() {
            free(this);
        }

        @Override
        public String toString() {
            return "CudaBuffer[" + what + ", " + dtype + " x " + length + "]";
        }
    }

    private final CudaDriver cu;
    private final Nvrtc nvrtc;
    private final KernelCache cache;
    private final long serial = SERIALS.incrementAndGet();
    public final DeviceInfo info;
    public final int driverVersion;
    private final int device;
    private final MemorySegment ctx, stream;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment staging;
    private final boolean stagingPinned;
    private MemorySegment paramValues, paramPointers;
    private int paramSlots;
    private final Map<String, Module> modules = new HashMap<>();
    private final Map<String, Fn> functions = new HashMap<>();
    private final Map<Kernel, Fn> byInstance = new IdentityHashMap<>(); // launch fast path: no id() string per launch
    private final Set<CudaBuffer> live = new LinkedHashSet<>();
    private final List<MemorySegment> graphExecs = new ArrayList<>();
    private final Map<String, String> graphFallbacks = new LinkedHashMap<>();
    private final List<KernelCache.CompileRecord> compileLog = new ArrayList<>();
    private long allocated;
    private boolean closed;

    /** Opens device -Djdiffusion.cuda.device (default 0). */
    public static CudaBackend open() {
        return open(Integer.getInteger("jdiffusion.cuda.device", 0));
    }

    /** Opens device {@code ordinal} with the default kernel cache; a KernelException says what is missing (driver, device, NVRTC). */
    public static CudaBackend open(int ordinal) {
        return open(ordinal, KernelCache.defaultCache());
    }

    public static CudaBackend open(int ordinal, KernelCache cache) {
        return new CudaBackend(CudaDriver.get(), Nvrtc.get(), ordinal, cache);
    }

    /** One line per device: name, compute capability, SMs, memory, driver and NVRTC versions (the `devices` command). */
    public static List<String> describeDevices() {
        CudaDriver cu = CudaDriver.get();
        Nvrtc nvrtc;
        try {
            nvrtc = Nvrtc.get();
        } catch (KernelException e) {
            nvrtc = null;
            System.err.println("WARNING: " + e.getMessage());
        }
        return describeDevices(cu, nvrtc);
    }

    static List<String> describeDevices(CudaDriver cu, Nvrtc nvrtc) {
        init(cu);
        String nv = nvrtc == null ? "NVRTC missing" : "NVRTC " + nvrtc.version();
        int driver = driverVersion(cu);
        List<String> out = new ArrayList<>();
        for (int i = 0; i < deviceCount(cu); i++) {
            DeviceInfo d = query(cu, i);
            out.add("cuda:" + i + " " + d.name() + " (" + d.arch() + ", " + d.smCount() + " SMs, " + gib(d.totalMemory()) + " GiB, "
                    + (d.sharedPerBlockOptin() / 1024) + " KiB shared/block, driver " + CudaDriver.versionString(driver) + ", " + nv + ")");
        }
        return out;
    }

    CudaBackend(CudaDriver cu, Nvrtc nvrtc, int ordinal, KernelCache cache) {
        this.cu = cu;
        this.nvrtc = nvrtc;
        this.cache = cache != null ? cache : new KernelCache(null);
        init(cu);
        int count = deviceCount(cu);
        if (ordinal < 0 || ordinal >= count)
            throw new KernelException("CUDA device " + ordinal + " does not exist: the driver (" + cu.library + ") reports " + count + " device(s)");
        this.info = query(cu, ordinal);
        this.driverVersion = driverVersion(cu);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            device = deviceHandle(cu, ordinal);
            cu.check(cu.devicePrimaryCtxRetain(out, device), "cuDevicePrimaryCtxRetain", "opening " + info.name());
            ctx = out.get(ADDRESS, 0);
            cu.check(cu.ctxSetCurrent(ctx), "cuCtxSetCurrent", "opening " + info.name());
            CURRENT.set(serial);
            cu.check(cu.streamCreate(out, CudaDriver.STREAM_NON_BLOCKING), "cuStreamCreate", "opening " + info.name());
            stream = out.get(ADDRESS, 0);
            long stagingBytes = Math.max(1, Long.getLong("jdiffusion.cuda.stagingMiB", 16)) << 20;
            int rc = cu.memAllocHost(out, stagingBytes);
            stagingPinned = rc == CudaDriver.CUDA_SUCCESS;
            staging = stagingPinned ? out.get(ADDRESS, 0).reinterpret(stagingBytes) : arena.allocate(stagingBytes, 4096);
        }
        ensureParamSlots(32);
    }

    private static void init(CudaDriver cu) {
        int rc = cu.init(0);
        if (rc == CudaDriver.CUDA_ERROR_NO_DEVICE) throw new KernelException("no CUDA device: cuInit returned " + cu.describe(rc) + " (driver " + cu.library + ")");
        if (rc == CudaDriver.CUDA_ERROR_STUB_LIBRARY)
            throw new KernelException(cu.library + " is the CUDA toolkit's stub library, not the driver: cuInit returned " + cu.describe(rc));
        cu.check(rc, "cuInit", "initialising the CUDA driver " + cu.library);
    }

    private static int deviceCount(CudaDriver cu) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(JAVA_INT);
            cu.check(cu.deviceGetCount(n), "cuDeviceGetCount", "counting CUDA devices");
            return n.get(JAVA_INT, 0);
        }
    }

    private static int driverVersion(CudaDriver cu) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            cu.check(cu.driverGetVersion(v), "cuDriverGetVersion", "querying the driver version");
            return v.get(JAVA_INT, 0);
        }
    }

    private static int deviceHandle(CudaDriver cu, int ordinal) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment d = a.allocate(JAVA_INT);
            cu.check(cu.deviceGet(d, ordinal), "cuDeviceGet", "opening CUDA device " + ordinal);
            return d.get(JAVA_INT, 0);
        }
    }

    static DeviceInfo query(CudaDriver cu, int ordinal) {
        int device = deviceHandle(cu, ordinal);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment name = a.allocate(256);
            cu.check(cu.deviceGetName(name, 256, device), "cuDeviceGetName", "describing CUDA device " + ordinal);
            MemorySegment v = a.allocate(JAVA_INT);
            int[] attrs = {CudaDriver.ATTR_COMPUTE_CAPABILITY_MAJOR, CudaDriver.ATTR_COMPUTE_CAPABILITY_MINOR, CudaDriver.ATTR_MULTIPROCESSOR_COUNT,
                    CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN};
            int[] vals = new int[attrs.length];
            for (int i = 0; i < attrs.length; i++) {
                cu.check(cu.deviceGetAttribute(v, attrs[i], device), "cuDeviceGetAttribute", "reading attribute " + attrs[i] + " of CUDA device " + ordinal);
                vals[i] = v.get(JAVA_INT, 0);
            }
            MemorySegment total = a.allocate(JAVA_LONG);
            cu.check(cu.deviceTotalMem(total, device), "cuDeviceTotalMem_v2", "describing CUDA device " + ordinal);
            return new DeviceInfo(ordinal, name.getString(0), vals[0], vals[1], vals[2], vals[3], total.get(JAVA_LONG, 0));
        }
    }

    private static String gib(long bytes) {
        return String.format("%.1f", bytes / (double) (1L << 30));
    }

    // ---- Backend ----

    @Override
    public String name() {
        return "cuda";
    }

    /** "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB, driver 13.0, NVRTC 13.0)". */
    @Override
    public String device() {
        return info.name() + " (" + info.arch() + ", " + info.smCount() + " SMs, " + gib(info.totalMemory()) + " GiB, driver "
                + CudaDriver.versionString(driverVersion) + ", NVRTC " + nvrtc.version() + ")";
    }

    /** Makes the context current on the calling thread (once per thread and backend). */
    private void bind() {
        if (closed) throw new KernelException("the cuda backend on " + info.name() + " is closed");
        Long cur = CURRENT.get();
        if (cur == null || cur != serial) {
            cu.check(cu.ctxSetCurrent(ctx), "cuCtxSetCurrent", "binding " + info.name() + " to thread " + Thread.currentThread().getName());
            CURRENT.set(serial);
        }
    }

    /** "free 1.2 of 79.1 GiB on NVIDIA H100 ...". */
    public synchronized String memoryInfo() {
        bind();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment free = a.allocate(JAVA_LONG), total = a.allocate(JAVA_LONG);
            int rc = cu.memGetInfo(free, total);
            if (rc != CudaDriver.CUDA_SUCCESS) return "free memory unknown (" + cu.describe(rc) + ")";
            return "free " + gib(free.get(JAVA_LONG, 0)) + " of " + gib(total.get(JAVA_LONG, 0)) + " GiB on " + info.name()
                    + ", " + allocated + " bytes held by this backend";
        }
    }

    @Override
    public synchronized Buffer allocate(String what, DType dtype, long length) {
        bind();
        if (length < 0) throw new KernelException("negative length " + length + " for " + what);
        long bytes;
        try {
            bytes = Math.multiplyExact(length, dtype.bytes);
        } catch (ArithmeticException e) {
            throw new DeviceOutOfMemoryException(what, Long.MAX_VALUE, length + " elements of " + dtype + " overflow 64 bits");
        }
        if (bytes == 0) {
            CudaBuffer b = new CudaBuffer(what, dtype, 0, 0L);
            live.add(b);
            return b;
        }
        long rounded = (bytes + 3) & ~3L; // whole 32-bit words, so cuMemsetD32 can zero it
        long ptr;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG);
            int rc = cu.memAlloc(out, rounded);
            if (rc == CudaDriver.CUDA_ERROR_OUT_OF_MEMORY || (rc == CudaDriver.CUDA_ERROR_INVALID_VALUE && rounded > info.totalMemory()))
                throw new DeviceOutOfMemoryException(what, bytes, "cuMemAlloc_v2: " + cu.describe(rc) + "; " + memoryInfo());
            cu.check(rc, "cuMemAlloc_v2", "allocating " + bytes + " bytes for " + what);
            ptr = out.get(JAVA_LONG, 0);
        }
        int rc = cu.memsetD32Async(ptr, 0, rounded / 4, stream);
        if (rc != CudaDriver.CUDA_SUCCESS) {
            cu.memFree(ptr);
            cu.check(rc, "cuMemsetD32Async", "zeroing " + what);
        }
        CudaBuffer b = new CudaBuffer(what, dtype, length, ptr);
        live.add(b);
        allocated += bytes;
        return b;
    }

    private synchronized void free(CudaBuffer b) {
        if (b.freed) return;
        b.freed = true;
        live.remove(b);
        allocated -= b.bytes();
        if (closed || b.ptr == 0) return;
        bind();
        // queued kernels may still use it (cuMemFree does not promise to wait for a non-blocking stream)
        cu.check(cu.streamSynchronize(stream), "cuStreamSynchronize", "freeing " + b.what + " (an earlier kernel failed)");
        cu.check(cu.memFree(b.ptr), "cuMemFree_v2", "freeing " + b.what);
    }

    private CudaBuffer own(Buffer b, String role) {
        if (b instanceof CudaBuffer cb && cb.backend() == this) {
            if (cb.freed) throw new KernelException("use of freed buffer " + cb.what + " as " + role);
            return cb;
        }
        throw new KernelException(role + ": buffer " + b + " does not belong to this cuda backend (" + info.name() + ")");
    }

    private static void checkRange(CudaBuffer b, long offset, long length) {
        if (offset < 0 || length < 0 || offset > b.length || length > b.length - offset)
            throw new KernelException("range [" + offset + ", " + (offset + length) + ") outside buffer " + b.what + " of " + b.length + " elements");
    }

    private static void checkArray(int arrayLength, int offset, int length, String what) {
        if (offset < 0 || length < 0 || offset > arrayLength || length > arrayLength - offset)
            throw new KernelException("range [" + offset + ", " + ((long) offset + length) + ") outside the " + arrayLength + "-element host array for " + what);
    }

    /** Elements of {@code es} bytes that fit the staging buffer. */
    private int chunk(int es) {
        return (int) Math.min(Integer.MAX_VALUE, staging.byteSize() / es);
    }

    private void upload(CudaBuffer d, long dstElement, long bytes) {
        cu.check(cu.memcpyHtoDAsync(d.ptr + dstElement * d.dtype.bytes, staging, bytes, stream), "cuMemcpyHtoDAsync_v2", "writing " + d.what);
        cu.check(cu.streamSynchronize(stream), "cuStreamSynchronize", "writing " + d.what + " (an earlier kernel may have failed)");
    }

    private void download(CudaBuffer s, long srcElement, long bytes) {
        cu.check(cu.memcpyDtoHAsync(staging, s.ptr + srcElement * s.dtype.bytes, bytes, stream), "cuMemcpyDtoHAsync_v2", "reading " + s.what);
        cu.check(cu.streamSynchronize(stream), "cuStreamSynchronize", "reading " + s.what + " (an earlier kernel may have failed)");
    }

    @Override
    public synchronized void write(Buffer dst, long dstOffset, float[] src, int srcOffset, int length) {
        bind();
        CudaBuffer d = own(dst, "write destination");
        if (d.dtype == DType.I32) throw new KernelException("write of floats into I32 buffer " + d.what);
        checkRange(d, dstOffset, length);
        checkArray(src.length, srcOffset, length, "write into " + d.what);
        int step = chunk(d.dtype.bytes);
        for (int done = 0; done < length; ) {
            int n = Math.min(step, length - done);
            if (d.dtype == DType.F32) {
                MemorySegment.copy(src, srcOffset + done, staging, JAVA_FLOAT, 0, n);
            } else {
                for (int i = 0; i < n; i++) staging.setAtIndex(JAVA_SHORT, i, Float.floatToFloat16(src[srcOffset + done + i]));
            }
            upload(d, dstOffset + done, (long) n * d.dtype.bytes);
            done += n;
        }
    }

    @Override
    public synchronized void write(Buffer dst, long dstOffset, int[] src, int srcOffset, int length) {
        bind();
        CudaBuffer d = own(dst, "write destination");
        if (d.dtype != DType.I32) throw new KernelException("write of ints into " + d.dtype + " buffer " + d.what);
        checkRange(d, dstOffset, length);
        checkArray(src.length, srcOffset, length, "write into " + d.what);
        int step = chunk(4);
        for (int done = 0; done < length; ) {
            int n = Math.min(step, length - done);
            MemorySegment.copy(src, srcOffset + done, staging, JAVA_INT, 0, n);
            upload(d, dstOffset + done, 4L * n);
            done += n;
        }
    }

    @Override
    public synchronized void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int length) {
        bind();
        CudaBuffer s = own(src, "read source");
        checkRange(s, srcOffset, length);
        checkArray(dst.length, dstOffset, length, "read from " + s.what);
        int step = chunk(s.dtype.bytes);
        for (int done = 0; done < length; ) {
            int n = Math.min(step, length - done);
            download(s, srcOffset + done, (long) n * s.dtype.bytes);
            switch (s.dtype) {
                case F32 -> MemorySegment.copy(staging, JAVA_FLOAT, 0, dst, dstOffset + done, n);
                case F16 -> {
                    for (int i = 0; i < n; i++) dst[dstOffset + done + i] = Float.float16ToFloat(staging.getAtIndex(JAVA_SHORT, i));
                }
                case I32 -> {
                    for (int i = 0; i < n; i++) dst[dstOffset + done + i] = staging.getAtIndex(JAVA_INT, i);
                }
            }
            done += n;
        }
    }

    /** Reads an I32 buffer into host ints. */
    public synchronized void read(Buffer src, long srcOffset, int[] dst, int dstOffset, int length) {
        bind();
        CudaBuffer s = own(src, "read source");
        if (s.dtype != DType.I32) throw new KernelException("read of ints from " + s.dtype + " buffer " + s.what);
        checkRange(s, srcOffset, length);
        checkArray(dst.length, dstOffset, length, "read from " + s.what);
        int step = chunk(4);
        for (int done = 0; done < length; ) {
            int n = Math.min(step, length - done);
            download(s, srcOffset + done, 4L * n);
            MemorySegment.copy(staging, JAVA_INT, 0, dst, dstOffset + done, n);
            done += n;
        }
    }

    @Override
    public synchronized void copy(Buffer src, long srcOffset, Buffer dst, long dstOffset, long length) {
        bind();
        CudaBuffer s = own(src, "copy source"), d = own(dst, "copy destination");
        if (s.dtype != d.dtype) throw new KernelException("copy " + s.what + " (" + s.dtype + ") -> " + d.what + " (" + d.dtype + "): dtypes differ");
        checkRange(s, srcOffset, length);
        checkRange(d, dstOffset, length);
        if (length == 0) return;
        int es = s.dtype.bytes;
        cu.check(cu.memcpyDtoDAsync(d.ptr + dstOffset * es, s.ptr + srcOffset * es, length * es, stream), "cuMemcpyDtoDAsync_v2",
                "copying " + s.what + " -> " + d.what);
    }

    /** Sets every element of the buffer to zero bits (enqueued). */
    public synchronized void zero(Buffer b) {
        bind();
        CudaBuffer d = own(b, "zero");
        if (d.ptr == 0) return;
        cu.check(cu.memsetD32Async(d.ptr, 0, (d.bytes() + 3) / 4, stream), "cuMemsetD32Async", "zeroing " + d.what);
    }

    @Override
    public synchronized void prepare(Kernel kernel) {
        bind();
        fn(kernel);
    }

    private static String moduleKey(Kernel k) {
        return k.family() + (k.cudaOnly() ? ".cu" : ".cl") + (k.options().isBlank() ? "" : " [" + k.options().strip() + "]");
    }

    /** NVRTC options for the kernel (the architecture option is added by {@link Nvrtc#compile}). */
    static List<String> nvrtcOptions(String kernelOptions) {
        List<String> o = new ArrayList<>(List.of("--std=c++17"));
        boolean fast = false;
        for (String tok : kernelOptions.strip().split("\\s+")) {
            if (tok.isEmpty()) continue;
            if (tok.equals("-cl-fast-relaxed-math") || tok.equals("--use_fast_math") || tok.equals("-DJD_FAST_MATH") || tok.startsWith("-DJD_FAST_MATH="))
                fast = true;
            if (tok.startsWith("-cl-") || tok.equals("--use_fast_math")) continue;
            o.add(tok);
        }
        if (fast) o.add("--use_fast_math");
        for (String tok : System.getProperty("jdiffusion.cuda.nvrtcOptions", "").strip().split("\\s+")) if (!tok.isEmpty()) o.add(tok);
        return o;
    }

    /** Architecture suffix asked by -DJD_ARCH_SUFFIX=s ("a": sm_90a), else "". */
    static String archSuffix(String kernelOptions) {
        Matcher m = ARCH_SUFFIX.matcher(kernelOptions);
        String suffix = "";
        while (m.find()) suffix = m.group(1);
        return suffix;
    }

    /** Dynamic shared memory bytes asked by -DJD_SMEM=n, else 0. */
    static int dynamicShared(String kernelOptions) {
        Matcher m = SMEM.matcher(kernelOptions);
        int bytes = 0;
        while (m.find()) bytes = Integer.parseInt(m.group(1));
        return bytes;
    }

    private Fn fn(Kernel k) {
        Fn f = byInstance.get(k);
        if (f != null) return f;
        String id = k.id();
        f = functions.get(id);
        if (f != null) {
            if (byInstance.size() > 50_000) byInstance.clear(); // kernels made per call would otherwise pile up
            byInstance.put(k, f);
            return f;
        }
        Module m = module(k);
        int shared = dynamicShared(k.options());
        if (shared > info.sharedPerBlockOptin())
            throw new KernelException("kernel " + id + " asks " + shared + " bytes of dynamic shared memory; " + info.name() + " allows " + info.sharedPerBlockOptin() + " per block");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            int rc = cu.moduleGetFunction(out, m.handle(), a.allocateFrom(k.name()));
            if (rc == CudaDriver.CUDA_ERROR_NOT_FOUND)
                throw new KernelException("kernel " + id + ": no KERNEL function " + k.name() + " in module " + m.key() + " (" + cu.describe(rc) + ")");
            cu.check(rc, "cuModuleGetFunction", "looking up kernel " + id + " in module " + m.key());
            MemorySegment handle = out.get(ADDRESS, 0);
            if (shared > STATIC_SHARED_LIMIT)
                cu.check(cu.funcSetAttribute(handle, CudaDriver.FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, shared), "cuFuncSetAttribute",
                        "allowing " + shared + " bytes of dynamic shared memory for kernel " + id);
            f = new Fn(handle, shared, m);
        }
        functions.put(id, f);
        byInstance.put(k, f);
        return f;
    }

    private Module module(Kernel k) {
        String key = moduleKey(k);
        Module m = modules.get(key);
        if (m != null) return m;
        String source = KernelSource.cuda(k);
        List<String> options = nvrtcOptions(k.options());
        String cacheKey = KernelCache.key("cuda", info.name() + " " + info.arch(), "driver " + CudaDriver.versionString(driverVersion) + ", NVRTC " + nvrtc.version(),
                String.join(" ", options), source);
        long t0 = System.nanoTime();
        MemorySegment handle = null;
        boolean cubin = false, fromCache = false;
        Optional<byte[]> hit = cache.load(cacheKey);
        if (hit.isPresent()) {
            try {
                handle = loadModule(hit.get(), key);
                cubin = isElf(hit.get());
                fromCache = true;
            } catch (KernelException e) {
                System.err.println("WARNING: cached CUDA module " + key + " did not load (" + e.getMessage() + "); recompiling");
            }
        }
        if (handle == null) {
            String suffix = archSuffix(k.options());
            Nvrtc.Binary b = nvrtc.compile(source, k.family() + (k.cudaOnly() ? ".cu" : ".cl"), info.ccMajor(), info.ccMinor(), suffix, options,
                    "kernel " + k.id() + " (module " + key + ")");
            handle = loadModule(b.image(), key);
            cubin = b.cubin();
            cache.store(cacheKey, b.image(), "cuda " + key + " " + (cubin ? "cubin " + info.arch() + suffix : "ptx compute_" + info.ccMajor() + info.ccMinor() + suffix)
                    + " on " + info.name() + ", NVRTC " + nvrtc.version());
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        KernelCache.CompileRecord r = new KernelCache.CompileRecord("cuda " + key, seconds, fromCache);
        compileLog.add(r);
        cache.recordCompile(r.kernelId(), seconds, fromCache);
        m = new Module(key, handle, cubin);
        modules.put(key, m);
        return m;
    }

    private static boolean isElf(byte[] image) {
        return image.length >= 4 && image[0] == 0x7f && image[1] == 'E' && image[2] == 'L' && image[3] == 'F';
    }

    private MemorySegment loadModule(byte[] image, String key) {
        int logBytes = 16 * 1024;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment img = a.allocate(image.length + 1L, 64); // zeroed: PTX stays NUL-terminated
            MemorySegment.copy(image, 0, img, JAVA_BYTE, 0, image.length);
            MemorySegment log = a.allocate(logBytes);
            MemorySegment options = a.allocate(JAVA_INT, 2);
            options.setAtIndex(JAVA_INT, 0, CudaDriver.JIT_ERROR_LOG_BUFFER);
            options.setAtIndex(JAVA_INT, 1, CudaDriver.JIT_ERROR_LOG_BUFFER_SIZE_BYTES);
            MemorySegment values = a.allocate(ADDRESS, 2);
            values.setAtIndex(ADDRESS, 0, log);
            values.setAtIndex(ADDRESS, 1, MemorySegment.ofAddress(logBytes)); // an unsigned int carried in the pointer slot
            MemorySegment out = a.allocate(ADDRESS);
            int rc = cu.moduleLoadDataEx(out, img, 2, options, values);
            if (rc != CudaDriver.CUDA_SUCCESS) {
                String text = log.getString(0).strip();
                throw new KernelException("cuModuleLoadDataEx failed with " + cu.describe(rc) + " while loading CUDA module " + key
                        + " (" + (isElf(image) ? "cubin" : "ptx") + ", " + image.length + " bytes)" + (text.isEmpty() ? "" : ":\n" + text));
            }
            return out.get(ADDRESS, 0);
        }
    }

    private void ensureParamSlots(int n) {
        if (n <= paramSlots) return;
        int slots = Math.max(n, paramSlots * 2);
        paramValues = arena.allocate(8L * slots, 16);
        paramPointers = arena.allocate(ADDRESS, slots);
        for (int i = 0; i < slots; i++) paramPointers.setAtIndex(ADDRESS, i, paramValues.asSlice(8L * i, 8));
        paramSlots = slots;
    }

    @Override
    public synchronized void launch(Task task) {
        bind();
        launchOne(task);
    }

    private void launchOne(Task t) {
        Fn f = fn(t.kernel());
        Object[] args = t.args();
        ensureParamSlots(args.length);
        for (int i = 0; i < args.length; i++) {
            long at = 8L * i;
            switch (args[i]) {
                case Buffer b -> paramValues.set(JAVA_LONG, at, own(b, "argument " + i + " of task " + t.name() + " (" + t.kernel().id() + ")").ptr);
                case Integer v -> paramValues.set(JAVA_INT, at, v);
                case Long v -> paramValues.set(JAVA_LONG, at, v);
                case Float v -> paramValues.set(JAVA_FLOAT, at, v);
                case null, default -> throw new KernelException("task " + t.name() + " (" + t.kernel().id() + "): argument " + i + " has unsupported type "
                        + (args[i] == null ? "null" : args[i].getClass().getSimpleName()));
            }
        }
        long[] g = t.launch().global(), l = t.launch().local();
        long gx = g[0] / l[0], gy = g.length > 1 ? g[1] / l[1] : 1, gz = g.length > 2 ? g[2] / l[2] : 1;
        long bx = l[0], by = l.length > 1 ? l[1] : 1, bz = l.length > 2 ? l[2] : 1;
        if (bx * by * bz > 1024 || bz > 64 || gx > Integer.MAX_VALUE || gy > 65535 || gz > 65535)
            throw new KernelException("task " + t.name() + " (" + t.kernel().id() + "): grid " + gx + "x" + gy + "x" + gz + " of blocks " + bx + "x" + by + "x" + bz
                    + " exceeds CUDA limits (1024 threads per block, block z <= 64, grid y and z <= 65535)");
        int rc = cu.launchKernel(f.handle(), (int) gx, (int) gy, (int) gz, (int) bx, (int) by, (int) bz, f.sharedBytes(), stream, paramPointers, MemorySegment.NULL);
        if (rc != CudaDriver.CUDA_SUCCESS)
            throw new KernelException("cuLaunchKernel failed with " + cu.describe(rc) + " while launching task " + t.name() + " (" + t.kernel().id() + ", grid "
                    + gx + "x" + gy + "x" + gz + ", block " + bx + "x" + by + "x" + bz + ", " + f.sharedBytes() + " B dynamic shared)");
    }

    @Override
    public synchronized void finish() {
        bind();
        cu.check(cu.streamSynchronize(stream), "cuStreamSynchronize", "waiting for the work queued on " + info.name()
                + " (a kernel failed; after an illegal address the context is unusable: open a new backend)");
    }

    @Override
    public synchronized long allocatedBytes() {
        return allocated;
    }

    // ---- CUDA graphs ----

    /**
     * Captures the launches into a CUDA graph (stream capture) and returns its replay; when capture is off or fails,
     * returns plain launches and remembers why in {@link #graphFallbacks}.
     */
    @Override
    public synchronized Runnable capture(String graphName, List<Task> tasks) {
        bind();
        for (Task t : tasks) fn(t.kernel());
        List<CudaBuffer> used = new ArrayList<>();
        for (Task t : tasks)
            for (Object a : t.args()) if (a instanceof Buffer b) used.add(own(b, "argument of task " + t.name()));
        Runnable plain = () -> {
            for (Task t : tasks) launch(t);
        };
        if (tasks.isEmpty()) return plain;
        if (!Boolean.parseBoolean(System.getProperty("jdiffusion.cuda.graphs", "true"))) {
            graphFallbacks.put(graphName, "CUDA graphs disabled (-Djdiffusion.cuda.graphs=false)");
            return plain;
        }
        MemorySegment exec;
        try (Arena a = Arena.ofConfined()) {
            int rc = cu.streamBeginCapture(stream, CudaDriver.STREAM_CAPTURE_MODE_THREAD_LOCAL);
            if (rc != CudaDriver.CUDA_SUCCESS) return fallback(graphName, "cuStreamBeginCapture_v2 failed with " + cu.describe(rc), plain);
            String failure = null;
            try {
                for (Task t : tasks) launchOne(t);
            } catch (KernelException e) {
                failure = e.getMessage();
            }
            MemorySegment graphOut = a.allocate(ADDRESS);
            rc = cu.streamEndCapture(stream, graphOut);
            MemorySegment graph = graphOut.get(ADDRESS, 0);
            if (failure != null || rc != CudaDriver.CUDA_SUCCESS) {
                if (!graph.equals(MemorySegment.NULL)) cu.graphDestroy(graph);
                return fallback(graphName, failure != null ? "a launch failed during capture: " + failure : "cuStreamEndCapture failed with " + cu.describe(rc), plain);
            }
            MemorySegment execOut = a.allocate(ADDRESS);
            rc = cu.graphInstantiateWithFlags(execOut, graph, 0L);
            cu.graphDestroy(graph);
            if (rc != CudaDriver.CUDA_SUCCESS) return fallback(graphName, "cuGraphInstantiateWithFlags failed with " + cu.describe(rc), plain);
            exec = execOut.get(ADDRESS, 0);
        }
        graphExecs.add(exec);
        graphFallbacks.remove(graphName);
        return () -> replay(graphName, exec, used);
    }

    private Runnable fallback(String graphName, String why, Runnable plain) {
        graphFallbacks.put(graphName, why);
        return plain;
    }

    private synchronized void replay(String graphName, MemorySegment exec, List<CudaBuffer> used) {
        bind();
        for (CudaBuffer b : used) if (b.freed) throw new KernelException("graph " + graphName + " uses buffer " + b.what + ", which was freed after capture");
        cu.check(cu.graphLaunch(exec, stream), "cuGraphLaunch", "replaying graph " + graphName);
    }

    /** Graph name -> why it runs as plain launches instead of a CUDA graph (for the bench). */
    public synchronized Map<String, String> graphFallbacks() {
        return Map.copyOf(graphFallbacks);
    }

    /** Number of CUDA graphs captured and instantiated by this backend. */
    public synchronized int capturedGraphs() {
        return graphExecs.size();
    }

    /** Per module: seconds to compile with NVRTC and load (cold) or to load from the kernel cache (warm). */
    public synchronized List<KernelCache.CompileRecord> compileLog() {
        return List.copyOf(compileLog);
    }

    // ---- timing ----

    /** GPU time of the work {@code work} enqueues, measured by events on the stream (waits for it). */
    public synchronized double elapsedMillis(Runnable work) {
        bind();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            cu.check(cu.eventCreate(out, CudaDriver.EVENT_DEFAULT), "cuEventCreate", "timing");
            MemorySegment start = out.get(ADDRESS, 0);
            MemorySegment end = MemorySegment.NULL;
            try {
                cu.check(cu.eventCreate(out, CudaDriver.EVENT_DEFAULT), "cuEventCreate", "timing");
                end = out.get(ADDRESS, 0);
                cu.check(cu.eventRecord(start, stream), "cuEventRecord", "timing (start)");
                work.run();
                bind();
                cu.check(cu.eventRecord(end, stream), "cuEventRecord", "timing (end)");
                cu.check(cu.eventSynchronize(end), "cuEventSynchronize", "timing (waiting for the timed work)");
                MemorySegment ms = a.allocate(JAVA_FLOAT);
                cu.check(cu.eventElapsedTime(ms, start, end), "cuEventElapsedTime", "timing");
                return ms.get(JAVA_FLOAT, 0);
            } finally {
                cu.eventDestroy(start);
                if (!end.equals(MemorySegment.NULL)) cu.eventDestroy(end);
            }
        }
    }

    // ---- close ----

    /** Frees every buffer, module, graph and the stream, and releases the primary context; errors here are not thrown. */
    @Override
    public synchronized void close() {
        if (closed) return;
        bind();
        cu.streamSynchronize(stream);
        for (MemorySegment e : graphExecs) cu.graphExecDestroy(e);
        graphExecs.clear();
        for (Module m : modules.values()) cu.moduleUnload(m.handle());
        modules.clear();
        functions.clear();
        byInstance.clear();
        for (CudaBuffer b : live) {
            b.freed = true;
            if (b.ptr != 0) cu.memFree(b.ptr);
        }
        live.clear();
        allocated = 0;
        if (stagingPinned) cu.memFreeHost(staging);
        cu.streamDestroy(stream);
        cu.devicePrimaryCtxRelease(device);
        CURRENT.remove();
        closed = true;
        arena.close();
    }

    @Override
    public String toString() {
        return "CudaBackend[" + device() + "]";
    }
}
