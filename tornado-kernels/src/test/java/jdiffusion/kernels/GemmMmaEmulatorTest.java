package jdiffusion.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

/**
 * The version-3 GEMM/conv kernels of kernels/gemm_mma.cu without a GPU: src/test/cuda/gemm_mma_emulator.cpp (256 host
 * threads per block; mma, ldmatrix and cp.async rebuilt from the PTX ISA; NaN-poisoned shared memory, workspace and
 * output) built with g++ (AddressSanitizer where it links) and run on ragged shapes with and without split-K, with
 * cp.async landing at issue (-DCP_EAGER=1) and only at its wait (0). Split plans come from {@link Gemm#split}.
 * Skipped without g++ and on the GPU machine, like {@link AttentionMmaEmulatorTest}.
 */
class GemmMmaEmulatorTest {
    static final Path EMULATOR = Path.of("src/test/cuda/gemm_mma_emulator.cpp");

    /** Emulator builds by options: the tests share them (each g++ + ASan build takes several seconds). */
    private static final java.util.Map<String, Path> BUILT = new java.util.concurrent.ConcurrentHashMap<>();

    static synchronized Path build(String gxx, boolean eager, String... defines) throws IOException, InterruptedException {
        String key = gxx + " " + eager + " " + String.join(" ", defines);
        Path built = BUILT.get(key);
        if (built != null && Files.isExecutable(built)) return built;
        built = compile(gxx, eager, defines);
        BUILT.put(key, built);
        return built;
    }

    private static Path compile(String gxx, boolean eager, String... defines) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("jd-gemm-emu"), exe = dir.resolve("emu");
        List<String> cmd = new ArrayList<>(List.of(gxx, "-O1", "-std=c++20", "-pthread", "-DCP_EAGER=" + (eager ? 1 : 0)));
        cmd.addAll(List.of(defines));
        try {
            List<String> asan = new ArrayList<>(cmd);
            asan.addAll(List.of("-fsanitize=address", EMULATOR.toAbsolutePath().toString(), "-o", exe.toString()));
            AttentionMmaEmulatorTest.exec(asan, dir);
        } catch (AssertionError e) {        // no libasan here: build without it
            cmd.addAll(List.of(EMULATOR.toAbsolutePath().toString(), "-o", exe.toString()));
            AttentionMmaEmulatorTest.exec(cmd, dir);
        }
        return exe;
    }

    static String run(Path exe, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(exe.toString()));
        cmd.addAll(List.of(args));
        String out = AttentionMmaEmulatorTest.exec(cmd, exe.getParent());
        assertTrue(out.contains(" OK"), out);
        return out;
    }

    /** run, and the emulator ran the 3xTF32 kernel (it prints "(3xTF32)" for the -DJD_3XTF32 fp32 kernels). */
    static void run3x(Path exe, String... args) throws IOException, InterruptedException {
        String out = run(exe, args);
        assertTrue(out.contains("(3xTF32)"), out);
    }

    @Test
    void gemmAndConvOnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = AttentionMmaEmulatorTest.gxxOrSkip();
        assertTrue(Files.exists(EMULATOR));
        // the emulator recounts splits like Gemm.split: 3 requested over 11 k tiles of 32 halves -> 3 splits of 4 tiles
        assertTrue(Gemm.split(328, DType.F16, 3).equals(new Gemm.Split(3, 128)) && Gemm.split(360, DType.F32, 6).equals(new Gemm.Split(6, 64)));
        Path deferred = build(gxx, false);
        run(deferred, "gemm", "1", "1", "200", "130", "72", "1", "1");        // f16, ragged M, N, K tail, transB
        run(deferred, "gemm", "1", "2", "33", "140", "200", "0", "4");        // f16, B [K][N] gathered, split-K, batch 2
        run(deferred, "gemm", "0", "1", "70", "200", "328", "1", "3");        // tf32 split-K
        run(deferred, "conv", "1", "2", "16", "9", "8", "40", "3", "2", "1", "3"); // f16 stride 2, split-K
        run(deferred, "conv", "0", "2", "24", "5", "6", "64", "1", "1", "0", "2"); // tf32 1x1
        Path eager = build(gxx, true);
        run(eager, "gemm", "0", "2", "130", "136", "40", "0", "1");
        run(eager, "conv", "1", "2", "40", "6", "6", "136", "3", "1", "1", "7");
        // conv v3 (kernels/conv_mma.cu): tap-major k, weights permuted by conv_taps_*; ragged h, w, cOut, batch 2
        run(deferred, "conv3", "1", "2", "32", "9", "7", "40", "3", "1", "1", "1");   // f16 3x3, 126 columns
        run(deferred, "conv3", "1", "2", "64", "6", "6", "136", "3", "1", "1", "4");  // f16 split-K (kPer across taps)
        run(deferred, "conv3", "0", "2", "16", "11", "13", "72", "3", "1", "1", "1"); // tf32 3x3, 3 column blocks
        run(deferred, "conv3", "0", "2", "48", "5", "6", "64", "1", "1", "0", "2");   // tf32 1x1 split-K
        run(deferred, "conv3", "1", "1", "32", "9", "8", "40", "3", "2", "1", "3");   // f16 stride 2, split-K
        run(eager, "conv3", "1", "2", "64", "5", "7", "130", "1", "1", "0", "1");     // f16 1x1, ragged cOut
        run(eager, "conv3", "0", "2", "32", "7", "7", "40", "3", "1", "1", "3");      // tf32 split-K
        run(eager, "conv3", "1", "2", "32", "9", "7", "4", "3", "1", "1", "2");       // f16 cOut 4 (conv_out), split-K
    }

    /**
     * The fused epilogues against the emulator's double reference: the residual {@code c = (alpha*AB + bias + res) * beta}
     * in gemm_mma_*, conv2d_mma_*, conv2d_v3_* and the split-K reduction (res 1: its own buffer; 2: res is c itself, which
     * the kernels must read before they write), and GEGLU (gemm_mma_geglu_* with B's columns in Gemm.gegluInterleave's
     * order, c = value * gelu(gate); split-K through gemm_splitk_geglu_*), and the channels-first output of token rows
     * (outHw: c [M/outHw][N][outHw], Transformer2DModel's proj_out); ragged M, N, K, B gathered and by cp.async.
     */
    @Test
    void fusedEpiloguesOnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = AttentionMmaEmulatorTest.gxxOrSkip();
        Path deferred = build(gxx, false);
        run(deferred, "gemm", "1", "1", "200", "130", "72", "1", "1", "1");          // f16 residual, ragged M/N
        run(deferred, "gemm", "0", "2", "70", "200", "328", "1", "3", "2");          // tf32 split-K, residual aliasing c
        run(deferred, "gemm", "1", "2", "33", "140", "200", "0", "4", "1");          // f16 B gathered, split-K
        run(deferred, "gemm", "1", "1", "200", "130", "72", "1", "1", "1", "40");    // channels-first c (proj_out): 5 images of 40 tokens
        run(deferred, "gemm", "0", "1", "210", "72", "328", "1", "3", "2", "70");    // tf32 channels-first through the split-K reduction, res is c
        run(deferred, "geglu", "1", "1", "200", "144", "72", "1", "1");              // f16 GEGLU, N = 2*72 (ragged column block)
        run(deferred, "geglu", "1", "2", "33", "160", "200", "0", "4");              // B [K][N] gathered, split-K, batch 2
        run(deferred, "geglu", "0", "1", "70", "272", "328", "1", "3");              // tf32 split-K
        run(deferred, "geglu", "0", "2", "130", "48", "40", "1", "1");               // tf32, inner 24: three 16-column groups of one block, ragged M
        run(deferred, "conv", "1", "2", "16", "9", "8", "40", "3", "2", "1", "3", "1");   // conv2d_mma f16 stride 2, split-K, residual
        run(deferred, "conv", "0", "2", "24", "5", "6", "64", "1", "1", "0", "1", "2");   // tf32 1x1, residual is out
        run(deferred, "conv3", "1", "2", "32", "9", "7", "40", "3", "1", "1", "1", "1");  // conv2d_v3 f16 3x3
        run(deferred, "conv3", "0", "2", "16", "11", "13", "72", "3", "1", "1", "3", "2"); // tf32 split-K, residual is out
        Path eager = build(gxx, true);
        run(eager, "conv3", "1", "2", "64", "6", "6", "136", "3", "1", "1", "4", "1");    // f16 split-K, ragged cOut
        run(eager, "geglu", "1", "1", "130", "256", "64", "1", "1");                  // two full column blocks
        run(eager, "gemm", "0", "1", "130", "136", "40", "0", "1", "1");
    }

    /**
     * Strict fp32 as 3xTF32 (-DJD_3XTF32: gemm_mma_3xtf32, conv2d_mma_3xtf32): the emulator first checks the big/small
     * split over a million bit patterns (cvt.rna.tf32 semantics: both words tf32, |x - big - small| <= 2^-22 |x|), then runs
     * the kernels with the mma reading only the 19 tf32 bits of each word and rounding its fp32 sum toward zero (the tensor
     * cores' behaviour; -DMMA_RZ=0 for plain fp32 sums); they must match the double reference at the fp32
     * tolerance (rel L2 <= 1e-5; plain tf32 is ~3e-4 on the same shapes). Ragged shapes, B gathered and by cp.async, split-K.
     */
    @Test
    void strictFp32As3xTf32OnEmulatedWarps() throws IOException, InterruptedException {
        String gxx = AttentionMmaEmulatorTest.gxxOrSkip();
        Path deferred = build(gxx, false, "-DJD_3XTF32");
        run3x(deferred, "gemm", "0", "1", "70", "200", "328", "1", "3");        // transB, split-K, ragged M/N
        run3x(deferred, "gemm", "0", "2", "33", "140", "200", "0", "2");        // B [K][N] gathered (raw fp32 staged), batch 2
        run3x(deferred, "conv", "0", "1", "20", "9", "7", "40", "3", "2", "1", "1"); // im2col gather, stride 2, K tail
        run3x(deferred, "conv", "0", "2", "24", "5", "6", "64", "1", "1", "0", "2"); // 1x1, split-K
        Path eager = build(gxx, true, "-DJD_3XTF32");
        run3x(eager, "gemm", "0", "1", "130", "136", "44", "1", "1");
        // K = 4096 in one split: with the mma's round-toward-zero (emulated), summing every mma into the accumulators gave
        // 3.8e-5; the per-stage sums of gm_compute_3x give ~3e-7
        run3x(eager, "gemm", "0", "1", "40", "48", "4096", "1", "1");
        // the fused epilogues in the 3xTF32 build: gemm_mma_geglu_3xtf32 (+ split-K), residual in gemm and conv
        run3x(deferred, "geglu", "0", "1", "70", "272", "328", "1", "3");
        run3x(deferred, "geglu", "0", "2", "33", "160", "200", "0", "1");
        run3x(deferred, "gemm", "0", "1", "70", "200", "328", "1", "3", "1");
        run3x(deferred, "gemm", "0", "1", "130", "48", "64", "1", "1", "2", "65");
        run3x(eager, "conv", "0", "1", "20", "9", "7", "40", "3", "2", "1", "1", "2");
    }

    /** ptxas -v on the -DJD_3XTF32 module as Gemm builds it: gemm_mma_3xtf32, gemm_mma_geglu_3xtf32 and conv2d_mma_3xtf32 spill nothing. */
    @Test
    void strictFp32KernelsDoNotSpill() throws IOException, InterruptedException {
        assumeTrue(!Boolean.getBoolean("jdiffusion.gpu.tests"), "covered by CI");
        String nvcc = CudaCompileCheckTest.nvcc(), ptxas = AttentionMmaEmulatorTest.tool("ptxas");
        assumeTrue(nvcc != null && ptxas != null, "nvcc/ptxas not found");
        Path dir = Files.createTempDirectory("jd-gemm-ptx"), cu = dir.resolve("gemm_mma.cu"), ptx = dir.resolve("gemm_mma.ptx");
        Files.writeString(cu, KernelSource.cuda(Gemm.MMA_3XTF32));
        List<String> cmd = new ArrayList<>(List.of(nvcc, "-arch=sm_90", "-std=c++17", "-ptx"));
        cmd.addAll(List.of(Gemm.MMA_3XTF32.options().strip().split("\\s+")));
        cmd.addAll(List.of("-o", ptx.toString(), cu.toString()));
        AttentionMmaEmulatorTest.exec(cmd, dir);
        String out = AttentionMmaEmulatorTest.exec(List.of(ptxas, "-arch=sm_90", "-v", ptx.toString(), "-o", dir.resolve("g.cubin").toString()), dir);
        for (String kernel : new String[]{"gemm_mma_3xtf32", "gemm_mma_geglu_3xtf32", "conv2d_mma_3xtf32"}) {
            int at = out.indexOf("'" + kernel + "'");
            assertTrue(at >= 0, kernel + " not compiled:\n" + out);
            int next = out.indexOf("Compiling entry", at + 1);
            String part = out.substring(at, next < 0 ? out.length() : next);
            assertTrue(part.contains("0 bytes spill stores, 0 bytes spill loads"), kernel + ":\n" + part);
        }
    }
}
