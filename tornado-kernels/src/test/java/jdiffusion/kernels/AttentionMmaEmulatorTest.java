package jdiffusion.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

/**
 * The tensor-core FLASH kernels of kernels/attention.cu without a GPU: src/test/cuda/attention_mma_emulator.cpp (one host
 * thread per CUDA thread, mma rebuilt from the PTX fragment layouts) built with g++ under the options Attention picks
 * (f16Options / tf32Options; -DEMU_VANILLA for attn_scores_mma / attn_pv_mma) and run against its double reference; and ptxas -v on the SD1.5 head dims: no spills.
 * Skipped without g++ (nvcc for the spill check), and on the GPU machine (-Djdiffusion.gpu.tests=true) where the real
 * kernels run.
 */
class AttentionMmaEmulatorTest {
    static final Path EMULATOR = Path.of("src/test/cuda/attention_mma_emulator.cpp");

    static String tool(String name) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, name);
            if (Files.isExecutable(p)) return p.toString();
        }
        return null;
    }

    static String gxxOrSkip() {
        assumeTrue(!Boolean.getBoolean("jdiffusion.gpu.tests"), "the GPU run checks the real kernels");
        assumeTrue(Files.exists(EMULATOR), "no " + EMULATOR.toAbsolutePath());
        String gxx = tool("g++");
        assumeTrue(gxx != null, "g++ not found");
        return gxx;
    }

    static String exec(List<String> cmd, Path dir) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        pb.environment().remove("LD_PRELOAD");   // the test JVM's libjsig (parent pom) would break the ASan-built emulators
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(300, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("timed out: " + String.join(" ", cmd));
        }
        if (p.exitValue() != 0) fail(String.join(" ", cmd) + " exit " + p.exitValue() + ":\n" + out);
        return out;
    }

    /** Builds the emulator with the kernel options (plus EMU_TF32 for the tf32 kernel) and runs each shape {b, h, sq, sk, d, causal}. */
    static void emulate(String gxx, boolean tf32, String options, int[]... shapes) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("jd-attn-emu"), exe = dir.resolve("emu");
        List<String> cmd = new ArrayList<>(List.of(gxx, "-O1", "-std=c++20", "-pthread"));
        if (tf32) cmd.add("-DEMU_TF32");
        cmd.addAll(List.of(options.strip().split("\\s+")));
        cmd.addAll(List.of(EMULATOR.toAbsolutePath().toString(), "-o", exe.toString()));
        exec(cmd, dir);
        for (int[] s : shapes) {
            List<String> run = new ArrayList<>(List.of(exe.toString()));
            for (int x : s) run.add(Integer.toString(x));
            String out = exec(run, dir);
            assertTrue(out.contains(" OK"), out);
        }
    }

    @Test
    void tf32KernelOnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = gxxOrSkip();
        emulate(gxx, true, Attention.tf32Options(40), new int[]{1, 2, 77, 77, 40, 1}, new int[]{2, 1, 100, 77, 40, 0},
                new int[]{1, 1, 1, 1, 40, 0}, new int[]{1, 1, 50, 130, 40, 1});
        emulate(gxx, true, Attention.tf32Options(80), new int[]{1, 1, 65, 77, 80, 1});
        emulate(gxx, true, Attention.tf32Options(160), new int[]{1, 2, 19, 19, 160, 1});
        emulate(gxx, true, Attention.tf32Options(13), new int[]{2, 1, 17, 5, 13, 0});      // ragged: scalar loads, padding
        emulate(gxx, true, Attention.tf32Options(256), new int[]{1, 1, 9, 40, 256, 1});    // Q fragments re-read per tile
    }

    /**
     * Strict fp32 FLASH (flash_attn_3xtf32_mma, 3xTF32 products) under Attention.x3Options: rel L2 < 1e-5 against double,
     * with the emulated mma rounding its fp32 sum toward zero as the tensor cores do.
     */
    @Test
    void strictFp32KernelOnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = gxxOrSkip();
        emulate(gxx, true, Attention.x3Options(40), new int[]{1, 2, 77, 77, 40, 1}, new int[]{2, 1, 100, 77, 40, 0}, new int[]{1, 1, 1, 1, 40, 0});
        emulate(gxx, true, Attention.x3Options(80), new int[]{1, 1, 65, 77, 80, 1});     // Q re-read per tile (TQREG=0)
        emulate(gxx, true, Attention.x3Options(13), new int[]{2, 1, 17, 5, 13, 0});      // ragged: scalar loads, padding
        emulate(gxx, true, Attention.x3Options(160), new int[]{1, 1, 20, 40, 160, 1});   // 32 keys per tile, Q re-read
        emulate(gxx, true, Attention.x3Options(40), new int[]{1, 1, 16, 2048, 40, 0});   // long key run: o += per-tile sums (RZ mma model)
    }

    @Test
    void f16KernelOnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = gxxOrSkip();
        emulate(gxx, false, Attention.f16Options(40), new int[]{1, 2, 77, 77, 40, 1}, new int[]{1, 1, 70, 77, 40, 0});
    }

    @Test
    void f16V2KernelOnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = gxxOrSkip();   // batch heads seqQ seqK headDim causal: ragged tiles, several key tiles, causal, zero-padded head dims
        for (int d : new int[]{40, 80, 160, 8, 24})
            emulate(gxx, false, "-DEMU_V2 " + Attention.v2Options(d), new int[]{1, 2, 77, 77, d, 1}, new int[]{1, 1, 70, 157, d, 0},
                    new int[]{2, 1, 130, 64, d, 0});
    }

    @Test
    void tf32V2KernelOnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = gxxOrSkip();
        for (int d : new int[]{40, 80, 160, 12})
            emulate(gxx, false, "-DEMU_V2 " + Attention.tf32V2Options(d), new int[]{1, 2, 77, 77, d, 1}, new int[]{1, 1, 70, 157, d, 0},
                    new int[]{2, 1, 130, 64, d, 0});
    }

    @Test
    void vanillaKernelsOnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = gxxOrSkip();
        for (boolean tf32 : new boolean[]{false, true})   // batch heads seqQ seqK headDim causal chunk
            emulate(gxx, tf32, "-DEMU_VANILLA", new int[]{1, 2, 77, 77, 40, 1, 30}, new int[]{1, 3, 100, 77, 80, 0, 64},
                    new int[]{2, 1, 17, 5, 13, 1, 5}, new int[]{1, 1, 70, 130, 160, 1, 33});
    }

    @Test
    void noSpillsAtSdHeadDims() throws IOException, InterruptedException {
        assumeTrue(!Boolean.getBoolean("jdiffusion.gpu.tests"), "covered by CI");
        String nvcc = CudaCompileCheckTest.nvcc(), ptxas = tool("ptxas");
        assumeTrue(nvcc != null && ptxas != null, "nvcc/ptxas not found");
        Path dir = Files.createTempDirectory("jd-attn-ptx"), cu = dir.resolve("attention.cu"), ptx = dir.resolve("attention.ptx");
        Files.writeString(cu, KernelSource.cuda(new Kernel("attention", "flash_attn_tf32_mma", true, "", null)));
        Path cu2 = dir.resolve("flash_mma.cu");
        Files.writeString(cu2, KernelSource.cuda(new Kernel("flash_mma", "flash_attn_f16_v2", true, "", null)));
        List<String> configs = new ArrayList<>();
        for (int d : new int[]{40, 80, 160, 256}) configs.add(Attention.tf32Options(d));
        for (int d : new int[]{40, 64, 80, 160, 256}) configs.add(Attention.x3Options(d));   // strict fp32 (3xTF32)
        configs.add(Attention.f16Options(160));
        for (int d : new int[]{40, 64, 80, 160}) configs.add("-DFM_V2 " + Attention.v2Options(d));   // kernels/flash_mma.cu
        for (int d : new int[]{40, 64, 80, 120, 160}) configs.add("-DFM_V2 " + Attention.tf32V2Options(d));
        configs.add("-DFA_NO_F16 -DFA_NO_TF32");   // the VANILLA / CHUNKED module
        for (String options : configs) {
            List<String> cmd = new ArrayList<>(List.of(nvcc, "-arch=sm_90", "-std=c++17", "-ptx"));
            cmd.addAll(List.of(options.strip().split("\\s+")));
            cmd.addAll(List.of("-o", ptx.toString(), (options.startsWith("-DFM_V2") ? cu2 : cu).toString()));
            exec(cmd, dir);
            String out = exec(List.of(ptxas, "-arch=sm_90", "-v", ptx.toString(), "-o", dir.resolve("attention.cubin").toString()), dir);
            assertTrue(out.contains("0 bytes spill stores, 0 bytes spill loads") && !out.matches("(?s).*[1-9][0-9]* bytes spill.*"), options + ":\n" + out);
        }
    }
}
