package jdiffusion.kernels;

/**
 * The Java reference of a kernel: the same arguments as the device kernel, with every {@link Buffer} replaced by
 * its backing array (float[] for F32, short[] for F16, int[] for I32) and scalars boxed (Integer, Long, Float).
 * It computes the whole launch at once (not one work item), may use all cores, and defines what the device kernel must do.
 */
@FunctionalInterface
public interface JavaKernel {
    void run(Object[] args);
}
