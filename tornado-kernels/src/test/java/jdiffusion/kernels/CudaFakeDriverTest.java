package jdiffusion.kernels;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Runs the CUDA backend's FFM code against fakecuda.c, a host-memory stand-in for libcuda + libnvrtc compiled here with
 * gcc against the toolkit's cuda.h (so every symbol name and prototype is the real one): out-parameters, argument
 * marshalling, grid mapping, staging chunks, graph capture, cache and errors are all exercised without a GPU.
 * Skipped when gcc or the toolkit's cuda.h is missing.
 */
class CudaFakeDriverTest {
    static Path lib;
    static CudaDriver cu;
    static Nvrtc nvrtc;
    static CudaBackend backend;
    static MethodHandle compiles, ctxRefs;

    @BeforeAll
    static void build() throws Exception {
        // a stand-in libcuda must never share a process with the real driver (the GPU script's test run)
        assumeTrue(!Boolean.getBoolean("jdiffusion.gpu.tests"), "GPU run: the real driver is tested instead");
        Path header = Path.of("/usr/local/cuda/include/cuda.h");
        boolean haveGcc;
        try {
            haveGcc = new ProcessBuilder("gcc", "--version").redirectErrorStream(true).start().waitFor() == 0;
        } catch (IOException e) {
            haveGcc = false;
        }
        assumeTrue(haveGcc && Files.exists(header), "gcc or " + header + " missing");
        Path dir = Files.createTempDirectory("jd-fakecuda");
        Path src = dir.resolve("fakecuda.c");
        try (InputStream in = CudaFakeDriverTest.class.getResourceAsStream("/fakecuda/fakecuda.c")) {
            Files.copy(in, src);
        }
        lib = dir.resolve("libfakecuda.so");
        Process p = new ProcessBuilder("gcc", "-std=gnu11", "-O1", "-Wall", "-shared", "-fPIC", "-I" + header.getParent(), src.toString(), "-o", lib.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0, "gcc failed:\n" + out);
        cu = CudaDriver.get(lib.toString());
        nvrtc = Nvrtc.get(lib.toString());
        SymbolLookup fake = SymbolLookup.libraryLookup(lib, Arena.global());
        compiles = Linker.nativeLinker().downcallHandle(fake.find("fake_compiles").orElseThrow(), FunctionDescriptor.of(JAVA_INT));
        ctxRefs = Linker.nativeLinker().downcallHandle(fake.find("fake_ctx_refs").orElseThrow(), FunctionDescriptor.of(JAVA_INT));
        String old = System.getProperty("jdiffusion.cuda.stagingMiB");
        System.setProperty("jdiffusion.cuda.stagingMiB", "1"); // several staging chunks in the round trips
        try {
            backend = new CudaBackend(cu, nvrtc, 0, new KernelCache(null));
        } finally {
            if (old == null) System.clearProperty("jdiffusion.cuda.stagingMiB");
            else System.setProperty("jdiffusion.cuda.stagingMiB", old);
        }
    }

    @AfterAll
    static void close() {
        if (backend != null) backend.close();
    }

    static int compiles() throws Throwable {
        return (int) compiles.invokeExact();
    }

    @Test
    void describesTheDevice() {
        assertEquals("Fake H100 80GB HBM3 (sm_90, 132 SMs, 1.0 GiB, driver 13.0, NVRTC 13.0)", backend.device());
        assertEquals(232448, backend.info.sharedPerBlockOptin());
        assertEquals(40, cu.bound.size(), cu.bound.toString());
        assertEquals(11, nvrtc.bound.size(), nvrtc.bound.toString());
        assertTrue(cu.bound.containsAll(List.of("cuMemAlloc_v2", "cuEventElapsedTime_v2", "cuGraphInstantiateWithFlags", "cuStreamBeginCapture_v2")));
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
    void graphOfFreedBufferFails() {
        Buffer y = backend.allocate("doomed", DType.F32, 10);
        Runnable replay = backend.capture("doomed-graph", List.of(new Task("iota", CudaChecks.k("iota"), Launch.of1(10, 32), new Object[]{y, 0, 10})));
        replay.run();
        y.close();
        KernelException e = assertThrows(KernelException.class, replay::run);
        assertTrue(e.getMessage().contains("doomed"), e.getMessage());
    }

    @Test
    void captureFailureFallsBackToPlainLaunches() {
        try (Buffer o = backend.allocate("fb", DType.I32, 10)) {
            Task bad = new Task("launch-too-big", CudaChecks.k("iota"), new Launch(new long[]{2048}, new long[]{2048}), new Object[]{o, 0, 10});
            Runnable r = backend.capture("fallback-graph", List.of(bad));
            assertTrue(backend.graphFallbacks().get("fallback-graph").contains("1024 threads"), backend.graphFallbacks().toString());
            assertThrows(KernelException.class, r::run);
            CudaChecks.kernelsStillRun(backend);
        }
    }

    @Test
    void cacheColdThenWarm() throws Throwable {
        Path dir = CudaChecks.tempCache("fake");
        try (CudaBackend cold = new CudaBackend(cu, nvrtc, 0, new KernelCache(dir)); CudaBackend warm = new CudaBackend(cu, nvrtc, 0, new KernelCache(dir))) {
            int before = compiles();
            CudaChecks.cacheColdThenWarm(cold, warm);
            assertEquals(before + 1, compiles(), "only the cold backend compiles");
        }
    }

    @Test
    void ptxWhenNvrtcHasNoCubinForTheArchitecture() throws Throwable {
        Path dir = CudaChecks.tempCache("ptx");
        try (CudaBackend b = new CudaBackend(cu, nvrtc, 0, new KernelCache(dir))) {
            Kernel iota = new Kernel("cudatest", "iota", false, "-DFAKE_NO_CUBIN", null);
            try (Buffer o = b.allocate("ptx", DType.I32, 5)) {
                b.launch(new Task("iota", iota, Launch.of1(5, 32), new Object[]{o, 7, 5}));
                int[] v = new int[5];
                b.read(o, 0, v, 0, 5);
                assertEquals(11, v[4]);
            }
            byte[] entry = Files.readAllBytes(Files.list(dir).filter(f -> f.toString().endsWith(".bin")).findFirst().orElseThrow());
            assertTrue(new String(entry, StandardCharsets.ISO_8859_1).contains("//fake ptx cudatest.cl --gpu-architecture=compute_90 --std=c++17 -DFAKE_NO_CUBIN"));
        }
    }

    @Test
    void optionsMapping() {
        assertEquals(List.of("--std=c++17", "-DTILE=64", "--use_fast_math"), CudaBackend.nvrtcOptions(" -DTILE=64  -cl-fast-relaxed-math -cl-mad-enable"));
        assertEquals(List.of("--std=c++17"), CudaBackend.nvrtcOptions(""));
        assertEquals(65536, CudaBackend.dynamicShared("-DX=1 -DJD_SMEM=65536"));
        assertEquals(0, CudaBackend.dynamicShared("-DX=1"));
    }

    @Test
    void contextIsReleasedOnClose() throws Throwable {
        int before = (int) ctxRefs.invokeExact();
        CudaBackend b = new CudaBackend(cu, nvrtc, 0, new KernelCache(null));
        assertEquals(before + 1, (int) ctxRefs.invokeExact());
        Buffer kept = b.allocate("kept", DType.F32, 100);
        b.close();
        b.close();
        assertEquals(before, (int) ctxRefs.invokeExact());
        assertThrows(KernelException.class, () -> b.allocate("late", DType.F32, 1));
        kept.close(); // after close: a no-op, not a double free
        assertFalse(b.toString().isEmpty());
        CudaChecks.kernelsStillRun(backend);
    }

    @Test
    void missingLibraryNamesWhatWasLookedFor() {
        KernelException e = assertThrows(KernelException.class, () -> CudaDriver.get("/nonexistent/libcuda.so.1"));
        assertTrue(e.getMessage().contains("/nonexistent/libcuda.so.1"), e.getMessage());
        KernelException e2 = assertThrows(KernelException.class, () -> CudaDriver.open("the test library", "jdiffusion.test.lib", "", List.of("libjd-no-such-lib.so.7")));
        assertTrue(e2.getMessage().contains("libjd-no-such-lib.so.7") && e2.getMessage().contains("/usr/local/cuda/lib64"), e2.getMessage());
    }

    @Test
    void describeDevicesLine() throws IOException {
        List<String> lines = CudaBackend.describeDevices(cu, nvrtc);
        assertEquals(List.of("cuda:0 Fake H100 80GB HBM3 (sm_90, 132 SMs, 1.0 GiB, 227 KiB shared/block, driver 13.0, NVRTC 13.0)"), lines);
    }

    /**
     * Kernel selection on a CUDA backend (no launch): strict fp32 graphs (tf32 off) pick the 3xTF32 tensor-core kernels
     * for GEMM (gemm_mma_3xtf32), conv (conv2d_mma_3xtf32, also where conv v3 would apply) and FLASH attention
     * (flash_attn_3xtf32_mma); TF32 graphs keep the TF32 kernels (gemm_mma_tf32, or gemm_wgmma_tf32 on this sm_90 device; flash_attn_tf32_v2; flash_attn_tf32_mma with -Djdiffusion.attention.tf32flash=v1); -Djdiffusion.fp32x3=false gives the SIMT kernels.
     */
    @Test
    void strictFp32Selects3xTf32Kernels() {
        assertEquals(List.of("gemm_mma_3xtf32", "conv2d_mma_3xtf32", "flash_attn_3xtf32_mma"), selected(false));
        List<String> tf32 = selected(true);
        assertTrue((tf32.contains("gemm_mma_tf32") || tf32.contains("gemm_wgmma_tf32")) && tf32.contains(Attention.TF32_V2 ? "flash_attn_tf32_v2" : "flash_attn_tf32_mma") && tf32.stream().noneMatch(k -> k.contains("3x")), tf32.toString());
        String before = System.getProperty("jdiffusion.fp32x3");
        System.setProperty("jdiffusion.fp32x3", "false");
        try {
            List<String> simt = selected(false);
            assertTrue(simt.stream().noneMatch(k -> k.contains("mma") || k.contains("tf32")) && simt.contains("flash_attn"), simt.toString());
        } finally {
            if (before == null) System.clearProperty("jdiffusion.fp32x3");
            else System.setProperty("jdiffusion.fp32x3", before);
        }
    }

    /**
     * Kernel selection of the fused epilogues on CUDA (no launch): a Linear + residual, net.0.proj + GEGLU and a conv +
     * residual and a channels-first proj_out take the version-3 kernels alone (no add_scaled / geglu / transpose task), in
     * fp16, TF32 and strict fp32 (3xTF32; the conv then on conv2d_mma_3xtf32); the split-K reductions get the residual
     * and the output layout (GEGLU: gemm_splitk_geglu_*); shapes version 3 does not take (m < tcMin) fall back to GEMM +
     * add_scaled / geglu_interleaved / transpose.
     */
    @Test
    void fusedEpiloguesSelectVersion3Kernels() {
        String before = System.getProperty("jdiffusion.gemm.wgmma");
        System.setProperty("jdiffusion.gemm.wgmma", "false");                 // version 3 here; wgmmaSwitchSelectsHopperConvAndGeglu has version 4
        try {
            fusedVersion3();
        } finally {
            if (before == null) System.clearProperty("jdiffusion.gemm.wgmma");
            else System.setProperty("jdiffusion.gemm.wgmma", before);
        }
    }

    private void fusedVersion3() {
        assertEquals(List.of("conv_taps_f16", "gemm_mma_f16", "gemm_mma_geglu_f16", "conv2d_v3_f16"), fused(DType.F16, false, 256)); // the weight permute runs once, first
        assertEquals(List.of("conv_taps_f32", "gemm_mma_tf32", "gemm_mma_geglu_tf32", "conv2d_v3_tf32"), fused(DType.F32, true, 256));
        assertEquals(List.of("gemm_mma_3xtf32", "gemm_mma_geglu_3xtf32", "conv2d_mma_3xtf32"), fused(DType.F32, false, 256));
        List<String> small = fused(DType.F16, false, 7);
        assertTrue(small.contains("add_scaled") && small.contains("geglu_interleaved") && small.contains("transpose") && small.stream().noneMatch(k -> k.startsWith("gemm_mma")),
                small.toString());
        // split-K (few output tiles, long K): the reductions apply the epilogues; the residual is an argument of both tasks
        Buffer x = backend.allocate("x", DType.F16, 128 * 1280), w = backend.allocate("w", DType.F16, 2560 * 1280), r = backend.allocate("r", DType.F16, 128 * 1280);
        Buffer o = backend.allocate("o", DType.F16, 128 * 1280), wc = backend.allocate("wc", DType.F16, 1280 * 1280 * 9);
        try (TaskGraph g = new TaskGraph("fused-split", backend)) {
            Gemm.linearGeglu(g, x, w, null, o, 128, 1280, 1280);
            Conv2d.conv2d(g, x, wc, null, r, 0.5f, o, 2, 1280, 8, 8, 1280, 3, 1, 1);
            Gemm.linearToChannels(g, x, w, null, r, 1f, o, 2, 64, 1280, 1280);     // the mid block's proj_out, 2 images of 8x8
            List<Task> t = g.tasks();
            // conv_taps_f16 is no replayed task: it ran into a derived buffer once (TaskGraph.derived), which the conv reads
            assertEquals(List.of("gemm_mma_geglu_f16", "gemm_splitk_geglu_f16", "conv2d_v3_f16", "gemm_splitk_reduce_f16", "gemm_mma_f16",
                    "gemm_splitk_reduce_f16"), t.stream().map(k -> k.kernel().name()).toList());
            assertTrue(t.get(2).args()[1] != wc && ((Buffer) t.get(2).args()[1]).length() == wc.length(), "the conv reads the permuted copy of wc");
            assertTrue(t.get(2).args()[18] == r && t.get(3).args()[10] == r && (Integer) t.get(3).args()[11] == 1 && (Float) t.get(3).args()[12] == 0.5f);
            assertTrue((Integer) t.get(4).args()[17] == 64 && t.get(5).args()[10] == r && (Integer) t.get(5).args()[13] == 64 && (Integer) t.get(5).args()[9] == 0);
        } finally {
            for (Buffer b : new Buffer[]{x, w, r, o, wc}) b.close();
        }
    }

    /**
     * -Djdiffusion.gemm.wgmma=true (read per graph built) on the fake sm_90 device: the one-split fp16 GEGLU projection
     * takes gemm_wgmma_geglu_f16 and the one-split fp16 convs with cIn % 64 == 0 (3x3 + residual, 1x1) conv2d_wgmma_f16,
     * with conv2d_v3_f16's arguments (the permuted weights, one split) and the GEMM's module options (sm_90a, dynamic shared
     * memory); a few-row GEGLU that version 3 would split along K runs unsplit on wgmma; split-K convs (few tiles) and cIn % 64
     * != 0 keep the version-3/4 kernels. A tf32 graph's F32 GEMM, GEGLU and conv (cIn % 32 == 0) take gemm_wgmma_tf32,
     * gemm_wgmma_geglu_tf32 and conv2d_wgmma_tf32 from the same module; its cIn 16 conv stays on conv2d_v3_tf32, and a strict
     * fp32 graph keeps the 3xTF32 kernels. The switch off gives those back.
     */
    @Test
    void wgmmaSwitchSelectsHopperConvAndGeglu() {
        Buffer a = backend.allocate("a", DType.F16, 256 * 320), b = backend.allocate("b", DType.F16, 1280 * 320), c = backend.allocate("c", DType.F16, 256 * 640);
        Buffer x = backend.allocate("x", DType.F16, 2 * 64 * 64 * 64), w3 = backend.allocate("w3", DType.F16, 320 * 64 * 9), w1 = backend.allocate("w1", DType.F16, 320 * 64);
        Buffer r = backend.allocate("r", DType.F16, 2 * 320 * 64 * 64), y = backend.allocate("y", DType.F16, 2 * 320 * 64 * 64);
        Buffer ws = backend.allocate("ws", DType.F16, 128 * 64 * 9), x32 = backend.allocate("x32", DType.F16, 2 * 32 * 64 * 64), w32 = backend.allocate("w32", DType.F16, 320 * 32 * 9);
        Buffer wk = backend.allocate("wk", DType.F16, 1280 * 1280);
        Buffer xf = backend.allocate("xf", DType.F32, 2 * 64 * 64 * 64), wf = backend.allocate("wf", DType.F32, 320 * 64 * 9), yf = backend.allocate("yf", DType.F32, 2 * 320 * 64 * 64);
        Buffer af = backend.allocate("af", DType.F32, 256 * 320), bf = backend.allocate("bf", DType.F32, 1280 * 320), cf = backend.allocate("cf", DType.F32, 256 * 1280);
        Buffer x16 = backend.allocate("x16", DType.F32, 2 * 16 * 64 * 64), w16 = backend.allocate("w16", DType.F32, 320 * 16 * 9);
        String before = System.getProperty("jdiffusion.gemm.wgmma");
        try {
            System.setProperty("jdiffusion.gemm.wgmma", "true");
            try (TaskGraph g = new TaskGraph("wgmma", backend); TaskGraph gf = new TaskGraph("wgmma-tf32", backend, true);
                 TaskGraph gs = new TaskGraph("wgmma-fp32", backend, false)) {
                Gemm.linearGeglu(g, a, b, null, c, 256, 640, 320);                       // 2 x 10 tiles, K 320: one split
                Conv2d.conv2d(g, x, w3, null, r, 0.5f, y, 2, 64, 64, 64, 320, 3, 1, 1);  // 3 x 64 tiles: one split
                Conv2d.conv2d(g, x, w1, null, y, 2, 64, 64, 64, 320, 1, 1, 0);           // 1x1: no permute
                Conv2d.conv2d(g, x, ws, null, y, 2, 64, 16, 16, 128, 3, 1, 1);           // 4 tiles, 18 k tiles: split-K
                Conv2d.conv2d(g, x32, w32, null, y, 2, 32, 64, 64, 320, 3, 1, 1);        // cIn 32
                Gemm.linearGeglu(g, a, wk, null, c, 32, 640, 1280);                      // 32 rows, K 1280: version 3 would split K, wgmma does not
                Conv2d.conv2d(gf, xf, wf, null, yf, 2, 64, 64, 64, 320, 3, 1, 1);        // tf32
                Gemm.linearGeglu(gf, af, bf, null, cf, 256, 640, 320);                   // tf32 GEGLU, K 320
                Gemm.linear(gf, af, bf, null, cf, 256, 1280, 320);                       // tf32 Linear 256 x 1280 x 320
                Conv2d.conv2d(gf, x16, w16, null, yf, 2, 16, 64, 64, 320, 3, 1, 1);      // tf32, cIn 16: version 4
                Conv2d.conv2d(gs, xf, wf, null, yf, 2, 64, 64, 64, 320, 3, 1, 1);        // strict fp32
                Gemm.linear(gs, af, bf, null, cf, 256, 1280, 320);
                List<Task> t = g.tasks();
                assertEquals(List.of("gemm_wgmma_geglu_f16", "conv2d_wgmma_f16", "conv2d_wgmma_f16", "conv2d_v3_f16", "gemm_splitk_reduce_f16", "conv2d_v3_f16",
                        "gemm_wgmma_geglu_f16"), t.stream().map(k -> k.kernel().name()).toList());
                assertEquals(1, (Integer) t.get(6).args()[12], "the few-row GEGLU runs unsplit on wgmma");
                Gemm.Wgmma cfg = Gemm.wgmmaConfig(2 * 64 * 64, 320);
                assertEquals(cfg.conv(), t.get(1).kernel());
                assertEquals(Gemm.wgmmaConfig(256, 1280).geglu(), t.get(0).kernel());
                for (Task k : List.of(t.get(0), t.get(1), t.get(2))) {
                    assertEquals("gemm_wgmma", k.kernel().family());
                    assertTrue(k.kernel().options().contains("-DJD_ARCH_SUFFIX=a") && k.kernel().options().contains("-DJD_SMEM="), k.kernel().options());
                }
                assertEquals(t.get(0).kernel().options(), Gemm.wgmmaConfig(256, 1280).kernel().options(), "GEGLU shares the GEMM's module");
                assertEquals(14, t.get(0).args().length);
                assertEquals(21, t.get(1).args().length);
                assertTrue(t.get(1).args()[1] != w3 && ((Buffer) t.get(1).args()[1]).length() == w3.length(), "the conv reads the permuted copy of w3");
                assertTrue(t.get(2).args()[1] == w1, "a 1x1 conv reads its weights as they are");
                assertTrue((Integer) t.get(1).args()[16] == 1 && t.get(1).args()[18] == r && (Integer) t.get(1).args()[19] == 1 && (Float) t.get(1).args()[20] == 0.5f);
                assertEquals(cfg.tiles(2 * 64 * 64, 320, 1) * cfg.threads(), t.get(1).launch().global()[0]);
                assertEquals(cfg.threads(), t.get(1).launch().local()[0]);
                List<Task> tf = gf.tasks();
                assertEquals(List.of("conv2d_wgmma_tf32", "gemm_wgmma_geglu_tf32", "gemm_wgmma_tf32", "conv2d_v3_tf32"), tf.stream().map(k -> k.kernel().name()).toList());
                assertEquals(Gemm.wgmmaConfig(2 * 64 * 64, 320).convTf32(), tf.get(0).kernel());
                assertEquals(Gemm.wgmmaConfig(256, 1280).gegluTf32(), tf.get(1).kernel());
                assertEquals(Gemm.wgmmaConfig(256, 1280).kernelTf32(), tf.get(2).kernel());
                assertTrue(tf.get(0).args()[1] != wf && ((Buffer) tf.get(0).args()[1]).length() == wf.length(), "the tf32 conv reads the permuted copy of wf");
                for (Task k : List.of(tf.get(0), tf.get(1), tf.get(2))) {
                    assertEquals("gemm_wgmma", k.kernel().family());
                    assertEquals(t.get(1).kernel().options(), k.kernel().options(), "the TF32 kernels share the fp16 kernels' module");
                }
                assertEquals(21, tf.get(0).args().length);
                assertEquals(14, tf.get(1).args().length);
                assertEquals(18, tf.get(2).args().length);
                assertEquals(1, (Integer) tf.get(0).args()[16], "one split");
                assertEquals(cfg.tiles(2 * 64 * 64, 320, 1) * cfg.threads(), tf.get(0).launch().global()[0]);
                assertTrue(gs.tasks().stream().map(k -> k.kernel().name()).toList().containsAll(List.of("conv2d_mma_3xtf32", "gemm_mma_3xtf32")),
                        gs.tasks().toString());
                assertTrue(gs.tasks().stream().noneMatch(k -> k.kernel().name().contains("wgmma")), "strict fp32 never takes wgmma");
            }
            System.setProperty("jdiffusion.gemm.wgmma", "false");
            try (TaskGraph g = new TaskGraph("no-wgmma", backend)) {
                Gemm.linearGeglu(g, a, b, null, c, 256, 640, 320);
                Conv2d.conv2d(g, x, w3, null, r, 0.5f, y, 2, 64, 64, 64, 320, 3, 1, 1);
                assertEquals(List.of("gemm_mma_geglu_f16", "conv2d_v3_f16"), g.tasks().stream().map(k -> k.kernel().name()).toList());
            }
        } finally {
            if (before == null) System.clearProperty("jdiffusion.gemm.wgmma");
            else System.setProperty("jdiffusion.gemm.wgmma", before);
            for (Buffer buf : new Buffer[]{a, b, c, x, w3, w1, r, y, ws, x32, w32, wk, xf, wf, yf, af, bf, cf, x16, w16}) buf.close();
        }
    }

    /** Kernel names (split-K reductions left out) of a graph with an m x 320 x 320 Linear + residual, an m x (2*640) x 320 GEGLU projection, a 32-channel 3x3 conv + residual on 16x16 and an m-token proj_out written channels-first. */
    private static List<String> fused(DType dt, boolean tf32, int m) {
        Buffer a = backend.allocate("a", dt, m * 320), b = backend.allocate("b", dt, 1280 * 320), r = backend.allocate("r", dt, m * 640), c = backend.allocate("c", dt, m * 640);
        Buffer x = backend.allocate("x", dt, 32 * 16 * 16), w = backend.allocate("w", dt, 64 * 32 * 9), rc = backend.allocate("rc", dt, 64 * 16 * 16), y = backend.allocate("y", dt, 64 * 16 * 16);
        try (TaskGraph g = new TaskGraph("fused", backend, tf32)) {
            Gemm.linear(g, a, b, null, r, 1f, c, m, 320, 320);
            Gemm.linearGeglu(g, a, b, null, c, m, 640, 320);
            Conv2d.conv2d(g, x, w, null, rc, 1f, y, 1, 32, 16, 16, 64, 3, 1, 1);
            Gemm.linearToChannels(g, a, b, null, r, 1f, c, 1, m, 320, 320);
            return g.kernels().stream().map(Kernel::name).filter(k -> !k.startsWith("gemm_splitk")).toList();
        } finally {
            for (Buffer buf : new Buffer[]{a, b, r, c, x, w, rc, y}) buf.close();
        }
    }

    /** Kernel names (weight permutes and split-K reductions left out) of a graph with one 256x320x320 GEMM, one 32-channel 3x3 conv on 16x16 and one FLASH attention (d 40), F32 buffers. */
    private static List<String> selected(boolean tf32) {
        Buffer a = backend.allocate("a", DType.F32, 256 * 320), b = backend.allocate("b", DType.F32, 320 * 320), c = backend.allocate("c", DType.F32, 256 * 320);
        Buffer x = backend.allocate("x", DType.F32, 32 * 16 * 16), w = backend.allocate("w", DType.F32, 64 * 32 * 9), y = backend.allocate("y", DType.F32, 64 * 16 * 16);
        Buffer q = backend.allocate("q", DType.F32, 64 * 80), o = backend.allocate("o", DType.F32, 64 * 80);
        try (TaskGraph g = new TaskGraph("select", backend, tf32)) {
            Gemm.matmul(g, a, b, c, 1, 256, 320, 320, true, 1f);
            Conv2d.conv2d(g, x, w, null, y, 1, 32, 16, 16, 64, 3, 1, 1);
            Attention.attention(g, Attention.Processor.FLASH, q, q, q, o, 1, 2, 64, 64, 40, 0.15f, false);
            return g.kernels().stream().map(Kernel::name).filter(k -> !k.startsWith("conv_taps") && !k.startsWith("gemm_splitk_reduce")).toList();
        } finally {
            for (Buffer buf : new Buffer[]{a, b, c, x, w, y, q, o}) buf.close();
        }
    }
}
