package jdiffusion.loader;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A safetensors file (https://github.com/huggingface/safetensors format): 8-byte little-endian header length, a JSON
 * header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the byte buffer. The file is
 * memory-mapped (files above 2 GiB work); tensors are converted only when asked for. The header is validated as the
 * spec demands: offsets inside the buffer, byte count = elements * dtype size, buffer fully indexed without holes or
 * overlaps. Tensors of dtypes the engine cannot use (BOOL, U8, F8_E4M3, F64...) are listed but reading them throws.
 */
public final class SafeTensors implements Weights {
    /** Largest header accepted (the Rust reference implementation uses 100 MB too). */
    public static final long MAX_HEADER = 100_000_000L;

    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .disable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    /** dtypes of the spec that we list but cannot convert, with their element sizes (needed to validate offsets). */
    private static final Map<String, Integer> OTHER_DTYPES = Map.ofEntries(
            Map.entry("BOOL", 1), Map.entry("U8", 1), Map.entry("I8", 1), Map.entry("F8_E4M3", 1),
            Map.entry("F8_E5M2", 1), Map.entry("F8_E8M0", 1), Map.entry("I16", 2), Map.entry("U16", 2),
            Map.entry("U32", 4), Map.entry("U64", 8), Map.entry("F64", 8), Map.entry("C64", 8));

    /** One header entry; type is null for a dtype we list but cannot read (then dtype names it). */
    private record Entry(TensorInfo info, String dtype, long begin, long end) {}

    private final String source;
    private final Arena arena; // null when the segment is borrowed
    private final MemorySegment file;
    private final long dataStart;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;
    private volatile boolean closed;

    private SafeTensors(String source, Arena arena, MemorySegment file) {
        this.source = source;
        this.arena = arena;
        this.file = file;
        long size = file.byteSize();
        if (size < 8) throw fail("file is " + size + " bytes, shorter than the 8-byte header length");
        long n = file.get(I64, 0);
        if (n < 2 || n > MAX_HEADER)
            throw fail("header length " + Long.toUnsignedString(n) + " is absurd (must be 2.." + MAX_HEADER + ")");
        if (n > size - 8) throw fail("header length " + n + " runs past the end of the file (" + size + " bytes)");
        this.dataStart = 8 + n;
        byte[] header = file.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
        if (header[0] != '{') throw fail("header does not start with '{'");
        JsonNode root;
        try {
            root = JSON.readTree(header);
        } catch (IOException | RuntimeException e) {
            throw fail("header is not valid JSON: " + firstLine(e.getMessage()), e);
        }
        if (root == null || !root.isObject()) throw fail("header is not a JSON object");
        var entries = new LinkedHashMap<String, Entry>();
        Map<String, String> metadata = Map.of();
        long bufferSize = size - dataStart;
        for (var field : root.properties()) {
            String name = field.getKey();
            if (name.equals("__metadata__")) metadata = parseMetadata(field.getValue());
            else entries.put(name, parseEntry(name, field.getValue(), bufferSize));
        }
        checkCoverage(entries, bufferSize);
        this.entries = Collections.unmodifiableMap(entries);
        this.metadata = metadata;
    }

    /** Memory-maps a file. Closing releases the mapping; using the object afterwards throws LoaderException. */
    public static SafeTensors open(Path file) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            return new SafeTensors(file.toString(), arena, seg);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new LoaderException(file + ": file not found");
        } catch (IOException e) {
            arena.close();
            throw new LoaderException(file + ": cannot read: " + e, e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Reads safetensors bytes already in memory (a byte array, a slice of another file...); the caller owns them. */
    public static SafeTensors open(String source, MemorySegment bytes) {
        return new SafeTensors(source, null, bytes);
    }

    @Override
    public String source() {
        return source;
    }

    /** The "__metadata__" map (e.g. format=pt), empty when absent. */
    public Map<String, String> metadata() {
        check();
        return metadata;
    }

    /** Tensor names in header order. */
    @Override
    public Set<String> names() {
        check();
        return entries.keySet();
    }

    @Override
    public boolean has(String name) {
        check();
        return entries.containsKey(name);
    }

    /** The safetensors dtype string as stored (also for dtypes we cannot read). */
    public String dtype(String name) {
        return entry(name).dtype;
    }

    @Override
    public TensorInfo info(String name) {
        return readable(name).info;
    }

    /** Shape as stored, also for dtypes we cannot read. */
    long[] shape(String name) {
        return entry(name).info.shape().clone();
    }

    /** Raw little-endian bytes of a tensor, a lazy view into the mapping (valid until close). */
    public MemorySegment segment(String name) {
        Entry e = entry(name);
        return file.asSlice(dataStart + e.begin, e.end - e.begin);
    }

    /** Size of the whole file and offset of the byte buffer, for inspection. */
    public long fileSize() {
        return file.byteSize();
    }

    public long dataStart() {
        return dataStart;
    }

    @Override
    public float[] floats(String name) {
        Entry e = readable(name);
        return floats(e, 0, arrayLength(e, e.info.elements()));
    }

    @Override
    public short[] halves(String name) {
        Entry e = readable(name);
        return halves(e, 0, arrayLength(e, e.info.elements()));
    }

    /** I64 as stored, or widened from I32. */
    public long[] longs(String name) {
        Entry e = readable(name);
        int n = arrayLength(e, e.info.elements());
        MemorySegment s = segment(name);
        long[] out = new long[n];
        switch (e.info.type()) {
            case I64 -> MemorySegment.copy(s, I64, 0, out, 0, n);
            case I32 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(I32, i); }
            default -> throw fail(name + ": dtype " + e.dtype + " is not an integer type");
        }
        return out;
    }

    /** I32 as stored, or narrowed from I64 (throws when a value does not fit). */
    public int[] ints(String name) {
        Entry e = readable(name);
        int n = arrayLength(e, e.info.elements());
        MemorySegment s = segment(name);
        int[] out = new int[n];
        switch (e.info.type()) {
            case I32 -> MemorySegment.copy(s, I32, 0, out, 0, n);
            case I64 -> {
                for (int i = 0; i < n; i++) {
                    long v = s.getAtIndex(I64, i);
                    if (v != (int) v) throw fail(name + ": value " + v + " at index " + i + " does not fit in int");
                    out[i] = (int) v;
                }
            }
            default -> throw fail(name + ": dtype " + e.dtype + " is not an integer type");
        }
        return out;
    }

    /** Elements [from, from+count) of a tensor as float (used by views that slice, e.g. fused q/k/v). */
    float[] floats(String name, long from, int count) {
        Entry e = readable(name);
        checkRange(e, from, count);
        return floats(e, from, count);
    }

    short[] halves(String name, long from, int count) {
        Entry e = readable(name);
        checkRange(e, from, count);
        return halves(e, from, count);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (arena != null) arena.close();
    }

    @Override
    public String toString() {
        return "SafeTensors[" + source + ", " + entries.size() + " tensors]";
    }

    // ---- conversion

    private float[] floats(Entry e, long from, int n) {
        MemorySegment s = file.asSlice(dataStart + e.begin + from * e.info.type().bytes, (long) n * e.info.type().bytes);
        float[] out = new float[n];
        switch (e.info.type()) {
            case F32 -> MemorySegment.copy(s, F32, 0, out, 0, n);
            case F16 -> {
                short[] h = new short[n];
                MemorySegment.copy(s, I16, 0, h, 0, n);
                for (int i = 0; i < n; i++) out[i] = Float.float16ToFloat(h[i]);
            }
            case BF16 -> {
                short[] h = new short[n];
                MemorySegment.copy(s, I16, 0, h, 0, n);
                for (int i = 0; i < n; i++) out[i] = bf16ToFloat(h[i]);
            }
            case I32 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(I32, i); }
            case I64 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(I64, i); }
        }
        return out;
    }

    private short[] halves(Entry e, long from, int n) {
        if (e.info.type() == TensorType.F16) {
            short[] out = new short[n];
            MemorySegment.copy(file, I16, dataStart + e.begin + from * 2, out, 0, n);
            return out;
        }
        float[] f = floats(e, from, n);
        short[] out = new short[n];
        for (int i = 0; i < n; i++) out[i] = Float.floatToFloat16(f[i]);
        return out;
    }

    /** Element size of a safetensors dtype string, 0 when unknown. */
    static int dtypeSize(String dtype) {
        for (TensorType t : TensorType.values()) if (t.name().equals(dtype)) return t.bytes;
        return OTHER_DTYPES.getOrDefault(dtype, 0);
    }

    /** bfloat16 bits to float: the upper half of a float32. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** float to bfloat16 bits, round to nearest even (NaN stays a quiet NaN). */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) ((bits >>> 16) | 0x0040);
        int rounded = bits + 0x7fff + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }

    // ---- validation

    private Map<String, String> parseMetadata(JsonNode node) {
        if (!node.isObject()) throw fail("__metadata__ is not an object of strings");
        var out = new LinkedHashMap<String, String>();
        for (var f : node.properties()) {
            if (!f.getValue().isTextual())
                throw fail("__metadata__ key '" + f.getKey() + "' is not a string (" + f.getValue().getNodeType() + ")");
            out.put(f.getKey(), f.getValue().textValue());
        }
        return Collections.unmodifiableMap(out);
    }

    private Entry parseEntry(String name, JsonNode node, long bufferSize) {
        if (!node.isObject()) throw fail("tensor '" + name + "': header entry is not an object");
        JsonNode dt = node.get("dtype"), sh = node.get("shape"), off = node.get("data_offsets");
        if (dt == null) throw fail("tensor '" + name + "': missing dtype");
        if (sh == null) throw fail("tensor '" + name + "': missing shape");
        if (off == null) throw fail("tensor '" + name + "': missing data_offsets");
        if (!dt.isTextual()) throw fail("tensor '" + name + "': dtype is not a string");
        String dtype = dt.textValue();
        TensorType type = null;
        int size;
        try {
            type = TensorType.valueOf(dtype);
            size = type.bytes;
        } catch (IllegalArgumentException notOurs) {
            Integer other = OTHER_DTYPES.get(dtype);
            if (other == null) throw fail("tensor '" + name + "': unknown dtype '" + dtype + "'");
            size = other;
        }
        if (!sh.isArray()) throw fail("tensor '" + name + "': shape is not an array");
        long[] shape = new long[sh.size()];
        long elements = 1;
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegativeLong(sh.get(i), "tensor '" + name + "': shape[" + i + "]");
            try {
                elements = Math.multiplyExact(elements, shape[i]);
            } catch (ArithmeticException overflow) {
                throw fail("tensor '" + name + "': shape " + sh + " has more elements than fit in a long");
            }
        }
        if (!off.isArray() || off.size() != 2) throw fail("tensor '" + name + "': data_offsets is not [begin, end]");
        long begin = nonNegativeLong(off.get(0), "tensor '" + name + "': data_offsets[0]");
        long end = nonNegativeLong(off.get(1), "tensor '" + name + "': data_offsets[1]");
        if (end < begin) throw fail("tensor '" + name + "': data_offsets end " + end + " < begin " + begin);
        if (end > bufferSize)
            throw fail("tensor '" + name + "': data_offsets [" + begin + ", " + end + "] run past the byte buffer ("
                    + bufferSize + " bytes)");
        long bytes;
        try {
            bytes = Math.multiplyExact(elements, size);
        } catch (ArithmeticException overflow) {
            throw fail("tensor '" + name + "': shape " + sh + " is too large");
        }
        if (bytes != end - begin)
            throw fail("tensor '" + name + "': " + dtype + " " + sh + " needs " + bytes + " bytes but data_offsets ["
                    + begin + ", " + end + "] hold " + (end - begin));
        return new Entry(new TensorInfo(name, type == null ? TensorType.F32 : type, shape), type == null ? dtype : type.name(),
                begin, end);
    }

    private long nonNegativeLong(JsonNode n, String what) {
        if (n == null || !n.isIntegralNumber() || !n.canConvertToLong())
            throw fail(what + " is not an integer: " + n);
        long v = n.longValue();
        if (v < 0) throw fail(what + " is negative: " + v);
        return v;
    }

    private void checkCoverage(Map<String, Entry> entries, long bufferSize) {
        List<Entry> sorted = new ArrayList<>(entries.values());
        sorted.sort((a, b) -> a.begin != b.begin ? Long.compare(a.begin, b.begin) : Long.compare(a.end, b.end));
        long at = 0;
        Entry prev = null;
        for (Entry e : sorted) {
            if (e.begin < at)
                throw fail("tensors '" + prev.info.name() + "' and '" + e.info.name() + "' overlap in the byte buffer");
            if (e.begin > at)
                throw fail("byte buffer has a hole at [" + at + ", " + e.begin + ") before tensor '" + e.info.name()
                        + "' (the spec requires it fully indexed)");
            at = e.end;
            prev = e;
        }
        if (at != bufferSize)
            throw fail("byte buffer is " + bufferSize + " bytes but the tensors index only " + at
                    + " (trailing bytes or a truncated/extended file)");
    }

    private void check() {
        if (closed) throw fail("used after close()");
    }

    private Entry entry(String name) {
        check();
        Entry e = entries.get(name);
        if (e == null) throw fail("no tensor named '" + name + "'");
        return e;
    }

    private Entry readable(String name) {
        Entry e = entry(name);
        if (!e.dtype.equals(e.info.type().name()))
            throw fail("tensor '" + name + "' has dtype " + e.dtype + ", which the engine cannot read (F32, F16, BF16, I64, I32 only)");
        return e;
    }

    private int arrayLength(Entry e, long elements) {
        if (elements > Integer.MAX_VALUE - 8)
            throw fail("tensor '" + e.info.name() + "' has " + elements
                    + " elements, too many for one Java array; read it through segment()");
        return (int) elements;
    }

    private void checkRange(Entry e, long from, int count) {
        if (from < 0 || count < 0 || from + count > e.info.elements())
            throw fail("tensor '" + e.info.name() + "': slice [" + from + ", " + (from + count) + ") outside its "
                    + e.info.elements() + " elements");
    }

    private LoaderException fail(String message) {
        return new LoaderException(source + ": " + message);
    }

    private LoaderException fail(String message, Throwable cause) {
        return new LoaderException(source + ": " + message, cause);
    }

    static String firstLine(String s) {
        if (s == null) return "";
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
