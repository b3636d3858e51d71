package jdiffusion.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;
import jdiffusion.bench.StudyReport.Anchor;
import jdiffusion.bench.StudyReport.Row;
import jdiffusion.bench.StudyReport.Target;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StudyReportTest {
    static final String ANCHORS = """
            mode,processor,dtype,tf32_matmul,tf32_cudnn,unet_batch,status,median_ms,min_ms,max_ms,ms_per_sample,peak_gib,weights_gib,iters,warmup,note
            eager,sdpa,fp16,tf32/high,tf32,16,ok,53.076,52.765,87.605,3.317,2.671,1.621,12,4,
            eager,vanilla,fp16,tf32/high,tf32,16,ok,104.165,103.912,104.403,6.51,10.085,1.621,12,4,
            eager,sdpa,fp16,tf32/high,tf32,32,ok,100.379,99.469,107.545,3.137,3.689,1.621,12,4,
            eager,vanilla,fp16,tf32/high,tf32,32,ok,201.582,201.109,207.766,6.299,18.517,1.621,12,4,
            eager,sdpa,fp32-high,tf32/high,tf32,16,ok,164.348,163.955,165.105,10.272,5.295,3.259,12,4,
            eager,vanilla,fp32,ieee/highest,none,64,OOM,,,,,69.465,3.259,12,3,torch.OutOfMemoryError
            eager,sdpa,fp32,ieee/highest,none,64,ok,1435.036,1431.066,1439.608,22.422,11.402,3.259,10,4,
            compile,sdpa,fp16,default,default,2,ok,13.197,12.836,13.5,6.598,1.803,,12,3,torch.compile default mode; first call (compile) 69.6s
            """;

    static Row ok(String mode, String attention, String precision, int batch, double ms, double compile) {
        return new Row("cuda", "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)", mode, attention, precision, batch, "ok", ms, ms * 0.98, ms * 1.1,
                ms / batch, StudyReport.imagesPerSecond(batch, ms), 3.5, 1.6, compile, 10, 2, "first forward 1.2 s; modules: 3 compiled");
    }

    static List<Row> synthetic() {
        List<Row> rows = new ArrayList<>();
        rows.add(ok("cold", "flash", "fp16", 16, 50.0, 12.5));
        rows.add(ok("cached", "flash", "fp16", 16, 49.0, 0.21));
        rows.add(ok("cached", "flash", "fp16", 32, 95.0, 0.05));
        rows.add(ok("cached", "vanilla", "fp16", 32, 200.0, 0.05));
        rows.add(ok("cached", "flash", "fp16", 64, 190.0, 0.05));
        rows.add(ok("cached", "flash", "tf32", 16, 170.0, 0.3));
        rows.add(ok("cached", "flash", "fp32", 1, 40.0, 0.3));
        rows.add(Row.failed("cuda", "H100", "cached", "flash", "fp32", 64, "OOM", "out of device memory allocating x, \"quoted\""));
        rows.add(Row.failed("cuda", "H100", "cached", "chunked", "fp16", 16, "ERROR", "KernelException: boom | pipe"));
        rows.add(new Row("java", "java (16 cores)", "interpreted", "flash", "fp32", 1, "TIMEOUT", Double.NaN, 60000, Double.NaN, Double.NaN, Double.NaN,
                Double.NaN, Double.NaN, Double.NaN, 0, 0, "no step finished in 60 s"));
        return rows;
    }

    @Test
    void csvRoundTrip() {
        List<Row> rows = synthetic();
        String csv = StudyReport.csv(rows);
        assertTrue(csv.startsWith(String.join(",", StudyReport.HEADER) + "\n"), csv);
        List<Row> back = StudyReport.parseCsv(csv);
        assertEquals(rows.size(), back.size());
        for (int i = 0; i < rows.size(); i++) {
            Row a = rows.get(i), b = back.get(i);
            assertEquals(a.device(), b.device());
            assertEquals(a.note(), b.note());
            assertEquals(a.status(), b.status());
            assertEquals(a.unetBatch(), b.unetBatch());
            assertEquals(a.iters(), b.iters());
            double[] x = {a.medianMs(), a.minMs(), a.maxMs(), a.msPerSample(), a.imagesPerS(), a.peakGib(), a.weightsGib(), a.compileS()};
            double[] y = {b.medianMs(), b.minMs(), b.maxMs(), b.msPerSample(), b.imagesPerS(), b.peakGib(), b.weightsGib(), b.compileS()};
            for (int k = 0; k < x.length; k++) {
                assertEquals(Double.isNaN(x[k]), Double.isNaN(y[k]), "row " + i + " column " + k);
                if (!Double.isNaN(x[k])) assertEquals(x[k], y[k], Math.abs(x[k]) * 1e-3, "row " + i + " column " + k);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> StudyReport.parseCsv("a,b\n1,2\n"));
    }

    @Test
    void anchorsAreMappedToOurNames() {
        List<Anchor> a = StudyReport.parseAnchors(ANCHORS);
        assertEquals(7, a.size(), "eager rows only");
        assertEquals(53.076, StudyReport.torchMs(a, "flash", "fp16", 16), 1e-9);
        assertEquals(164.348, StudyReport.torchMs(a, "flash", "tf32", 16), 1e-9);
        assertTrue(Double.isNaN(StudyReport.torchMs(a, "vanilla", "fp32", 64)), "OOM has no time");
        assertEquals("OOM", StudyReport.torch(a, "vanilla", "fp32", 64).orElseThrow().status());
        assertTrue(StudyReport.compileAnchor(ANCHORS).orElseThrow().contains("69.6s"));
    }

    @Test
    void imagesPerSecondIsPerImageOfAFiftyStepGeneration() {
        // UNet batch 16 = 8 images; 50 steps x 50 ms = 2.5 s -> 3.2 images/s
        assertEquals(3.2, StudyReport.imagesPerSecond(16, 50), 1e-12);
    }

    @Test
    void targets() {
        List<Target> t = StudyReport.targets(synthetic());
        assertEquals(6, t.size());
        assertEquals("PASS", t.get(0).verdict(), t.get(0).toString());   // fp16 flash b16: cached 49 ms
        assertEquals("FAIL", t.get(1).verdict(), t.get(1).toString());   // tf32 flash b16: 170 > 164
        assertEquals("FAIL", t.get(2).verdict(), t.get(2).toString());   // fp32 flash b64 OOM
        assertEquals("PASS", t.get(3).verdict(), t.get(3).toString());   // 200 / 95 = 2.1x
        assertEquals("PASS", t.get(4).verdict(), t.get(4).toString());   // cached 0.21 s
        assertEquals("PASS", t.get(5).verdict(), t.get(5).toString());    // interpreted timed out at 60 s vs 40 ms JIT: >= 1500x
        List<Row> shortTimeout = new ArrayList<>(synthetic());
        shortTimeout.removeLast();
        shortTimeout.add(new Row("java", "java", "interpreted", "flash", "fp32", 1, "TIMEOUT", Double.NaN, 2000, Double.NaN, Double.NaN, Double.NaN,
                Double.NaN, Double.NaN, Double.NaN, 0, 0, "no step finished in 2 s"));
        assertEquals("NOT RUN", StudyReport.targets(shortTimeout).get(5).verdict(), "a 50x lower bound proves nothing");
        shortTimeout.removeLast();
        shortTimeout.add(ok("interpreted", "flash", "fp32", 1, 2000, Double.NaN));
        assertEquals("FAIL", StudyReport.targets(shortTimeout).get(5).verdict(), "a measured 50x");
        List<Row> none = List.of();
        for (Target x : StudyReport.targets(none)) assertEquals("NOT RUN", x.verdict(), x.toString());
    }

    @Test
    void markdownHasPyTorchColumnsAndTargets() {
        List<Anchor> a = StudyReport.parseAnchors(ANCHORS);
        String md = StudyReport.markdown(synthetic(), a, Map.of("Backend", "cuda"), StudyReport.compileAnchor(ANCHORS).orElse(null));
        for (String s : List.of("## Targets", "torch vanilla ms", "torch sdpa ms", "ours flash vs torch sdpa", "flash vs vanilla (ours)", "## fp16", "## tf32",
                "## fp32", "UNet batch = 2 x images", "**PASS** fp16 flash, UNet batch 16: <= 53 ms/step", "**FAIL** tf32 flash", "cached compile < 1 s",
                "JIT >= 100x faster than interpreted", "## Compile step", "## Interpreted (java backend) vs JIT", "torch.compile", "boom \\| pipe"))
            assertTrue(md.contains(s), "markdown lacks '" + s + "':\n" + md);
        // fp16 batch 16: ours flash 49.0 (cached preferred over cold 50.0) beside torch sdpa 53.1 -> 53.076 / 49 = 1.08x
        assertTrue(md.contains("| 16 | 8 | - | ERROR | 49.0 | 104.2 | 53.1 |"), md);
        assertTrue(md.contains("1.08x"), md);
        assertTrue(md.contains("| 64 | 32 | - | - | OOM | OOM | 1435.0 |"), md);
    }

    @Test
    void chartsDecodeWithTheRightSize(@TempDir Path dir) throws IOException {
        List<Anchor> a = StudyReport.parseAnchors(ANCHORS);
        boolean saved = StudyCharts.pixelFont;
        try {
            for (boolean pixels : new boolean[]{false, true}) {
                StudyCharts.pixelFont = pixels;
                Path f = dir.resolve("chart-" + pixels + ".png");
                StudyCharts.write(f, synthetic(), a, "fp16");
                BufferedImage img = ImageIO.read(f.toFile());
                assertNotNull(img, "PNG decodes");
                assertEquals(StudyCharts.WIDTH, img.getWidth());
                assertEquals(StudyCharts.HEIGHT, img.getHeight());
                int nonWhite = 0;
                for (int y = 0; y < img.getHeight(); y += 2) for (int x = 0; x < img.getWidth(); x += 2) if ((img.getRGB(x, y) & 0xFFFFFF) != 0xFFFFFF) nonWhite++;
                assertTrue(nonWhite > 1000, "bars and text drawn (" + nonWhite + " non-white samples)");
            }
        } finally {
            StudyCharts.pixelFont = saved;
        }
    }

    @Test
    void writeProducesAtMostFiveFiles(@TempDir Path dir) throws IOException {
        List<Path> files = StudyReport.write(dir, synthetic(), StudyReport.parseAnchors(ANCHORS), Map.of(), null);
        assertEquals(List.of("study.csv", "study.md", "study-fp16.png", "study-tf32.png", "study-fp32.png"), files.stream().map(p -> p.getFileName().toString()).toList());
        try (var s = Files.list(dir)) {
            assertEquals(5, s.count(), "no temp files left");
        }
        assertEquals(synthetic().size(), StudyReport.parseCsv(Files.readString(dir.resolve("study.csv"))).size());
    }

    @Test
    void glyphsAreSevenRows() {
        for (char c : "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz .,-/:()%=+<>_?'*\"".toCharArray()) {
            int[] g = StudyCharts.glyph(c);
            assertEquals(7, g.length);
            for (int r : g) assertTrue(r >= 0 && r < 32, "glyph " + c);
        }
    }
}
