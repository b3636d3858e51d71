package jdiffusion.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import jdiffusion.loader.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MainTest {
    /** Exit code, stdout, stderr of one CLI run. */
    record Run(int code, String out, String err) {
    }

    static Run run(String... args) {
        var out = new ByteArrayOutputStream();
        var err = new ByteArrayOutputStream();
        int code = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    static String tiny() {
        return PipelineRefs.tinySd().toString();
    }

    @Test
    void helpAndUsageErrors() {
        Run help = run("--help");
        assertEquals(0, help.code());
        assertTrue(help.out().contains("usage: sd"));
        assertTrue(help.out().contains("run-unet"));
        assertEquals(0, run("generate", "--help").code());
        for (String[] bad : new String[][]{
                {},
                {"frobnicate"},
                {"generate", "--prompt", "x", "--bogus", "1"},
                {"generate", "--prompt"},
                {"generate", "--steps", "3"},
                {"generate", "--prompt", "x", "--steps", "abc"},
                {"generate", "--prompt", "x", "--steps", "0"},
                {"generate", "--prompt", "x", "--width", "60"},
                {"generate", "--prompt", "x", "--guidance", "NaN"},
                {"generate", "--prompt", "x", "--scheduler", "lms"},
                {"generate", "--prompt", "x", "--attention", "sparse"},
                {"generate", "--prompt", "x", "--precision", "int8"},
                {"generate", "--prompt", "x", "--backend", "metal"},
                {"generate", "--prompt", "x", "--prompt", "y"},
                {"generate", "stray"},
                {"run-unet", "--inputs", "x.safetensors"},
                {"inspect"},
                {"cache", "--bogus"},
                {"devices", "--all"}}) {
            Run r = run(bad);
            assertEquals(2, r.code(), String.join(" ", bad) + " -> " + r.err());
            assertTrue(r.err().startsWith("sd: "), r.err());
        }
        assertTrue(run("generate", "--prompt", "x", "--bogus", "1").err().contains("unknown option --bogus"));
    }

    @Test
    void parsesEveryGenerateOption() {
        var o = Main.options(new String[]{"--prompt", "a fox", "--negative-prompt", "blur", "--steps", "20", "--guidance", "5.5",
                "--scheduler=dpm++2m-karras", "--seed", "99", "--batch", "3", "--width", "128", "--height", "64", "--eta", "0.5",
                "--attention", "chunked", "--precision", "fp16", "--backend", "java", "--clip-skip", "1"}, java.util.Set.of(
                "prompt", "negative-prompt", "steps", "guidance", "scheduler", "seed", "batch", "width", "height", "eta", "attention", "precision", "backend", "clip-skip"));
        var r = Main.request(o);
        assertEquals("a fox", r.prompt());
        assertEquals("blur", r.negativePrompt());
        assertEquals(20, r.steps());
        assertEquals(5.5f, r.guidanceScale());
        assertEquals(99, r.seed());
        assertEquals(3, r.imagesPerPrompt());
        assertEquals(128, r.width());
        assertEquals(64, r.height());
        assertEquals(0.5f, r.eta());
        var opts = Main.pipelineOptions(o);
        assertEquals("java", opts.backend());
        assertEquals(Precision.FP16, opts.precision());
        assertEquals(jdiffusion.kernels.Attention.Processor.CHUNKED, opts.attention());
        assertEquals("dpm++2m-karras", opts.scheduler());
        assertEquals(1, opts.clipSkip());
    }

    @Test
    void failuresOfFilesAreOneLineAndExitOne(@TempDir Path dir) {
        Run r = run("generate", "--model", dir.resolve("nope").toString(), "--prompt", "x", "--backend", "java");
        assertEquals(1, r.code(), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("nope"));
        Run i = run("inspect", dir.resolve("missing.safetensors").toString());
        assertEquals(1, i.code());
        Run u = run("run-unet", "--model", tiny(), "--inputs", dir.resolve("in.safetensors").toString(), "--out", dir.resolve("o.safetensors").toString(), "--backend", "java");
        assertEquals(1, u.code());
        assertTrue(u.err().contains("in.safetensors"), u.err());
    }

    @Test
    void runUnetMatchesTheFixture(@TempDir Path dir) {
        Path in = PipelineRefs.tinySd().resolve("reference").resolve("unet_io.safetensors");
        Path out = dir.resolve("out.safetensors");
        Run r = run("run-unet", "--model", tiny(), "--inputs", in.toString(), "--out", out.toString(), "--backend", "java", "--attention", "vanilla");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("wrote"));
        try (SafeTensors got = SafeTensors.open(out); SafeTensors ref = SafeTensors.open(in)) {
            assertEquals(java.util.List.of(2L, 4L, 32L, 32L), java.util.Arrays.stream(got.info("out").shape()).boxed().toList());
            PipelineRefs.assertClose("run-unet out", got.floats("out"), ref.floats("out_vanilla"), 1e-4);
        }
    }

    @Test
    void generateWritesNumberedPngsAndATimingLine(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("fox.png");
        Run r = run("generate", "--model", tiny(), "--prompt", "a red fox", "--steps", "2", "--batch", "2", "--backend", "java",
                "--scheduler", "euler", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        for (int i = 0; i < 2; i++) {
            Path p = dir.resolve("fox-" + i + ".png");
            assertTrue(Files.isRegularFile(p), p + " written");
            BufferedImage img = ImageIO.read(p.toFile());
            assertEquals(64, img.getWidth());
            assertEquals(64, img.getHeight());
        }
        assertFalse(Files.exists(out));
        assertTrue(r.err().contains("2/2"), "progress bar: " + r.err());
        assertTrue(r.err().contains("s/step") && r.err().contains("backend java") && r.err().contains("compile"), r.err());
    }

    @Test
    void generateUsesTheBundledModelFromJdiffusionHome(@TempDir Path dir) {
        String old = System.getProperty("jdiffusion.home");
        System.setProperty("jdiffusion.home", PipelineRefs.tinySd().getParent().getParent().toString());
        try {
            Path out = dir.resolve("one.png");
            Run r = run("generate", "--prompt", "x", "--steps", "1", "--backend", "java", "--out", out.toString());
            assertEquals(0, r.code(), r.err());
            assertTrue(Files.isRegularFile(out));
        } finally {
            if (old == null) System.clearProperty("jdiffusion.home");
            else System.setProperty("jdiffusion.home", old);
        }
    }

    @Test
    void inspectDevicesAndCache() {
        Run i = run("inspect", tiny());
        assertEquals(0, i.code(), i.err());
        assertTrue(i.out().toLowerCase().contains("unet"));
        Run d = run("devices");
        assertEquals(0, d.code(), d.err());
        assertTrue(d.out().contains("java"));
        Run c = run("cache", "--stats");
        assertEquals(0, c.code(), c.err());
        assertTrue(c.out().contains("kernel cache"));
    }

    @Test
    void progressBarLine() {
        String l = ProgressBar.line(4, 10, 2.0);
        assertTrue(l.startsWith(" 40%|"), l);
        assertTrue(l.contains("4/10"), l);
        assertTrue(l.contains("2.00 it/s"), l);
        assertThrows(Main.UsageException.class, () -> Main.options(new String[]{"x"}, java.util.Set.of()));
    }
}
