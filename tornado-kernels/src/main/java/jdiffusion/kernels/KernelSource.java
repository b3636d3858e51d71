package jdiffusion.kernels;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ConcurrentHashMap;

/** Kernel sources from the classpath: {@code kernels/prelude.h} + {@code kernels/<family>.cl} (or {@code .cu} for CUDA-only kernels). */
public final class KernelSource {
    private static final ConcurrentHashMap<String, String> RESOURCES = new ConcurrentHashMap<>();

    private KernelSource() {
    }

    /** Full OpenCL C program text for the kernel's family (prelude included). */
    public static String openCl(Kernel k) {
        if (k.cudaOnly()) throw new KernelException("kernel " + k.id() + " is CUDA-only and has no OpenCL source");
        return resource("prelude.h") + "\n#line 1\n" + resource(k.family() + ".cl");
    }

    /** Full CUDA C++ program text for NVRTC: JD_CUDA defined, prelude, then the family's portable or CUDA-only source. */
    public static String cuda(Kernel k) {
        return "#define JD_CUDA 1\n" + resource("prelude.h") + "\n#line 1\n" + resource(k.family() + (k.cudaOnly() ? ".cu" : ".cl"));
    }

    public static String resource(String name) {
        return RESOURCES.computeIfAbsent(name, n -> {
            try (InputStream in = KernelSource.class.getResourceAsStream("/kernels/" + n)) {
                if (in == null) throw new KernelException("kernel source kernels/" + n + " is not on the classpath");
                return new String(in.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new KernelException("cannot read kernel source kernels/" + n + ": " + e.getMessage(), e);
            }
        });
    }
}
