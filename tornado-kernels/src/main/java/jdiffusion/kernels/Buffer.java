package jdiffusion.kernels;

/**
 * Device memory owned by one backend: {@code length} elements of {@code dtype}.
 * On the java backend the storage is a Java array (float[] for F32, short[] for F16, int[] for I32).
 */
public interface Buffer extends AutoCloseable {
    Backend backend();

    DType dtype();

    long length();

    default long bytes() {
        return length() * dtype().bytes;
    }

    /** Frees the device memory; idempotent. */
    @Override
    void close();
}
