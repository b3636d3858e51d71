package jdiffusion.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KernelCacheTest {
    static final String KEY = KernelCache.key("opencl", "dev", "1.0", "-cl-std=CL1.2", "kernel void k() {}");

    static byte[] payload(int seed, int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) (seed * 31 + i * 7);
        return b;
    }

    static Path entry(Path dir, String key) {
        return dir.resolve(key + ".bin");
    }

    @Test
    void keyCoversEveryPart() {
        assertEquals(64, KEY.length());
        assertEquals(KEY, KernelCache.key("opencl", "dev", "1.0", "-cl-std=CL1.2", "kernel void k() {}"));
        assertNotEquals(KEY, KernelCache.key("cuda", "dev", "1.0", "-cl-std=CL1.2", "kernel void k() {}"));
        assertNotEquals(KEY, KernelCache.key("opencl", "dev2", "1.0", "-cl-std=CL1.2", "kernel void k() {}"));
        assertNotEquals(KEY, KernelCache.key("opencl", "dev", "1.1", "-cl-std=CL1.2", "kernel void k() {}"));
        assertNotEquals(KEY, KernelCache.key("opencl", "dev", "1.0", "", "kernel void k() {}"));
        assertNotEquals(KEY, KernelCache.key("opencl", "dev", "1.0", "-cl-std=CL1.2", "kernel void k() { }"));
        // parts cannot run into each other
        assertNotEquals(KernelCache.key("a", "bc", "", "", ""), KernelCache.key("ab", "c", "", "", ""));
    }

    @Test
    void coldMissStoreThenWarmHit(@TempDir Path dir) {
        KernelCache c = new KernelCache(dir.resolve("nested/cache"));
        assertTrue(c.load(KEY).isEmpty());
        byte[] p = payload(1, 1000);
        c.store(KEY, p, "test entry");
        assertArrayEquals(p, c.load(KEY).orElseThrow());
        KernelCache fresh = new KernelCache(dir.resolve("nested/cache"));
        assertArrayEquals(p, fresh.load(KEY).orElseThrow());
        KernelCache.Stats s = c.stats();
        assertEquals(1, s.entries());
        assertTrue(s.bytes() > 1000);
        assertEquals(1, s.hits());
        assertEquals(1, s.misses());
        assertEquals(0, s.rebuiltCorrupt());
        c.store(KEY, new byte[0], "empty payload");
        assertEquals(0, c.load(KEY).orElseThrow().length);
    }

    @Test
    void truncatedCorruptAndMismatchedEntriesAreRebuilt(@TempDir Path dir) throws IOException {
        KernelCache c = new KernelCache(dir);
        byte[] p = payload(2, 4000);
        Path f = entry(dir, KEY);

        c.store(KEY, p, "truncated");
        byte[] all = Files.readAllBytes(f);
        Files.write(f, Arrays.copyOf(all, all.length - 100));
        assertTrue(c.load(KEY).isEmpty());
        assertFalse(Files.exists(f), "the corrupt entry is deleted");

        c.store(KEY, p, "bit flip");
        all = Files.readAllBytes(f);
        all[all.length - 10] ^= 1;
        Files.write(f, all);
        assertTrue(c.load(KEY).isEmpty());

        c.store(KEY, p, "header only");
        Files.write(f, Arrays.copyOf(Files.readAllBytes(f), 6));
        assertTrue(c.load(KEY).isEmpty());

        Files.write(f, new byte[0]);
        assertTrue(c.load(KEY).isEmpty());

        // an entry written for another key, renamed into this key's place
        String other = KernelCache.key("opencl", "other", "", "", "");
        c.store(other, p, "other key");
        Files.move(entry(dir, other), f);
        assertTrue(c.load(KEY).isEmpty());

        assertEquals(5, c.stats().rebuiltCorrupt());
        assertEquals(5, c.stats().misses());
        c.store(KEY, p, "rebuilt");
        assertArrayEquals(p, c.load(KEY).orElseThrow());
    }

    @Test
    void concurrentStoresFromThreadsLeaveOneValidEntry(@TempDir Path dir) throws Exception {
        KernelCache c = new KernelCache(dir);
        ExecutorService pool = Executors.newFixedThreadPool(6);
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < 6; t++) {
                int seed = t;
                fs.add(pool.submit(() -> {
                    for (int i = 0; i < 30; i++) {
                        c.store(KEY, payload(seed, 20_000 + seed), "thread " + seed);
                        Optional<byte[]> got = c.load(KEY);
                        got.ifPresent(b -> assertTrue(isOneOfThePayloads(b), "torn entry"));
                    }
                }));
            }
            for (Future<?> f : fs) f.get();
        } finally {
            pool.shutdown();
        }
        assertTrue(isOneOfThePayloads(c.load(KEY).orElseThrow()));
        assertEquals(0, c.stats().rebuiltCorrupt());
        assertEquals(1, c.stats().entries(), "no temp files left behind");
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count());
        }
    }

    static boolean isOneOfThePayloads(byte[] b) {
        int seed = b.length - 20_000;
        return seed >= 0 && seed < 8 && Arrays.equals(b, payload(seed, b.length));
    }

    /** Main of the child JVMs: stores KEY repeatedly with its own payload. */
    public static void main(String[] args) {
        KernelCache c = new KernelCache(Path.of(args[0]));
        int seed = Integer.parseInt(args[1]);
        for (int i = 0; i < 200; i++) {
            c.store(KEY, payload(seed, 20_000 + seed), "process " + seed);
            Optional<byte[]> got = c.load(KEY);
            if (got.isPresent() && !isOneOfThePayloads(got.get())) System.exit(3);
        }
        System.exit(c.stats().rebuiltCorrupt() == 0 ? 0 : 4);
    }

    @Test
    void concurrentStoresFromTwoProcessesLeaveOneValidEntry(@TempDir Path dir) throws Exception {
        String java = ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<Process> ps = new ArrayList<>();
        for (int seed = 6; seed < 8; seed++)
            ps.add(new ProcessBuilder(java, "-cp", classPathOf(KernelCacheTest.class, KernelCache.class), KernelCacheTest.class.getName(), dir.toString(), String.valueOf(seed))
                    .redirectErrorStream(true).start());
        for (Process p : ps) {
            String out = new String(p.getInputStream().readAllBytes());
            assertEquals(0, p.waitFor(), "child output: " + out);
        }
        KernelCache c = new KernelCache(dir);
        assertTrue(isOneOfThePayloads(c.load(KEY).orElseThrow()));
        assertEquals(1, c.stats().entries());
    }

    @Test
    void clearAndStatsAndDescribe(@TempDir Path dir) throws IOException {
        KernelCache c = new KernelCache(dir);
        for (int i = 0; i < 3; i++) c.store(KernelCache.key("opencl", "d", "", "", "src" + i), payload(i, 100), "family" + i);
        Files.write(dir.resolve("stale.tmp"), new byte[10]);
        c.recordCompile("fam/k", 0.5, false);
        c.recordCompile("fam/k", 0.25, true);
        KernelCache.Stats s = c.stats();
        assertEquals(3, s.entries());
        assertEquals(0.75, s.compileSeconds(), 1e-9);
        assertEquals(2, c.compiles().size());
        assertTrue(c.compiles().get(1).fromCache());
        String d = c.describe();
        assertTrue(d.contains(dir.toString()) && d.contains("entries 3") && d.contains("family1") && d.contains("fam/k"), d);
        c.clear();
        assertEquals(0, c.stats().entries());
        try (var files = Files.list(dir)) {
            assertEquals(0, files.count());
        }
    }

    @Test
    void unwritableDirectoryWarnsOnceAndRunsUncached(@TempDir Path dir) throws IOException {
        Path file = Files.write(dir.resolve("a-file"), new byte[1]);
        KernelCache c = new KernelCache(file.resolve("cache")); // a directory under a regular file cannot be created, even by root
        PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true));
        try {
            c.store(KEY, payload(1, 10), "x");
            c.store(KEY, payload(1, 10), "x");
        } finally {
            System.setErr(old);
        }
        assertEquals(1, err.toString().split("WARNING", -1).length - 1, err.toString());
        assertTrue(c.load(KEY).isEmpty());
        assertFalse(c.enabled());
        assertTrue(c.describe().contains("NOT WRITABLE"));
        assertEquals(0, c.stats().entries());
    }

    @Test
    void disabledCacheAlwaysMisses() {
        KernelCache off = new KernelCache(null);
        off.store(KEY, payload(1, 10), "x");
        assertTrue(off.load(KEY).isEmpty());
        off.recordCompile("a/b", 1, false);
        assertEquals(1, off.compiles().size());
        assertTrue(off.describe().contains("off"));
        assertTrue(KernelCache.defaultDir().isAbsolute() || System.getProperty("jdiffusion.cache.dir") != null);
    }

    /** The class path entries holding these classes (java.class.path is the launcher's own jar under the JUnit console). */
    static String classPathOf(Class<?>... classes) throws Exception {
        java.util.LinkedHashSet<String> entries = new java.util.LinkedHashSet<>();
        for (Class<?> c : classes) entries.add(Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString());
        return String.join(java.io.File.pathSeparator, entries);
    }
}
