package jdiffusion.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * FFM bindings to the OpenCL ICD loader (libOpenCL.so.1; -Djdiffusion.opencl.lib=path overrides). Every call that
 * returns a cl_int is checked: a failure is a {@link KernelException} naming the call, the CL error and what it was for.
 */
final class OpenCl {
    static final int CL_SUCCESS = 0;
    static final int CL_MEM_OBJECT_ALLOCATION_FAILURE = -4, CL_OUT_OF_RESOURCES = -5, CL_OUT_OF_HOST_MEMORY = -6, CL_BUILD_PROGRAM_FAILURE = -11;
    static final int CL_PLATFORM_NOT_FOUND_KHR = -1001, CL_DEVICE_NOT_FOUND = -1;
    static final int CL_PLATFORM_VERSION = 0x0901, CL_PLATFORM_NAME = 0x0902, CL_PLATFORM_VENDOR = 0x0903;
    static final long CL_DEVICE_TYPE_CPU = 1 << 1, CL_DEVICE_TYPE_GPU = 1 << 2, CL_DEVICE_TYPE_ACCELERATOR = 1 << 3, CL_DEVICE_TYPE_ALL = 0xFFFFFFFFL;
    static final int CL_DEVICE_TYPE = 0x1000, CL_DEVICE_MAX_COMPUTE_UNITS = 0x1002, CL_DEVICE_MAX_WORK_GROUP_SIZE = 0x1004,
            CL_DEVICE_MAX_MEM_ALLOC_SIZE = 0x1010, CL_DEVICE_MEM_BASE_ADDR_ALIGN = 0x1019, CL_DEVICE_GLOBAL_MEM_SIZE = 0x101F,
            CL_DEVICE_LOCAL_MEM_SIZE = 0x1023, CL_DEVICE_NAME = 0x102B, CL_DEVICE_VENDOR = 0x102C, CL_DRIVER_VERSION = 0x102D,
            CL_DEVICE_VERSION = 0x102F, CL_DEVICE_OPENCL_C_VERSION = 0x103D;
    static final long CL_CONTEXT_PLATFORM = 0x1084;
    static final long CL_MEM_READ_WRITE = 1;
    static final int CL_PROGRAM_BINARY_SIZES = 0x1165, CL_PROGRAM_BINARIES = 0x1166, CL_PROGRAM_BUILD_LOG = 0x1183;

    private static final Map<Integer, String> ERRORS = Map.ofEntries(
            Map.entry(0, "CL_SUCCESS"), Map.entry(-1, "CL_DEVICE_NOT_FOUND"), Map.entry(-2, "CL_DEVICE_NOT_AVAILABLE"),
            Map.entry(-3, "CL_COMPILER_NOT_AVAILABLE"), Map.entry(-4, "CL_MEM_OBJECT_ALLOCATION_FAILURE"), Map.entry(-5, "CL_OUT_OF_RESOURCES"),
            Map.entry(-6, "CL_OUT_OF_HOST_MEMORY"), Map.entry(-7, "CL_PROFILING_INFO_NOT_AVAILABLE"), Map.entry(-8, "CL_MEM_COPY_OVERLAP"),
            Map.entry(-9, "CL_IMAGE_FORMAT_MISMATCH"), Map.entry(-10, "CL_IMAGE_FORMAT_NOT_SUPPORTED"), Map.entry(-11, "CL_BUILD_PROGRAM_FAILURE"),
            Map.entry(-12, "CL_MAP_FAILURE"), Map.entry(-13, "CL_MISALIGNED_SUB_BUFFER_OFFSET"), Map.entry(-14, "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST"),
            Map.entry(-15, "CL_COMPILE_PROGRAM_FAILURE"), Map.entry(-16, "CL_LINKER_NOT_AVAILABLE"), Map.entry(-17, "CL_LINK_PROGRAM_FAILURE"),
            Map.entry(-18, "CL_DEVICE_PARTITION_FAILED"), Map.entry(-19, "CL_KERNEL_ARG_INFO_NOT_AVAILABLE"), Map.entry(-30, "CL_INVALID_VALUE"),
            Map.entry(-31, "CL_INVALID_DEVICE_TYPE"), Map.entry(-32, "CL_INVALID_PLATFORM"), Map.entry(-33, "CL_INVALID_DEVICE"),
            Map.entry(-34, "CL_INVALID_CONTEXT"), Map.entry(-35, "CL_INVALID_QUEUE_PROPERTIES"), Map.entry(-36, "CL_INVALID_COMMAND_QUEUE"),
            Map.entry(-37, "CL_INVALID_HOST_PTR"), Map.entry(-38, "CL_INVALID_MEM_OBJECT"), Map.entry(-39, "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR"),
            Map.entry(-40, "CL_INVALID_IMAGE_SIZE"), Map.entry(-41, "CL_INVALID_SAMPLER"), Map.entry(-42, "CL_INVALID_BINARY"),
            Map.entry(-43, "CL_INVALID_BUILD_OPTIONS"), Map.entry(-44, "CL_INVALID_PROGRAM"), Map.entry(-45, "CL_INVALID_PROGRAM_EXECUTABLE"),
            Map.entry(-46, "CL_INVALID_KERNEL_NAME"), Map.entry(-47, "CL_INVALID_KERNEL_DEFINITION"), Map.entry(-48, "CL_INVALID_KERNEL"),
            Map.entry(-49, "CL_INVALID_ARG_INDEX"), Map.entry(-50, "CL_INVALID_ARG_VALUE"), Map.entry(-51, "CL_INVALID_ARG_SIZE"),
            Map.entry(-52, "CL_INVALID_KERNEL_ARGS"), Map.entry(-53, "CL_INVALID_WORK_DIMENSION"), Map.entry(-54, "CL_INVALID_WORK_GROUP_SIZE"),
            Map.entry(-55, "CL_INVALID_WORK_ITEM_SIZE"), Map.entry(-56, "CL_INVALID_GLOBAL_OFFSET"), Map.entry(-57, "CL_INVALID_EVENT_WAIT_LIST"),
            Map.entry(-58, "CL_INVALID_EVENT"), Map.entry(-59, "CL_INVALID_OPERATION"), Map.entry(-60, "CL_INVALID_GL_OBJECT"),
            Map.entry(-61, "CL_INVALID_BUFFER_SIZE"), Map.entry(-62, "CL_INVALID_MIP_LEVEL"), Map.entry(-63, "CL_INVALID_GLOBAL_WORK_SIZE"),
            Map.entry(-64, "CL_INVALID_PROPERTY"), Map.entry(-65, "CL_INVALID_IMAGE_DESCRIPTOR"), Map.entry(-66, "CL_INVALID_COMPILER_OPTIONS"),
            Map.entry(-67, "CL_INVALID_LINKER_OPTIONS"), Map.entry(-68, "CL_INVALID_DEVICE_PARTITION_COUNT"), Map.entry(-69, "CL_INVALID_PIPE_SIZE"),
            Map.entry(-70, "CL_INVALID_DEVICE_QUEUE"), Map.entry(-71, "CL_INVALID_SPEC_ID"), Map.entry(-72, "CL_MAX_SIZE_RESTRICTION_EXCEEDED"),
            Map.entry(-1001, "CL_PLATFORM_NOT_FOUND_KHR"));

    private static OpenCl instance;
    private static KernelException loadFailure;

    final String library;
    final MethodHandle getPlatformIDs, getPlatformInfo, getDeviceIDs, getDeviceInfo, createContext, createCommandQueue,
            createCommandQueueWithProperties, createBuffer, enqueueWriteBuffer, enqueueReadBuffer, enqueueCopyBuffer, enqueueFillBuffer,
            createProgramWithSource, createProgramWithBinary, buildProgram, getProgramBuildInfo, getProgramInfo, createKernel,
            setKernelArg, enqueueNDRangeKernel, finish, releaseMemObject, releaseKernel, releaseProgram, releaseCommandQueue, releaseContext;

    /** The loaded library, or a KernelException saying why it cannot be loaded (remembered). */
    static synchronized OpenCl get() {
        if (instance != null) return instance;
        if (loadFailure != null) throw new KernelException(loadFailure.getMessage(), loadFailure);
        String lib = System.getProperty("jdiffusion.opencl.lib", "libOpenCL.so.1");
        try {
            instance = new OpenCl(lib);
            return instance;
        } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
            loadFailure = new KernelException("cannot load the OpenCL ICD loader " + lib + " (" + e.getMessage()
                    + "); install ocl-icd-libopencl1 and a driver (pocl-opencl-icd for the CPU) or set -Djdiffusion.opencl.lib", e);
            throw loadFailure;
        }
    }

    private OpenCl(String lib) {
        this.library = lib;
        SignalHandlers.capture(); // before the ICD loader and its drivers are in the process
        Linker linker = Linker.nativeLinker();
        SymbolLookup lookup = SymbolLookup.libraryLookup(lib.contains("/") ? java.nio.file.Path.of(lib).toString() : lib, Arena.global());
        java.util.function.BiFunction<String, FunctionDescriptor, MethodHandle> h = (name, fd) -> lookup.find(name)
                .map(s -> linker.downcallHandle(s, fd))
                .orElse(null);
        FunctionDescriptor infoFn = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS);
        FunctionDescriptor release = FunctionDescriptor.of(JAVA_INT, ADDRESS);
        getPlatformIDs = need(h.apply("clGetPlatformIDs", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS)), "clGetPlatformIDs");
        getPlatformInfo = need(h.apply("clGetPlatformInfo", infoFn), "clGetPlatformInfo");
        getDeviceIDs = need(h.apply("clGetDeviceIDs", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS)), "clGetDeviceIDs");
        getDeviceInfo = need(h.apply("clGetDeviceInfo", infoFn), "clGetDeviceInfo");
        createContext = need(h.apply("clCreateContext", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS)), "clCreateContext");
        createCommandQueue = h.apply("clCreateCommandQueue", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
        createCommandQueueWithProperties = h.apply("clCreateCommandQueueWithProperties", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        if (createCommandQueue == null && createCommandQueueWithProperties == null) throw new IllegalArgumentException("no clCreateCommandQueue in " + lib);
        createBuffer = need(h.apply("clCreateBuffer", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS)), "clCreateBuffer");
        FunctionDescriptor rw = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        enqueueWriteBuffer = need(h.apply("clEnqueueWriteBuffer", rw), "clEnqueueWriteBuffer");
        enqueueReadBuffer = need(h.apply("clEnqueueReadBuffer", rw), "clEnqueueReadBuffer");
        enqueueCopyBuffer = need(h.apply("clEnqueueCopyBuffer", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS)), "clEnqueueCopyBuffer");
        enqueueFillBuffer = need(h.apply("clEnqueueFillBuffer", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS)), "clEnqueueFillBuffer");
        createProgramWithSource = need(h.apply("clCreateProgramWithSource", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS)), "clCreateProgramWithSource");
        createProgramWithBinary = need(h.apply("clCreateProgramWithBinary", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS)), "clCreateProgramWithBinary");
        buildProgram = need(h.apply("clBuildProgram", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS)), "clBuildProgram");
        getProgramBuildInfo = need(h.apply("clGetProgramBuildInfo", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS)), "clGetProgramBuildInfo");
        getProgramInfo = need(h.apply("clGetProgramInfo", infoFn), "clGetProgramInfo");
        createKernel = need(h.apply("clCreateKernel", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, ADDRESS)), "clCreateKernel");
        setKernelArg = need(h.apply("clSetKernelArg", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS)), "clSetKernelArg");
        enqueueNDRangeKernel = need(h.apply("clEnqueueNDRangeKernel", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS)), "clEnqueueNDRangeKernel");
        finish = need(h.apply("clFinish", release), "clFinish");
        releaseMemObject = need(h.apply("clReleaseMemObject", release), "clReleaseMemObject");
        releaseKernel = need(h.apply("clReleaseKernel", release), "clReleaseKernel");
        releaseProgram = need(h.apply("clReleaseProgram", release), "clReleaseProgram");
        releaseCommandQueue = need(h.apply("clReleaseCommandQueue", release), "clReleaseCommandQueue");
        releaseContext = need(h.apply("clReleaseContext", release), "clReleaseContext");
    }

    private MethodHandle need(MethodHandle h, String name) {
        if (h == null) throw new IllegalArgumentException("symbol " + name + " missing in " + library);
        return h;
    }

    static String errorName(int code) {
        return ERRORS.getOrDefault(code, "CL error " + code);
    }

    /** Throws a KernelException for a failed call (memory errors become DeviceOutOfMemoryException when bytes > 0). */
    static void check(int err, String call, String what) {
        if (err != CL_SUCCESS) throw new KernelException(call + " failed with " + errorName(err) + " (" + err + ") for " + what);
    }

    static boolean isOutOfMemory(int err) {
        return err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES || err == CL_OUT_OF_HOST_MEMORY;
    }

    /** Wraps a Throwable from MethodHandle.invoke (only RuntimeExceptions/Errors can come from a downcall). */
    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new KernelException("OpenCL call failed: " + t, t);
    }

    // ---- info queries ----

    List<MemorySegment> platforms() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(JAVA_INT);
            int err = (int) getPlatformIDs.invoke(0, MemorySegment.NULL, n);
            if (err == CL_PLATFORM_NOT_FOUND_KHR) return List.of();
            check(err, "clGetPlatformIDs", "platform count");
            int count = n.get(JAVA_INT, 0);
            if (count == 0) return List.of();
            MemorySegment ids = a.allocate(ADDRESS, count);
            check((int) getPlatformIDs.invoke(count, ids, n), "clGetPlatformIDs", "platform list");
            List<MemorySegment> out = new ArrayList<>();
            for (int i = 0; i < count; i++) out.add(ids.getAtIndex(ADDRESS, i));
            SignalHandlers.check(); // the ICD loader has loaded every driver
            return out;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    List<MemorySegment> devices(MemorySegment platform) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(JAVA_INT);
            int err = (int) getDeviceIDs.invoke(platform, CL_DEVICE_TYPE_ALL, 0, MemorySegment.NULL, n);
            if (err == CL_DEVICE_NOT_FOUND) return List.of();
            check(err, "clGetDeviceIDs", "device count");
            int count = n.get(JAVA_INT, 0);
            if (count == 0) return List.of();
            MemorySegment ids = a.allocate(ADDRESS, count);
            check((int) getDeviceIDs.invoke(platform, CL_DEVICE_TYPE_ALL, count, ids, n), "clGetDeviceIDs", "device list");
            List<MemorySegment> out = new ArrayList<>();
            for (int i = 0; i < count; i++) out.add(ids.getAtIndex(ADDRESS, i));
            SignalHandlers.check(); // the ICD loader has loaded every driver
            return out;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    String platformString(MemorySegment platform, int param) {
        return infoString(getPlatformInfo, "clGetPlatformInfo", platform, param);
    }

    String deviceString(MemorySegment device, int param) {
        return infoString(getDeviceInfo, "clGetDeviceInfo", device, param);
    }

    private static String infoString(MethodHandle fn, String call, MemorySegment obj, int param) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment size = a.allocate(JAVA_LONG);
            check((int) fn.invoke(obj, param, 0L, MemorySegment.NULL, size), call, "param 0x" + Integer.toHexString(param));
            long n = size.get(JAVA_LONG, 0);
            if (n == 0) return "";
            MemorySegment buf = a.allocate(n);
            check((int) fn.invoke(obj, param, n, buf, MemorySegment.NULL), call, "param 0x" + Integer.toHexString(param));
            byte[] b = buf.toArray(JAVA_BYTE);
            int len = 0;
            while (len < b.length && b[len] != 0) len++;
            return new String(b, 0, len, StandardCharsets.UTF_8).trim();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A numeric device property of 4 (cl_uint) or 8 (cl_ulong, size_t, bitfield) bytes. */
    long deviceLong(MemorySegment device, int param, int bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(8);
            check((int) getDeviceInfo.invoke(device, param, (long) bytes, v, MemorySegment.NULL), "clGetDeviceInfo", "param 0x" + Integer.toHexString(param));
            return bytes == 4 ? Integer.toUnsignedLong(v.get(JAVA_INT, 0)) : v.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
