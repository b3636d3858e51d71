package jdiffusion.loader;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import jdiffusion.loader.onnx.Onnx.ModelProto;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Hostile-input test: seeded mutants of unet/model.onnx (bit flips anywhere, flips of protobuf tags and length
 * prefixes, truncations, rewritten length prefixes and varint values, cut or doubled spans) and of the tokenizer's
 * vocab.json / merges.txt. Each must load or throw LoaderException (never another exception, an OOM or a hang),
 * within 2 s; what loads must read every tensor (or encode prompts) the same way.
 */
class OnnxMutationTest {
    static final Path TINY = Path.of(System.getProperty("tiny.sd", "engine/tiny-sd"));
    static final Path ONNX = TINY.resolve("unet/model.onnx");
    static final long SEED = 20240611L;
    static byte[] model, vocab, merges, config, specials;
    /** Offsets and widths ({pos, width}) of protobuf tags, length prefixes and varint values in the model. */
    static final List<int[]> tags = new ArrayList<>(), lengths = new ArrayList<>(), varints = new ArrayList<>();

    @BeforeAll
    static void read() throws IOException {
        model = Files.readAllBytes(ONNX);
        Path tok = TINY.resolve("tokenizer");
        vocab = Files.readAllBytes(tok.resolve("vocab.json"));
        merges = Files.readAllBytes(tok.resolve("merges.txt"));
        config = Files.readAllBytes(tok.resolve("tokenizer_config.json"));
        specials = Files.readAllBytes(tok.resolve("special_tokens_map.json"));
        walk(model, 0, model.length, ModelProto.getDescriptor(), 0);
    }

    /** Records the wire structure of a message, descending into sub-messages the schema knows. */
    static void walk(byte[] b, int pos, int end, Descriptor d, int depth) {
        while (pos < end) {
            long[] tag = varint(b, pos, end);
            if (tag == null) return;
            tags.add(new int[] {pos, (int) tag[1]});
            pos += (int) tag[1];
            int field = (int) (tag[0] >>> 3);
            switch ((int) (tag[0] & 7)) {
                case 0 -> {
                    long[] v = varint(b, pos, end);
                    if (v == null) return;
                    varints.add(new int[] {pos, (int) v[1]});
                    pos += (int) v[1];
                }
                case 1 -> pos += 8;
                case 5 -> pos += 4;
                case 2 -> {
                    long[] len = varint(b, pos, end);
                    if (len == null || len[0] < 0 || len[0] > end - pos - len[1]) return;
                    lengths.add(new int[] {pos, (int) len[1]});
                    pos += (int) len[1];
                    FieldDescriptor f = d.findFieldByNumber(field);
                    if (f != null && f.getJavaType() == FieldDescriptor.JavaType.MESSAGE && depth < 10)
                        walk(b, pos, pos + (int) len[0], f.getMessageType(), depth + 1);
                    pos += (int) len[0];
                }
                default -> {
                    return;
                }
            }
        }
    }

    /** {value, width} of the varint at pos, or null. */
    static long[] varint(byte[] b, int pos, int end) {
        long v = 0;
        for (int i = 0; i < 10 && pos + i < end; i++) {
            v |= (long) (b[pos + i] & 0x7f) << (7 * i);
            if ((b[pos + i] & 0x80) == 0) return new long[] {v, i + 1};
        }
        return null;
    }

    static byte[] encodeVarint(long v) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        while ((v & ~0x7fL) != 0) {
            out.write((int) (v & 0x7f) | 0x80);
            v >>>= 7;
        }
        out.write((int) v);
        return out.toByteArray();
    }

    static byte[] splice(byte[] b, int from, int to, byte[] insert) {
        byte[] out = new byte[b.length - (to - from) + insert.length];
        System.arraycopy(b, 0, out, 0, from);
        System.arraycopy(insert, 0, out, from, insert.length);
        System.arraycopy(b, to, out, from + insert.length, b.length - to);
        return out;
    }

    static long evilValue(Random r) {
        return switch (r.nextInt(9)) {
            case 0 -> 0;
            case 1 -> -1;
            case 2 -> Long.MAX_VALUE;
            case 3 -> Integer.MAX_VALUE;
            case 4 -> 1L << 31;
            case 5 -> 1L << 40;
            case 6 -> r.nextInt(64);
            case 7 -> r.nextLong();
            default -> r.nextInt(1 << 24);
        };
    }

    /** One ONNX mutant of kind k. */
    static byte[] onnxMutant(int k, Random r) {
        byte[] b;
        switch (k) {
            case 0 -> { // random bit flips anywhere (mostly weights)
                b = model.clone();
                for (int i = 0, n = 1 + r.nextInt(8); i < n; i++) b[r.nextInt(b.length)] ^= (byte) (1 << r.nextInt(8));
            }
            case 1 -> { // a protobuf tag byte replaced
                b = model.clone();
                int[] t = tags.get(r.nextInt(tags.size()));
                b[t[0] + r.nextInt(t[1])] = (byte) r.nextInt(256);
            }
            case 2 -> { // a length prefix byte replaced
                b = model.clone();
                int[] t = lengths.get(r.nextInt(lengths.size()));
                b[t[0] + r.nextInt(t[1])] = (byte) r.nextInt(256);
            }
            case 3 -> { // truncation: anywhere, or right at a structural boundary
                int at = r.nextBoolean() ? r.nextInt(model.length) : tags.get(r.nextInt(tags.size()))[0] + r.nextInt(3);
                b = Arrays.copyOf(model, Math.min(at, model.length - 1));
            }
            case 4 -> { // a length prefix rewritten to another value
                int[] t = lengths.get(r.nextInt(lengths.size()));
                long old = varint(model, t[0], model.length)[0];
                long v = r.nextBoolean() ? old + r.nextInt(33) - 16 : evilValue(r);
                b = splice(model, t[0], t[0] + t[1], encodeVarint(v));
            }
            case 5 -> { // a varint value (dims, data_type, data_location, attribute ints, ir_version...) rewritten
                int[] t = varints.get(r.nextInt(varints.size()));
                b = splice(model, t[0], t[0] + t[1], encodeVarint(evilValue(r)));
            }
            default -> { // a span cut out or doubled, starting at a tag
                int from = tags.get(r.nextInt(tags.size()))[0];
                int to = Math.min(model.length, from + 1 + r.nextInt(r.nextBoolean() ? 16 : 4096));
                b = r.nextBoolean() ? splice(model, from, to, new byte[0]) : splice(model, from, from, Arrays.copyOfRange(model, from, to));
            }
        }
        return b;
    }

    record Outcome(int loaded, int rejected, List<String> failures) {}

    static Outcome run(String what, int count, long seed, java.util.function.Function<Random, Supplier<Object>> mutant) {
        Random r = new Random(seed);
        int loaded = 0, rejected = 0;
        List<String> failures = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            Supplier<Object> task = mutant.apply(r);
            long t0 = System.nanoTime();
            try {
                task.get();
                loaded++;
            } catch (LoaderException e) {
                rejected++;
                if (e.getMessage() == null || e.getMessage().isBlank()) failures.add(what + " #" + i + ": empty message");
            } catch (Throwable e) {
                failures.add(what + " #" + i + ": " + e);
            }
            double s = (System.nanoTime() - t0) / 1e9;
            if (s > 2) failures.add(what + " #" + i + ": took " + s + " s");
        }
        return new Outcome(loaded, rejected, failures);
    }

    @Test
    void onnxMutantsLoadOrThrowLoaderException() {
        assertTrue(tags.size() > 10_000 && lengths.size() > 5_000 && varints.size() > 1_000,
                "walked " + tags.size() + " tags, " + lengths.size() + " lengths, " + varints.size() + " varints");
        int perKind = Integer.getInteger("jdiffusion.mutants.onnx", 3_150) / 7;
        List<String> failures = new ArrayList<>();
        int loaded = 0, rejected = 0;
        for (int k = 0; k < 7; k++) {
            int kind = k;
            Outcome o = assertTimeoutPreemptively(Duration.ofSeconds(120), () -> run("onnx kind " + kind, perKind, SEED + kind, r -> {
                byte[] b = onnxMutant(kind, r);
                return () -> {
                    try (OnnxModel m = OnnxModel.parse(ONNX, b)) {
                        double sum = 0;
                        for (String n : m.names()) {
                            m.info(n);
                            for (float f : m.floats(n)) sum += f;
                        }
                        return sum;
                    }
                };
            }));
            failures.addAll(o.failures);
            loaded += o.loaded;
            rejected += o.rejected;
        }
        System.out.printf("onnx mutants: %d loaded, %d rejected with LoaderException%n", loaded, rejected);
        assertTrue(failures.isEmpty(), () -> failures.size() + " bad outcomes, first: " + failures.subList(0, Math.min(10, failures.size())));
        assertEquals(7 * perKind, loaded + rejected);
        assertTrue(rejected > perKind, "structural mutants should mostly be rejected");
    }

    static final String[] PROMPTS = {"a photo of an astronaut riding a horse on mars", "東京の夜景 😀 &amp; naïve", ""};

    static byte[] textMutant(byte[] src, Random r) {
        byte[] b;
        switch (r.nextInt(5)) {
            case 0 -> {
                b = src.clone();
                for (int i = 0, n = 1 + r.nextInt(6); i < n; i++) b[r.nextInt(b.length)] = (byte) r.nextInt(256);
            }
            case 1 -> { // a syntax character (quote, brace, colon, comma, space, newline, digit) replaced
                b = src.clone();
                for (int tries = 0; tries < 1000; tries++) {
                    int p = r.nextInt(b.length);
                    if ("\"{}:, \n0123456789".indexOf(b[p]) >= 0) {
                        b[p] = (byte) "\"{}:, \n0123456789-x\\".charAt(r.nextInt(20));
                        break;
                    }
                }
            }
            case 2 -> b = Arrays.copyOf(src, r.nextInt(src.length));
            case 3 -> {
                int from = r.nextInt(src.length), to = Math.min(src.length, from + 1 + r.nextInt(64));
                b = r.nextBoolean() ? splice(src, from, to, new byte[0]) : splice(src, from, from, Arrays.copyOfRange(src, from, to));
            }
            default -> { // invalid UTF-8 or a stray multi-byte char
                int p = r.nextInt(src.length);
                b = splice(src, p, p, r.nextBoolean() ? new byte[] {(byte) 0xff, (byte) 0xc3} : "東😀".getBytes());
            }
        }
        return b;
    }

    @Test
    void tokenizerMutantsLoadOrThrowLoaderException() {
        int count = Integer.getInteger("jdiffusion.mutants.tokenizer", 150);
        List<String> failures = new ArrayList<>();
        int loaded = 0, rejected = 0;
        for (int which = 0; which < 2; which++) {
            boolean vocabMutant = which == 0;
            Outcome o = assertTimeoutPreemptively(Duration.ofSeconds(120), () -> run(vocabMutant ? "vocab.json" : "merges.txt",
                    count, SEED + 100 + (vocabMutant ? 0 : 1), r -> {
                        byte[] v = vocabMutant ? textMutant(vocab, r) : vocab;
                        byte[] m = vocabMutant ? merges : textMutant(merges, r);
                        return () -> {
                            ClipTokenizer t = ClipTokenizer.parse("mutant", v, m, config, specials);
                            int n = 0;
                            for (String p : PROMPTS) {
                                int[] ids = t.encodePadded(p, 77);
                                n += ids.length + t.decode(ids).length();
                            }
                            return n;
                        };
                    }));
            failures.addAll(o.failures);
            loaded += o.loaded;
            rejected += o.rejected;
        }
        System.out.printf("tokenizer mutants: %d loaded, %d rejected with LoaderException%n", loaded, rejected);
        assertTrue(failures.isEmpty(), () -> failures.size() + " bad outcomes, first: " + failures.subList(0, Math.min(10, failures.size())));
        assertEquals(2 * count, loaded + rejected);
    }
}
