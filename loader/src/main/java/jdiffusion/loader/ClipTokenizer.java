package jdiffusion.loader;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * CLIP's byte-level BPE tokenizer, as the Hugging Face CLIPTokenizer runs it (the tokenizers backend; no ftfy):
 * NFC, every whitespace run to one space, lowercase; special tokens kept whole; the CLIP pre-tokenization regex;
 * UTF-8 bytes mapped to printable characters (GPT-2's bytes-to-unicode table); BPE over the merges ranks with "</w>"
 * marking the end of a word. Unlike OpenAI's reference CLIP it does not html-unescape ("&amp;" stays 3 tokens).
 * Knobs: -Djdiffusion.tokenizer.cache=10000 (words remembered).
 */
public final class ClipTokenizer {
    static final Pattern SPLIT = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+", Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern WHITESPACE = Pattern.compile("\\s+", Pattern.UNICODE_CHARACTER_CLASS);
    private static final int CACHE = Integer.getInteger("jdiffusion.tokenizer.cache", 10_000);
    private static final long MAX_FILE = 256L << 20;
    private static final String END_OF_WORD = "</w>";
    /** Field names are the 49k tokens: interning and canonicalizing them would cost ten times the parse. */
    private static final JsonFactory JSON_FACTORY = JsonFactory.builder()
            .disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES).disable(JsonFactory.Feature.INTERN_FIELD_NAMES).build();
    private static final ObjectMapper JSON = new ObjectMapper();
    /** GPT-2's reversible map from a byte to a printable character. */
    static final char[] BYTE_TO_CHAR = new char[256];
    private static final Map<Character, Integer> CHAR_TO_BYTE = new HashMap<>();

    static {
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF;
            BYTE_TO_CHAR[b] = (char) (printable ? b : 256 + extra++);
            CHAR_TO_BYTE.put(BYTE_TO_CHAR[b], b);
        }
    }

    public final String source;
    public final String bos, eos, pad, unk;
    public final int bosId, eosId, padId, unkId;
    /** model_max_length from tokenizer_config.json (77 for CLIP). */
    public final int maxLength;
    private final Map<String, Integer> vocab;
    private volatile Map<Integer, String> tokens; // id -> token, built on the first decode
    private final Map<String, Integer> ranks;
    private final Pattern specials;
    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    private ClipTokenizer(String source, Map<String, Integer> vocab, Map<String, Integer> ranks, JsonNode config, JsonNode map) {
        this.source = source;
        this.vocab = vocab;
        this.ranks = ranks;
        bos = special(config, map, "bos_token", "<|startoftext|>");
        eos = special(config, map, "eos_token", "<|endoftext|>");
        unk = special(config, map, "unk_token", eos);
        pad = special(config, map, "pad_token", eos);
        bosId = id(bos, "bos_token");
        eosId = id(eos, "eos_token");
        unkId = id(unk, "unk_token");
        padId = id(pad, "pad_token");
        JsonNode max = config == null ? null : config.get("model_max_length");
        long m = max != null && max.isNumber() ? max.asLong() : 77;
        maxLength = m >= 2 && m <= 1_000_000 ? (int) m : 77;
        List<String> special = new ArrayList<>();
        for (String s : new String[] {bos, eos}) if (!s.isEmpty() && !special.contains(s)) special.add(Pattern.quote(s));
        specials = Pattern.compile(String.join("|", special));
    }

    /** Reads vocab.json and merges.txt (+ tokenizer_config.json and special_tokens_map.json when present). */
    public static ClipTokenizer load(Path dir) {
        byte[] vocab = read(dir.resolve("vocab.json"), true);
        byte[] merges = read(dir.resolve("merges.txt"), true);
        byte[] config = read(dir.resolve("tokenizer_config.json"), false);
        byte[] map = read(dir.resolve("special_tokens_map.json"), false);
        return parse(dir.toString(), vocab, merges, config, map);
    }

    private static byte[] read(Path f, boolean required) {
        try {
            if (Files.size(f) > MAX_FILE) throw new LoaderException(f + ": larger than " + MAX_FILE + " bytes, not a tokenizer file");
            return Files.readAllBytes(f);
        } catch (NoSuchFileException e) {
            if (required) throw new LoaderException(f + ": missing (a CLIP tokenizer folder has vocab.json and merges.txt)");
            return null;
        } catch (IOException e) {
            throw new LoaderException(f + ": can't read: " + e, e);
        }
    }

    /** Builds a tokenizer from file contents in memory; config and map may be null. */
    static ClipTokenizer parse(String source, byte[] vocabJson, byte[] mergesTxt, byte[] configJson, byte[] mapJson) {
        Map<String, Integer> vocab = vocab(source + "/vocab.json", vocabJson);
        Map<String, Integer> ranks = merges(source + "/merges.txt", mergesTxt);
        JsonNode config = configJson == null ? null : json(source + "/tokenizer_config.json", configJson);
        JsonNode map = mapJson == null ? null : json(source + "/special_tokens_map.json", mapJson);
        return new ClipTokenizer(source, vocab, ranks, config, map);
    }

    private static Map<String, Integer> vocab(String what, byte[] bytes) {
        Map<String, Integer> vocab = new HashMap<>(1 << 17);
        try (JsonParser p = JSON_FACTORY.createParser(bytes)) {
            if (p.nextToken() != JsonToken.START_OBJECT) throw new LoaderException(what + ": not a JSON object of token -> id");
            for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
                if (t != JsonToken.FIELD_NAME) throw new LoaderException(what + ": unexpected " + t);
                String token = p.currentName();
                if (p.nextToken() != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT || p.getIntValue() < 0)
                    throw new LoaderException(what + ": token '" + token + "' has id " + p.getText() + ", not an int >= 0");
                vocab.put(token, p.getIntValue());
            }
            if (p.nextToken() != null) throw new LoaderException(what + ": trailing content after the vocabulary object");
        } catch (IOException e) {
            throw new LoaderException(what + ": not valid JSON: " + e.getMessage(), e);
        }
        if (vocab.isEmpty()) throw new LoaderException(what + ": empty vocabulary");
        return vocab;
    }

    private static Map<String, Integer> merges(String what, byte[] bytes) {
        String text = new String(bytes, StandardCharsets.UTF_8);
        Map<String, Integer> ranks = new HashMap<>(1 << 17);
        int line = 0, rank = 0;
        for (String l : text.split("\n", -1)) {
            line++;
            if (l.endsWith("\r")) l = l.substring(0, l.length() - 1);
            if (l.isEmpty() || line == 1 && l.startsWith("#version")) continue;
            int sp = l.indexOf(' ');
            if (sp <= 0 || sp == l.length() - 1 || l.indexOf(' ', sp + 1) >= 0)
                throw new LoaderException(what + ": line " + line + " is not 'left right': '" + abbreviate(l) + "'");
            ranks.putIfAbsent(l, rank++);
        }
        return ranks;
    }

    private static JsonNode json(String what, byte[] bytes) {
        try {
            JsonNode n = JSON.readTree(bytes);
            if (n == null || !n.isObject()) throw new LoaderException(what + ": not a JSON object");
            return n;
        } catch (IOException e) {
            throw new LoaderException(what + ": not valid JSON: " + e.getMessage(), e);
        }
    }

    /** A special token from tokenizer_config.json, else special_tokens_map.json: a string or an AddedToken {content}. */
    private String special(JsonNode config, JsonNode map, String key, String dflt) {
        for (JsonNode n : new JsonNode[] {config, map}) {
            JsonNode v = n == null ? null : n.get(key);
            if (v == null || v.isNull()) continue;
            if (v.isTextual()) return v.asText();
            if (v.isObject() && v.get("content") != null && v.get("content").isTextual()) return v.get("content").asText();
            throw new LoaderException(source + ": " + key + " is neither a string nor {\"content\": ...}: " + abbreviate(v.toString()));
        }
        return dflt;
    }

    private int id(String token, String key) {
        Integer id = vocab.get(token);
        if (id == null) throw new LoaderException(source + "/vocab.json: " + key + " '" + abbreviate(token) + "' is not in the vocabulary");
        return id;
    }

    private static String abbreviate(String s) {
        return s.length() > 80 ? s.substring(0, 80) + "..." : s;
    }

    // ---- encoding ----

    /** NFC, whitespace runs to one space, lowercase (code point by code point, as the tokenizers library does). */
    static String normalize(String text) {
        String s = WHITESPACE.matcher(Normalizer.normalize(text, Normalizer.Form.NFC)).replaceAll(" ");
        StringBuilder out = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            if (cp < 128) out.append((char) (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
            else out.append(new String(Character.toChars(cp)).toLowerCase(Locale.ROOT));
            i += Character.charCount(cp);
        }
        return out.toString();
    }

    /** The token ids of a text, without bos/eos and without truncation. */
    public int[] tokenize(String text) {
        String s = normalize(text);
        IntList ids = new IntList();
        Matcher sm = specials.matcher(s);
        int at = 0;
        while (sm.find()) {
            words(s.substring(at, sm.start()), ids);
            ids.add(vocab.get(sm.group()));
            at = sm.end();
        }
        words(s.substring(at), ids);
        return ids.toArray();
    }

    private void words(String piece, IntList ids) {
        Matcher m = SPLIT.matcher(piece);
        while (m.find()) for (int id : bpe(m.group())) ids.add(id);
    }

    /** [bos, tokens..., eos], truncated to {@link #maxLength} keeping eos. */
    public int[] encode(String text) {
        int[] t = tokenize(text);
        int n = Math.min(t.length, maxLength - 2);
        int[] out = new int[n + 2];
        out[0] = bosId;
        System.arraycopy(t, 0, out, 1, n);
        out[n + 1] = eosId;
        return out;
    }

    /** {@link #encode} truncated to {@code length} (keeping eos) and padded with the pad id to exactly {@code length}. */
    public int[] encodePadded(String text, int length) {
        if (length < 2) throw new IllegalArgumentException("length " + length + " leaves no room for bos and eos");
        int[] t = tokenize(text);
        int n = Math.min(t.length, length - 2);
        int[] out = new int[length];
        Arrays.fill(out, padId);
        out[0] = bosId;
        System.arraycopy(t, 0, out, 1, n);
        out[n + 1] = eosId;
        return out;
    }

    /** Token ids back to text (for debugging): "</w>" becomes a space, special tokens stay as written. */
    public String decode(int[] ids) {
        Map<Integer, String> tokens = this.tokens;
        if (tokens == null) {
            tokens = new HashMap<>(vocab.size() * 2);
            for (var e : vocab.entrySet()) tokens.putIfAbsent(e.getValue(), e.getKey());
            this.tokens = tokens;
        }
        StringBuilder text = new StringBuilder();
        for (int id : ids) {
            String t = tokens.get(id);
            text.append(t == null ? "<?" + id + ">" : t);
        }
        String s = text.toString().replace(END_OF_WORD, " ");
        byte[] bytes = new byte[s.length() * 3];
        int n = 0;
        for (int i = 0; i < s.length(); i++) {
            Integer b = CHAR_TO_BYTE.get(s.charAt(i));
            if (b != null) bytes[n++] = (byte) (int) b;
            else for (byte x : String.valueOf(s.charAt(i)).getBytes(StandardCharsets.UTF_8)) bytes[n++] = x;
        }
        return new String(bytes, 0, n, StandardCharsets.UTF_8).strip();
    }

    /** BPE of one pre-tokenized word: its UTF-8 bytes as printable characters, "</w>" on the last, merged by rank. */
    private int[] bpe(String word) {
        int[] hit = cache.get(word);
        if (hit != null) return hit;
        byte[] utf8 = word.getBytes(StandardCharsets.UTF_8);
        List<String> parts = new ArrayList<>(utf8.length);
        for (byte b : utf8) parts.add(String.valueOf(BYTE_TO_CHAR[b & 0xff]));
        parts.set(parts.size() - 1, parts.getLast() + END_OF_WORD);
        while (parts.size() > 1) {
            int best = Integer.MAX_VALUE;
            String left = null, right = null;
            for (int i = 0; i + 1 < parts.size(); i++) {
                Integer r = ranks.get(parts.get(i) + " " + parts.get(i + 1));
                if (r != null && r < best) {
                    best = r;
                    left = parts.get(i);
                    right = parts.get(i + 1);
                }
            }
            if (left == null) break;
            List<String> merged = new ArrayList<>(parts.size());
            for (int i = 0; i < parts.size(); i++) {
                if (i + 1 < parts.size() && parts.get(i).equals(left) && parts.get(i + 1).equals(right)) {
                    merged.add(left + right);
                    i++;
                } else merged.add(parts.get(i));
            }
            parts = merged;
        }
        int[] ids = new int[parts.size()];
        for (int i = 0; i < ids.length; i++) ids[i] = vocab.getOrDefault(parts.get(i), unkId);
        if (cache.size() >= CACHE) cache.clear();
        cache.put(word, ids);
        return ids;
    }

    private static final class IntList {
        int[] a = new int[32];
        int n;

        void add(int v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2);
            a[n++] = v;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }

    @Override
    public String toString() {
        return "ClipTokenizer[" + source + ", " + vocab.size() + " tokens, " + ranks.size() + " merges, bos " + bosId
                + ", eos " + eosId + ", pad " + padId + ", max " + maxLength + "]";
    }
}
