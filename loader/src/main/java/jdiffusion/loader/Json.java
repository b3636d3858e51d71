package jdiffusion.loader;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads one JSON object (a diffusers/transformers config) and hands out typed values by snake_case key with defaults,
 * so every wrong type becomes a LoaderException naming the file and the key. Unknown keys are ignored; JSON null
 * counts as absent (diffusers writes null for "use the default").
 */
final class Json {
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();
    static final long MAX_CONFIG_BYTES = 64L << 20;

    final String source;
    final JsonNode root;

    Json(String source, JsonNode root) {
        this.source = source;
        this.root = root;
    }

    static Json read(Path file) {
        byte[] bytes;
        try {
            if (Files.size(file) > MAX_CONFIG_BYTES) throw new LoaderException(file + ": larger than " + MAX_CONFIG_BYTES + " bytes, not a config");
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new LoaderException(file + ": file not found");
        } catch (IOException e) {
            throw new LoaderException(file + ": cannot read: " + e, e);
        }
        return parse(bytes, file.toString());
    }

    static Json parse(byte[] bytes, String source) {
        JsonNode root;
        try {
            root = MAPPER.readTree(bytes);
        } catch (IOException | RuntimeException e) {
            throw new LoaderException(source + ": not valid JSON: " + SafeTensors.firstLine(e.getMessage()), e);
        }
        if (root == null || !root.isObject()) throw new LoaderException(source + ": not a JSON object");
        return new Json(source, root);
    }

    LoaderException fail(String key, String message) {
        return new LoaderException(source + ": key '" + key + "' " + message);
    }

    private JsonNode node(String key) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? null : n;
    }

    boolean has(String key) {
        return node(key) != null;
    }

    int integer(String key, int dflt) {
        JsonNode n = node(key);
        return n == null ? dflt : asInt(key, n);
    }

    Integer integerOrNull(String key) {
        JsonNode n = node(key);
        return n == null ? null : asInt(key, n);
    }

    private int asInt(String key, JsonNode n) {
        // diffusers configs sometimes hold 1.0 for an int; accept integral doubles
        if (n.isIntegralNumber() && n.canConvertToInt()) return n.intValue();
        if (n.isFloatingPointNumber() && n.doubleValue() == Math.rint(n.doubleValue())
                && Math.abs(n.doubleValue()) <= Integer.MAX_VALUE) return (int) n.doubleValue();
        throw fail(key, "must be an int, got " + describe(n));
    }

    double number(String key, double dflt) {
        JsonNode n = node(key);
        return n == null ? dflt : asDouble(key, n);
    }

    Double numberOrNull(String key) {
        JsonNode n = node(key);
        return n == null ? null : asDouble(key, n);
    }

    private double asDouble(String key, JsonNode n) {
        if (!n.isNumber()) throw fail(key, "must be a number, got " + describe(n));
        double v = n.doubleValue();
        if (!Double.isFinite(v)) throw fail(key, "must be a finite number, got " + n);
        return v;
    }

    /** A number that may also be +-Infinity (Python's json writes -Infinity for float("-inf")). */
    double numberOrInfinity(String key, double dflt) {
        JsonNode n = node(key);
        if (n == null) return dflt;
        if (!n.isNumber() || Double.isNaN(n.doubleValue())) throw fail(key, "must be a number, got " + describe(n));
        return n.doubleValue();
    }

    boolean bool(String key, boolean dflt) {
        JsonNode n = node(key);
        if (n == null) return dflt;
        if (!n.isBoolean()) throw fail(key, "must be true or false, got " + describe(n));
        return n.booleanValue();
    }

    String string(String key, String dflt) {
        JsonNode n = node(key);
        if (n == null) return dflt;
        if (!n.isTextual()) throw fail(key, "must be a string, got " + describe(n));
        return n.textValue();
    }

    List<String> strings(String key, List<String> dflt) {
        JsonNode n = node(key);
        if (n == null) return dflt;
        if (!n.isArray()) throw fail(key, "must be a list of strings, got " + describe(n));
        var out = new ArrayList<String>();
        for (JsonNode e : n) {
            if (!e.isTextual()) throw fail(key, "must be a list of strings, has " + describe(e));
            out.add(e.textValue());
        }
        return List.copyOf(out);
    }

    int[] ints(String key, int[] dflt) {
        JsonNode n = node(key);
        if (n == null) return dflt;
        if (!n.isArray()) throw fail(key, "must be a list of ints, got " + describe(n));
        int[] out = new int[n.size()];
        for (int i = 0; i < out.length; i++) out[i] = asInt(key + "[" + i + "]", n.get(i));
        return out;
    }

    double[] numbers(String key) {
        JsonNode n = node(key);
        if (n == null) return null;
        if (!n.isArray()) throw fail(key, "must be a list of numbers, got " + describe(n));
        double[] out = new double[n.size()];
        for (int i = 0; i < out.length; i++) out[i] = asDouble(key + "[" + i + "]", n.get(i));
        return out;
    }

    /** An int or a list of ints with one per block (diffusers' "int or tuple" arguments), expanded to blocks. */
    int[] intPerBlock(String key, int dflt, int blocks) {
        JsonNode n = node(key);
        if (n == null) return filled(dflt, blocks);
        if (n.isArray()) {
            int[] v = ints(key, null);
            if (v.length != blocks) throw fail(key, "has " + v.length + " entries but there are " + blocks + " blocks");
            return v;
        }
        return filled(asInt(key, n), blocks);
    }

    /** Like intPerBlock but null stays null. */
    int[] intPerBlockOrNull(String key, int blocks) {
        return has(key) ? intPerBlock(key, 0, blocks) : null;
    }

    boolean[] boolPerBlock(String key, boolean dflt, int blocks) {
        JsonNode n = node(key);
        boolean[] out = new boolean[blocks];
        if (n == null || n.isBoolean()) {
            java.util.Arrays.fill(out, n == null ? dflt : n.booleanValue());
            return out;
        }
        if (!n.isArray()) throw fail(key, "must be a bool or a list of bools, got " + describe(n));
        if (n.size() != blocks) throw fail(key, "has " + n.size() + " entries but there are " + blocks + " blocks");
        for (int i = 0; i < blocks; i++) {
            if (!n.get(i).isBoolean()) throw fail(key, "must be a list of bools, has " + describe(n.get(i)));
            out[i] = n.get(i).booleanValue();
        }
        return out;
    }

    static int[] filled(int v, int n) {
        int[] a = new int[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    static String describe(JsonNode n) {
        String s = n.toString();
        return n.getNodeType().name().toLowerCase() + " " + (s.length() > 40 ? s.substring(0, 40) + "..." : s);
    }

    /** Sanity bounds so a hostile config cannot make loops or allocations explode. */
    void range(String key, int v, int lo, int hi) {
        if (v < lo || v > hi) throw fail(key, "is " + v + ", outside the sane range " + lo + ".." + hi);
    }

    void range(String key, int[] v, int lo, int hi) {
        for (int i = 0; i < v.length; i++) range(key + "[" + i + "]", v[i], lo, hi);
    }
}
