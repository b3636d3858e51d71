package jdiffusion.kernels;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.Supplier;
import java.util.stream.Collectors;

/**
 * Finds and opens backends: "cuda" > an OpenCL GPU > "java" when asked for "auto" (PoCL is never picked automatically).
 * Knobs: -Djdiffusion.opencl.platform / -Djdiffusion.opencl.device (substring hints for "opencl"),
 * -Djdiffusion.test.backends=java,opencl,cuda (filters {@link #forTests}).
 */
public final class Backends {
    private Backends() {
    }

    /** Opens "java", "opencl", "cuda" or "auto" (best found). Throws KernelException naming what is missing. */
    public static Backend open(String name) {
        return name.equalsIgnoreCase("auto") ? auto() : open(name, KernelCache.defaultCache());
    }

    /**
     * Opens "java", "opencl" or "cuda" over the given kernel cache (benches use an empty one to time cold compiles);
     * the device comes from -Djdiffusion.cuda.device or the OpenCL hints as for {@link #open(String)}.
     */
    public static Backend open(String name, KernelCache cache) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "java" -> new JavaBackend();
            case "opencl" -> OpenClBackend.open(System.getProperty("jdiffusion.opencl.platform"), System.getProperty("jdiffusion.opencl.device"), cache);
            case "cuda" -> CudaBackend.open(Integer.getInteger("jdiffusion.cuda.device", 0), cache);
            default -> throw new KernelException("unknown backend '" + name + "' (use java, opencl, cuda or auto)");
        };
    }

    private static Backend openCuda() {
        return CudaBackend.open(); // device -Djdiffusion.cuda.device, default 0
    }

    private static List<String> cudaDevices() {
        return CudaBackend.describeDevices();
    }

    private static Backend auto() {
        try {
            return openCuda();
        } catch (RuntimeException | LinkageError e) {
            // no driver or no GPU: try OpenCL
        }
        Backend gpu = openClGpu();
        return gpu != null ? gpu : new JavaBackend();
    }

    /** The first OpenCL GPU (honouring the platform/device hints), or null. */
    private static Backend openClGpu() {
        try {
            String ph = System.getProperty("jdiffusion.opencl.platform"), dh = System.getProperty("jdiffusion.opencl.device");
            for (MemorySegment[] pd : OpenClBackend.all()) {
                if (!OpenClBackend.isGpu(pd[1])) continue;
                OpenClBackend b = OpenClBackend.open(pd, KernelCache.defaultCache());
                if ((ph == null || contains(b.platformName, ph)) && (dh == null || contains(b.deviceName, dh))) return b;
                b.close();
            }
        } catch (KernelException | LinkageError e) {
            // no OpenCL
        }
        return null;
    }

    private static boolean contains(String text, String hint) {
        return text.toLowerCase(Locale.ROOT).contains(hint.toLowerCase(Locale.ROOT));
    }

    /**
     * Every backend that opens on this machine, java first, for parity tests. With CI=true a missing OpenCL
     * platform is an error (CI installs PoCL), not a skip.
     */
    public static List<Backend> forTests() {
        return forTests(System.getenv("CI"), System.getProperty("jdiffusion.test.backends"));
    }

    /** Seam for tests: ci is the value of the CI environment variable, filter the jdiffusion.test.backends list (null = all). */
    static List<Backend> forTests(String ci, String filter) {
        return forTests(ci, filter, OpenClBackend::all);
    }

    /** Seam for tests: openClDevices lists the OpenCL (platform, device) pairs, or throws when there is no OpenCL. */
    static List<Backend> forTests(String ci, String filter, Supplier<List<MemorySegment[]>> openClDevices) {
        boolean named = filter != null && !filter.isBlank(); // a backend named in the filter must open
        Set<String> want = !named ? Set.of("java", "opencl", "cuda")
                : Arrays.stream(filter.split(",")).map(s -> s.trim().toLowerCase(Locale.ROOT)).collect(Collectors.toSet());
        boolean strict = "true".equalsIgnoreCase(ci == null ? "" : ci.trim());
        List<Backend> all = new ArrayList<>();
        if (want.contains("java")) all.add(new JavaBackend());
        if (want.contains("opencl")) {
            List<MemorySegment[]> devices;
            try {
                devices = openClDevices.get();
            } catch (KernelException | LinkageError e) {
                devices = List.of();
            }
            if (devices.isEmpty() && strict) {
                for (Backend b : all) b.close();
                throw new KernelException("CI=true but no OpenCL platform: install pocl-opencl-icd ocl-icd-libopencl1");
            }
            if (devices.isEmpty() && named) {
                for (Backend b : all) b.close();
                throw new KernelException("jdiffusion.test.backends names opencl but no OpenCL platform was found: " + String.join("; ", OpenClBackend.describeDevices()));
            }
            for (MemorySegment[] pd : devices) {
                try {
                    all.add(OpenClBackend.open(pd, KernelCache.defaultCache()));
                } catch (KernelException e) {
                    if (strict || named) {
                        for (Backend b : all) b.close();
                        throw e;
                    }
                    System.err.println("WARNING: skipping OpenCL device: " + e.getMessage());
                }
            }
        }
        if (want.contains("cuda")) {
            try {
                all.add(openCuda());
            } catch (RuntimeException | LinkageError e) {
                if (named) { // the GPU script asked for cuda: a failure to open is a failure, not a skip
                    for (Backend b : all) b.close();
                    throw e instanceof KernelException k ? k : new KernelException("jdiffusion.test.backends names cuda but it does not open: " + e, e);
                }
                // no CUDA here: the GPU script runs these tests on the H100
            }
        }
        return all;
    }

    /** Text for the {@code devices} CLI command: every OpenCL platform/device, the CUDA devices, and what "auto" picks. */
    public static String describe() {
        StringBuilder sb = new StringBuilder();
        sb.append("java: ").append(new JavaBackend().device()).append('\n');
        for (String line : OpenClBackend.describeDevices()) sb.append(line).append('\n');
        try {
            List<String> cuda = cudaDevices();
            if (cuda.isEmpty()) sb.append("CUDA: driver loaded, no device\n");
            for (String line : cuda) sb.append(line).append('\n');
        } catch (RuntimeException | LinkageError e) {
            sb.append("CUDA: ").append(e.getMessage()).append('\n');
        }
        try (Backend b = auto()) {
            sb.append("auto picks: ").append(b.name()).append(" - ").append(b.device()).append('\n');
        } catch (KernelException e) {
            sb.append("auto: ").append(e.getMessage()).append('\n');
        }
        return sb.toString();
    }
}
