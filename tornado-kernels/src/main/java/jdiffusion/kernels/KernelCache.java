package jdiffusion.kernels;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The persistent "compile step": device binaries (OpenCL program binaries, PTX/cubin) keyed by SHA-256 over backend,
 * device, compiler version, options and source, one file per entry, shared by concurrent processes.
 * Entry file: magic "JDKC", format version, key, description, payload length, SHA-256 of the payload, payload.
 * Writes go to a temp file in the same directory, are fsynced and renamed atomically; a corrupt, truncated or
 * mismatched entry is deleted, counted and reported as a miss so the caller rebuilds. The cache never fails a run:
 * an unwritable directory gives one warning and the run continues uncached.
 * Knobs: -Djdiffusion.cache.dir (or env JDIFFUSION_CACHE_DIR), -Djdiffusion.cache=off.
 */
public final class KernelCache {
    private static final int MAGIC = 0x4A444B43; // "JDKC"
    private static final int FORMAT = 1;
    private static final String SUFFIX = ".bin";
    private static volatile KernelCache defaultCache;

    /** One kernel build as seen by a backend: compiled from source, or loaded from this cache. */
    public record CompileRecord(String kernelId, double seconds, boolean fromCache) {
    }

    public record Stats(long entries, long bytes, long hits, long misses, long rebuiltCorrupt, double compileSeconds) {
    }

    /** Null when the cache is disabled. */
    public final Path dir;
    private final AtomicLong hits = new AtomicLong(), misses = new AtomicLong(), corrupt = new AtomicLong(), stores = new AtomicLong();
    private final AtomicBoolean warned = new AtomicBoolean();
    private volatile boolean writable = true;
    private final List<CompileRecord> compiles = new ArrayList<>();

    public KernelCache(Path dir) {
        this.dir = dir;
    }

    /** The process-wide cache at the configured directory (disabled with -Djdiffusion.cache=off). */
    public static KernelCache defaultCache() {
        KernelCache c = defaultCache;
        if (c == null) {
            synchronized (KernelCache.class) {
                if (defaultCache == null) defaultCache = new KernelCache("off".equalsIgnoreCase(System.getProperty("jdiffusion.cache", "on")) ? null : defaultDir());
                c = defaultCache;
            }
        }
        return c;
    }

    static Path defaultDir() {
        String p = System.getProperty("jdiffusion.cache.dir");
        if (p == null || p.isBlank()) p = System.getenv("JDIFFUSION_CACHE_DIR");
        if (p != null && !p.isBlank()) return Path.of(p);
        String xdg = System.getenv("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isBlank()) return Path.of(xdg, "jdiffusion", "kernels");
        return Path.of(System.getProperty("user.home"), ".cache", "jdiffusion", "kernels");
    }

    public boolean enabled() {
        return dir != null && writable;
    }

    /** SHA-256 hex over every part (length-prefixed, so parts cannot run into each other). */
    public static String key(String backend, String device, String compilerVersion, String options, String source) {
        MessageDigest md = sha256();
        for (String part : new String[]{backend, device, compilerVersion, options, source}) {
            byte[] b = (part == null ? "" : part).getBytes(StandardCharsets.UTF_8);
            md.update(ByteBuffer.allocate(8).putLong(b.length).array());
            md.update(b);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private Path file(String key) {
        if (!key.matches("[0-9a-zA-Z_-]{1,128}")) throw new IllegalArgumentException("bad kernel cache key " + key);
        return dir.resolve(key + SUFFIX);
    }

    /** The payload stored under key, or empty (a miss; a corrupt entry is deleted and counted). */
    public Optional<byte[]> load(String key) {
        if (dir == null) {
            misses.incrementAndGet();
            return Optional.empty();
        }
        Path f = file(key);
        byte[] all;
        try {
            all = Files.readAllBytes(f);
        } catch (IOException | RuntimeException e) {
            misses.incrementAndGet();
            return Optional.empty();
        }
        byte[] payload = decode(key, all);
        if (payload == null) {
            corrupt.incrementAndGet();
            misses.incrementAndGet();
            try {
                Files.deleteIfExists(f);
            } catch (IOException | RuntimeException ignored) {
                // another process may hold or have replaced it; the rebuild overwrites it anyway
            }
            return Optional.empty();
        }
        hits.incrementAndGet();
        return Optional.of(payload);
    }

    /** Null when the entry is not a valid entry for key. */
    private static byte[] decode(String key, byte[] all) {
        try {
            ByteBuffer b = ByteBuffer.wrap(all);
            if (b.getInt() != MAGIC || b.getInt() != FORMAT) return null;
            int keyLen = b.getInt();
            if (keyLen < 0 || keyLen > 1024) return null;
            byte[] k = new byte[keyLen];
            b.get(k);
            if (!key.equals(new String(k, StandardCharsets.UTF_8))) return null;
            int descLen = b.getInt();
            if (descLen < 0 || descLen > b.remaining()) return null;
            b.position(b.position() + descLen);
            long len = b.getLong();
            byte[] sum = new byte[32];
            b.get(sum);
            if (len != b.remaining()) return null;
            byte[] payload = new byte[(int) len];
            b.get(payload);
            return Arrays.equals(sum, sha256().digest(payload)) ? payload : null;
        } catch (RuntimeException e) { // BufferUnderflowException and friends: truncated
            return null;
        }
    }

    private static String describeEntry(byte[] all) {
        try {
            ByteBuffer b = ByteBuffer.wrap(all);
            if (b.getInt() != MAGIC || b.getInt() != FORMAT) return "?";
            int keyLen = b.getInt();
            b.position(b.position() + keyLen);
            byte[] d = new byte[b.getInt()];
            b.get(d);
            return new String(d, StandardCharsets.UTF_8);
        } catch (RuntimeException e) {
            return "?";
        }
    }

    /** Stores payload under key atomically; failures warn once and are otherwise ignored. */
    public void store(String key, byte[] binary, String description) {
        if (dir == null || !writable) return;
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            byte[] k = key.getBytes(StandardCharsets.UTF_8);
            byte[] d = (description == null ? "" : description).getBytes(StandardCharsets.UTF_8);
            ByteBuffer header = ByteBuffer.allocate(4 + 4 + 4 + k.length + 4 + d.length + 8 + 32);
            header.putInt(MAGIC).putInt(FORMAT).putInt(k.length).put(k).putInt(d.length).put(d).putLong(binary.length).put(sha256().digest(binary)).flip();
            Path target = file(key);
            tmp = Files.createTempFile(dir, key + ".", ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer body = ByteBuffer.wrap(binary);
                while (header.hasRemaining()) ch.write(header);
                while (body.hasRemaining()) ch.write(body);
                ch.force(true);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
            stores.incrementAndGet();
        } catch (IOException | RuntimeException e) {
            writable = false;
            if (warned.compareAndSet(false, true))
                System.err.println("WARNING: kernel cache " + dir + " is not writable (" + e + "); continuing without caching kernels");
        } finally {
            if (tmp != null) try {
                Files.deleteIfExists(tmp);
            } catch (IOException | RuntimeException ignored) {
            }
        }
    }

    public void recordCompile(String kernelId, double seconds, boolean fromCache) {
        synchronized (compiles) {
            compiles.add(new CompileRecord(kernelId, seconds, fromCache));
        }
    }

    public List<CompileRecord> compiles() {
        synchronized (compiles) {
            return List.copyOf(compiles);
        }
    }

    public Stats stats() {
        long entries = 0, bytes = 0;
        for (Path f : entryFiles()) {
            try {
                bytes += Files.size(f);
                entries++;
            } catch (IOException | RuntimeException ignored) {
                // removed concurrently
            }
        }
        double seconds = 0;
        for (CompileRecord r : compiles()) seconds += r.seconds();
        return new Stats(entries, bytes, hits.get(), misses.get(), corrupt.get(), seconds);
    }

    private List<Path> entryFiles() {
        List<Path> out = new ArrayList<>();
        if (dir == null || !Files.isDirectory(dir)) return out;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*" + SUFFIX)) {
            for (Path p : ds) out.add(p);
        } catch (IOException | RuntimeException ignored) {
        }
        return out;
    }

    /** Deletes every entry (and stray temp files); resets nothing else. */
    public void clear() {
        if (dir == null || !Files.isDirectory(dir)) return;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                if (n.endsWith(SUFFIX) || n.endsWith(".tmp")) Files.deleteIfExists(p);
            }
        } catch (IOException | RuntimeException e) {
            System.err.println("WARNING: could not clear kernel cache " + dir + ": " + e);
        }
    }

    /** Text for {@code cache --stats}. */
    public String describe() {
        if (dir == null) return "kernel cache: off (-Djdiffusion.cache=off)\n";
        Stats s = stats();
        StringBuilder sb = new StringBuilder();
        sb.append("kernel cache: ").append(dir).append(writable ? "" : " (NOT WRITABLE: running uncached)").append('\n');
        sb.append(String.format("  entries %d, %.2f MiB on disk%n", s.entries(), s.bytes() / (double) (1 << 20)));
        sb.append(String.format("  this process: %d hits, %d misses, %d corrupt entries rebuilt, %d stored, %.3f s compiling/loading%n",
                s.hits(), s.misses(), s.rebuiltCorrupt(), stores.get(), s.compileSeconds()));
        List<Path> files = entryFiles();
        files.sort(null);
        for (Path f : files) {
            try {
                byte[] all = Files.readAllBytes(f);
                String name = f.getFileName().toString();
                sb.append(String.format("  %s  %9d B  %s%n", name.substring(0, Math.min(16, name.length())), all.length, describeEntry(all)));
            } catch (IOException | RuntimeException ignored) {
            }
        }
        for (CompileRecord r : compiles())
            sb.append(String.format("  %s %.3f s %s%n", r.fromCache() ? "loaded  " : "compiled", r.seconds(), r.kernelId()));
        return sb.toString();
    }

    @Override
    public String toString() {
        return "KernelCache[" + (dir == null ? "off" : dir) + "]";
    }
}
