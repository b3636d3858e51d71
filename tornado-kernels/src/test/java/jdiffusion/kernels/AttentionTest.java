package jdiffusion.kernels;

import static jdiffusion.kernels.ParityCheck.close;
import static jdiffusion.kernels.ParityCheck.half;
import static jdiffusion.kernels.ParityCheck.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Arrays;
import java.util.List;

import jdiffusion.kernels.Attention.Processor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Attention processors: the Java references vs a naive double version, the three processors against each other, and
 * every backend against the Java reference; SD1.5 sizes when a GPU backend is present.
 */
class AttentionTest {
    /** batch, heads, seqQ, seqK, headDim, causal (tiny UNet 8x8, CLIP tiny 4x8 causal, VAE 1x64, cross-attention, ragged). */
    static final int[][] SHAPES = {
            {2, 8, 64, 77, 8, 0}, {2, 4, 77, 77, 8, 1}, {1, 1, 64, 64, 64, 0}, {1, 2, 1, 1, 40, 0}, {1, 2, 33, 77, 40, 0},
            {1, 1, 257, 257, 80, 0}, {1, 2, 19, 19, 160, 1}, {1, 3, 7, 1, 64, 0}, {2, 1, 17, 5, 13, 0}};
    /** Extra TF32 FLASH shapes: head dims past the register path (200, 256), causal with seqQ > seqK and seqQ < seqK, 4 warps + 1 row. */
    static final int[][] TF32_SHAPES = {{1, 1, 9, 40, 256, 1}, {1, 2, 70, 33, 200, 0}, {1, 1, 200, 150, 40, 1}, {1, 1, 50, 200, 40, 1},
            {1, 1, 65, 77, 80, 1}, {1, 2, 130, 130, 160, 0}, {1, 1, 40, 40, 13, 1}};
    /** TF32 tolerance of the tensor-core FLASH kernel against the fp32 reference, as GEMM's. */
    static final double TOL_TF32 = 2e-3;
    static List<Backend> backends;
    static final JavaBackend JAVA = new JavaBackend();

    @BeforeAll
    static void open() {
        backends = Backends.forTests();
    }

    @AfterAll
    static void closeAll() {
        for (Backend b : backends) b.close();
    }

    static double[] attentionDouble(float[] q, float[] k, float[] v, int[] s, double scale) {
        int batch = s[0], heads = s[1], sq = s[2], sk = s[3], d = s[4], hd = heads * d;
        boolean causal = s[5] != 0;
        double[] out = new double[batch * sq * hd];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < sq; i++) {
                    int valid = causal ? Math.min(sk, i + 1) : sk;
                    double[] p = new double[valid];
                    double m = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j < valid; j++) {
                        double dot = 0;
                        for (int e = 0; e < d; e++) dot += (double) q[(b * sq + i) * hd + h * d + e] * k[(b * sk + j) * hd + h * d + e];
                        p[j] = scale * dot;
                        m = Math.max(m, p[j]);
                    }
                    for (int j = 0; j < valid; j++) sum += p[j] = Math.exp(p[j] - m);
                    for (int e = 0; e < d; e++) {
                        double acc = 0;
                        for (int j = 0; j < valid; j++) acc += p[j] * v[(b * sk + j) * hd + h * d + e];
                        out[(b * sq + i) * hd + h * d + e] = acc / sum;
                    }
                }
        return out;
    }

    static float[][] inputs(int[] s, DType dt, long seed) {
        int hd = s[1] * s[4];
        float[] q = random(seed, s[0] * s[2] * hd, -2, 2), k = random(seed + 1, s[0] * s[3] * hd, -2, 2), v = random(seed + 2, s[0] * s[3] * hd, -1, 1);
        return dt == DType.F16 ? new float[][]{half(q), half(k), half(v)} : new float[][]{q, k, v};
    }

    static float[] attention(Backend be, DType dt, boolean tf32, Processor p, float[][] qkv, int[] s) {
        float scale = (float) (1 / Math.sqrt(s[4]));
        return ParityCheck.run(be, dt, tf32, qkv, new int[]{s[0] * s[2] * s[1] * s[4]},
                (g, in, out) -> Attention.attention(g, p, in[0], in[1], in[2], out[0], s[0], s[1], s[2], s[3], s[4], scale, s[5] != 0))[0];
    }

    @Test
    void referencesMatchDouble() {
        for (int[] s : SHAPES) {
            float[][] qkv = inputs(s, DType.F32, s[2] * 7L + s[4]);
            double[] want = attentionDouble(qkv[0], qkv[1], qkv[2], s, 1 / Math.sqrt(s[4]));
            for (Processor p : Processor.values())
                close("java " + p + " " + Arrays.toString(s), attention(JAVA, DType.F32, false, p, qkv, s), want, 1e-5);
        }
    }

    /**
     * The tiled Java references where several K/V tiles and query-row blocks meet: causal masks crossing tile edges
     * (seqQ above, below and equal to seqK), odd head dims, a single key, scores large enough that the running max moves.
     */
    @Test
    void referencesMatchDoubleAcrossTiles() {
        int[][] shapes = {{1, 2, 300, 300, 40, 1}, {2, 3, 45, 260, 13, 1}, {1, 1, 260, 45, 24, 1}, {1, 2, 130, 515, 8, 0}, {2, 1, 33, 1, 40, 0},
                {1, 1, 70, 200, 160, 0}};
        for (int[] s : shapes) {
            float[][] qkv = inputs(s, DType.F32, s[2] * 5L + s[3]);
            for (int i = 0; i < qkv[0].length; i++) qkv[0][i] *= 3;       // peaked softmax rows
            double[] want = attentionDouble(qkv[0], qkv[1], qkv[2], s, 1 / Math.sqrt(s[4]));
            for (Processor p : Processor.values())
                close("java " + p + " " + Arrays.toString(s), attention(JAVA, DType.F32, false, p, qkv, s), want, 2e-6);
        }
    }

    @Test
    void chunkedSlicesAreStitched() {
        int[] s = {2, 2, 37, 29, 16, 1};
        float[][] qkv = inputs(s, DType.F32, 3);
        double[] want = attentionDouble(qkv[0], qkv[1], qkv[2], s, 0.25);
        System.setProperty("jdiffusion.attention.chunk", "5");
        try {
            assertEquals(5, Attention.chunkRows(4, 37, 29, DType.F32));
            for (Backend be : backends)
                for (DType dt : new DType[]{DType.F32, DType.F16})
                    close(be.name() + " chunked by 5 " + dt, attention(be, dt, false, Processor.CHUNKED, dt == DType.F16 ? inputs(s, dt, 3) : qkv, s), want, dt == DType.F16 ? 1e-2 : 1e-4);
        } finally {
            System.clearProperty("jdiffusion.attention.chunk");
        }
        assertEquals(37, Attention.chunkRows(4, 37, 29, DType.F32));
        assertEquals(512, Attention.chunkRows(16, 4096, 4096, DType.F16)); // 64 MiB / (16 * 4096 * 2 bytes)
    }

    @Test
    void everyBackendAndProcessorAgrees() {
        for (int[] s : SHAPES)
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                float[][] qkv = inputs(s, dt, s[3] * 11L + s[1]);
                float[] want = attention(JAVA, dt, false, Processor.FLASH, qkv, s);
                double tol = dt == DType.F16 ? ParityCheck.F16 : ParityCheck.ATTN_F32;
                for (Backend be : backends)
                    for (Processor p : Processor.values())
                        close(be.name() + " " + p + " " + dt + " " + Arrays.toString(s), attention(be, dt, false, p, qkv, s), want, tol);
            }
    }

    @Test
    void mmaConfigFitsSharedMemory() {
        assertArrayEquals(new int[]{48, 64, 4}, Attention.mmaConfig(40));
        assertArrayEquals(new int[]{64, 64, 4}, Attention.mmaConfig(64));
        assertArrayEquals(new int[]{80, 64, 4}, Attention.mmaConfig(80));
        assertArrayEquals(new int[]{160, 32, 4}, Attention.mmaConfig(160));
        assertArrayEquals(new int[]{16, 64, 4}, Attention.mmaConfig(8));
        assertNull(Attention.mmaConfig(512));   // VAE mid-block at SD size: the portable FLASH kernel
    }

    @Test
    void flashV2ConfigFitsSharedMemory() {
        assumeTrue(Attention.V2_RM == 0, "row tiles forced by -Djdiffusion.attention.v2rm");
        assertArrayEquals(new int[]{48, 64, 2, 4}, Attention.flashV2Config(40));
        assertArrayEquals(new int[]{64, 64, 2, 4}, Attention.flashV2Config(64));
        assertArrayEquals(new int[]{80, 64, 1, 4}, Attention.flashV2Config(80));
        assertArrayEquals(new int[]{160, 32, 1, 4}, Attention.flashV2Config(160));
        assertArrayEquals(new int[]{16, 64, 2, 4}, Attention.flashV2Config(8));
        assertNull(Attention.flashV2Config(13));   // rows not in whole 16-byte chunks: flash_attn_f16_mma
        assertArrayEquals(new int[]{40, 64, 2, 4}, Attention.tf32V2Config(40));
        assertArrayEquals(new int[]{80, 32, 1, 4}, Attention.tf32V2Config(80));
        assertArrayEquals(new int[]{160, 16, 1, 4}, Attention.tf32V2Config(160));
        assertNull(Attention.tf32V2Config(13));
        assertNull(Attention.tf32V2Config(200));
        for (int d = 4; d <= 160; d += 4) {
            int[] c = Attention.tf32V2Config(d);
            assertTrue(c != null && 2L * 2 * c[1] * (c[0] + 4) * 4 <= Attention.SMEM_LIMIT, "d " + d);
        }
        for (int d = 8; d <= 512; d += 8) {
            int[] c = Attention.flashV2Config(d);
            if (c == null) continue;
            assertTrue(2L * 2 * c[1] * (c[0] + 8) * 2 <= Attention.SMEM_LIMIT && 16 * c[2] * c[3] <= 2 * c[1], "d " + d);
        }
    }

    @Test
    void tf32MmaConfigFitsSharedMemory() {
        assertArrayEquals(new int[]{40, 64, Attention.TF32_WARPS, 1}, Attention.tf32MmaConfig(40));
        assertArrayEquals(new int[]{64, 64, Attention.TF32_WARPS, 1}, Attention.tf32MmaConfig(64));
        assertArrayEquals(new int[]{80, 64, Attention.TF32_WARPS, 1}, Attention.tf32MmaConfig(80));
        assertArrayEquals(new int[]{160, 32, Attention.TF32_WARPS, 1}, Attention.tf32MmaConfig(160));
        assertArrayEquals(new int[]{8, 64, Attention.TF32_WARPS, 1}, Attention.tf32MmaConfig(8));
        assertArrayEquals(new int[]{16, 64, Attention.TF32_WARPS, 1}, Attention.tf32MmaConfig(13));
        assertArrayEquals(new int[]{200, 16, Attention.TF32_WARPS, 0}, Attention.tf32MmaConfig(200));
        assertArrayEquals(new int[]{256, 16, Attention.TF32_WARPS, 0}, Attention.tf32MmaConfig(256));
        assertNull(Attention.tf32MmaConfig(257));
        assertNull(Attention.tf32MmaConfig(512));   // VAE mid-block: the portable FLASH kernel
        for (int d = 1; d <= 256; d++) {
            int[] c = Attention.tf32MmaConfig(d);
            assertTrue(c[0] % 8 == 0 && c[0] >= d && c[0] < d + 8 && 2L * c[1] * (c[0] + 4) * 4 <= Attention.SMEM_LIMIT, "d " + d);
        }
        assertEquals("flash_attn", Attention.flashKernel(JAVA, DType.F32, true, 40));
        assertNull(Attention.vanillaMma(JAVA, DType.F16, false));
    }

    /**
     * Every processor on fp32 buffers of a TF32 graph (CUDA: flash_attn_tf32_mma, attn_scores_mma_tf32 / attn_pv_mma_tf32)
     * against the Java reference; exact kernels elsewhere. CHUNKED in slices of 24 rows so the q0 offsets are exercised.
     */
    @Test
    void tf32MatchesReference() {
        List<int[]> shapes = new java.util.ArrayList<>(List.of(SHAPES));
        shapes.addAll(List.of(TF32_SHAPES));
        boolean tf32mma = Boolean.parseBoolean(System.getProperty("jdiffusion.attention.tf32mma", "true"));
        System.setProperty("jdiffusion.attention.chunk", "24");
        try {
            for (int[] s : shapes) {
                float[][] qkv = inputs(s, DType.F32, s[2] * 5L + s[4]);
                float[] want = attention(JAVA, DType.F32, false, Processor.FLASH, qkv, s);
                for (Backend be : backends) {
                    String kernel = Attention.flashKernel(be, DType.F32, true, s[4]);
                    for (Processor p : Processor.values())
                        close(be.name() + " " + p + " tf32 (" + (p == Processor.FLASH ? kernel : "scores/pv " + Attention.vanillaMma(be, DType.F32, true)) + ") "
                                + Arrays.toString(s), attention(be, DType.F32, true, p, qkv, s), want, TOL_TF32);
                    if (be.name().equals("cuda") && tf32mma) {                // which kernel ran, checked after its numbers
                        boolean v2 = Attention.TF32_V2 && Attention.tf32V2Config(s[4]) != null;
                        assertEquals(v2 ? "flash_attn_tf32_v2" : "flash_attn_tf32_mma", kernel, Arrays.toString(s));
                        assertEquals("tf32", Attention.vanillaMma(be, DType.F32, true));
                    }
                }
            }
        } finally {
            System.clearProperty("jdiffusion.attention.chunk");
        }
    }

    @Test
    void vanillaScoresOutOfMemoryAtSdBatch64() {
        // SD1.5 at batch 64: 64 * 8 heads * 4096^2 scores = 2^33 elements; headDim 1 keeps the inputs small
        int batch = 64, heads = 8, seq = 4096;
        Buffer q = JAVA.allocate("q", DType.F16, (long) batch * seq * heads);
        try (TaskGraph g = new TaskGraph("oom", JAVA)) {
            DeviceOutOfMemoryException e = assertThrows(DeviceOutOfMemoryException.class, () -> {
                Attention.attention(g, Processor.VANILLA, q, q, q, q, batch, heads, seq, seq, 1, 1f, false);
                g.warmup(); // the score workspace is a planned temp: allocated at warmup
            });
            assertTrue(e.getMessage().contains("attention.scores"), e.getMessage());
        } finally {
            q.close();
        }
    }

    @Test
    void rejectsBadShapes() {
        Buffer q = JAVA.allocate("q", DType.F32, 64), h = JAVA.allocate("h", DType.F16, 64);
        try (TaskGraph g = new TaskGraph("bad", JAVA)) {
            assertThrows(KernelException.class, () -> Attention.attention(g, Processor.FLASH, q, q, q, q, 1, 2, 4, 4, 16, 1f, false));
            assertThrows(KernelException.class, () -> Attention.attention(g, Processor.FLASH, q, h, q, q, 1, 1, 4, 4, 4, 1f, false));
            assertThrows(KernelException.class, () -> Attention.attention(g, Processor.VANILLA, q, q, q, q, 1, 1, 0, 4, 4, 1f, false));
        }
    }

    /** SD1.5 shapes (batch 2, 8 heads) on GPU backends: every processor vs the Java FLASH reference, fp16 and fp32 (and TF32). */
    @Test
    void sd15ShapesOnGpu() {
        if (!ParityCheck.hasGpu(backends)) return;
        int[][] shapes = {{2, 8, 4096, 4096, 40, 0}, {2, 8, 4096, 77, 40, 0}, {2, 8, 1024, 1024, 80, 0}, {2, 8, 256, 256, 160, 0},
                {2, 8, 64, 64, 160, 0}, {2, 8, 64, 77, 160, 0}, {2, 12, 77, 77, 64, 1}, {1, 1, 1024, 1024, 512, 0}};
        for (int[] s : shapes)
            for (DType dt : new DType[]{DType.F16, DType.F32}) {
                float[][] qkv = inputs(s, dt, s[2] + s[4]);
                float[] want = attention(JAVA, dt, false, Processor.FLASH, qkv, s);
                for (Backend be : backends) {
                    if (!ParityCheck.isGpu(be)) continue;
                    for (Processor p : Processor.values())
                        close(be.name() + " " + p + " " + dt + " " + Arrays.toString(s), attention(be, dt, false, p, qkv, s), want, dt == DType.F16 ? 1e-2 : 1e-4);
                    if (dt == DType.F32)
                        for (Processor p : Processor.values())
                            close(be.name() + " " + p + " tf32 (" + Attention.flashKernel(be, dt, true, s[4]) + ") " + Arrays.toString(s),
                                    attention(be, dt, true, p, qkv, s), want, TOL_TF32);
                }
            }
    }

    /**
     * Strict fp32 (tf32 off) FLASH on CUDA runs flash_attn_3xtf32_mma (3xTF32 products, fp32 softmax) and matches the Java
     * reference at the fp32 attention tolerance (1e-4) on ragged, TF32 and SD1.5 shapes; -Djdiffusion.fp32x3=false gives
     * the portable flash_attn. Elsewhere flash_attn at the same tolerance.
     */
    @Test
    void strictFp32FlashAs3xTf32() {
        List<int[]> shapes = new java.util.ArrayList<>(List.of(SHAPES));
        shapes.addAll(List.of(TF32_SHAPES));
        if (ParityCheck.hasGpu(backends))
            shapes.addAll(List.of(new int[]{2, 8, 4096, 4096, 40, 0}, new int[]{2, 8, 4096, 77, 40, 0}, new int[]{2, 8, 1024, 1024, 80, 0},
                    new int[]{2, 8, 256, 256, 160, 0}, new int[]{2, 8, 64, 77, 160, 0}, new int[]{2, 12, 77, 77, 64, 1}));
        boolean mma = Boolean.parseBoolean(System.getProperty("jdiffusion.attention.tf32mma", "true")) && Gemm.fp32x3();
        for (int[] s : shapes) {
            float[][] qkv = inputs(s, DType.F32, s[2] * 3L + s[4]);
            float[] want = attention(JAVA, DType.F32, false, Processor.FLASH, qkv, s);
            for (Backend be : backends) {
                String kernel = Attention.flashKernel(be, DType.F32, false, s[4]);
                if (be.name().equals("cuda")) assertEquals(mma ? "flash_attn_3xtf32_mma" : "flash_attn", kernel, Arrays.toString(s));
                else assertEquals("flash_attn", kernel);
                close(be.name() + " FLASH strict fp32 (" + kernel + ") " + Arrays.toString(s), attention(be, DType.F32, false, Processor.FLASH, qkv, s), want,
                        ParityCheck.ATTN_F32);
            }
        }
        String before = System.getProperty("jdiffusion.fp32x3");
        System.setProperty("jdiffusion.fp32x3", "false");
        try {
            for (Backend be : backends) assertEquals("flash_attn", Attention.flashKernel(be, DType.F32, false, 40));
        } finally {
            if (before == null) System.clearProperty("jdiffusion.fp32x3");
            else System.setProperty("jdiffusion.fp32x3", before);
        }
    }
}
