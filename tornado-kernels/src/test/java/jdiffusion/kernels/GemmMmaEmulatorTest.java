package jdiffusion.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

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

    static Path build(String gxx, boolean eager) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("jd-gemm-emu"), exe = dir.resolve("emu");
        List<String> cmd = new ArrayList<>(List.of(gxx, "-O1", "-std=c++20", "-pthread", "-DCP_EAGER=" + (eager ? 1 : 0)));
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

    static void run(Path exe, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(exe.toString()));
        cmd.addAll(List.of(args));
        String out = AttentionMmaEmulatorTest.exec(cmd, exe.getParent());
        assertTrue(out.contains(" OK"), out);
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
    }
}
