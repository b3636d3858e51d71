package jdiffusion.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jdiffusion.kernels.Attention;
import jdiffusion.loader.SingleFileCheckpoint;
import jdiffusion.loader.UNetConfig;
import org.junit.jupiter.api.Test;

/** Options and the FLOP count of InterpretedBench (the benchmark itself is a main; nothing is timed here). */
class InterpretedBenchTest {
    @Test
    void optionsParse() {
        InterpretedBench.Options d = InterpretedBench.Options.parse();
        assertEquals(64, d.latent());
        assertArrayEquals(new int[]{1, 2}, d.batches());
        assertEquals(1, d.steps());
        assertEquals(10, d.pipelineSteps());
        assertEquals(Attention.Processor.FLASH, d.attention());
        InterpretedBench.Options o = InterpretedBench.Options.parse("--latent", "32", "--batch", "2", "--steps", "3", "--pipeline-steps", "0", "--attention", "chunked");
        assertEquals(32, o.latent());
        assertArrayEquals(new int[]{2}, o.batches());
        assertEquals(3, o.steps());
        assertEquals(0, o.pipelineSteps());
        assertEquals(Attention.Processor.CHUNKED, o.attention());
        assertThrows(IllegalArgumentException.class, () -> InterpretedBench.Options.parse("--latent", "30"));
        assertThrows(IllegalArgumentException.class, () -> InterpretedBench.Options.parse("--steps", "0"));
        assertThrows(IllegalArgumentException.class, () -> InterpretedBench.Options.parse("--frobnicate", "1"));
        assertThrows(IllegalArgumentException.class, () -> InterpretedBench.Options.parse("--latent"));
    }

    @Test
    void sd15FlopCountIsConsistent() {
        UNetConfig c = SingleFileCheckpoint.bundledUNet("sd15");
        double one = UNetFlops.forward(c, 1, 64, 64, 77);
        // every weight of a GEMM-class layer is used at least once per token of its resolution: well above 2 x 0.86e9
        assertTrue(one > 2 * 0.86e9 * 64, "SD1.5 UNet forward at 64x64: " + one);
        // SD1.5 at 512x512 is about 0.4 T multiply-adds per sample (0.8 TFLOP): our count must be in that range
        assertTrue(one > 6e11 && one < 1e12, "SD1.5 UNet forward at 64x64: " + one / 1e9 + " GFLOP");
        assertEquals(2 * one, UNetFlops.forward(c, 2, 64, 64, 77), one * 1e-9, "linear in the batch");
        // convolutions scale with the pixels, attention QK^T / PV with their square: a 32x32 step costs less than a quarter
        double quarter = UNetFlops.forward(c, 1, 32, 32, 77);
        assertTrue(quarter < one / 4 && quarter > one / 6, "32x32: " + quarter);
    }
}
