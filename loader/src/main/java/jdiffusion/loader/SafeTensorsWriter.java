package jdiffusion.loader;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Builds a safetensors file: header with __metadata__, padded with spaces to a multiple of 8 as the spec says, then
 * the tensors back to back in the order added (or sorted by name). Small tensors come from arrays; big ones from a
 * callback that fills one chunk at a time, so a multi-GB file is written with bounded memory.
 * <pre>
 * new SafeTensorsWriter().metadata("format", "pt").add("w", new float[]{1, 2}, 2).write(path);
 * </pre>
 */
public final class SafeTensorsWriter {
    /** Fills chunk (little-endian, position 0) completely with the tensor's bytes starting at byteOffset. */
    @FunctionalInterface
    public interface Bytes {
        void fill(long byteOffset, ByteBuffer chunk);
    }

    /** Fills out[0, count) with elements firstElement.. of the tensor (converted to the stored dtype by the writer). */
    @FunctionalInterface
    public interface Floats {
        void fill(long firstElement, float[] out, int count);
    }

    private static final int CHUNK = 1 << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private record Pending(String name, String dtype, long[] shape, long bytes, Bytes data) {}

    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final List<Pending> tensors = new ArrayList<>();
    private final HashSet<String> names = new HashSet<>();
    private boolean sorted;
    private float[] floatBuffer;

    public SafeTensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    /** Store the tensors sorted by name instead of in the order added. */
    public SafeTensorsWriter sorted() {
        sorted = true;
        return this;
    }

    public SafeTensorsWriter add(String name, float[] data, long... shape) {
        check(name, data.length, shape);
        return addBytes(name, "F32", shape, (off, chunk) -> {
            for (int i = (int) (off / 4); chunk.hasRemaining(); i++) chunk.putFloat(data[i]);
        });
    }

    public SafeTensorsWriter addF16(String name, short[] bits, long... shape) {
        check(name, bits.length, shape);
        return addBytes(name, "F16", shape, shorts(bits));
    }

    public SafeTensorsWriter addBF16(String name, short[] bits, long... shape) {
        check(name, bits.length, shape);
        return addBytes(name, "BF16", shape, shorts(bits));
    }

    public SafeTensorsWriter add(String name, long[] data, long... shape) {
        check(name, data.length, shape);
        return addBytes(name, "I64", shape, (off, chunk) -> {
            for (int i = (int) (off / 8); chunk.hasRemaining(); i++) chunk.putLong(data[i]);
        });
    }

    public SafeTensorsWriter add(String name, int[] data, long... shape) {
        check(name, data.length, shape);
        return addBytes(name, "I32", shape, (off, chunk) -> {
            for (int i = (int) (off / 4); chunk.hasRemaining(); i++) chunk.putInt(data[i]);
        });
    }

    /** A streamed float tensor stored as F32, F16 (rounded to nearest even) or BF16. */
    public SafeTensorsWriter add(String name, TensorType type, long[] shape, Floats source) {
        if (type != TensorType.F32 && type != TensorType.F16 && type != TensorType.BF16)
            throw new IllegalArgumentException(name + ": floats can be stored as F32, F16 or BF16, not " + type);
        int size = type.bytes;
        return addBytes(name, type.name(), shape, (off, chunk) -> {
            int n = chunk.remaining() / size;
            if (floatBuffer == null) floatBuffer = new float[CHUNK / 2]; // one buffer for all tensors: memory stays bounded
            float[] buf = floatBuffer;
            source.fill(off / size, buf, n);
            for (int i = 0; i < n; i++) {
                switch (type) {
                    case F32 -> chunk.putFloat(buf[i]);
                    case F16 -> chunk.putShort(Float.floatToFloat16(buf[i]));
                    default -> chunk.putShort(SafeTensors.floatToBf16(buf[i]));
                }
            }
        });
    }

    /** Raw bytes of any safetensors dtype string (e.g. "BOOL" or "F8_E4M3" for tests), streamed. */
    public SafeTensorsWriter addBytes(String name, String dtype, long[] shape, Bytes source) {
        int size = SafeTensors.dtypeSize(dtype);
        if (size <= 0) throw new IllegalArgumentException(name + ": unknown dtype " + dtype);
        if (!names.add(name) || name.equals("__metadata__"))
            throw new IllegalArgumentException(name + ": duplicate or reserved tensor name");
        long elements = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException(name + ": negative dimension in " + Arrays.toString(shape));
            elements = Math.multiplyExact(elements, d);
        }
        tensors.add(new Pending(name, dtype, shape.clone(), Math.multiplyExact(elements, size), source));
        return this;
    }

    public SafeTensorsWriter addRaw(String name, String dtype, long[] shape, byte[] bytes) {
        return addBytes(name, dtype, shape, (off, chunk) -> chunk.put(bytes, (int) off, chunk.remaining()));
    }

    /** The 8-byte length prefix plus the padded JSON header. */
    public byte[] header() {
        ObjectNode root = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode m = root.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long at = 0;
        for (Pending t : order()) {
            ObjectNode e = root.putObject(t.name);
            e.put("dtype", t.dtype);
            var shape = e.putArray("shape");
            for (long d : t.shape) shape.add(d);
            e.putArray("data_offsets").add(at).add(at + t.bytes);
            at += t.bytes;
        }
        byte[] json = root.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer out = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(padded).put(json);
        while (out.hasRemaining()) out.put((byte) ' ');
        return out.array();
    }

    /** Total file size in bytes. */
    public long size() {
        long n = header().length;
        for (Pending t : tensors) n += t.bytes;
        return n;
    }

    public void write(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeTo(ch);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write", e);
        }
    }

    public byte[] toBytes() {
        if (size() > Integer.MAX_VALUE - 8) throw new IllegalStateException("too large for a byte[]; use write(Path)");
        var out = new ByteArrayOutputStream();
        try {
            writeTo(Channels.newChannel(out));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    private void writeTo(WritableByteChannel ch) throws IOException {
        writeFully(ch, ByteBuffer.wrap(header()));
        ByteBuffer chunk = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        for (Pending t : order()) {
            for (long off = 0; off < t.bytes; off += CHUNK) {
                chunk.clear().limit((int) Math.min(CHUNK, t.bytes - off));
                t.data.fill(off, chunk);
                if (chunk.hasRemaining())
                    throw new IllegalStateException(t.name + ": callback left " + chunk.remaining() + " bytes unfilled at " + off);
                writeFully(ch, chunk.flip());
            }
        }
    }

    private static void writeFully(WritableByteChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    private List<Pending> order() {
        if (!sorted) return tensors;
        var s = new ArrayList<>(tensors);
        s.sort(Comparator.comparing(Pending::name));
        return s;
    }

    private static Bytes shorts(short[] bits) {
        return (off, chunk) -> {
            for (int i = (int) (off / 2); chunk.hasRemaining(); i++) chunk.putShort(bits[i]);
        };
    }

    private static void check(String name, long length, long[] shape) {
        long n = 1;
        for (long d : shape) n *= d;
        if (n != length)
            throw new IllegalArgumentException(name + ": " + length + " values for shape " + Arrays.toString(shape));
    }
}
