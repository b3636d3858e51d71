package jdiffusion.kernels;

/** A kernel launch recorded in a {@link TaskGraph}. Args: {@link Buffer}, Integer, Long or Float, in kernel order. */
public record Task(String name, Kernel kernel, Launch launch, Object[] args) {
}
