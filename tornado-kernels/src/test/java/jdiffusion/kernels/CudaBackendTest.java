package jdiffusion.kernels;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.abort;

/**
 * The CUDA backend on a real GPU (the same checks as CudaFakeDriverTest, through the real libcuda and NVRTC).
 * Skipped when no CUDA device opens (CI has none), unless -Djdiffusion.gpu.tests=true (the GPU machine), where a
 * device that does not open is a failure.
 */
class CudaBackendTest {
    static CudaBackend backend;

    @BeforeAll
    static void open() {
        String wanted = System.getProperty("jdiffusion.test.backends", "");
        if (!wanted.isBlank() && !List.of(wanted.split(",")).contains("cuda")) abort("cuda not in -Djdiffusion.test.backends=" + wanted);
        try {
            backend = CudaBackend.open(0, new KernelCache(CudaChecks.tempCache("gpu")));
        } catch (KernelException e) {
            if (Boolean.getBoolean("jdiffusion.gpu.tests")) throw e;
            abort("no CUDA device: " + e.getMessage());
        }
        System.out.println("CudaBackendTest on " + backend.device());
    }

    @AfterAll
    static void close() {
        if (backend != null) backend.close();
    }

    @Test
    void describesDevices() {
        List<String> lines = CudaBackend.describeDevices();
        assertFalse(lines.isEmpty());
        assertTrue(lines.getFirst().contains(backend.info.name()), lines.toString());
        assertTrue(backend.device().contains(backend.info.arch()), backend.device());
    }

    @Test
    void roundTrips() {
        CudaChecks.roundTrips(backend);
    }

    @Test
    void kernels() {
        CudaChecks.kernels(backend);
    }

    @Test
    void dynamicSharedMemory() {
        CudaChecks.dynamicSharedMemory(backend);
    }

    @Test
    void compileFailure() {
        CudaChecks.compileFailure(backend);
    }

    @Test
    void outOfMemory() {
        CudaChecks.outOfMemory(backend);
    }

    @Test
    void graphReplay() {
        CudaChecks.graphReplay(backend);
    }

    @Test
    void cacheColdThenWarm() {
        Path dir = CudaChecks.tempCache("gpu-warm");
        try (CudaBackend cold = CudaBackend.open(0, new KernelCache(dir)); CudaBackend warm = CudaBackend.open(0, new KernelCache(dir))) {
            CudaChecks.cacheColdThenWarm(cold, warm);
            System.out.println("compile (cold) " + cold.compileLog() + " vs load (warm) " + warm.compileLog());
        }
        CudaChecks.kernelsStillRun(backend);
    }
}
