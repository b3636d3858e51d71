package jdiffusion.kernels;

/**
 * One kernel entry point: {@code name} in the portable source of its family (resource {@code kernels/<family>.cl},
 * built as OpenCL C, and as CUDA C through {@code kernels/prelude.cuh}), or in the CUDA-only source
 * {@code kernels/<family>.cu} when {@code cudaOnly}; plus its Java reference.
 * {@code options} are extra preprocessor defines, e.g. "-DTILE=64", that become part of the cache key.
 */
public record Kernel(String family, String name, boolean cudaOnly, String options, JavaKernel reference) {
    public Kernel(String family, String name, JavaKernel reference) {
        this(family, name, false, "", reference);
    }

    public String id() {
        return family + "/" + name + (options.isEmpty() ? "" : "[" + options + "]");
    }
}
