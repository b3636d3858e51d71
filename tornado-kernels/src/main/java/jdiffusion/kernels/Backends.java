package jdiffusion.kernels;

import java.util.ArrayList;
import java.util.List;

/**
 * Finds and opens backends: "cuda" > an OpenCL GPU > "java" when asked for "auto".
 * (First version: java only; the OpenCL and CUDA helpers replace the bodies marked below.)
 */
public final class Backends {
    private Backends() {
    }

    /** Opens "java", "opencl", "cuda" or "auto" (best found). Throws KernelException naming what is missing. */
    public static Backend open(String name) {
        return switch (name) {
            case "java", "auto" -> new JavaBackend();
            default -> throw new KernelException("backend " + name + " is not available yet");
        };
    }

    /**
     * Every backend that opens on this machine, java first, for parity tests. With CI=true a missing OpenCL
     * platform is an error (CI installs PoCL), not a skip.
     */
    public static List<Backend> forTests() {
        List<Backend> all = new ArrayList<>();
        all.add(new JavaBackend());
        return all;
    }
}
