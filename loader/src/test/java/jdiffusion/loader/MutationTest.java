package jdiffusion.loader;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Fixed-seed mutants of the fixture's safetensors files and config JSON. Each must either load (and then every
 * tensor reads or throws LoaderException) or throw LoaderException; anything else, an OutOfMemoryError or more than
 * 2 s for one mutant fails. Mutation happens in memory (SafeTensors.open(source, MemorySegment)).
 */
class MutationTest {
    static final Path TINY = SafeTensorsTest.TINY;
    static final long SEED = Long.getLong("mutation.seed", 0x5afe7e45L);
    static final int SAFETENSORS_MUTANTS = Integer.getInteger("mutation.safetensors", 8000);
    static final int CONFIG_MUTANTS = Integer.getInteger("mutation.configs", 6000);

    record Base(String name, byte[] bytes, int headerEnd) {}

    private final ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "mutant");
        t.setDaemon(true);
        return t;
    });
    private int loaded, rejected;

    @Test
    void safetensorsMutants() throws IOException {
        List<Base> small = new ArrayList<>(), large = new ArrayList<>();
        for (String f : List.of("reference/text_io.safetensors", "reference/unet_io.safetensors", "reference/vae_io.safetensors"))
            small.add(base(f));
        for (String f : List.of("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors", "reference/pipeline_euler.safetensors"))
            large.add(base(f));
        Random r = new Random(SEED);
        for (int i = 0; i < SAFETENSORS_MUTANTS; i++) {
            Base b = r.nextInt(8) == 0 ? large.get(r.nextInt(large.size())) : small.get(r.nextInt(small.size()));
            mutateSafetensors(i, b, r);
        }
        System.out.printf("safetensors mutants: %d loaded, %d rejected%n", loaded, rejected);
        assertEquals(SAFETENSORS_MUTANTS, loaded + rejected);
        assertTrue(rejected > SAFETENSORS_MUTANTS / 4 && loaded > SAFETENSORS_MUTANTS / 10, loaded + " / " + rejected);
    }

    @Test
    void configMutants() throws IOException {
        record Cfg(String file, Consumer<byte[]> load) {}
        List<Cfg> cfgs = List.of(
                new Cfg("unet/config.json", b -> exercise(UNetConfig.of(Json.parse(b, "unet")))),
                new Cfg("vae/config.json", b -> exerciseVae(VaeConfig.of(Json.parse(b, "vae")))),
                new Cfg("text_encoder/config.json", b -> ClipTextConfig.of(Json.parse(b, "te")).headDim()),
                new Cfg("scheduler/scheduler_config.json", b -> SchedulerConfig.of(Json.parse(b, "s"))),
                new Cfg("scheduler/scheduler_config_ddim.json", b -> SchedulerConfig.of(Json.parse(b, "s"))),
                new Cfg("scheduler/scheduler_config_euler.json", b -> SchedulerConfig.of(Json.parse(b, "s"))),
                new Cfg("model_index.json", b -> ModelIndex.of(Json.parse(b, "mi"))));
        List<byte[]> originals = new ArrayList<>();
        for (Cfg c : cfgs) originals.add(Files.readAllBytes(TINY.resolve(c.file)));
        Random r = new Random(SEED + 1);
        ObjectMapper json = new ObjectMapper();
        for (int i = 0; i < CONFIG_MUTANTS; i++) {
            int which = r.nextInt(cfgs.size());
            byte[] m = mutateJson(originals.get(which), r, json);
            Cfg c = cfgs.get(which);
            run("config mutant " + i + " of " + c.file + ": " + preview(m), () -> c.load.accept(m));
        }
        System.out.printf("config mutants: %d loaded, %d rejected%n", loaded, rejected);
        assertEquals(CONFIG_MUTANTS, loaded + rejected);
        assertTrue(rejected > CONFIG_MUTANTS / 4 && loaded > CONFIG_MUTANTS / 20, loaded + " / " + rejected);
    }

    // ---- safetensors

    static Base base(String file) throws IOException {
        byte[] b = Files.readAllBytes(TINY.resolve(file));
        long n = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong();
        return new Base(file, b, (int) (8 + n));
    }

    private static final byte[] JSON_CHARS = "{}[]\":,-0123456789.eE \\tnul".getBytes(StandardCharsets.US_ASCII);

    private void mutateSafetensors(int i, Base b, Random r) {
        byte[] bytes = b.bytes;
        String what = "safetensors mutant " + i + " of " + b.name;
        switch (r.nextInt(8)) {
            case 0, 1 -> { // flip or overwrite 1-4 header bytes (restored afterwards)
                int k = 1 + r.nextInt(4);
                int[] at = new int[k];
                byte[] old = new byte[k];
                for (int j = 0; j < k; j++) {
                    at[j] = 8 + r.nextInt(b.headerEnd - 8);
                    old[j] = bytes[at[j]];
                    bytes[at[j]] = r.nextBoolean() ? (byte) (old[j] ^ (1 << r.nextInt(8))) : JSON_CHARS[r.nextInt(JSON_CHARS.length)];
                }
                try {
                    check(what + " header bytes", MemorySegment.ofArray(bytes));
                } finally {
                    for (int j = k - 1; j >= 0; j--) bytes[at[j]] = old[j];
                }
            }
            case 2 -> { // the length prefix
                long n = b.headerEnd - 8, size = bytes.length;
                long[] values = {0, 1, 2, 7, n - 1, n + 1, n + 8, n - 8, size, size - 8, size + 1, -1, Long.MAX_VALUE,
                        Long.MIN_VALUE, (1L << 32) + n, 100_000_001, r.nextLong(), r.nextInt(1 << 20)};
                long v = values[r.nextInt(values.length)];
                ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
                bb.putLong(0, v);
                try {
                    check(what + " length prefix " + v, MemorySegment.ofArray(bytes));
                } finally {
                    bb.putLong(0, n);
                }
            }
            case 3 -> { // truncation anywhere
                long len = r.nextBoolean() ? r.nextInt(b.headerEnd + 16) : r.nextInt(bytes.length);
                check(what + " truncated to " + len, MemorySegment.ofArray(bytes).asSlice(0, len));
            }
            case 4 -> { // data region bytes: loads, values change
                int k = 1 + r.nextInt(16);
                int[] at = new int[k];
                byte[] old = new byte[k];
                for (int j = 0; j < k; j++) {
                    at[j] = b.headerEnd + r.nextInt(bytes.length - b.headerEnd);
                    old[j] = bytes[at[j]];
                    bytes[at[j]] = (byte) r.nextInt(256);
                }
                try {
                    check(what + " data bytes", MemorySegment.ofArray(bytes));
                } finally {
                    for (int j = k - 1; j >= 0; j--) bytes[at[j]] = old[j];
                }
            }
            default -> { // header text edits with a consistent length prefix
                String h = new String(bytes, 8, b.headerEnd - 8, StandardCharsets.UTF_8);
                String m = mutateHeaderText(h, r);
                byte[] mh = m.getBytes(StandardCharsets.UTF_8);
                int extra = r.nextInt(6) == 0 ? r.nextInt(9) - 4 : 0; // sometimes lose or gain data bytes
                int dataLen = Math.max(0, bytes.length - b.headerEnd + extra);
                byte[] out = new byte[8 + mh.length + dataLen];
                ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).putLong(mh.length);
                System.arraycopy(mh, 0, out, 8, mh.length);
                System.arraycopy(bytes, b.headerEnd, out, 8 + mh.length, Math.min(dataLen, bytes.length - b.headerEnd));
                check(what + " header text", MemorySegment.ofArray(out));
            }
        }
    }

    static String mutateHeaderText(String h, Random r) {
        String[] dtypes = {"F32", "F16", "BF16", "I64", "I32", "BOOL", "F8_E4M3", "F64", "U8", "Q4", "", "f32"};
        switch (r.nextInt(7)) {
            case 0 -> { // dtype swap
                String[] from = {"\"F32\"", "\"I64\""};
                String f = from[r.nextInt(from.length)];
                int at = nth(h, f, r);
                return at < 0 ? h : h.substring(0, at) + "\"" + dtypes[r.nextInt(dtypes.length)] + "\"" + h.substring(at + f.length());
            }
            case 1 -> { // change one number
                int at = randomDigit(h, r);
                if (at < 0) return h;
                int end = at;
                while (end < h.length() && Character.isDigit(h.charAt(end))) end++;
                String[] nums = {"0", "1", "-1", "4294967296", "9223372036854775807", "9223372036854775808", "1.5", "1e3",
                        "\"3\"", "null", "[]", String.valueOf(r.nextInt(100000))};
                return h.substring(0, at) + nums[r.nextInt(nums.length)] + h.substring(end);
            }
            case 2 -> { // delete a range
                int a = r.nextInt(h.length()), len = 1 + r.nextInt(Math.min(64, h.length() - a));
                return h.substring(0, a) + h.substring(a + len);
            }
            case 3 -> { // duplicate a range
                int a = r.nextInt(h.length()), len = 1 + r.nextInt(Math.min(200, h.length() - a));
                return h.substring(0, a + len) + h.substring(a, a + len) + h.substring(a + len);
            }
            case 4 -> { // rename or drop a key of a tensor entry
                String[] keys = {"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\""};
                String k = keys[r.nextInt(keys.length)];
                int at = nth(h, k, r);
                return at < 0 ? h : h.substring(0, at) + "\"x" + k.substring(1) + h.substring(at + k.length());
            }
            case 5 -> { // swap the offsets of one tensor with a shape
                int at = nth(h, "\"data_offsets\":[", r);
                if (at < 0) return h;
                int end = h.indexOf(']', at);
                return h.substring(0, at) + "\"data_offsets\":[" + r.nextInt(1000) + "," + r.nextInt(100000) + h.substring(end);
            }
            default -> { // deep nesting / odd values
                String[] junk = {"[".repeat(3000), "{\"a\":" .repeat(2000), "\"\\u0000\"", "\"\\ud800\"", "1e999999", "-0", "NaN"};
                int a = r.nextInt(h.length());
                return h.substring(0, a) + junk[r.nextInt(junk.length)] + h.substring(a);
            }
        }
    }

    static int nth(String s, String what, Random r) {
        List<Integer> at = new ArrayList<>();
        for (int i = s.indexOf(what); i >= 0 && at.size() < 4096; i = s.indexOf(what, i + 1)) at.add(i);
        return at.isEmpty() ? -1 : at.get(r.nextInt(at.size()));
    }

    static int randomDigit(String s, Random r) {
        for (int tries = 0; tries < 50; tries++) {
            int i = r.nextInt(s.length());
            if (Character.isDigit(s.charAt(i)) && (i == 0 || !Character.isDigit(s.charAt(i - 1)))) return i;
        }
        return -1;
    }

    private void check(String what, MemorySegment bytes) {
        run(what, () -> {
            try (SafeTensors st = SafeTensors.open(what, bytes)) {
                st.metadata();
                for (String name : st.names()) {
                    try {
                        st.segment(name);
                        TensorInfo info = st.info(name);
                        float[] f = st.floats(name);
                        if (f.length != info.elements()) throw new AssertionError(name + ": " + f.length + " floats for " + info);
                        if (info.elements() < 20_000) st.halves(name);
                        if (info.type() == TensorType.I64 || info.type() == TensorType.I32) st.longs(name);
                    } catch (LoaderException expected) {
                        // a tensor of an unsupported dtype, or too big for an array
                    }
                }
            }
        });
    }

    // ---- configs

    private static final String[] VALUES = {"\"x\"", "-1", "0", "1", "2", "1e308", "-1e308", "99999999999", "1.5", "true",
            "null", "[]", "[1, 2]", "[\"a\"]", "{}", "{\"a\": 1}", "[[1], [2]]", "\"\"", "-0.0", "2147483647", "-2147483648",
            "[0, 0]", "[32, 64]", "[-32, 64]", "[3, 5]", "[\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"]", "[true, false]",
            "\"CrossAttnUpBlock2D\"", "[8, 8]", "[2147483647, 1]", "Infinity", "-Infinity", "NaN"};

    static byte[] mutateJson(byte[] original, Random r, ObjectMapper json) {
        byte[] b = original.clone();
        switch (r.nextInt(6)) {
            case 0 -> { // byte flips
                for (int k = 1 + r.nextInt(4); k > 0; k--) {
                    int at = r.nextInt(b.length);
                    b[at] = r.nextBoolean() ? (byte) (b[at] ^ (1 << r.nextInt(8))) : JSON_CHARS[r.nextInt(JSON_CHARS.length)];
                }
                return b;
            }
            case 1 -> { // truncation
                return java.util.Arrays.copyOf(b, r.nextInt(b.length));
            }
            case 5 -> { // nesting bomb or garbage
                String s = new String(b, StandardCharsets.UTF_8);
                int at = r.nextInt(s.length());
                String[] junk = {"[".repeat(5000), "{\"a\":".repeat(3000), "\u0000", "\uFFFF", "//", "'"};
                return (s.substring(0, at) + junk[r.nextInt(junk.length)] + s.substring(at)).getBytes(StandardCharsets.UTF_8);
            }
            default -> { // type swaps / removals through the tree, 1-3 keys
                try {
                    ObjectNode root = (ObjectNode) json.readTree(b);
                    List<String> keys = new ArrayList<>();
                    root.fieldNames().forEachRemaining(keys::add);
                    for (int k = 1 + r.nextInt(3); k > 0; k--) {
                        String key = keys.get(r.nextInt(keys.size()));
                        if (r.nextInt(5) == 0) root.remove(key);
                        else root.set(key, json.readTree(VALUES[r.nextInt(VALUES.length)].replace("NaN", "\"NaN\"")
                                .replace("-Infinity", "-1e400").replace("Infinity", "1e400")));
                    }
                    return json.writeValueAsBytes(root);
                } catch (IOException e) {
                    throw new AssertionError(e);
                }
            }
        }
    }

    static void exercise(UNetConfig c) {
        for (int i = 0; i < c.blocks(); i++) {
            c.heads(i);
            c.headDim(i);
            c.upHeads(i);
            c.upHeadDim(i);
            c.upLayers(i);
            c.upTransformerLayers(i);
            c.upCrossAttentionDim(i);
        }
        c.midHeads();
        c.midHeadDim();
        c.timeEmbedDim();
        SingleFileCheckpoint.unetName(c, "input_blocks.1.1.proj_in.weight");
        SingleFileCheckpoint.unetName(c, "output_blocks.2.1.conv.weight");
    }

    static void exerciseVae(VaeConfig c) {
        for (int i = 0; i < c.blocks(); i++) c.upChannels(i);
        SingleFileCheckpoint.vaeName(c, "decoder.up.0.block.0.conv1.weight");
    }

    // ---- the harness

    private void run(String what, Runnable mutant) {
        Future<?> f = worker.submit(mutant);
        try {
            f.get(2, TimeUnit.SECONDS);
            loaded++;
        } catch (TimeoutException e) {
            f.cancel(true);
            fail(what + ": took more than 2 s");
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof LoaderException le) {
                if (le.getMessage() == null || le.getMessage().isBlank()) fail(what + ": LoaderException without a message");
                rejected++;
            } else {
                throw new AssertionError(what + ": threw " + cause, cause);
            }
        }
    }

    static String preview(byte[] b) {
        String s = new String(b, 0, Math.min(b.length, 300), StandardCharsets.UTF_8);
        return s.replace('\n', ' ');
    }
}
