package jdiffusion.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.bench.StudyReport.Anchor;
import jdiffusion.bench.StudyReport.Row;
import jdiffusion.engine.Exec;
import jdiffusion.engine.Precision;
import jdiffusion.engine.RandomWeights;
import jdiffusion.engine.UNet2DConditionModel;
import jdiffusion.kernels.Attention;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.CudaBackend;
import jdiffusion.kernels.DeviceOutOfMemoryException;
import jdiffusion.kernels.JavaBackend;
import jdiffusion.kernels.KernelCache;
import jdiffusion.kernels.KernelException;
import jdiffusion.loader.SingleFileCheckpoint;
import jdiffusion.loader.TensorInfo;
import jdiffusion.loader.UNetConfig;
import jdiffusion.loader.Weights;

/**
 * The "Accelerated Diffusers with PyTorch 2.0" study on our engine: SD1.5's UNet (random weights, 64x64 latents, 77 text
 * tokens) per attention processor x precision x UNet batch x mode (cold JIT, cached kernels, interpreted java backend),
 * timed per UNet step and written as study.csv / study.md / study-&lt;precision&gt;.png beside PyTorch's H100 numbers.
 * Usage and columns: bench/STUDY.md.
 */
public final class Study {
    private Study() {
    }

    record Options(Path out, String backend, List<String> attention, List<String> precision, List<Integer> batch, List<String> modes,
                   int steps, int warmup, double maxSeconds, double budgetSeconds, int interpretedBatch, int interpretedSteps,
                   double interpretedSeconds, String interpretedPrecision, int headlineBatch, Path unetConfig, int latent, int seq, long seed,
                   Path anchors, Path cacheDir, boolean profile) {

        static final String USAGE = """
                Study --out DIR [--backend cuda|opencl|java|auto] [--attention flash,vanilla,chunked] [--precision fp16,tf32,fp32]
                      [--batch 1,2,4,8,16,32,64] [--modes cold,cached,interpreted] [--steps 10] [--warmup 2] [--max-seconds 20]
                      [--budget-seconds 450] [--interpreted-batch 1] [--interpreted-steps 2] [--interpreted-seconds 60]
                      [--interpreted-precision fp32] [--headline-batch 16] [--unet-config unet/config.json] [--latent 64] [--seq 77]
                      [--seed 0] [--anchors bench/anchors/torch_unet_h100.csv] [--cache-dir DIR] [--profile]""";

        static Options parse(String... args) {
            Map<String, String> m = new LinkedHashMap<>();
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (a.equals("--profile")) {  // a flag: per-kernel device times of the first flash fp16/tf32 cells at the headline batch
                    m.put("profile", "true");
                    continue;
                }
                if (!a.startsWith("--") || i + 1 >= args.length) throw new IllegalArgumentException("bad argument '" + a + "'\n" + USAGE);
                m.put(a.substring(2), args[++i]);
            }
            Set<String> known = Set.of("out", "backend", "attention", "precision", "batch", "modes", "steps", "warmup", "max-seconds", "budget-seconds",
                    "interpreted-batch", "interpreted-steps", "interpreted-seconds", "interpreted-precision", "headline-batch", "unet-config", "latent", "seq",
                    "seed", "anchors", "cache-dir", "profile");
            for (String k : m.keySet()) if (!known.contains(k)) throw new IllegalArgumentException("unknown option --" + k + "\n" + USAGE);
            List<String> attention = list(m.getOrDefault("attention", "flash,vanilla,chunked"));
            for (String a : attention) processor(a);
            List<String> precision = list(m.getOrDefault("precision", "fp16,tf32,fp32"));
            for (int i = 0; i < precision.size(); i++) precision.set(i, name(Precision.parse(precision.get(i))));
            List<Integer> batch = list(m.getOrDefault("batch", "1,2,4,8,16,32,64")).stream().map(Integer::parseInt).toList();
            for (int b : batch) if (b <= 0) throw new IllegalArgumentException("--batch: " + b + " is not a positive UNet batch");
            List<String> modes = list(m.getOrDefault("modes", "cold,cached,interpreted"));
            for (String mode : modes)
                if (!List.of("cold", "cached", "interpreted").contains(mode)) throw new IllegalArgumentException("--modes: unknown mode " + mode + " (cold, cached, interpreted)");
            String backend = m.getOrDefault("backend", "auto").toLowerCase(Locale.ROOT);
            if (!List.of("cuda", "opencl", "java", "auto").contains(backend)) throw new IllegalArgumentException("--backend: " + backend + " (cuda, opencl, java or auto)");
            if (!m.containsKey("out")) throw new IllegalArgumentException("--out DIR is required\n" + USAGE);
            String ip = m.containsKey("interpreted-precision") ? name(Precision.parse(m.get("interpreted-precision")))
                    : precision.contains("fp32") ? "fp32" : precision.getFirst();
            return new Options(Path.of(m.get("out")), backend, attention, precision, batch, modes,
                    positive(m, "steps", "10"), Integer.parseInt(m.getOrDefault("warmup", "2")), Double.parseDouble(m.getOrDefault("max-seconds", "20")),
                    Double.parseDouble(m.getOrDefault("budget-seconds", "450")), positive(m, "interpreted-batch", "1"), positive(m, "interpreted-steps", "2"),
                    Double.parseDouble(m.getOrDefault("interpreted-seconds", "60")), ip, positive(m, "headline-batch", "16"),
                    m.containsKey("unet-config") ? Path.of(m.get("unet-config")) : null, Integer.parseInt(m.getOrDefault("latent", "0")),
                    positive(m, "seq", "77"), Long.parseLong(m.getOrDefault("seed", "0")),
                    m.containsKey("anchors") ? Path.of(m.get("anchors")) : null, m.containsKey("cache-dir") ? Path.of(m.get("cache-dir")) : null,
                    m.containsKey("profile"));
        }

        private static int positive(Map<String, String> m, String key, String def) {
            int v = Integer.parseInt(m.getOrDefault(key, def));
            if (v <= 0) throw new IllegalArgumentException("--" + key + " must be positive, got " + v);
            return v;
        }

        private static List<String> list(String s) {
            List<String> out = new ArrayList<>();
            for (String p : s.split(",")) if (!p.isBlank()) out.add(p.trim().toLowerCase(Locale.ROOT));
            return out;
        }
    }

    /** One cell of the grid. */
    record Cell(String mode, String attention, String precision, int batch) {
    }

    static Attention.Processor processor(String attention) {
        return switch (attention) {
            case "vanilla" -> Attention.Processor.VANILLA;
            case "chunked" -> Attention.Processor.CHUNKED;
            case "flash" -> Attention.Processor.FLASH;
            default -> throw new IllegalArgumentException("unknown attention '" + attention + "' (vanilla, chunked, flash)");
        };
    }

    static String name(Precision p) {
        return p.name().toLowerCase(Locale.ROOT);
    }

    /**
     * The order cells run in, most important first: cold then cached for flash (the first attention) at the headline
     * batch in fp16 and tf32; the cached cell the interpreted one is compared with; then every cached cell by precision,
     * attention and batch (headline batch first, then ascending, so an OOM skips the larger ones); then the remaining
     * cold cells; interpreted last.
     */
    static List<Cell> order(Options o) {
        List<Cell> cells = new ArrayList<>();
        int headline = o.batch().contains(o.headlineBatch()) ? o.headlineBatch() : o.batch().getFirst();
        List<Integer> batches = new ArrayList<>(new java.util.TreeSet<>(o.batch()));
        batches.remove(Integer.valueOf(headline));
        batches.addFirst(headline);
        String first = o.attention().getFirst();
        List<String> headlinePrecisions = o.precision().stream().filter(p -> p.equals("fp16") || p.equals("tf32")).toList();
        if (headlinePrecisions.isEmpty()) headlinePrecisions = List.of(o.precision().getFirst());
        for (String p : headlinePrecisions) {
            if (o.modes().contains("cold")) cells.add(new Cell("cold", first, p, headline));
            if (o.modes().contains("cached")) cells.add(new Cell("cached", first, p, headline));
        }
        if (o.modes().contains("interpreted") && o.modes().contains("cached")) // the JIT cell the interpreted one is compared with
            if (!cells.contains(new Cell("cached", first, o.interpretedPrecision(), o.interpretedBatch())))
                cells.add(new Cell("cached", first, o.interpretedPrecision(), o.interpretedBatch()));
        if (o.modes().contains("cached"))
            for (String p : o.precision())
                for (String a : o.attention())
                    for (int b : batches) {
                        Cell c = new Cell("cached", a, p, b);
                        if (!cells.contains(c)) cells.add(c);
                    }
        if (o.modes().contains("cold"))
            for (String p : o.precision())
                for (String a : o.attention()) {
                    Cell c = new Cell("cold", a, p, headline);
                    if (!cells.contains(c)) cells.add(c);
                }
        if (o.modes().contains("interpreted")) cells.add(new Cell("interpreted", first, o.interpretedPrecision(), o.interpretedBatch()));
        return cells;
    }

    public static void main(String[] args) {
        Options o;
        try {
            o = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        List<Row> rows = run(o);
        long ok = rows.stream().filter(Row::ok).count();
        System.out.println("study: " + ok + " of " + rows.size() + " cells ok; results in " + o.out().toAbsolutePath());
        System.exit(0); // an interpreted step that ran past its deadline may still be computing on a daemon thread
    }

    /** Runs the grid, writing the outputs after every cell; returns the rows. */
    static List<Row> run(Options o) {
        System.setProperty("java.awt.headless", "true");
        if (System.getProperty("jdiffusion.engine.graphs") == null) System.setProperty("jdiffusion.engine.graphs", "1"); // one graph per model: a batch sweep frees the last batch's activations
        try {
            Files.createDirectories(o.out());
        } catch (IOException e) {
            throw new UncheckedIOException("creating " + o.out(), e);
        }
        long start = System.nanoTime();
        long deadline = start + (long) (o.budgetSeconds() * 1e9);
        UNetConfig config = o.unetConfig() != null ? UNetConfig.load(o.unetConfig()) : SingleFileCheckpoint.bundledUNet("sd15");
        int latent = o.latent() > 0 ? o.latent() : config.sampleSize() != null ? config.sampleSize() : 64;
        String anchorsText = anchorsText(o.anchors());
        List<Anchor> anchors = StudyReport.parseAnchors(anchorsText);
        String compileAnchor = StudyReport.compileAnchor(anchorsText).orElse(null);
        String kind = resolve(o.backend());
        Path cacheRoot;
        try {
            cacheRoot = o.cacheDir() != null ? o.cacheDir() : Files.createTempDirectory("jd-study-");
            Files.createDirectories(cacheRoot);
        } catch (IOException e) {
            throw new UncheckedIOException("creating the kernel cache directory", e);
        }
        Runner r = new Runner(o, config, latent, kind, cacheRoot, deadline);
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("Started", Instant.now().toString());
        meta.put("Backend", kind);
        meta.put("Options", String.join(" ", "--attention", String.join(",", o.attention()), "--precision", String.join(",", o.precision()),
                "--batch", o.batch().toString().replaceAll("[\\[\\] ]", ""), "--modes", String.join(",", o.modes()), "--steps", "" + o.steps(),
                "--warmup", "" + o.warmup(), "--max-seconds", "" + o.maxSeconds(), "--budget-seconds", "" + o.budgetSeconds()));
        meta.put("Properties", System.getProperties().stringPropertyNames().stream().filter(k -> k.startsWith("jdiffusion.")).sorted()
                .map(k -> "-D" + k + "=" + System.getProperty(k)).collect(java.util.stream.Collectors.joining(" ")));
        meta.put("Latents", latent + "x" + latent + ", text " + o.seq() + " tokens, cross_attention_dim " + config.crossAttentionDim()[0]
                + (o.unetConfig() != null ? ", config " + o.unetConfig() : ", SD1.5 config (loader's bundled sd15/unet.json)"));
        List<Row> rows = new ArrayList<>();
        List<Cell> cells = order(o);
        System.out.println("study: " + cells.size() + " cells on " + kind + ", kernel cache " + cacheRoot + ", budget " + o.budgetSeconds() + " s");
        boolean interpretedLast = !cells.isEmpty() && cells.getLast().mode().equals("interpreted");
        double reserve = interpretedLast ? Math.min(o.interpretedSeconds(), o.budgetSeconds() / 4) + 5 : 0;
        double longestCold = 0; // a cold cell is only started when the longest one so far still fits
        try {
            for (Cell c : cells) {
                double left = (deadline - System.nanoTime()) / 1e9 - (c.mode().equals("interpreted") ? 0 : reserve);
                double need = Math.max(Math.min(10, o.maxSeconds()), c.mode().equals("cold") ? longestCold : 0);
                Row row;
                if (left < need) {
                    row = r.skipped(c, "time budget (--budget-seconds " + o.budgetSeconds() + ") spent");
                } else {
                    long t0 = System.nanoTime();
                    row = r.measure(c);
                    if (c.mode().equals("cold")) longestCold = Math.max(longestCold, (System.nanoTime() - t0) / 1e9);
                    System.out.printf(Locale.ROOT, "study: %-11s %-7s %-4s batch %2d  %-7s %9s ms/step  compile %s s  (%.1f s) %s%n", c.mode(), c.attention(), c.precision(), c.batch(),
                            row.status(), StudyReport.num(row.medianMs()), StudyReport.num(row.compileS()), (System.nanoTime() - t0) / 1e9, row.note());
                }
                rows.add(row);
                meta.put("Device", r.device != null ? r.device : "?");
                meta.put("Elapsed", String.format(Locale.ROOT, "%.0f s", (System.nanoTime() - start) / 1e9));
                StudyReport.write(o.out(), List.copyOf(rows), anchors, meta, compileAnchor);
            }
        } finally {
            r.close();
            if (o.cacheDir() == null) deleteTree(cacheRoot);
        }
        return List.copyOf(rows);
    }

    private static String anchorsText(Path given) {
        List<Path> candidates = new ArrayList<>();
        if (given != null) candidates.add(given);
        else {
            candidates.add(Path.of("bench/anchors/torch_unet_h100.csv"));
            candidates.add(Path.of("anchors/torch_unet_h100.csv"));
            String tiny = System.getProperty("tiny.sd");
            if (tiny != null) candidates.add(Path.of(tiny).resolve("../../bench/anchors/torch_unet_h100.csv").normalize());
        }
        for (Path p : candidates) {
            if (Files.isRegularFile(p)) {
                try {
                    return Files.readString(p, StandardCharsets.UTF_8);
                } catch (IOException e) {
                    throw new UncheckedIOException("reading the PyTorch anchors " + p, e);
                }
            }
        }
        if (given != null) throw new IllegalArgumentException("--anchors: no file " + given);
        System.err.println("WARNING: no PyTorch anchors found at " + candidates + "; the report shows our numbers only");
        return "";
    }

    /** "auto" becomes the kind Backends.open("auto") picks here. */
    private static String resolve(String backend) {
        if (!backend.equals("auto")) return backend;
        try (Backend b = Backends.open("auto")) {
            return b.name();
        }
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> s = Files.walk(root)) {
            s.sorted(Collections.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                }
            });
        } catch (IOException | RuntimeException ignored) {
        }
    }

    /** Host copies of the random weights, made once per run (in parallel) and shared by every model built. */
    static final class MemoWeights implements Weights {
        private final RandomWeights random;
        private final Map<String, float[]> floats = new ConcurrentHashMap<>();

        MemoWeights(RandomWeights random) {
            this.random = random;
        }

        void prefetch() {
            random.names().parallelStream().forEach(this::floats);
        }

        @Override
        public String source() {
            return random.source();
        }

        @Override
        public Set<String> names() {
            return random.names();
        }

        @Override
        public TensorInfo info(String name) {
            return random.info(name);
        }

        @Override
        public float[] floats(String name) {
            return floats.computeIfAbsent(name, random::floats);
        }

        @Override
        public short[] halves(String name) {
            float[] f = floats(name);
            short[] h = new short[f.length];
            for (int i = 0; i < f.length; i++) h[i] = Float.floatToFloat16(f[i]);
            return h;
        }

        long bytes() {
            long n = 0;
            for (float[] f : floats.values()) n += 4L * f.length;
            return n;
        }

        @Override
        public void close() {
        }
    }

    /** Opens backends and models per session, measures cells, and keeps the device usable across OOMs and errors. */
    static final class Runner implements AutoCloseable {
        private final Options o;
        private final UNetConfig config;
        private final int latent;
        private final String kind;
        private final Path cacheRoot, shared;
        private final long deadline;
        private final MemoWeights weights;
        String device;
        /** The open session: backend, its kernel cache, and the model (built lazily, dropped after an OOM). */
        private String sessionKey;
        private Backend backend;
        private KernelCache cache;
        private UNet2DConditionModel model;
        /** "attention/precision" -> the smallest UNet batch that ran out of memory. */
        private final Map<String, Integer> oomAt = new LinkedHashMap<>();
        /** precision/attention pairs already profiled (--profile). */
        private final Set<String> profiled = new java.util.HashSet<>();

        Runner(Options o, UNetConfig config, int latent, String kind, Path cacheRoot, long deadline) {
            this.o = o;
            this.config = config;
            this.latent = latent;
            this.kind = kind;
            this.cacheRoot = cacheRoot;
            this.shared = cacheRoot.resolve("shared");
            this.deadline = deadline;
            this.weights = new MemoWeights(new RandomWeights(UNet2DConditionModel.parameterShapes(config), o.seed()));
        }

        Row skipped(Cell c, String why) {
            return Row.failed(c.mode().equals("interpreted") ? "java" : kind, device == null ? "" : device, c.mode(), c.attention(), c.precision(), c.batch(), "SKIPPED", why);
        }

        Row measure(Cell c) {
            String key = c.attention() + "/" + c.precision();
            Integer oom = oomAt.get(key);
            if (c.mode().equals("cached") && oom != null && c.batch() > oom) return row(c, "OOM", "skipped: UNet batch " + oom + " ran out of memory");
            if (weights.bytes() == 0) weights.prefetch();
            if (c.mode().equals("interpreted")) return interpreted(c);
            Path dir = c.mode().equals("cold") ? cacheRoot.resolve("cold-" + c.attention() + "-" + c.precision()) : shared;
            if (c.mode().equals("cold")) {
                closeSession();
                deleteTree(dir);
            }
            String sk = c.mode() + "/" + key;
            try {
                if (!sk.equals(sessionKey) || backend == null) {
                    closeSession();
                    cache = new KernelCache(dir);
                    backend = Backends.open(kind, cache);
                    device = backend.device();
                    sessionKey = sk;
                }
                Row row = run(c, backend, cache, deadline, null);
                if (row.status().equals("OOM")) oomAt.merge(key, c.batch(), Math::min);
                return row;
            } catch (DeviceOutOfMemoryException e) {
                oomAt.merge(key, c.batch(), Math::min);
                closeModel();
                return row(c, "OOM", e.getMessage());
            } catch (RuntimeException | LinkageError e) {
                closeSession(); // a failed launch may leave the context unusable: the next cell opens a fresh backend
                return row(c, "ERROR", describe(e));
            } finally {
                if (c.mode().equals("cold")) {
                    closeSession();
                    copyEntries(dir, shared);
                }
            }
        }

        private Row row(Cell c, String status, String note) {
            return Row.failed(kind, device == null ? "" : device, c.mode(), c.attention(), c.precision(), c.batch(), status, note);
        }

        /** The java backend ("interpreted"), on a daemon thread: a step that outlives --interpreted-seconds is abandoned and reported as a lower bound. */
        private Row interpreted(Cell c) {
            closeSession();
            double seconds = Math.max(1, Math.min(o.interpretedSeconds(), (deadline - System.nanoTime()) / 1e9 - 2));
            long until = System.nanoTime() + (long) (seconds * 1e9);
            Progress p = new Progress();
            Backend java = new JavaBackend();
            String dev = java.device();
            Thread t = Thread.ofPlatform().daemon().name("study-interpreted").start(() -> {
                try {
                    p.row = run(c, java, null, until, p);
                } catch (Throwable e) {
                    p.error = e;
                }
            });
            try {
                t.join(Math.max(1, (until - System.nanoTime()) / 1_000_000 + 2000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (t.isAlive()) {
                long started = p.forwardStarted;
                double elapsed = started == 0 ? Double.NaN : (System.nanoTime() - started) / 1e6;
                synchronized (p) {
                    if (!p.steps.isEmpty()) return timed(c, "java", dev, p.steps, p.firstMs, Double.NaN, p.peak, p.weights, 0, "time-bounded: step " + (p.steps.size() + 1) + " abandoned");
                    if (!Double.isNaN(p.firstMs))
                        return timed(c, "java", dev, List.of(p.firstMs), p.firstMs, Double.NaN, p.peak, p.weights, 0, "first forward (graph build + 1 step) only; next step abandoned");
                }
                double n = Double.NaN;
                String note = started == 0 ? "the model was not built in " + seconds + " s (--interpreted-seconds)"
                        : String.format(Locale.ROOT, "no step finished in %.1f s (min_ms = that lower bound; raise --interpreted-seconds)", elapsed / 1000);
                return new Row("java", dev, c.mode(), c.attention(), c.precision(), c.batch(), "TIMEOUT", n, elapsed, n, n, n, n, n, n, 0, 0, note);
            }
            java.close();
            if (p.row != null) return p.row;
            Throwable e = p.error;
            String status = e instanceof DeviceOutOfMemoryException || e instanceof OutOfMemoryError ? "OOM" : "ERROR";
            return Row.failed("java", dev, c.mode(), c.attention(), c.precision(), c.batch(), status, describe(e));
        }

        /** What an interpreted run got through so far (read by the main thread after a timeout). */
        static final class Progress {
            /** nanoTime when the first forward began; 0 before. */
            volatile long forwardStarted;
            final List<Double> steps = new ArrayList<>();
            double firstMs = Double.NaN, peak = Double.NaN, weights = Double.NaN;
            volatile Row row;
            volatile Throwable error;
        }

        /**
         * Builds the model when needed, runs the first forward (graph build + JIT compile or cache load), the warm-up
         * and the timed steps. until: stop timing once past it (after at least one step). progress: filled as it goes.
         */
        private Row run(Cell c, Backend b, KernelCache kc, long until, Progress progress) {
            Precision precision = Precision.parse(c.precision());
            UNet2DConditionModel m;
            if (progress == null) {
                if (model == null) model = new UNet2DConditionModel(config, weights, new Exec(b, precision, processor(c.attention())));
                m = model;
            } else {
                m = new UNet2DConditionModel(config, weights, new Exec(b, precision, processor(c.attention())));
            }
            try {
                return timeCell(c, b, kc, m, until, progress);
            } catch (DeviceOutOfMemoryException e) {
                if (progress == null) closeModel();
                return Row.failed(b.name(), b.device(), c.mode(), c.attention(), c.precision(), c.batch(), "OOM", e.getMessage());
            } finally {
                if (progress != null) m.close();
            }
        }

        private Row timeCell(Cell c, Backend b, KernelCache kc, UNet2DConditionModel m, long until, Progress progress) {
            int batch = c.batch(), in = config.inChannels(), cross = config.crossAttentionDim()[0];
            SplittableRandom rnd = new SplittableRandom(o.seed() + batch);
            float[] sample = new float[batch * in * latent * latent];
            float[] ehs = new float[batch * o.seq() * cross];
            for (int i = 0; i < sample.length; i++) sample[i] = (float) rnd.nextDouble(-1, 1);
            for (int i = 0; i < ehs.length; i++) ehs[i] = (float) rnd.nextDouble(-1, 1);
            double weightsGib = m.weightBytes() / (double) (1L << 30);
            int before = kc == null ? 0 : kc.compiles().size();
            long t0 = System.nanoTime();
            if (progress != null) progress.forwardStarted = t0;
            float[] out = m.forward(sample, batch, latent, latent, new float[]{999}, ehs, o.seq());
            double firstMs = (System.nanoTime() - t0) / 1e6;
            double compile = m.compileSeconds();
            double peakGib = b.allocatedBytes() / (double) (1L << 30);
            if (progress != null) synchronized (progress) {
                progress.firstMs = firstMs;
                progress.peak = peakGib;
                progress.weights = weightsGib;
            }
            List<String> notes = new ArrayList<>();
            notes.add(String.format(Locale.ROOT, "first forward %.2f s", firstMs / 1000));
            if (kc != null) {
                List<KernelCache.CompileRecord> recs = kc.compiles();
                int loaded = 0, built = 0;
                double loadS = 0, buildS = 0;
                for (KernelCache.CompileRecord r : recs.subList(Math.min(before, recs.size()), recs.size())) {
                    if (r.fromCache()) {
                        loaded++;
                        loadS += r.seconds();
                    } else {
                        built++;
                        buildS += r.seconds();
                    }
                }
                notes.add(String.format(Locale.ROOT, "modules: %d compiled (%.2f s), %d loaded from cache (%.3f s)", built, buildS, loaded, loadS));
            }
            int bad = 0;
            for (float v : out) if (!Float.isFinite(v)) bad++;
            if (bad > 0) notes.add(bad + " of " + out.length + " outputs not finite");
            String used = deviceUsed(b);
            if (used != null) notes.add(used);
            long cellEnd = Math.min(until, System.nanoTime() + (long) (o.maxSeconds() * 1e9));
            int warm = 0;
            int w = progress == null ? o.warmup() : 0;
            for (int i = 0; i < w && System.nanoTime() < cellEnd; i++) {
                m.forward(sample, batch, latent, latent, new float[]{timestep(i)}, ehs, o.seq());
                warm++;
            }
            int steps = progress == null ? o.steps() : o.interpretedSteps();
            List<Double> times = new ArrayList<>();
            long timedStart = System.nanoTime();
            long timedEnd = Math.min(until, timedStart + (long) (o.maxSeconds() * 1e9));
            while (times.size() < steps) {
                long now = System.nanoTime();
                if (!times.isEmpty() && now > until) break;
                if (times.size() >= 3 && now > timedEnd) break;
                long s0 = System.nanoTime();
                m.forward(sample, batch, latent, latent, new float[]{timestep(warm + times.size())}, ehs, o.seq());
                double ms = (System.nanoTime() - s0) / 1e6;
                times.add(ms);
                if (progress != null) synchronized (progress) {
                    progress.steps.add(ms);
                }
            }
            if (times.size() < steps) notes.add("timed steps cut at " + times.size() + " by --max-seconds " + o.maxSeconds());
            if (progress == null) profile(c, m);
            return timed(c, b.name(), b.device(), times, firstMs, compile, peakGib, weightsGib, warm, String.join("; ", notes));
        }

        /**
         * --profile: for the first cell of each attention processor in each of fp16 and tf32 at the headline batch, runs the
         * UNet graph once task by task with device timing, writes profile-&lt;precision&gt;.csv (flash; other processors
         * profile-&lt;precision&gt;-&lt;attention&gt;.csv: kernel, calls, total_ms, share) and the same name with -tasks
         * (every task's ms), and prints the top 15.
         */
        private void profile(Cell c, UNet2DConditionModel m) {
            int headline = o.batch().contains(o.headlineBatch()) ? o.headlineBatch() : o.batch().getFirst();
            if (!o.profile() || c.batch() != headline || !List.of("fp16", "tf32").contains(c.precision())
                    || !profiled.add(c.precision() + "/" + c.attention())) return;
            try {
                jdiffusion.kernels.TaskGraph g = m.lastGraph();
                if (g == null) return;
                jdiffusion.kernels.Profile p = g.profile();
                String name = "profile-" + c.precision() + (c.attention().equals("flash") ? "" : "-" + c.attention());
                Files.writeString(o.out().resolve(name + ".csv"), p.csv(), StandardCharsets.UTF_8);
                Files.writeString(o.out().resolve(name + "-tasks.csv"), p.tasksCsv(), StandardCharsets.UTF_8);
                System.out.print("study: " + c.precision() + " " + c.attention() + " " + p.top(15));
            } catch (IOException | RuntimeException e) {
                System.err.println("WARNING: --profile of " + c + " failed: " + e);
            }
        }

        private static float timestep(int i) {
            return Math.max(1, 999 - 20 * i);
        }

        private static Row timed(Cell c, String backend, String device, List<Double> times, double firstMs, double compile, double peakGib, double weightsGib,
                                 int warm, String note) {
            double[] t = times.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            double median = t.length % 2 == 1 ? t[t.length / 2] : (t[t.length / 2 - 1] + t[t.length / 2]) / 2;
            return new Row(backend, device, c.mode(), c.attention(), c.precision(), c.batch(), "ok", median, t[0], t[t.length - 1], median / c.batch(),
                    StudyReport.imagesPerSecond(c.batch(), median), peakGib, weightsGib, compile, t.length, warm, note);
        }

        private static final Pattern FREE = Pattern.compile("free ([0-9.]+) of ([0-9.]+) GiB");

        /** "device used X of Y GiB" from the CUDA driver (context, other processes and our buffers), or null. */
        private static String deviceUsed(Backend b) {
            if (!(b instanceof CudaBackend cb)) return null;
            Matcher mt = FREE.matcher(cb.memoryInfo());
            if (!mt.find()) return null;
            double free = Double.parseDouble(mt.group(1)), total = Double.parseDouble(mt.group(2));
            return String.format(Locale.ROOT, "device used %.1f of %.1f GiB", total - free, total);
        }

        private static void copyEntries(Path from, Path to) {
            if (!Files.isDirectory(from)) return;
            try {
                Files.createDirectories(to);
                try (DirectoryStream<Path> ds = Files.newDirectoryStream(from, "*.bin")) {
                    for (Path f : ds) {
                        Path t = to.resolve(f.getFileName());
                        if (!Files.exists(t)) Files.copy(f, t);
                    }
                }
            } catch (IOException e) {
                System.err.println("WARNING: could not copy kernel cache entries " + from + " -> " + to + ": " + e);
            }
        }

        private static String describe(Throwable e) {
            String m = e.getMessage() == null ? e.toString() : e.getClass().getSimpleName() + ": " + e.getMessage();
            m = m.replace('\n', ' ');
            return m.length() > 400 ? m.substring(0, 400) + "..." : m;
        }

        private void closeModel() {
            if (model != null) {
                try {
                    model.close();
                } catch (RuntimeException e) {
                    System.err.println("WARNING: closing the model: " + e);
                }
                model = null;
            }
        }

        private void closeSession() {
            closeModel();
            if (backend != null) {
                try {
                    backend.close();
                } catch (RuntimeException e) {
                    System.err.println("WARNING: closing backend: " + e);
                }
                backend = null;
            }
            sessionKey = null;
            cache = null;
        }

        @Override
        public void close() {
            closeSession();
        }
    }
}
