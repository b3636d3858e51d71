package jdiffusion.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * OpenCL backend through FFM: one context and one in-order queue on one device; programs are built per
 * (family source, options) from {@link KernelSource#openCl} with "-cl-std=CL1.2" (or -Djdiffusion.opencl.std) and the
 * kernel's options, their binaries kept in the {@link KernelCache}. F16 buffers are converted on the host on write/read.
 * Knobs: -Djdiffusion.opencl.lib, -Djdiffusion.opencl.options (extra build options), -Djdiffusion.opencl.chunk (host staging elements).
 */
public final class OpenClBackend implements Backend {
    private static final long ZERO_PIECE = 64L << 20;

    private static final int CHUNK = Integer.getInteger("jdiffusion.opencl.chunk", 1 << 22);

    private final OpenCl cl;
    private final KernelCache cache;
    private final MemorySegment platform, deviceId, context, queue;
    public final String platformName, deviceName, vendor, deviceVersion, driverVersion, openClCVersion;
    public final long globalMemSize, maxMemAllocSize, maxWorkGroupSize, localMemSize, baseAddrAlignBits;
    public final boolean gpu;
    private final String buildOptions;
    private final AtomicLong allocated = new AtomicLong();
    private final Set<ClBuffer> live = java.util.Collections.synchronizedSet(new LinkedHashSet<>());
    private final Map<String, MemorySegment> programs = new HashMap<>();
    private final Map<String, MemorySegment> kernels = new HashMap<>();
    private boolean closed;

    /** An OpenCL buffer; zero-length buffers hold a tiny allocation so that they can still be kernel arguments. */
    public final class ClBuffer implements Buffer {
        public final String what;
        final DType dtype;
        final long length;
        final MemorySegment mem;
        private volatile boolean freed;

        ClBuffer(String what, DType dtype, long length, MemorySegment mem) {
            this.what = what;
            this.dtype = dtype;
            this.length = length;
            this.mem = mem;
        }

        @Override
        public Backend backend() {
            return OpenClBackend.this;
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
            synchronized (OpenClBackend.this) {
                if (freed) return;
                freed = true;
                live.remove(this);
                allocated.addAndGet(-bytes());
                if (!closed) releaseQuietly(cl.releaseMemObject, mem);
            }
        }

        @Override
        public String toString() {
            return "ClBuffer[" + what + ", " + dtype + " x " + length + "]";
        }
    }

    private OpenClBackend(OpenCl cl, MemorySegment platform, MemorySegment device, KernelCache cache) {
        this.cl = cl;
        this.cache = cache;
        this.platform = platform;
        this.deviceId = device;
        this.platformName = cl.platformString(platform, OpenCl.CL_PLATFORM_NAME);
        String platformVersion = cl.platformString(platform, OpenCl.CL_PLATFORM_VERSION);
        this.deviceName = cl.deviceString(device, OpenCl.CL_DEVICE_NAME);
        this.vendor = cl.deviceString(device, OpenCl.CL_DEVICE_VENDOR);
        this.deviceVersion = cl.deviceString(device, OpenCl.CL_DEVICE_VERSION);
        this.driverVersion = cl.deviceString(device, OpenCl.CL_DRIVER_VERSION);
        String cVersion;
        try {
            cVersion = cl.deviceString(device, OpenCl.CL_DEVICE_OPENCL_C_VERSION);
        } catch (KernelException e) {
            cVersion = "OpenCL C 1.1";
        }
        this.openClCVersion = cVersion;
        this.globalMemSize = cl.deviceLong(device, OpenCl.CL_DEVICE_GLOBAL_MEM_SIZE, 8);
        this.maxMemAllocSize = cl.deviceLong(device, OpenCl.CL_DEVICE_MAX_MEM_ALLOC_SIZE, 8);
        this.maxWorkGroupSize = cl.deviceLong(device, OpenCl.CL_DEVICE_MAX_WORK_GROUP_SIZE, 8);
        this.localMemSize = cl.deviceLong(device, OpenCl.CL_DEVICE_LOCAL_MEM_SIZE, 8);
        this.baseAddrAlignBits = cl.deviceLong(device, OpenCl.CL_DEVICE_MEM_BASE_ADDR_ALIGN, 4);
        this.gpu = (cl.deviceLong(device, OpenCl.CL_DEVICE_TYPE, 8) & OpenCl.CL_DEVICE_TYPE_GPU) != 0;
        String std = System.getProperty("jdiffusion.opencl.std", cVersion.matches(".*OpenCL C (1\\.[2-9]|[2-9]\\.).*") ? "CL1.2" : "");
        String extra = System.getProperty("jdiffusion.opencl.options", "");
        this.buildOptions = ((std.isEmpty() ? "" : "-cl-std=" + std) + " " + extra).trim();
        MemorySegment ctx = MemorySegment.NULL;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment props = a.allocate(JAVA_LONG, 3);
            props.setAtIndex(JAVA_LONG, 0, OpenCl.CL_CONTEXT_PLATFORM);
            props.setAtIndex(JAVA_LONG, 1, platform.address());
            props.setAtIndex(JAVA_LONG, 2, 0);
            MemorySegment devs = a.allocate(ADDRESS);
            devs.set(ADDRESS, 0, device);
            MemorySegment err = a.allocate(JAVA_INT);
            ctx = (MemorySegment) cl.createContext.invoke(props, 1, devs, MemorySegment.NULL, MemorySegment.NULL, err);
            OpenCl.check(err.get(JAVA_INT, 0), "clCreateContext", deviceName);
            boolean cl2 = platformVersion.matches("OpenCL ([2-9]|\\d\\d+)\\..*");
            MemorySegment q;
            if (cl2 && cl.createCommandQueueWithProperties != null || cl.createCommandQueue == null) {
                q = (MemorySegment) cl.createCommandQueueWithProperties.invoke(ctx, device, MemorySegment.NULL, err);
                OpenCl.check(err.get(JAVA_INT, 0), "clCreateCommandQueueWithProperties", deviceName);
            } else {
                q = (MemorySegment) cl.createCommandQueue.invoke(ctx, device, 0L, err);
                OpenCl.check(err.get(JAVA_INT, 0), "clCreateCommandQueue", deviceName);
            }
            this.context = ctx;
            this.queue = q;
        } catch (Throwable t) {
            if (!ctx.equals(MemorySegment.NULL)) releaseQuietly(cl.releaseContext, ctx);
            throw OpenCl.rethrow(t);
        }
    }

    /** Opens the first device whose platform and device names contain the hints (case-insensitive; null = best: a GPU first). */
    public static OpenClBackend open(String platformHint, String deviceHint) {
        return open(platformHint, deviceHint, KernelCache.defaultCache());
    }

    public static OpenClBackend open(String platformHint, String deviceHint, KernelCache cache) {
        OpenCl cl = OpenCl.get();
        List<MemorySegment[]> candidates = new ArrayList<>();
        for (MemorySegment p : cl.platforms()) {
            String pn = cl.platformString(p, OpenCl.CL_PLATFORM_NAME) + " " + cl.platformString(p, OpenCl.CL_PLATFORM_VENDOR);
            if (!matches(pn, platformHint)) continue;
            for (MemorySegment d : cl.devices(p))
                if (matches(cl.deviceString(d, OpenCl.CL_DEVICE_NAME) + " " + cl.deviceString(d, OpenCl.CL_DEVICE_VENDOR), deviceHint))
                    candidates.add(new MemorySegment[]{p, d});
        }
        if (candidates.isEmpty())
            throw new KernelException("no OpenCL device matches platform " + (platformHint == null ? "*" : "'" + platformHint + "'")
                    + " device " + (deviceHint == null ? "*" : "'" + deviceHint + "'") + "; found: " + describeDevices());
        MemorySegment[] pick = candidates.getFirst();
        for (MemorySegment[] c : candidates)
            if ((cl.deviceLong(c[1], OpenCl.CL_DEVICE_TYPE, 8) & OpenCl.CL_DEVICE_TYPE_GPU) != 0) {
                pick = c;
                break;
            }
        return new OpenClBackend(cl, pick[0], pick[1], cache);
    }

    /** Every (platform, device) pair as [platform, device] segments, in enumeration order; empty when there is no platform. */
    static List<MemorySegment[]> all() {
        OpenCl cl = OpenCl.get();
        List<MemorySegment[]> out = new ArrayList<>();
        for (MemorySegment p : cl.platforms()) for (MemorySegment d : cl.devices(p)) out.add(new MemorySegment[]{p, d});
        return out;
    }

    /** Opens one specific device from {@link #all}. */
    static OpenClBackend open(MemorySegment[] platformAndDevice, KernelCache cache) {
        return new OpenClBackend(OpenCl.get(), platformAndDevice[0], platformAndDevice[1], cache);
    }

    static boolean isGpu(MemorySegment device) {
        return (OpenCl.get().deviceLong(device, OpenCl.CL_DEVICE_TYPE, 8) & OpenCl.CL_DEVICE_TYPE_GPU) != 0;
    }

    private static boolean matches(String text, String hint) {
        return hint == null || hint.isBlank() || text.toLowerCase(Locale.ROOT).contains(hint.toLowerCase(Locale.ROOT));
    }

    /** One line per platform and device; a single line saying why when OpenCL is missing. */
    public static List<String> describeDevices() {
        List<String> out = new ArrayList<>();
        OpenCl cl;
        try {
            cl = OpenCl.get();
        } catch (KernelException e) {
            out.add("OpenCL: " + e.getMessage());
            return out;
        }
        try {
            List<MemorySegment> ps = cl.platforms();
            if (ps.isEmpty()) out.add("OpenCL: no platform (" + cl.library + " found no ICD; install pocl-opencl-icd or a GPU driver)");
            for (int i = 0; i < ps.size(); i++) {
                MemorySegment p = ps.get(i);
                out.add("OpenCL platform #" + i + ": " + cl.platformString(p, OpenCl.CL_PLATFORM_NAME) + " (" + cl.platformString(p, OpenCl.CL_PLATFORM_VENDOR)
                        + ", " + cl.platformString(p, OpenCl.CL_PLATFORM_VERSION) + ")");
                List<MemorySegment> ds = cl.devices(p);
                for (int j = 0; j < ds.size(); j++) {
                    MemorySegment d = ds.get(j);
                    long type = cl.deviceLong(d, OpenCl.CL_DEVICE_TYPE, 8);
                    out.add(String.format("  device #%d: %s [%s] %s, driver %s, %d CUs, %.2f GiB global, %.2f GiB max alloc, max work group %d, %d KiB local",
                            j, cl.deviceString(d, OpenCl.CL_DEVICE_NAME),
                            (type & OpenCl.CL_DEVICE_TYPE_GPU) != 0 ? "GPU" : (type & OpenCl.CL_DEVICE_TYPE_CPU) != 0 ? "CPU" : "other",
                            cl.deviceString(d, OpenCl.CL_DEVICE_VERSION), cl.deviceString(d, OpenCl.CL_DRIVER_VERSION),
                            cl.deviceLong(d, OpenCl.CL_DEVICE_MAX_COMPUTE_UNITS, 4),
                            cl.deviceLong(d, OpenCl.CL_DEVICE_GLOBAL_MEM_SIZE, 8) / (double) (1L << 30),
                            cl.deviceLong(d, OpenCl.CL_DEVICE_MAX_MEM_ALLOC_SIZE, 8) / (double) (1L << 30),
                            cl.deviceLong(d, OpenCl.CL_DEVICE_MAX_WORK_GROUP_SIZE, 8),
                            cl.deviceLong(d, OpenCl.CL_DEVICE_LOCAL_MEM_SIZE, 8) / 1024));
                }
            }
        } catch (KernelException e) {
            out.add("OpenCL: " + e.getMessage());
        }
        return out;
    }

    @Override
    public String name() {
        return "opencl";
    }

    @Override
    public String device() {
        return deviceName + " (" + platformName + ", " + deviceVersion + ", driver " + driverVersion + ")";
    }

    public KernelCache cache() {
        return cache;
    }

    // ---- memory ----

    @Override
    public synchronized Buffer allocate(String what, DType dtype, long length) {
        ensureOpen();
        if (length < 0) throw new KernelException("negative length " + length + " for " + what);
        if (length > Long.MAX_VALUE / dtype.bytes) throw new DeviceOutOfMemoryException(what, Long.MAX_VALUE, "length " + length + " overflows");
        long bytes = length * dtype.bytes;
        if (bytes > maxMemAllocSize)
            throw new DeviceOutOfMemoryException(what, bytes, "above CL_DEVICE_MAX_MEM_ALLOC_SIZE " + maxMemAllocSize + " of " + deviceName);
        if (allocated.get() + bytes > globalMemSize)
            throw new DeviceOutOfMemoryException(what, bytes, allocated.get() + " bytes already allocated of CL_DEVICE_GLOBAL_MEM_SIZE " + globalMemSize + " on " + deviceName);
        long real = Math.max(bytes, 16);
        MemorySegment mem;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment err = a.allocate(JAVA_INT);
            mem = (MemorySegment) cl.createBuffer.invoke(context, OpenCl.CL_MEM_READ_WRITE, real, MemorySegment.NULL, err);
            int e = err.get(JAVA_INT, 0);
            if (OpenCl.isOutOfMemory(e) || e == -61 /* CL_INVALID_BUFFER_SIZE */)
                throw new DeviceOutOfMemoryException(what, bytes, "clCreateBuffer: " + OpenCl.errorName(e) + " on " + deviceName);
            OpenCl.check(e, "clCreateBuffer", "buffer " + what + " (" + bytes + " bytes)");
            // OpenCL allocates lazily: zero-fill now (and wait) so that a failure shows up here, not in a later kernel
            long patternSize = real % 4 == 0 ? 4 : 2;
            MemorySegment pattern = a.allocate(4);
            // NVIDIA's clEnqueueFillBuffer breaks the queue (and every later context, error -9999) on buffers of 2^31
            // bytes or more, so those are zeroed by blocking writes from a zeroed host piece instead
            int fe = OpenCl.CL_SUCCESS;
            if (real < (1L << 31)) {
                fe = (int) cl.enqueueFillBuffer.invoke(queue, mem, pattern, patternSize, 0L, real, 0, MemorySegment.NULL, MemorySegment.NULL);
            } else {
                MemorySegment zeros = a.allocate(ZERO_PIECE);
                for (long off = 0; off < real && fe == OpenCl.CL_SUCCESS; off += ZERO_PIECE)
                    fe = (int) cl.enqueueWriteBuffer.invoke(queue, mem, 1 /* blocking */, off, Math.min(ZERO_PIECE, real - off), zeros, 0, MemorySegment.NULL, MemorySegment.NULL);
            }
            if (fe == OpenCl.CL_SUCCESS) fe = (int) cl.finish.invoke(queue);
            if (fe != OpenCl.CL_SUCCESS) {
                releaseQuietly(cl.releaseMemObject, mem);
                if (OpenCl.isOutOfMemory(fe))
                    throw new DeviceOutOfMemoryException(what, bytes, "clEnqueueFillBuffer/clFinish: " + OpenCl.errorName(fe) + " on " + deviceName);
                OpenCl.check(fe, "clEnqueueFillBuffer", "buffer " + what);
            }
        } catch (Throwable t) {
            throw OpenCl.rethrow(t);
        }
        ClBuffer b = new ClBuffer(what, dtype, length, mem);
        allocated.addAndGet(bytes);
        live.add(b);
        return b;
    }

    private ClBuffer own(Buffer b) {
        if (b instanceof ClBuffer cb && cb.backend() == this) {
            if (cb.freed) throw new KernelException("use of freed buffer " + cb.what);
            ensureOpen();
            return cb;
        }
        throw new KernelException("buffer " + b + " does not belong to this OpenCL backend (" + deviceName + ")");
    }

    private void ensureOpen() {
        if (closed) throw new KernelException("OpenCL backend on " + deviceName + " is closed");
    }

    private static void checkRange(ClBuffer b, long offset, long length) {
        if (offset < 0 || length < 0 || offset + length > b.length)
            throw new KernelException("range [" + offset + ", " + (offset + length) + ") outside buffer " + b.what + " of " + b.length + " elements");
    }

    private static void checkHost(int arrayLength, int offset, int length, String what) {
        if (offset < 0 || length < 0 || (long) offset + length > arrayLength)
            throw new KernelException("host range [" + offset + ", " + ((long) offset + length) + ") outside array of " + arrayLength + " for buffer " + what);
    }

    @Override
    public void write(Buffer dst, long dstOffset, float[] src, int srcOffset, int length) {
        ClBuffer d = own(dst);
        if (d.dtype == DType.I32) throw new KernelException("write of floats into I32 buffer " + d.what);
        checkRange(d, dstOffset, length);
        checkHost(src.length, srcOffset, length, d.what);
        int es = d.dtype.bytes;
        short[] halves = null;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment stage = a.allocate((long) Math.min(length, CHUNK) * es, 8);
            for (int done = 0; done < length; ) {
                int n = Math.min(CHUNK, length - done);
                if (d.dtype == DType.F32) MemorySegment.copy(src, srcOffset + done, stage, JAVA_FLOAT, 0, n);
                else {
                    if (halves == null) halves = new short[Math.min(length, CHUNK)];
                    for (int i = 0; i < n; i++) halves[i] = Float.floatToFloat16(src[srcOffset + done + i]);
                    MemorySegment.copy(halves, 0, stage, JAVA_SHORT, 0, n);
                }
                transfer(true, d, (dstOffset + done) * es, (long) n * es, stage);
                done += n;
            }
        }
    }

    @Override
    public void write(Buffer dst, long dstOffset, int[] src, int srcOffset, int length) {
        ClBuffer d = own(dst);
        if (d.dtype != DType.I32) throw new KernelException("write of ints into " + d.dtype + " buffer " + d.what);
        checkRange(d, dstOffset, length);
        checkHost(src.length, srcOffset, length, d.what);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment stage = a.allocate((long) Math.min(length, CHUNK) * 4, 8);
            for (int done = 0; done < length; ) {
                int n = Math.min(CHUNK, length - done);
                MemorySegment.copy(src, srcOffset + done, stage, JAVA_INT, 0, n);
                transfer(true, d, (dstOffset + done) * 4, (long) n * 4, stage);
                done += n;
            }
        }
    }

    @Override
    public void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int length) {
        ClBuffer s = own(src);
        checkRange(s, srcOffset, length);
        checkHost(dst.length, dstOffset, length, s.what);
        int es = s.dtype.bytes;
        short[] halves = null;
        int[] ints = null;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment stage = a.allocate((long) Math.min(length, CHUNK) * es, 8);
            for (int done = 0; done < length; ) {
                int n = Math.min(CHUNK, length - done);
                transfer(false, s, (srcOffset + done) * es, (long) n * es, stage);
                int o = dstOffset + done;
                switch (s.dtype) {
                    case F32 -> MemorySegment.copy(stage, JAVA_FLOAT, 0, dst, o, n);
                    case F16 -> {
                        if (halves == null) halves = new short[Math.min(length, CHUNK)];
                        MemorySegment.copy(stage, JAVA_SHORT, 0, halves, 0, n);
                        for (int i = 0; i < n; i++) dst[o + i] = Float.float16ToFloat(halves[i]);
                    }
                    case I32 -> {
                        if (ints == null) ints = new int[Math.min(length, CHUNK)];
                        MemorySegment.copy(stage, JAVA_INT, 0, ints, 0, n);
                        for (int i = 0; i < n; i++) dst[o + i] = ints[i];
                    }
                }
                done += n;
            }
        }
    }

    /** Reads an I32 buffer into host ints (exact, unlike {@link #read} through floats). */
    public void readInts(Buffer src, long srcOffset, int[] dst, int dstOffset, int length) {
        ClBuffer s = own(src);
        if (s.dtype != DType.I32) throw new KernelException("readInts of " + s.dtype + " buffer " + s.what);
        checkRange(s, srcOffset, length);
        checkHost(dst.length, dstOffset, length, s.what);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment stage = a.allocate((long) Math.min(length, CHUNK) * 4, 8);
            for (int done = 0; done < length; ) {
                int n = Math.min(CHUNK, length - done);
                transfer(false, s, (srcOffset + done) * 4, (long) n * 4, stage);
                MemorySegment.copy(stage, JAVA_INT, 0, dst, dstOffset + done, n);
                done += n;
            }
        }
    }

    private void transfer(boolean write, ClBuffer b, long offsetBytes, long bytes, MemorySegment host) {
        if (bytes == 0) return;
        try {
            int err = (int) (write ? cl.enqueueWriteBuffer : cl.enqueueReadBuffer).invoke(queue, b.mem, 1, offsetBytes, bytes, host, 0, MemorySegment.NULL, MemorySegment.NULL);
            if (OpenCl.isOutOfMemory(err))
                throw new DeviceOutOfMemoryException(b.what, b.bytes(), (write ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer") + ": " + OpenCl.errorName(err) + " on " + deviceName);
            OpenCl.check(err, write ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer", "buffer " + b.what + " (" + bytes + " bytes at byte " + offsetBytes + ")");
        } catch (Throwable t) {
            throw OpenCl.rethrow(t);
        }
    }

    @Override
    public void copy(Buffer src, long srcOffset, Buffer dst, long dstOffset, long length) {
        ClBuffer s = own(src), d = own(dst);
        if (s.dtype != d.dtype) throw new KernelException("copy " + s.what + " (" + s.dtype + ") -> " + d.what + " (" + d.dtype + "): dtypes differ");
        checkRange(s, srcOffset, length);
        checkRange(d, dstOffset, length);
        if (length == 0) return;
        int es = s.dtype.bytes;
        if (s == d && Math.abs(srcOffset - dstOffset) < length)
            throw new KernelException("copy within buffer " + s.what + ": ranges overlap");
        try {
            int err = (int) cl.enqueueCopyBuffer.invoke(queue, s.mem, d.mem, srcOffset * es, dstOffset * es, length * es, 0, MemorySegment.NULL, MemorySegment.NULL);
            OpenCl.check(err, "clEnqueueCopyBuffer", s.what + " -> " + d.what + " (" + length * es + " bytes)");
        } catch (Throwable t) {
            throw OpenCl.rethrow(t);
        }
    }

    // ---- programs ----

    @Override
    public synchronized void prepare(Kernel kernel) {
        kernel(kernel);
    }

    private MemorySegment kernel(Kernel k) {
        ensureOpen();
        String kid = k.family() + "|" + k.options() + "|" + k.name();
        MemorySegment kern = kernels.get(kid);
        if (kern != null) return kern;
        MemorySegment program = program(k);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment err = a.allocate(JAVA_INT);
            kern = (MemorySegment) cl.createKernel.invoke(program, a.allocateFrom(k.name()), err);
            OpenCl.check(err.get(JAVA_INT, 0), "clCreateKernel", "kernel " + k.id());
        } catch (Throwable t) {
            throw OpenCl.rethrow(t);
        }
        kernels.put(kid, kern);
        return kern;
    }

    private MemorySegment program(Kernel k) {
        String pid = k.family() + "|" + k.options();
        MemorySegment p = programs.get(pid);
        if (p != null) return p;
        String source = KernelSource.openCl(k);
        String options = (buildOptions + " " + k.options()).trim();
        String key = KernelCache.key("opencl", platformName + "/" + deviceName, driverVersion + "/" + deviceVersion, options, source);
        long t0 = System.nanoTime();
        Optional<byte[]> binary = cache.load(key);
        if (binary.isPresent()) {
            p = fromBinary(k, binary.get(), options);
            if (p != null) {
                cache.recordCompile(k.id(), (System.nanoTime() - t0) / 1e9, true);
                programs.put(pid, p);
                return p;
            }
        }
        p = fromSource(k, source, options);
        cache.recordCompile(k.id(), (System.nanoTime() - t0) / 1e9, false);
        programs.put(pid, p);
        byte[] bin = binaryOf(p, k);
        if (bin != null && bin.length > 0) cache.store(key, bin, "opencl " + k.family() + " [" + options + "] on " + deviceName);
        return p;
    }

    /** Null when the binary is rejected (stale or corrupt): the caller builds from source. */
    private MemorySegment fromBinary(Kernel k, byte[] bin, String options) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment devs = a.allocate(ADDRESS);
            devs.set(ADDRESS, 0, deviceId);
            MemorySegment lens = a.allocate(JAVA_LONG);
            lens.set(JAVA_LONG, 0, bin.length);
            MemorySegment data = a.allocate(bin.length);
            MemorySegment.copy(bin, 0, data, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, bin.length);
            MemorySegment ptrs = a.allocate(ADDRESS);
            ptrs.set(ADDRESS, 0, data);
            MemorySegment status = a.allocate(JAVA_INT), err = a.allocate(JAVA_INT);
            MemorySegment p = (MemorySegment) cl.createProgramWithBinary.invoke(context, 1, devs, lens, ptrs, status, err);
            if (err.get(JAVA_INT, 0) != OpenCl.CL_SUCCESS || status.get(JAVA_INT, 0) != OpenCl.CL_SUCCESS) {
                if (!p.equals(MemorySegment.NULL)) releaseQuietly(cl.releaseProgram, p);
                return null;
            }
            int e = (int) cl.buildProgram.invoke(p, 1, devs, a.allocateFrom(options), MemorySegment.NULL, MemorySegment.NULL);
            SignalHandlers.check(); // PoCL's LLVM installs crash handlers over the JVM's
            if (e != OpenCl.CL_SUCCESS) {
                releaseQuietly(cl.releaseProgram, p);
                return null;
            }
            return p;
        } catch (Throwable t) {
            return null;
        }
    }

    private MemorySegment fromSource(Kernel k, String source, String options) {
        try (Arena a = Arena.ofConfined()) {
            byte[] src = source.getBytes(StandardCharsets.UTF_8);
            MemorySegment text = a.allocate(src.length + 1L);
            MemorySegment.copy(src, 0, text, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, src.length);
            MemorySegment strings = a.allocate(ADDRESS);
            strings.set(ADDRESS, 0, text);
            MemorySegment lens = a.allocate(JAVA_LONG);
            lens.set(JAVA_LONG, 0, src.length);
            MemorySegment err = a.allocate(JAVA_INT);
            MemorySegment p = (MemorySegment) cl.createProgramWithSource.invoke(context, 1, strings, lens, err);
            OpenCl.check(err.get(JAVA_INT, 0), "clCreateProgramWithSource", "kernel " + k.id());
            MemorySegment devs = a.allocate(ADDRESS);
            devs.set(ADDRESS, 0, deviceId);
            int e = (int) cl.buildProgram.invoke(p, 1, devs, a.allocateFrom(options), MemorySegment.NULL, MemorySegment.NULL);
            SignalHandlers.check(); // PoCL's LLVM installs crash handlers over the JVM's
            if (e != OpenCl.CL_SUCCESS) {
                String log = buildLog(p);
                releaseQuietly(cl.releaseProgram, p);
                throw new KernelException("kernel " + k.id() + " (family " + k.family() + ".cl) failed to build on " + deviceName + " with "
                        + OpenCl.errorName(e) + ", options \"" + options + "\"; build log:\n" + log);
            }
            return p;
        } catch (Throwable t) {
            throw OpenCl.rethrow(t);
        }
    }

    private String buildLog(MemorySegment program) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment size = a.allocate(JAVA_LONG);
            int e = (int) cl.getProgramBuildInfo.invoke(program, deviceId, OpenCl.CL_PROGRAM_BUILD_LOG, 0L, MemorySegment.NULL, size);
            if (e != OpenCl.CL_SUCCESS) return "(no build log: " + OpenCl.errorName(e) + ")";
            long n = size.get(JAVA_LONG, 0);
            if (n <= 1) return "(empty build log)";
            MemorySegment buf = a.allocate(n);
            e = (int) cl.getProgramBuildInfo.invoke(program, deviceId, OpenCl.CL_PROGRAM_BUILD_LOG, n, buf, MemorySegment.NULL);
            if (e != OpenCl.CL_SUCCESS) return "(no build log: " + OpenCl.errorName(e) + ")";
            return buf.getString(0);
        } catch (Throwable t) {
            return "(no build log: " + t + ")";
        }
    }

    /** The program's device binary, or null when the driver offers none (then nothing is cached). */
    private byte[] binaryOf(MemorySegment program, Kernel k) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sizes = a.allocate(JAVA_LONG);
            int e = (int) cl.getProgramInfo.invoke(program, OpenCl.CL_PROGRAM_BINARY_SIZES, 8L, sizes, MemorySegment.NULL);
            if (e != OpenCl.CL_SUCCESS) return null;
            long n = sizes.get(JAVA_LONG, 0);
            if (n <= 0 || n > Integer.MAX_VALUE - 64) return null;
            MemorySegment data = a.allocate(n);
            MemorySegment ptrs = a.allocate(ADDRESS);
            ptrs.set(ADDRESS, 0, data);
            e = (int) cl.getProgramInfo.invoke(program, OpenCl.CL_PROGRAM_BINARIES, 8L, ptrs, MemorySegment.NULL);
            if (e != OpenCl.CL_SUCCESS) return null;
            return data.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        } catch (Throwable t) {
            return null;
        }
    }

    // ---- launches ----

    @Override
    public synchronized void launch(Task task) {
        Kernel k = task.kernel();
        MemorySegment kern = kernel(k);
        Launch l = task.launch();
        int dims = l.global().length;
        long groupSize = 1;
        for (long v : l.local()) groupSize *= v;
        if (groupSize > maxWorkGroupSize)
            throw new KernelException("task " + task.name() + " (" + k.id() + "): work group of " + groupSize + " items exceeds the device's max work group size "
                    + maxWorkGroupSize + " on " + deviceName);
        try (Arena a = Arena.ofConfined()) {
            Object[] args = task.args();
            MemorySegment slot = a.allocate(8, 8);
            for (int i = 0; i < args.length; i++) {
                Object arg = args[i];
                long size;
                switch (arg) {
                    case Buffer b -> {
                        slot.set(ADDRESS, 0, own(b).mem);
                        size = ADDRESS.byteSize();
                    }
                    case Integer v -> {
                        slot.set(JAVA_INT, 0, v);
                        size = 4;
                    }
                    case Long v -> {
                        slot.set(JAVA_LONG, 0, v);
                        size = 8;
                    }
                    case Float v -> {
                        slot.set(JAVA_FLOAT, 0, v);
                        size = 4;
                    }
                    case null, default -> throw new KernelException("task " + task.name() + " (" + k.id() + "): argument " + i + " has unsupported type "
                            + (arg == null ? "null" : arg.getClass().getSimpleName()));
                }
                int e = (int) cl.setKernelArg.invoke(kern, i, size, slot);
                if (e != OpenCl.CL_SUCCESS)
                    throw new KernelException("clSetKernelArg failed with " + OpenCl.errorName(e) + " for argument " + i + " (" + arg + ") of task "
                            + task.name() + " (" + k.id() + ")");
            }
            MemorySegment global = a.allocate(JAVA_LONG, dims), local = a.allocate(JAVA_LONG, dims);
            for (int d = 0; d < dims; d++) {
                global.setAtIndex(JAVA_LONG, d, l.global()[d]);
                local.setAtIndex(JAVA_LONG, d, l.local()[d]);
            }
            int e = (int) cl.enqueueNDRangeKernel.invoke(queue, kern, dims, MemorySegment.NULL, global, local, 0, MemorySegment.NULL, MemorySegment.NULL);
            SignalHandlers.check(); // PoCL compiles work-group functions at the first launch
            if (e != OpenCl.CL_SUCCESS)
                throw new KernelException("clEnqueueNDRangeKernel failed with " + OpenCl.errorName(e) + " for task " + task.name() + " (" + k.id() + "), global "
                        + java.util.Arrays.toString(l.global()) + " local " + java.util.Arrays.toString(l.local()));
        } catch (Throwable t) {
            throw OpenCl.rethrow(t);
        }
    }

    @Override
    public void finish() {
        ensureOpen();
        try {
            int e = (int) cl.finish.invoke(queue);
            SignalHandlers.check();
            if (OpenCl.isOutOfMemory(e)) throw new KernelException("clFinish failed with " + OpenCl.errorName(e) + " on " + deviceName + " (a kernel ran out of resources or faulted)");
            OpenCl.check(e, "clFinish", deviceName);
        } catch (Throwable t) {
            throw OpenCl.rethrow(t);
        }
    }

    @Override
    public long allocatedBytes() {
        return allocated.get();
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        try {
            cl.finish.invoke(queue);
        } catch (Throwable ignored) {
        }
        for (ClBuffer b : List.copyOf(live)) b.close();
        for (MemorySegment k : kernels.values()) releaseQuietly(cl.releaseKernel, k);
        for (MemorySegment p : programs.values()) releaseQuietly(cl.releaseProgram, p);
        kernels.clear();
        programs.clear();
        releaseQuietly(cl.releaseCommandQueue, queue);
        releaseQuietly(cl.releaseContext, context);
        closed = true;
    }

    private static void releaseQuietly(java.lang.invoke.MethodHandle release, MemorySegment obj) {
        try {
            release.invoke(obj);
        } catch (Throwable ignored) {
        }
    }

    @Override
    public String toString() {
        return "OpenClBackend[" + device() + "]";
    }
}
