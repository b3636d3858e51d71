package jdiffusion.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * PoCL's LLVM replaces the JVM's SIGSEGV/SIGBUS/SIGFPE handlers when it compiles; a later safepoint can then kill
 * the JVM with a bare "Segmentation fault" (CI, 2026-11-26). Each case runs a child JVM without libjsig (which the
 * test JVMs preload) that builds a kernel PoCL has never seen, and reads the installed handler through libc.
 */
class SignalHandlersTest {
    @Test
    void testJvmsPreloadLibjsig() {
        assumeTrue(java.nio.file.Files.exists(Path.of(System.getProperty("java.home"), "lib", "libjsig.so")), "no libjsig in this JDK");
        String preload = System.getenv("LD_PRELOAD");
        assertTrue(preload != null && preload.contains("libjsig"), "the parent pom's jsig profile must preload libjsig into test JVMs, LD_PRELOAD=" + preload);
        assertEquals(SignalHandlers.jvmHandler(11), SignalHandlers.installedHandler(11));
    }

    @Test
    void jvmHandlersAreBackAfterAColdOpenClBuild(@TempDir Path tmp) throws Exception {
        List<String> out = probe(tmp, false);
        assertTrue(out.contains("segv-handler jvm"), "the JVM's SIGSEGV handler must be installed after the build: " + out);
        if (out.contains("platform pocl")) assertTrue(out.stream().anyMatch(l -> l.startsWith("restored ") && !l.equals("restored 0")),
                "PoCL's LLVM replaces the handlers on a cold build, so the guard must have put them back: " + out);
    }

    @Test
    void withoutTheGuardPoclLeavesLlvmsHandlersInstalled(@TempDir Path tmp) throws Exception {
        List<String> out = probe(tmp, true);
        assumeTrue(out.contains("platform pocl"), "shows the failure on PoCL only: " + out);
        assertTrue(out.contains("segv-handler other"), "PoCL's LLVM installed no handler: the guard may be unnecessary now: " + out);
    }

    /** Runs {@link Probe} in a child JVM (no LD_PRELOAD), returns its stdout lines; skips (fails with CI=true) without OpenCL. */
    private static List<String> probe(Path tmp, boolean keep) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"), "--enable-native-access=ALL-UNNAMED",
                "-Djdiffusion.signals.keep=" + keep, "-cp", KernelCacheTest.classPathOf(SignalHandlersTest.class, SignalHandlers.class, org.junit.jupiter.api.Assertions.class,
                org.opentest4j.AssertionFailedError.class), Probe.class.getName(), tmp.toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().remove("LD_PRELOAD");
        Process p = pb.start();
        String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "probe did not finish");
        assertEquals(0, p.exitValue(), "probe failed:\n" + text);
        List<String> lines = text.lines().toList();
        if (lines.contains("no opencl")) {
            assertTrue(!"true".equalsIgnoreCase(System.getenv("CI")), "CI=true but no OpenCL platform: install pocl-opencl-icd ocl-icd-libopencl1");
            assumeTrue(false, "no OpenCL platform here");
        }
        return lines;
    }

    /** Child JVM: builds a never-seen kernel on the first OpenCL device, then reports the installed SIGSEGV handler. */
    public static final class Probe {
        public static void main(String[] args) {
            List<MemorySegment[]> devices;
            try {
                devices = OpenClBackend.all();
            } catch (KernelException | LinkageError e) {
                devices = List.of();
            }
            if (devices.isEmpty()) {
                System.out.println("no opencl");
                return;
            }
            assertTrue(SignalHandlers.jvmHandler(11) != 0, "guard not active on " + System.getProperty("os.name"));
            try (Backend b = OpenClBackend.open(devices.get(0), new KernelCache(Path.of(args[0])))) {
                if (b.device().toLowerCase().contains("pocl") || b.device().toLowerCase().contains("portable")) System.out.println("platform pocl");
                // a define PoCL's own cache has never seen: a real LLVM compile
                b.prepare(new Kernel("gemm", "gemm_tiled_f32", false, "-DJD_SIGNAL_PROBE=" + System.nanoTime(), Gemm::reference));
                System.out.println("restored " + SignalHandlers.restored());
                long installed = SignalHandlers.installedHandler(11), jvm = SignalHandlers.jvmHandler(11);
                System.out.println(jvm == 0 ? "segv-handler unknown" : installed == jvm ? "segv-handler jvm" : "segv-handler other");
            }
        }
    }
}
