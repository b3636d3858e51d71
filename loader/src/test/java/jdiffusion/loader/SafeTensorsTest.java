package jdiffusion.loader;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SafeTensorsTest {
    static final Path TINY = Path.of(System.getProperty("tiny.sd", "../engine/tiny-sd"));

    @TempDir
    Path tmp;

    // ---- the fixture

    @Test
    void readsEveryTensorOfTheFixture() throws IOException {
        Map<String, Integer> counts = Map.of("unet/diffusion_pytorch_model.safetensors", 304,
                "vae/diffusion_pytorch_model.safetensors", 156, "text_encoder/model.safetensors", 84);
        for (var e : counts.entrySet()) {
            try (SafeTensors st = SafeTensors.open(TINY.resolve(e.getKey()))) {
                assertEquals(e.getValue(), st.names().size(), e.getKey());
                assertEquals("pt", st.metadata().get("format"));
                for (String name : st.names()) checkTensor(st, name);
            }
        }
        // reference files: names, dtypes and shapes as MANIFEST.txt lists them
        Map<String, Map<String, String>> manifest = manifest();
        assertFalse(manifest.isEmpty());
        for (var file : manifest.entrySet()) {
            try (SafeTensors st = SafeTensors.open(TINY.resolve(file.getKey()))) {
                assertEquals(file.getValue().keySet(), st.names(), file.getKey());
                for (String name : st.names()) {
                    TensorInfo info = st.info(name);
                    assertEquals(file.getValue().get(name), info.type() + " " + Arrays.toString(info.shape()), name);
                    checkTensor(st, name);
                }
            }
        }
        try (SafeTensors st = SafeTensors.open(TINY.resolve("reference/text_io.safetensors"))) {
            long[] ids = st.longs("input_ids");
            assertEquals(3 * 77, ids.length);
            assertEquals(3 * 77, st.ints("input_ids").length);
        }
    }

    /** floats() equals a plain ByteBuffer decode of the raw bytes; halves() is its fp16 rounding. */
    static void checkTensor(SafeTensors st, String name) {
        TensorInfo info = st.info(name);
        float[] f = st.floats(name);
        assertEquals(info.elements(), f.length, name);
        ByteBuffer raw = st.segment(name).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < f.length; i++) {
            float want = switch (info.type()) {
                case F32 -> raw.getFloat(4 * i);
                case F16 -> Float.float16ToFloat(raw.getShort(2 * i));
                case BF16 -> Float.intBitsToFloat(raw.getShort(2 * i) << 16);
                case I32 -> raw.getInt(4 * i);
                case I64 -> raw.getLong(8 * i);
            };
            if (Float.floatToIntBits(want) != Float.floatToIntBits(f[i])) fail(name + "[" + i + "]: " + f[i] + " != " + want);
        }
        short[] h = st.halves(name);
        for (int i = 0; i < Math.min(h.length, 1000); i++) assertEquals(Float.floatToFloat16(f[i]), h[i], name);
    }

    static Map<String, Map<String, String>> manifest() throws IOException {
        var out = new HashMap<String, Map<String, String>>();
        String file = null;
        for (String line : Files.readAllLines(TINY.resolve("MANIFEST.txt"))) {
            if (line.isBlank()) continue;
            if (!line.startsWith(" ")) {
                file = line.trim().split("\\s+")[0];
                continue;
            }
            if (file == null || !file.endsWith(".safetensors")) continue;
            String[] p = line.trim().split("\\s+", 3);
            out.computeIfAbsent(file, k -> new HashMap<>()).put(p[0], p[1] + " " + p[2]);
        }
        return out;
    }

    // ---- conversions

    @Test
    void f16EdgeValues() {
        short[] bits = {0x0000, (short) 0x8000, 0x3c00, (short) 0xbc00, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x7c00,
                (short) 0xfc00, 0x7e00, 0x3555};
        float[] want = {0f, -0f, 1f, -1f, 65504f, 0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f, Float.POSITIVE_INFINITY,
                Float.NEGATIVE_INFINITY, Float.NaN, 0.33325195f};
        try (var st = SafeTensors.open("f16", seg(new SafeTensorsWriter().addF16("h", bits, bits.length).toBytes()))) {
            float[] f = st.floats("h");
            for (int i = 0; i < want.length; i++)
                assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(f[i]) & (Float.isNaN(f[i]) ? 0x7fc00000 : -1), "index " + i);
            assertArrayEquals(bits, st.halves("h"));
            assertEquals(TensorType.F16, st.info("h").type());
        }
    }

    @Test
    void bf16EdgeValues() {
        short[] bits = {0x3f80, (short) 0xbf80, 0x7f80, (short) 0xff80, 0x0001, 0x007f, 0x0080, 0x7fc0, 0x7f7f, 0x4049};
        float[] want = {1f, -1f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0x00010000),
                Float.intBitsToFloat(0x007f0000), Float.MIN_NORMAL, Float.NaN, Float.intBitsToFloat(0x7f7f0000), 3.140625f};
        try (var st = SafeTensors.open("bf16", seg(new SafeTensorsWriter().addBF16("b", bits, 2, 5).toBytes()))) {
            float[] f = st.floats("b");
            for (int i = 0; i < want.length; i++) {
                if (Float.isNaN(want[i])) assertTrue(Float.isNaN(f[i]));
                else assertEquals(want[i], f[i], "index " + i);
            }
            short[] h = st.halves("b");
            assertEquals(0x3c00, h[0]);
            assertEquals((short) 0x7c00, h[2]); // +inf
            assertEquals(0, h[4]); // bf16 subnormal underflows fp16 to +0
            assertEquals((short) 0x7c00, h[8]); // 3.39e38 overflows fp16
            assertTrue(Float.isNaN(Float.float16ToFloat(h[7])));
            assertEquals(3.140625f, Float.float16ToFloat(h[9]));
        }
        assertEquals((short) 0x3f80, SafeTensors.floatToBf16(1f));
        assertEquals((short) 0x4049, SafeTensors.floatToBf16(3.14159f));
        assertEquals((short) 0x3f80, SafeTensors.floatToBf16(Float.intBitsToFloat(0x3f808000))); // tie to even
        assertEquals((short) 0x3f82, SafeTensors.floatToBf16(Float.intBitsToFloat(0x3f818000))); // tie to even (up)
        assertTrue(Float.isNaN(SafeTensors.bf16ToFloat(SafeTensors.floatToBf16(Float.NaN))));
    }

    @Test
    void f32ToHalvesRoundsToNearestEven() {
        float[] f = {65504f, 65519f, 65520f, 1e-8f, 3e-8f, 0x1p-24f, 1.00048828125f, 1.00146484375f, Float.NaN, -0f, 1e9f};
        try (var st = SafeTensors.open("f32", seg(new SafeTensorsWriter().add("x", f, f.length).toBytes()))) {
            short[] h = st.halves("x");
            assertEquals(0x7bff, h[0]);
            assertEquals(0x7bff, h[1]);
            assertEquals(0x7c00, h[2]); // rounds to inf
            assertEquals(0, h[3]);
            assertEquals(1, h[4]); // nearest subnormal
            assertEquals(1, h[5]);
            assertEquals(0x3c00, h[6]); // tie -> even
            assertEquals(0x3c02, h[7]); // tie -> even (up)
            assertTrue(Float.isNaN(Float.float16ToFloat(h[8])));
            assertEquals((short) 0x8000, h[9]);
            assertEquals(0x7c00, h[10]);
            assertArrayEquals(f, st.floats("x"));
        }
    }

    @Test
    void integerTensors() {
        long[] l = {0, -1, Long.MAX_VALUE, 1L << 40, 49407};
        int[] i = {0, -1, Integer.MIN_VALUE, 123456789};
        byte[] b = new SafeTensorsWriter().add("l", l, 5).add("i", i, 2, 2).add("small", new long[]{1, 2, 3}, 3).toBytes();
        try (var st = SafeTensors.open("ints", seg(b))) {
            assertArrayEquals(l, st.longs("l"));
            assertArrayEquals(i, st.ints("i"));
            assertArrayEquals(new long[]{0, -1, Integer.MIN_VALUE, 123456789}, st.longs("i"));
            assertArrayEquals(new int[]{1, 2, 3}, st.ints("small"));
            assertArrayEquals(new float[]{0, -1, Long.MAX_VALUE, 1L << 40, 49407}, st.floats("l"));
            assertArrayEquals(new float[]{0, -1, Integer.MIN_VALUE, 123456789}, st.floats("i"));
            var e = assertThrows(LoaderException.class, () -> st.ints("l"));
            assertTrue(e.getMessage().contains("does not fit in int") && e.getMessage().contains("'l'") || e.getMessage().contains("l:"), e.getMessage());
            assertThrows(LoaderException.class, () -> st.longs("nope"));
        }
        byte[] f = new SafeTensorsWriter().add("f", new float[]{1}, 1).toBytes();
        try (var st = SafeTensors.open("f", seg(f))) {
            assertTrue(assertThrows(LoaderException.class, () -> st.longs("f")).getMessage().contains("not an integer type"));
        }
    }

    // ---- the writer

    @Test
    void writerRoundTrip() throws IOException {
        Path p = tmp.resolve("w.safetensors");
        float[] a = {1.5f, -2, 3, Float.MAX_VALUE, Float.MIN_VALUE, -0f};
        new SafeTensorsWriter().metadata("format", "pt").metadata("note", "é ünïcode")
                .add("z.a", a, 2, 3)
                .addF16("b", new short[]{0x3c00, 0x4000}, 2)
                .add("c", new long[]{7}, 1)
                .add("scalar", new float[]{42}) // shape []
                .add("empty", new float[0], 0, 3)
                .add("stream", TensorType.F16, new long[]{3, 1000}, (first, out, n) -> {
                    for (int i = 0; i < n; i++) out[i] = (first + i) % 7;
                })
                .sorted().write(p);
        byte[] bytes = Files.readAllBytes(p);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, n % 8, "header padded to 8");
        assertEquals('{', bytes[8]);
        assertTrue(new String(bytes, 8, (int) n, StandardCharsets.UTF_8).stripTrailing().endsWith("}"));
        try (var st = SafeTensors.open(p)) {
            assertEquals(List.of("b", "c", "empty", "scalar", "stream", "z.a"), new ArrayList<>(st.names()));
            assertEquals(Map.of("format", "pt", "note", "é ünïcode"), st.metadata());
            assertArrayEquals(a, st.floats("z.a"));
            assertArrayEquals(new long[]{2, 3}, st.info("z.a").shape());
            assertArrayEquals(new float[]{1, 2}, st.floats("b"));
            assertArrayEquals(new long[]{7}, st.longs("c"));
            assertArrayEquals(new float[]{42}, st.floats("scalar"));
            assertEquals(0, st.info("scalar").shape().length);
            assertEquals(0, st.floats("empty").length);
            float[] s = st.floats("stream");
            for (int i = 0; i < s.length; i++) assertEquals(i % 7, s[i]);
            assertEquals(TensorType.F16, st.info("stream").type());
        }
        // given order (not sorted)
        byte[] b = new SafeTensorsWriter().add("z", new float[]{1}, 1).add("a", new float[]{2}, 1).toBytes();
        try (var st = SafeTensors.open("order", seg(b))) {
            assertEquals(List.of("z", "a"), new ArrayList<>(st.names()));
        }
        assertThrows(IllegalArgumentException.class, () -> new SafeTensorsWriter().add("x", new float[3], 2));
        assertThrows(IllegalArgumentException.class, () -> new SafeTensorsWriter().add("x", new float[1], 1).add("x", new float[1], 1));
    }

    /** A sparse file of 4 GiB + a bit: a tensor whose bytes start beyond 2 GiB and one too big for a Java array. */
    @Test
    void filesBeyond2GiB() throws IOException {
        Path p = tmp.resolve("big.safetensors");
        long big = (1L << 31) + 8; // F16 elements: 4 GiB + 16 bytes, more than Integer.MAX_VALUE
        var w = new SafeTensorsWriter().addBytes("big", "F16", new long[]{big}, (o, c) -> { throw new AssertionError(); })
                .addBytes("tail", "F32", new long[]{4}, (o, c) -> { throw new AssertionError(); });
        byte[] header = w.header();
        long tailAt = header.length + big * 2;
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.SPARSE)) {
            ch.write(ByteBuffer.wrap(header), 0);
            ByteBuffer last = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putShort(Float.floatToFloat16(2.5f)).putShort((short) 0x3c00).flip();
            ch.write(last, tailAt - 4);
            ByteBuffer tail = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putFloat(1).putFloat(2).putFloat(3).putFloat(-4).flip();
            ch.write(tail, tailAt);
        }
        try {
            assertEquals(tailAt + 16, Files.size(p));
            try (var st = SafeTensors.open(p)) {
                assertArrayEquals(new float[]{1, 2, 3, -4}, st.floats("tail"));
                assertArrayEquals(new short[]{Float.floatToFloat16(1), Float.floatToFloat16(2), Float.floatToFloat16(3), Float.floatToFloat16(-4)},
                        st.halves("tail"));
                assertEquals(big, st.info("big").elements());
                var e = assertThrows(LoaderException.class, () -> st.floats("big"));
                assertTrue(e.getMessage().contains("too many for one Java array") && e.getMessage().contains("big"), e.getMessage());
                MemorySegment s = st.segment("big");
                assertEquals(big * 2, s.byteSize());
                assertEquals(2.5f, Float.float16ToFloat(s.get(SafeTensors.I16, big * 2 - 4)));
                assertEquals(1f, Float.float16ToFloat(s.get(SafeTensors.I16, big * 2 - 2)));
                assertEquals(0, s.get(SafeTensors.I16, 3L << 30));
            }
        } finally {
            Files.deleteIfExists(p);
        }
    }

    @Test
    void closedFileGivesAClearError() {
        Path p = tmp.resolve("c.safetensors");
        new SafeTensorsWriter().add("x", new float[]{1}, 1).write(p);
        var st = SafeTensors.open(p);
        MemorySegment seg = st.segment("x");
        st.close();
        st.close(); // idempotent
        for (var call : List.<Runnable>of(() -> st.floats("x"), () -> st.names(), () -> st.info("x"), () -> st.halves("x"), () -> st.segment("x"))) {
            var e = assertThrows(LoaderException.class, call::run);
            assertTrue(e.getMessage().contains("after close") && e.getMessage().contains("c.safetensors"), e.getMessage());
        }
        assertThrows(IllegalStateException.class, () -> seg.get(SafeTensors.F32, 0)); // FFM refuses, no crash
    }

    @Test
    void missingFile() {
        var e = assertThrows(LoaderException.class, () -> SafeTensors.open(tmp.resolve("nope.safetensors")));
        assertTrue(e.getMessage().contains("nope.safetensors") && e.getMessage().contains("not found"), e.getMessage());
        e = assertThrows(LoaderException.class, () -> SafeTensors.open(tmp));
        assertTrue(e.getMessage().contains(tmp.toString()), e.getMessage());
        Path empty = tmp.resolve("empty.safetensors");
        new SafeTensorsWriter().write(empty);
        try (var st = SafeTensors.open(empty)) {
            assertTrue(st.names().isEmpty());
        }
        try {
            Files.write(empty, new byte[0]);
        } catch (IOException x) {
            throw new AssertionError(x);
        }
        e = assertThrows(LoaderException.class, () -> SafeTensors.open(empty));
        assertTrue(e.getMessage().contains("empty.safetensors") && e.getMessage().contains("0 bytes"), e.getMessage());
    }

    // ---- hostile input, one by one

    static MemorySegment seg(byte[] b) {
        return MemorySegment.ofArray(b);
    }

    /** Length prefix + header (unpadded) + data bytes of zeros. */
    static byte[] file(String header, int dataBytes) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).put(h).array();
    }

    static void rejected(byte[] bytes, String... expected) {
        var e = assertThrows(LoaderException.class, () -> SafeTensors.open("hostile.safetensors", seg(bytes)).close());
        assertTrue(e.getMessage().startsWith("hostile.safetensors: "), e.getMessage());
        for (String s : expected) assertTrue(e.getMessage().contains(s), "'" + s + "' not in: " + e.getMessage());
    }

    static String t(String name, String dtype, String shape, long begin, long end) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + begin + "," + end + "]}";
    }

    @Test
    void hostileInputs() {
        rejected(new byte[0], "0 bytes", "shorter than the 8-byte");
        rejected(new byte[7], "7 bytes");
        rejected(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0).array(), "header length 0");
        rejected(ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putLong(-1).array(), "header length 18446744073709551615", "absurd");
        rejected(ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putLong(200_000_000).array(), "absurd");
        rejected(ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putLong(100).array(), "runs past the end");
        rejected(file("[1,2]", 0), "does not start with '{'");
        rejected(file("{\"a\":", 0), "not valid JSON");
        rejected(file("{} {}", 0), "not valid JSON");
        rejected(file("{\"a\":1}", 0), "'a'", "not an object");
        rejected(file("{\"__metadata__\":{\"k\":1}}", 0), "__metadata__", "'k'", "not a string");
        rejected(file("{\"__metadata__\":[]}", 0), "__metadata__");
        rejected(file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "'w'", "missing dtype");
        rejected(file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "'w'", "missing shape");
        rejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "'w'", "missing data_offsets");
        rejected(file("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "'w'", "dtype is not a string");
        rejected(file("{" + t("w", "Q4_K", "[1]", 0, 4) + "}", 4), "'w'", "unknown dtype 'Q4_K'");
        rejected(file("{" + t("w", "F32", "[-1]", 0, 4) + "}", 4), "'w'", "shape[0]", "negative");
        rejected(file("{" + t("w", "F32", "[1.5]", 0, 4) + "}", 4), "'w'", "shape[0]", "not an integer");
        rejected(file("{" + t("w", "F32", "[\"2\"]", 0, 4) + "}", 4), "shape[0]", "not an integer");
        rejected(file("{" + t("w", "F32", "[99999999999999999999]", 0, 4) + "}", 4), "shape[0]", "not an integer");
        rejected(file("{" + t("w", "F32", "3", 0, 4) + "}", 4), "'w'", "shape is not an array");
        rejected(file("{" + t("w", "F32", "[4294967296,4294967296]", 0, 4) + "}", 4), "'w'", "more elements than fit");
        rejected(file("{" + t("w", "F64", "[4611686018427387904]", 0, 4) + "}", 4), "'w'", "too large");
        rejected(file("{" + t("w", "F32", "[2]", 0, 4) + "}", 4), "'w'", "needs 8 bytes", "hold 4");
        rejected(file("{" + t("w", "F32", "[1]", 4, 0) + "}", 4), "'w'", "end 0 < begin 4");
        rejected(file("{" + t("w", "F32", "[1]", -4, 0) + "}", 4), "'w'", "data_offsets[0]", "negative");
        rejected(file("{" + t("w", "F32", "[1]", 0, 4) + "}", 2), "'w'", "run past the byte buffer");
        rejected(file("{" + t("w", "F32", "[1]", 1L << 40, (1L << 40) + 4) + "}", 4), "run past");
        rejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4), "'w'", "[begin, end]");
        rejected(file("{" + t("a", "F32", "[2]", 0, 8) + "," + t("b", "F32", "[2]", 4, 12) + "}", 12), "'a'", "'b'", "overlap");
        rejected(file("{" + t("a", "F32", "[1]", 0, 4) + "," + t("b", "F32", "[1]", 8, 12) + "}", 12), "hole at [4, 8)", "'b'");
        rejected(file("{" + t("a", "F32", "[1]", 0, 4) + "}", 8), "trailing bytes");
        rejected(file("{" + t("a", "F32", "[1]", 0, 4) + "," + t("a", "F32", "[1]", 4, 8) + "}", 8), "not valid JSON", "Duplicate");
        rejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,NaN]}}", 4), "not valid JSON");
        byte[] invalidUtf8 = file("{\"\u00ff\":{}}", 0);
        invalidUtf8[11] = (byte) 0xff;
        rejected(invalidUtf8, "hostile");
        // two tensors sharing the same bytes (zero-size ones may share an offset)
        try (var st = SafeTensors.open("ok", seg(file("{" + t("a", "F32", "[0]", 0, 0) + "," + t("b", "F32", "[1]", 0, 4) + "," + t("c", "F32", "[0,5]", 4, 4) + "}", 4)))) {
            assertEquals(3, st.names().size());
        }
        try (var st = SafeTensors.open("empty", seg(file("{}", 0)))) {
            assertTrue(st.names().isEmpty());
        }
        try (var st = SafeTensors.open("padded", seg(file("{}      ", 0)))) {
            assertTrue(st.names().isEmpty());
        }
    }

    @Test
    void unsupportedDtypesAreListedButNotRead() {
        byte[] b = new SafeTensorsWriter()
                .addRaw("mask", "BOOL", new long[]{4}, new byte[]{1, 0, 1, 1})
                .addRaw("q", "F8_E4M3", new long[]{2}, new byte[]{0x38, 0x40})
                .add("ok", new float[]{1}, 1).toBytes();
        try (var st = SafeTensors.open("odd.safetensors", seg(b))) {
            assertEquals(3, st.names().size());
            assertEquals("BOOL", st.dtype("mask"));
            assertEquals(4, st.segment("mask").byteSize());
            for (String name : List.of("mask", "q")) {
                for (Runnable r : List.<Runnable>of(() -> st.floats(name), () -> st.halves(name), () -> st.info(name))) {
                    var e = assertThrows(LoaderException.class, r::run);
                    assertTrue(e.getMessage().contains("odd.safetensors") && e.getMessage().contains("'" + name + "'")
                            && e.getMessage().contains(st.dtype(name)), e.getMessage());
                }
            }
            assertArrayEquals(new float[]{1}, st.floats("ok"));
            var e = assertThrows(LoaderException.class, () -> st.floats("missing"));
            assertTrue(e.getMessage().contains("no tensor named 'missing'"), e.getMessage());
        }
    }
}
