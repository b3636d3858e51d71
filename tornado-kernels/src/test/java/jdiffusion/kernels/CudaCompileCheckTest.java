package jdiffusion.kernels;

import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.net.URI;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystem;
import java.nio.file.FileSystemAlreadyExistsException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Every kernel family source of the library (kernels/*.cl and kernels/*.cu next to prelude.h) and the test family
 * cudatest must build as CUDA (test resources may hold deliberately broken sources for compile-error tests):
 * the text KernelSource.cuda gives NVRTC (JD_CUDA + prelude + source) is compiled to PTX with
 * {@code nvcc -arch=sm_90 -std=c++17 -ptx}, or for the architecture-specific sources ({@link #ARCH_A}: wgmma, which plain sm_90
 * rejects; the engine compiles them with -DJD_ARCH_SUFFIX=a for sm_90a) with {@code -gencode=arch=compute_90a,code=compute_90a}.
 * Runs where nvcc exists (CI has it, no GPU); skipped without nvcc unless CI=true.
 * nvcc is stricter than nothing but not identical to NVRTC (nvcc includes cuda_runtime.h implicitly; NVRTC does not).
 */
class CudaCompileCheckTest {
    /** Sources built for sm_90a (compute_90a PTX here); every other family must build for plain sm_90. */
    static final Set<String> ARCH_A = Set.of("gemm_wgmma.cu");

    static String nvcc() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, "nvcc");
            if (Files.isExecutable(p)) return p.toString();
        }
        Path std = Path.of("/usr/local/cuda/bin/nvcc");
        return Files.isExecutable(std) ? std.toString() : null;
    }

    /** File names (e.g. "gemm.cl", "attention.cu") of kernels/ on the classpath, prelude excluded. */
    static List<String> families() throws IOException {
        TreeSet<String> names = new TreeSet<>();
        for (URL url : Collections.list(CudaCompileCheckTest.class.getClassLoader().getResources("kernels"))) {
            URI uri;
            try {
                uri = url.toURI();
            } catch (java.net.URISyntaxException e) {
                throw new IOException(e);
            }
            if ("jar".equals(uri.getScheme())) {
                FileSystem fs;
                try {
                    fs = FileSystems.newFileSystem(uri, Map.of());
                } catch (FileSystemAlreadyExistsException e) {
                    fs = FileSystems.getFileSystem(uri);
                }
                list(fs.provider().getPath(uri), names);
            } else {
                list(Path.of(uri), names);
            }
        }
        return List.copyOf(names);
    }

    /** The main kernels directory (the one with prelude.h) entirely; elsewhere (test resources) only this test's cudatest family. */
    private static void list(Path dir, TreeSet<String> names) throws IOException {
        boolean main = Files.exists(dir.resolve("prelude.h"));
        try (Stream<Path> s = Files.list(dir)) {
            s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".cl") || n.endsWith(".cu"))
                    .filter(n -> main || n.startsWith("cudatest.")).forEach(names::add);
        }
    }

    static String check(String nvcc, String fileName) throws IOException, InterruptedException {
        String family = fileName.substring(0, fileName.length() - 3);
        String source = KernelSource.cuda(new Kernel(family, "compile-check", fileName.endsWith(".cu"), "", null));
        Path dir = Files.createTempDirectory("jd-nvcc-" + family);
        Path cu = dir.resolve(family + ".cu"), ptx = dir.resolve(family + ".ptx");
        Files.writeString(cu, source);
        String arch = ARCH_A.contains(fileName) ? "-gencode=arch=compute_90a,code=compute_90a" : "-arch=sm_90";
        Process p = new ProcessBuilder(nvcc, arch, "-std=c++17", "-ptx", "-o", ptx.toString(), cu.toString())
                .directory(dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(300, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("nvcc timed out on " + fileName);
        }
        if (p.exitValue() != 0) fail("kernels/" + fileName + " does not build as CUDA (nvcc exit " + p.exitValue() + ", source " + cu + "):\n" + out);
        assertTrue(Files.size(ptx) > 0, "no PTX for " + fileName);
        return out;
    }

    static String nvccOrSkip() {
        assumeTrue(!Boolean.getBoolean("jdiffusion.gpu.tests"), "covered by CI; not worth GPU-machine time");
        String nvcc = nvcc();
        if (nvcc == null && "true".equalsIgnoreCase(System.getenv("CI"))) fail("nvcc not found on PATH or in /usr/local/cuda/bin, and CI=true");
        assumeTrue(nvcc != null, "nvcc not found");
        return nvcc;
    }

    @Test
    void testFamiliesArePresent() throws IOException {
        List<String> f = families();
        assertTrue(f.contains("cudatest.cl") && f.contains("cudatest.cu"), f.toString());
    }

    @TestFactory
    List<DynamicTest> everyFamilyBuildsWithNvcc() throws IOException {
        String nvcc = nvccOrSkip();
        List<DynamicTest> tests = new ArrayList<>();
        for (String name : families()) tests.add(DynamicTest.dynamicTest(name, () -> check(nvcc, name)));
        return tests;
    }
}
