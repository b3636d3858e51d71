package jdiffusion.kernels;

/**
 * A place where kernels run: {@code java} (the Java references, "interpreted"), {@code opencl} (clBuildProgram on any
 * OpenCL device, PoCL included) or {@code cuda} (NVRTC to PTX, loaded through the driver API). Operations on one backend
 * are ordered (one in-order queue/stream); {@link #finish} waits for all of them.
 */
public interface Backend extends AutoCloseable {
    /** "java", "opencl" or "cuda". */
    String name();

    /** Human-readable device, e.g. "NVIDIA H100 80GB HBM3 (CUDA 13.0, sm_90)". */
    String device();

    /** Allocates {@code length} elements; throws {@link DeviceOutOfMemoryException} naming {@code what} when it does not fit. */
    Buffer allocate(String what, DType dtype, long length);

    /** Copies host floats into dst starting at element dstOffset, converting to dst's dtype (F32 or F16). */
    void write(Buffer dst, long dstOffset, float[] src, int srcOffset, int length);

    /** Copies host ints into an I32 buffer. */
    void write(Buffer dst, long dstOffset, int[] src, int srcOffset, int length);

    /** Copies elements of src (F32 or F16) into host floats, converting to float; waits for pending work. */
    void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int length);

    /** Device-to-device copy of {@code length} elements of the same dtype. */
    void copy(Buffer src, long srcOffset, Buffer dst, long dstOffset, long length);

    /** JIT-compiles (or loads from the kernel cache) the kernel so that a later launch does not compile. Idempotent. */
    void prepare(Kernel kernel);

    /** Enqueues one launch (compiling first if it was not prepared). */
    void launch(Task task);

    /** Waits until everything enqueued has finished. */
    void finish();

    /** Bytes of device memory this backend has allocated and not freed. */
    long allocatedBytes();

    @Override
    void close();

    default void write(Buffer dst, float[] src) {
        write(dst, 0, src, 0, src.length);
    }

    default float[] read(Buffer src) {
        if (src.length() > Integer.MAX_VALUE) throw new KernelException("buffer of " + src.length() + " elements is too large to read into one array");
        float[] out = new float[(int) src.length()];
        read(src, 0, out, 0, out.length);
        return out;
    }
}
