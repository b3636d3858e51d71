package jdiffusion.kernels;

/** The device could not allocate {@code requestedBytes}; thrown by {@link Backend#allocate}. */
public class DeviceOutOfMemoryException extends KernelException {
    public final long requestedBytes;

    public DeviceOutOfMemoryException(String what, long requestedBytes, String detail) {
        super("out of device memory allocating " + what + ": " + requestedBytes + " bytes (" + String.format("%.2f GiB", requestedBytes / (double) (1L << 30)) + ") asked" + (detail.isEmpty() ? "" : "; " + detail));
        this.requestedBytes = requestedBytes;
    }
}
