package jdiffusion.kernels;

/**
 * A failure of the GPU layer with the name of what failed: the kernel that did not compile (with the compiler log),
 * the buffer that did not fit (with the bytes asked and free), the library that could not be loaded, the driver call
 * that returned an error (with its code and name). The backend stays usable after one is thrown unless the message says otherwise.
 */
public class KernelException extends RuntimeException {
    public KernelException(String message) {
        super(message);
    }

    public KernelException(String message, Throwable cause) {
        super(message, cause);
    }
}
