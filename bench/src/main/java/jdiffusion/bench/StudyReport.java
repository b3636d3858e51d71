package jdiffusion.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.function.Predicate;

/**
 * The study's outputs: study.csv (one row per cell), study.md (tables per precision with PyTorch's H100 numbers beside
 * ours, compile times, interpreted vs JIT, the targets) and, through {@link StudyCharts}, study-&lt;precision&gt;.png.
 * Everything is rewritten after each cell, so a run that is cut off keeps what finished.
 */
final class StudyReport {
    private StudyReport() {
    }

    static final List<String> HEADER = List.of("backend", "device", "mode", "attention", "precision", "unet_batch", "status", "median_ms", "min_ms",
            "max_ms", "ms_per_sample", "images_per_s", "peak_gib", "weights_gib", "compile_s", "iters", "warmup", "note");
    static final List<String> ATTENTIONS = List.of("vanilla", "chunked", "flash");
    static final List<String> PRECISIONS = List.of("fp16", "tf32", "fp32");
    /** Steps of the generation the per-image throughput is quoted for (the blog's setting). */
    static final int STEPS = 50;

    /** One cell of the grid. Missing numbers are NaN (empty in the CSV). status: ok, OOM, ERROR, TIMEOUT or SKIPPED. */
    record Row(String backend, String device, String mode, String attention, String precision, int unetBatch, String status,
               double medianMs, double minMs, double maxMs, double msPerSample, double imagesPerS, double peakGib, double weightsGib,
               double compileS, int iters, int warmup, String note) {
        boolean ok() {
            return status.equals("ok");
        }

        boolean jit() {
            return mode.equals("cold") || mode.equals("cached");
        }

        /** A row without timings (OOM, ERROR, SKIPPED...). */
        static Row failed(String backend, String device, String mode, String attention, String precision, int unetBatch, String status, String note) {
            double n = Double.NaN;
            return new Row(backend, device, mode, attention, precision, unetBatch, status, n, n, n, n, n, n, n, n, 0, 0, note);
        }
    }

    /** One PyTorch measurement, mapped to our names: sdpa -> flash, fp32-high -> tf32. */
    record Anchor(String attention, String precision, int unetBatch, String status, double medianMs, double peakGib) {
        boolean ok() {
            return status.equalsIgnoreCase("ok");
        }
    }

    /** Per-image throughput of a {@value #STEPS}-step generation with classifier-free guidance: the UNet batch holds 2 rows per image. */
    static double imagesPerSecond(int unetBatch, double medianMs) {
        return (unetBatch / 2.0) / (STEPS * medianMs / 1000.0);
    }

    // ---- CSV ----

    static String csv(List<Row> rows) {
        StringBuilder sb = new StringBuilder(String.join(",", HEADER)).append('\n');
        for (Row r : rows) {
            List<String> f = List.of(r.backend(), r.device(), r.mode(), r.attention(), r.precision(), Integer.toString(r.unetBatch()), r.status(),
                    num(r.medianMs()), num(r.minMs()), num(r.maxMs()), num(r.msPerSample()), num(r.imagesPerS()), num(r.peakGib()), num(r.weightsGib()),
                    num(r.compileS()), Integer.toString(r.iters()), Integer.toString(r.warmup()), r.note() == null ? "" : r.note());
            for (int i = 0; i < f.size(); i++) sb.append(i == 0 ? "" : ",").append(quote(f.get(i)));
            sb.append('\n');
        }
        return sb.toString();
    }

    static List<Row> parseCsv(String text) {
        List<List<String>> records = records(text);
        if (records.isEmpty() || !records.getFirst().equals(HEADER)) throw new IllegalArgumentException("study csv: header is not " + String.join(",", HEADER));
        List<Row> rows = new ArrayList<>();
        for (List<String> f : records.subList(1, records.size())) {
            if (f.size() != HEADER.size()) throw new IllegalArgumentException("study csv: row has " + f.size() + " fields, expected " + HEADER.size() + ": " + f);
            rows.add(new Row(f.get(0), f.get(1), f.get(2), f.get(3), f.get(4), Integer.parseInt(f.get(5)), f.get(6), dbl(f.get(7)), dbl(f.get(8)),
                    dbl(f.get(9)), dbl(f.get(10)), dbl(f.get(11)), dbl(f.get(12)), dbl(f.get(13)), dbl(f.get(14)), Integer.parseInt(f.get(15)),
                    Integer.parseInt(f.get(16)), f.get(17)));
        }
        return rows;
    }

    /** PyTorch's table (bench/anchors/torch_unet_h100.csv); eager rows only, names mapped to ours. */
    static List<Anchor> parseAnchors(String text) {
        List<List<String>> records = records(text);
        if (records.isEmpty()) return List.of();
        List<String> h = records.getFirst();
        int mode = h.indexOf("mode"), proc = h.indexOf("processor"), dtype = h.indexOf("dtype"), batch = h.indexOf("unet_batch"),
                status = h.indexOf("status"), median = h.indexOf("median_ms"), peak = h.indexOf("peak_gib");
        if (Math.min(Math.min(mode, proc), Math.min(Math.min(dtype, batch), Math.min(status, median))) < 0)
            throw new IllegalArgumentException("anchors csv: missing one of mode, processor, dtype, unet_batch, status, median_ms in " + h);
        List<Anchor> out = new ArrayList<>();
        for (List<String> f : records.subList(1, records.size())) {
            if (f.size() < h.size() || !f.get(mode).equals("eager")) continue;
            String attention = switch (f.get(proc)) {
                case "sdpa" -> "flash";
                case "vanilla" -> "vanilla";
                default -> null;
            };
            String precision = switch (f.get(dtype)) {
                case "fp16" -> "fp16";
                case "fp32-high" -> "tf32";
                case "fp32" -> "fp32";
                default -> null;
            };
            if (attention == null || precision == null) continue;
            out.add(new Anchor(attention, precision, Integer.parseInt(f.get(batch)), f.get(status), dbl(f.get(median)), peak < 0 ? Double.NaN : dbl(f.get(peak))));
        }
        return out;
    }

    /** The torch.compile line of the anchors, verbatim (for the compile section), or empty. */
    static Optional<String> compileAnchor(String text) {
        return text.lines().filter(l -> l.startsWith("compile,")).findFirst();
    }

    private static List<List<String>> records(String text) {
        List<List<String>> out = new ArrayList<>();
        List<String> cur = new ArrayList<>();
        StringBuilder field = new StringBuilder();
        boolean quoted = false, any = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (quoted) {
                if (c == '"' && i + 1 < text.length() && text.charAt(i + 1) == '"') {
                    field.append('"');
                    i++;
                } else if (c == '"') quoted = false;
                else field.append(c);
                continue;
            }
            switch (c) {
                case '"' -> {
                    quoted = true;
                    any = true;
                }
                case ',' -> {
                    cur.add(field.toString());
                    field.setLength(0);
                    any = true;
                }
                case '\r' -> {
                }
                case '\n' -> {
                    if (any || !field.isEmpty()) {
                        cur.add(field.toString());
                        out.add(cur);
                    }
                    cur = new ArrayList<>();
                    field.setLength(0);
                    any = false;
                }
                default -> {
                    field.append(c);
                    any = true;
                }
            }
        }
        if (any || !field.isEmpty()) {
            cur.add(field.toString());
            out.add(cur);
        }
        return out;
    }

    private static String quote(String s) {
        if (s.indexOf(',') < 0 && s.indexOf('"') < 0 && s.indexOf('\n') < 0 && s.indexOf('\r') < 0) return s;
        return '"' + s.replace("\"", "\"\"") + '"';
    }

    static String num(double v) {
        if (Double.isNaN(v)) return "";
        return String.format(Locale.ROOT, Math.abs(v) >= 100 ? "%.2f" : "%.4g", v);
    }

    private static double dbl(String s) {
        return s == null || s.isBlank() ? Double.NaN : Double.parseDouble(s.trim());
    }

    // ---- lookups ----

    /** Our JIT measurement of a cell: the cached row if it ran, else the cold one; empty when the cell was not run. */
    static Optional<Row> ours(List<Row> rows, String attention, String precision, int batch) {
        Predicate<Row> same = r -> r.jit() && r.attention().equals(attention) && r.precision().equals(precision) && r.unetBatch() == batch;
        Comparator<Row> pref = Comparator.<Row>comparingInt(r -> r.ok() ? 0 : 1).thenComparingInt(r -> r.mode().equals("cached") ? 0 : 1)
                .thenComparingInt(r -> r.status().equals("SKIPPED") ? 1 : 0);
        return rows.stream().filter(same).min(pref);
    }

    static Optional<Anchor> torch(List<Anchor> anchors, String attention, String precision, int batch) {
        return anchors.stream().filter(a -> a.attention().equals(attention) && a.precision().equals(precision) && a.unetBatch() == batch).findFirst();
    }

    /** ms/step of our cell, NaN unless it ran ok. */
    static double oursMs(List<Row> rows, String attention, String precision, int batch) {
        return ours(rows, attention, precision, batch).filter(Row::ok).map(Row::medianMs).orElse(Double.NaN);
    }

    static double torchMs(List<Anchor> anchors, String attention, String precision, int batch) {
        return torch(anchors, attention, precision, batch).filter(Anchor::ok).map(Anchor::medianMs).orElse(Double.NaN);
    }

    /** Batches that appear for this precision, ours or PyTorch's. */
    static List<Integer> batches(List<Row> rows, List<Anchor> anchors, String precision) {
        TreeSet<Integer> s = new TreeSet<>();
        for (Row r : rows) if (r.jit() && r.precision().equals(precision)) s.add(r.unetBatch());
        for (Anchor a : anchors) if (a.precision().equals(precision)) s.add(a.unetBatch());
        return List.copyOf(s);
    }

    // ---- targets ----

    record Target(String name, String verdict, String detail) {
    }

    static List<Target> targets(List<Row> rows) {
        List<Target> out = new ArrayList<>();
        out.add(limit(rows, "fp16 flash, UNet batch 16: <= 53 ms/step (PyTorch sdpa fp16 53.1 ms)", "flash", "fp16", 16, 53));
        out.add(limit(rows, "tf32 flash, UNet batch 16: <= 164 ms/step (PyTorch sdpa fp32-high 164.3 ms)", "flash", "tf32", 16, 164));
        out.add(reach64(rows));
        out.add(flashVsVanilla(rows));
        out.add(cachedCompile(rows));
        out.add(jitVsInterpreted(rows));
        return out;
    }

    private static Target limit(List<Row> rows, String name, String attention, String precision, int batch, double maxMs) {
        Optional<Row> r = ours(rows, attention, precision, batch);
        if (r.isEmpty() || r.get().status().equals("SKIPPED")) return new Target(name, "NOT RUN", "cell not measured");
        if (!r.get().ok()) return new Target(name, "FAIL", r.get().status() + (r.get().note().isEmpty() ? "" : ": " + r.get().note()));
        double ms = r.get().medianMs();
        return new Target(name, ms <= maxMs ? "PASS" : "FAIL", String.format(Locale.ROOT, "%.1f ms/step (%s)", ms, r.get().mode()));
    }

    private static Target reach64(List<Row> rows) {
        String name = "fp16 and fp32 flash reach UNet batch 64 (PyTorch vanilla fp32 OOMs there)";
        List<String> parts = new ArrayList<>();
        String verdict = "PASS";
        for (String p : List.of("fp16", "fp32")) {
            Optional<Row> r = ours(rows, "flash", p, 64);
            if (r.isEmpty() || r.get().status().equals("SKIPPED")) {
                parts.add(p + " not run");
                if (verdict.equals("PASS")) verdict = "NOT RUN";
            } else if (r.get().ok()) {
                parts.add(String.format(Locale.ROOT, "%s %.1f ms/step, %.1f GiB", p, r.get().medianMs(), r.get().peakGib()));
            } else {
                parts.add(p + " " + r.get().status());
                verdict = "FAIL";
            }
        }
        return new Target(name, verdict, String.join("; ", parts));
    }

    private static Target flashVsVanilla(List<Row> rows) {
        String name = "our flash >= 1.9x our vanilla at UNet batch 32 fp16 (PyTorch: 2.0x)";
        Optional<Row> f = ours(rows, "flash", "fp16", 32), v = ours(rows, "vanilla", "fp16", 32);
        if (f.isEmpty() || v.isEmpty() || f.get().status().equals("SKIPPED") || v.get().status().equals("SKIPPED"))
            return new Target(name, "NOT RUN", "needs both cells");
        if (!f.get().ok()) return new Target(name, "FAIL", "flash " + f.get().status());
        if (v.get().status().equals("OOM")) return new Target(name, "PASS", "vanilla OOM, flash " + num(f.get().medianMs()) + " ms");
        if (!v.get().ok()) return new Target(name, "NOT RUN", "vanilla " + v.get().status());
        double s = v.get().medianMs() / f.get().medianMs();
        return new Target(name, s >= 1.9 ? "PASS" : "FAIL", String.format(Locale.ROOT, "%.2fx (vanilla %.1f ms, flash %.1f ms)", s, v.get().medianMs(), f.get().medianMs()));
    }

    /** {cold, cached} rows of the same (attention, precision, batch) where the cached one ran after the cold one filled the cache. */
    static List<Row[]> compilePairs(List<Row> rows) {
        List<Row[]> out = new ArrayList<>();
        for (int i = 0; i < rows.size(); i++) {
            Row cold = rows.get(i);
            if (!cold.mode().equals("cold") || Double.isNaN(cold.compileS())) continue;
            rows.subList(i + 1, rows.size()).stream().filter(r -> r.mode().equals("cached") && !Double.isNaN(r.compileS()) && r.attention().equals(cold.attention())
                    && r.precision().equals(cold.precision()) && r.unetBatch() == cold.unetBatch()).findFirst().ifPresent(c -> out.add(new Row[]{cold, c}));
        }
        return out;
    }

    private static Target cachedCompile(List<Row> rows) {
        String name = "cached compile < 1 s (same kernels loaded from the kernel cache; torch.compile: 69.6 s)";
        List<Row[]> pairs = compilePairs(rows);
        if (pairs.isEmpty()) return new Target(name, "NOT RUN", "needs a cold and a cached cell of the same configuration");
        double worst = 0;
        List<String> parts = new ArrayList<>();
        for (Row[] p : pairs) {
            worst = Math.max(worst, p[1].compileS());
            parts.add(String.format(Locale.ROOT, "%s %s b%d: cold %.2f s, cached %.3f s", p[1].attention(), p[1].precision(), p[1].unetBatch(), p[0].compileS(), p[1].compileS()));
        }
        return new Target(name, worst < 1 ? "PASS" : "FAIL", String.join("; ", parts));
    }

    /** An interpreted row and the JIT row of the same configuration (null if none); lowerBound when the interpreted step timed out. */
    record Versus(Row interpreted, Row jit, double ratio, boolean lowerBound) {
    }

    static List<Versus> interpretedPairs(List<Row> rows) {
        List<Versus> out = new ArrayList<>();
        for (Row i : rows) {
            if (!i.mode().equals("interpreted")) continue;
            Optional<Row> j = ours(rows, i.attention(), i.precision(), i.unetBatch()).filter(Row::ok).filter(r -> !r.backend().equals("java"));
            boolean bound = i.status().equals("TIMEOUT");
            double ims = i.ok() ? i.medianMs() : bound ? i.minMs() : Double.NaN;
            out.add(new Versus(i, j.orElse(null), j.isPresent() ? ims / j.get().medianMs() : Double.NaN, bound));
        }
        return out;
    }

    private static Target jitVsInterpreted(List<Row> rows) {
        String name = "JIT >= 100x faster than interpreted (java backend) per UNet step";
        String verdict = null;
        List<String> parts = new ArrayList<>();
        for (Versus p : interpretedPairs(rows)) {
            if (Double.isNaN(p.ratio())) continue;
            Row i = p.interpreted();
            parts.add(String.format(Locale.ROOT, "%s %s b%d: %s%.0fx", i.attention(), i.precision(), i.unetBatch(), p.lowerBound() ? ">= " : "", p.ratio()));
            String v = p.ratio() >= 100 ? "PASS" : p.lowerBound() ? "NOT RUN" : "FAIL";
            if (verdict == null || v.equals("FAIL") || (v.equals("NOT RUN") && verdict.equals("PASS"))) verdict = v;
        }
        if (verdict == null) return new Target(name, "NOT RUN", "needs an interpreted cell and the JIT cell of the same configuration");
        return new Target(name, verdict, String.join("; ", parts) + (verdict.equals("NOT RUN") ? " (interpreted step timed out: lower bound only)" : ""));
    }

    // ---- markdown ----

    /** meta: backend, device, started, options (shown in the header). */
    static String markdown(List<Row> rows, List<Anchor> anchors, Map<String, String> meta, String compileAnchor) {
        StringBuilder sb = new StringBuilder("# Accelerated diffusion study: jdiffusion vs PyTorch 2 on SD1.5's UNet\n\n");
        for (Map.Entry<String, String> e : meta.entrySet()) sb.append("- ").append(e.getKey()).append(": ").append(e.getValue()).append('\n');
        sb.append("""
                - Model: UNet2DConditionModel with SD1.5's config and random weights, 64x64 latents (512x512 images), 77-token text, cross_attention_dim 768.
                - **UNet batch = 2 x images** (classifier-free guidance runs the conditional and unconditional rows together): UNet batch 16 = 8 images.
                - ms = median milliseconds per UNet step (one forward) over the timed steps; "vs torch" = PyTorch ms / our ms (> 1: we are faster).
                - img/s = images per second of a %d-step generation, UNet only: (batch / 2) / (%d x median s); 50-step s = %d x median.
                - PyTorch: eager diffusers on the same H100 (bench/anchors/torch_unet_h100.csv); its sdpa column sits beside our flash, fp32-high beside our tf32.
                - Ours: the cached-mode cell where it ran, else the cold one. OOM = out of device memory; - = not run.

                """.formatted(STEPS, STEPS, STEPS));
        sb.append("## Targets\n\n");
        for (Target t : targets(rows)) sb.append("- **").append(t.verdict()).append("** ").append(t.name()).append(" - ").append(t.detail()).append('\n');
        sb.append('\n');
        for (String p : PRECISIONS) {
            List<Integer> bs = batches(rows, anchors, p);
            if (bs.isEmpty() || rows.stream().noneMatch(r -> r.jit() && r.precision().equals(p))) continue;
            sb.append("## ").append(p).append(p.equals("tf32") ? " (PyTorch: fp32 with matmul precision \"high\")" : "").append("\n\n");
            sb.append("| UNet batch | images | ours vanilla ms | ours chunked ms | ours flash ms | torch vanilla ms | torch sdpa ms "
                    + "| flash vs vanilla (ours) | sdpa vs vanilla (torch) | ours flash vs torch sdpa | ours vanilla vs torch vanilla "
                    + "| ours flash img/s | torch sdpa img/s | ours flash 50-step s | ours flash peak GiB | torch sdpa peak GiB |\n");
            sb.append("|---:".repeat(16)).append("|\n");
            for (int b : bs) {
                double ov = oursMs(rows, "vanilla", p, b), of = oursMs(rows, "flash", p, b);
                double tv = torchMs(anchors, "vanilla", p, b), tf = torchMs(anchors, "flash", p, b);
                Optional<Row> flash = ours(rows, "flash", p, b).filter(Row::ok);
                Optional<Anchor> sdpa = torch(anchors, "flash", p, b).filter(Anchor::ok);
                sb.append("| ").append(b).append(" | ").append(b % 2 == 0 ? Integer.toString(b / 2) : b + "/2")
                        .append(" | ").append(cell(rows, "vanilla", p, b)).append(" | ").append(cell(rows, "chunked", p, b)).append(" | ").append(cell(rows, "flash", p, b))
                        .append(" | ").append(torchCell(anchors, "vanilla", p, b)).append(" | ").append(torchCell(anchors, "flash", p, b))
                        .append(" | ").append(ratio(ov, of)).append(" | ").append(ratio(tv, tf)).append(" | ").append(ratio(tf, of)).append(" | ").append(ratio(tv, ov))
                        .append(" | ").append(fmt(Double.isNaN(of) ? Double.NaN : imagesPerSecond(b, of), 2))
                        .append(" | ").append(fmt(Double.isNaN(tf) ? Double.NaN : imagesPerSecond(b, tf), 2))
                        .append(" | ").append(fmt(STEPS * of / 1000, 2))
                        .append(" | ").append(fmt(flash.map(Row::peakGib).orElse(Double.NaN), 2))
                        .append(" | ").append(fmt(sdpa.map(Anchor::peakGib).orElse(Double.NaN), 2)).append(" |\n");
            }
            sb.append('\n');
        }
        compileSection(sb, rows, compileAnchor);
        interpretedSection(sb, rows);
        List<Row> problems = rows.stream().filter(r -> !r.ok() && !r.note().isEmpty()).toList();
        if (!problems.isEmpty()) {
            sb.append("## Cells that did not run ok\n\n| mode | attention | precision | UNet batch | status | note |\n|---|---|---|---:|---|---|\n");
            for (Row r : problems)
                sb.append("| ").append(r.mode()).append(" | ").append(r.attention()).append(" | ").append(r.precision()).append(" | ").append(r.unetBatch())
                        .append(" | ").append(r.status()).append(" | ").append(md(r.note())).append(" |\n");
            sb.append('\n');
        }
        sb.append("Every cell, with min/max ms, compile seconds and notes: study.csv (columns explained in bench/STUDY.md).\n");
        return sb.toString();
    }

    private static void compileSection(StringBuilder sb, List<Row> rows, String compileAnchor) {
        List<Row> jit = rows.stream().filter(r -> r.jit() && !Double.isNaN(r.compileS())).toList();
        if (jit.isEmpty()) return;
        sb.append("## Compile step\n\ncold = a fresh backend with an empty kernel-cache directory (NVRTC/clBuildProgram for every kernel module); "
                + "cached = a fresh backend loading the same modules from the kernel cache. compile s = warm-up of the UNet's task graph "
                + "(kernel build or load, plus CUDA-graph capture); the other batches of a cached session only add the kernels new to them.\n\n");
        sb.append("| attention | precision | UNet batch | cold compile s | cached compile s | other batches, max s | cold note | cached note |\n|---|---|---:|---:|---:|---:|---|---|\n");
        for (String p : PRECISIONS)
            for (String a : ATTENTIONS) {
                List<Row> mine = jit.stream().filter(r -> r.attention().equals(a) && r.precision().equals(p)).toList();
                if (mine.isEmpty()) continue;
                Optional<Row> cold = mine.stream().filter(r -> r.mode().equals("cold")).findFirst();
                int batch = cold.map(Row::unetBatch).orElse(mine.getFirst().unetBatch());
                Optional<Row> cached = mine.stream().filter(r -> r.mode().equals("cached") && r.unetBatch() == batch).findFirst();
                double others = mine.stream().filter(r -> r.mode().equals("cached") && r.unetBatch() != batch).mapToDouble(Row::compileS).max().orElse(Double.NaN);
                sb.append("| ").append(a).append(" | ").append(p).append(" | ").append(batch)
                        .append(" | ").append(fmt(cold.map(Row::compileS).orElse(Double.NaN), 2)).append(" | ").append(fmt(cached.map(Row::compileS).orElse(Double.NaN), 3))
                        .append(" | ").append(fmt(others, 3)).append(" | ").append(md(cold.map(Row::note).orElse("")))
                        .append(" | ").append(md(cached.map(Row::note).orElse(""))).append(" |\n");
            }
        if (compileAnchor != null) sb.append("\nPyTorch torch.compile (anchors): `").append(compileAnchor).append("`\n");
        sb.append('\n');
    }

    private static void interpretedSection(StringBuilder sb, List<Row> rows) {
        List<Versus> pairs = interpretedPairs(rows);
        if (pairs.isEmpty()) return;
        sb.append("## Interpreted (java backend) vs JIT\n\n| attention | precision | UNet batch | interpreted ms/step | status | JIT ms/step | JIT speedup |\n|---|---|---:|---:|---|---:|---:|\n");
        for (Versus p : pairs) {
            Row i = p.interpreted();
            String bound = p.lowerBound() ? ">= " : "";
            sb.append("| ").append(i.attention()).append(" | ").append(i.precision()).append(" | ").append(i.unetBatch())
                    .append(" | ").append(bound).append(fmt(p.lowerBound() ? i.minMs() : i.medianMs(), 0)).append(" | ").append(i.status())
                    .append(" | ").append(p.jit() == null ? "-" : fmt(p.jit().medianMs(), 1))
                    .append(" | ").append(Double.isNaN(p.ratio()) ? "-" : bound + fmt(p.ratio(), 0) + "x").append(" |\n");
        }
        sb.append('\n');
    }

    private static String cell(List<Row> rows, String attention, String precision, int batch) {
        Optional<Row> r = ours(rows, attention, precision, batch);
        if (r.isEmpty() || r.get().status().equals("SKIPPED")) return "-";
        return r.get().ok() ? fmt(r.get().medianMs(), 1) : r.get().status();
    }

    private static String torchCell(List<Anchor> anchors, String attention, String precision, int batch) {
        Optional<Anchor> a = torch(anchors, attention, precision, batch);
        if (a.isEmpty()) return "-";
        return a.get().ok() ? fmt(a.get().medianMs(), 1) : a.get().status();
    }

    private static String ratio(double slow, double fast) {
        return Double.isNaN(slow) || Double.isNaN(fast) ? "-" : String.format(Locale.ROOT, "%.2fx", slow / fast);
    }

    static String fmt(double v, int decimals) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    private static String md(String s) {
        return s.replace("|", "\\|").replace("\n", " ");
    }

    // ---- files ----

    /** Writes study.csv, study.md and one chart per precision that has rows (each via a temp file and a rename). */
    static List<Path> write(Path out, List<Row> rows, List<Anchor> anchors, Map<String, String> meta, String compileAnchor) {
        List<Path> files = new ArrayList<>();
        files.add(writeText(out.resolve("study.csv"), csv(rows)));
        files.add(writeText(out.resolve("study.md"), markdown(rows, anchors, meta, compileAnchor)));
        for (String p : PRECISIONS) {
            if (rows.stream().noneMatch(r -> r.jit() && r.precision().equals(p))) continue;
            Path f = out.resolve("study-" + p + ".png");
            try {
                Path tmp = out.resolve(f.getFileName() + ".tmp");
                StudyCharts.write(tmp, rows, anchors, p);
                Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING);
                files.add(f);
            } catch (IOException | RuntimeException e) {
                System.err.println("WARNING: chart " + f + " not written: " + e);
            }
        }
        return files;
    }

    private static Path writeText(Path f, String text) {
        try {
            Path tmp = f.resolveSibling(f.getFileName() + ".tmp");
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING);
            return f;
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + f, e);
        }
    }
}
