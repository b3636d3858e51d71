package jdiffusion.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import jdiffusion.bench.StudyReport.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StudyTest {
    @Test
    void defaultOrderPutsTheHeadlineCellsFirst() {
        Study.Options o = Study.Options.parse("--out", "x");
        List<Study.Cell> cells = Study.order(o);
        assertEquals(List.of(new Study.Cell("cold", "flash", "fp16", 16), new Study.Cell("cached", "flash", "fp16", 16),
                new Study.Cell("cold", "flash", "tf32", 16), new Study.Cell("cached", "flash", "tf32", 16)), cells.subList(0, 4));
        assertEquals(new Study.Cell("cached", "flash", "fp32", 1), cells.get(4), "the JIT twin of the interpreted cell");
        assertEquals(new Study.Cell("cached", "flash", "fp16", 1), cells.get(5));
        assertEquals(new Study.Cell("interpreted", "flash", "fp32", 1), cells.getLast());
        // 3 attention x 3 precision x 7 batches cached + 9 cold + 1 interpreted
        assertEquals(63 + 9 + 1, cells.size());
        assertEquals(cells.size(), cells.stream().distinct().count());
        // after the headline, a group runs its headline batch first, then ascending (an OOM skips the larger ones)
        int i = cells.indexOf(new Study.Cell("cached", "vanilla", "fp16", 16));
        assertEquals(new Study.Cell("cached", "vanilla", "fp16", 1), cells.get(i + 1));
        assertEquals(new Study.Cell("cached", "vanilla", "fp16", 64), cells.get(i + 6));
    }

    @Test
    void profileIsAFlag() {
        assertEquals(false, Study.Options.parse("--out", "x").profile());
        Study.Options o = Study.Options.parse("--out", "x", "--profile", "--batch", "2");
        assertEquals(true, o.profile());
        assertEquals(List.of(2), o.batch());
    }

    @Test
    void badOptionsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> Study.Options.parse("--out", "x", "--attention", "sdpa"));
        assertThrows(IllegalArgumentException.class, () -> Study.Options.parse("--out", "x", "--modes", "warm"));
        assertThrows(IllegalArgumentException.class, () -> Study.Options.parse("--out", "x", "--batch", "0"));
        assertThrows(IllegalArgumentException.class, () -> Study.Options.parse("--out", "x", "--frobnicate", "1"));
        assertThrows(IllegalArgumentException.class, () -> Study.Options.parse("--batch", "1"));
        assertEquals(List.of("fp32", "tf32"), Study.Options.parse("--out", "x", "--precision", "float32,fp32-high").precision());
    }

    /** The whole harness on the java backend with the tiny UNet and random weights: batch 1, 2 steps, plus one interpreted step. */
    @Test
    void tinyEndToEndOnJavaBackend(@TempDir Path out) throws IOException {
        Path config = Path.of(System.getProperty("tiny.sd"), "unet", "config.json");
        List<Row> rows = Study.run(Study.Options.parse("--out", out.toString(), "--backend", "java", "--attention", "flash,vanilla", "--precision", "fp32",
                "--batch", "1", "--modes", "cached,interpreted", "--steps", "2", "--warmup", "1", "--unet-config", config.toString(), "--latent", "8",
                "--interpreted-steps", "1", "--interpreted-seconds", "120", "--budget-seconds", "300"));
        assertEquals(3, rows.size(), rows.toString());
        for (Row r : rows) {
            assertEquals("ok", r.status(), r.toString());
            assertEquals("java", r.backend());
            assertTrue(r.medianMs() > 0 && r.minMs() <= r.medianMs() && r.medianMs() <= r.maxMs(), r.toString());
            assertTrue(r.weightsGib() > 0 && r.peakGib() >= r.weightsGib(), r.toString());
            assertEquals(r.medianMs(), r.msPerSample(), 1e-9);
        }
        Row cached = rows.getFirst();
        assertEquals("cached", cached.mode());
        assertEquals(2, cached.iters());
        assertEquals(1, cached.warmup());
        assertEquals("interpreted", rows.getLast().mode());
        for (String f : List.of("study.csv", "study.md", "study-fp32.png")) assertTrue(Files.size(out.resolve(f)) > 0, f);
        try (var s = Files.list(out)) {
            assertEquals(3, s.count());
        }
        assertEquals(3, StudyReport.parseCsv(Files.readString(out.resolve("study.csv"))).size());
        String md = Files.readString(out.resolve("study.md"));
        assertTrue(md.contains("## Targets") && md.contains("## fp32"), md);
    }
}
