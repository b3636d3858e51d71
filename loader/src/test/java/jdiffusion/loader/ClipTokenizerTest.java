package jdiffusion.loader;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ClipTokenizerTest {
    static final Path TINY = Path.of(System.getProperty("tiny.sd", "engine/tiny-sd"));
    static ClipTokenizer tok;

    @BeforeAll
    static void load() {
        tok = ClipTokenizer.load(TINY.resolve("tokenizer"));
    }

    static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).asInt();
        return out;
    }

    @Test
    void specialTokensAndLimits() {
        assertEquals(49406, tok.bosId);
        assertEquals(49407, tok.eosId);
        assertEquals(49407, tok.padId);
        assertEquals(77, tok.maxLength);
    }

    /**
     * Every case of reference/tokenizer_cases.json, against Hugging Face's ids. The one case where HF and OpenAI's
     * reference CLIP differ is "&amp;": the reference html-unescapes it to "&", HF (and we) keep the entity as text.
     */
    @Test
    void matchesHuggingFaceOnEveryCase() throws IOException {
        JsonNode cases = new ObjectMapper().readTree(TINY.resolve("reference/tokenizer_cases.json").toFile());
        int mismatches = 0;
        for (JsonNode c : cases) {
            String prompt = c.get("prompt").asText();
            int[] unpadded = ints(c.get("input_ids_unpadded"));
            int[] padded = ints(c.get("input_ids_padded77"));
            int[] all = tok.tokenize(prompt);
            int[] full = new int[all.length + 2];
            full[0] = tok.bosId;
            System.arraycopy(all, 0, full, 1, all.length);
            full[all.length + 1] = tok.eosId;
            assertArrayEquals(unpadded, full, prompt);
            assertArrayEquals(padded, tok.encodePadded(prompt, 77), prompt);
            int[] enc = tok.encode(prompt);
            assertTrue(enc.length <= 77);
            assertArrayEquals(Arrays.copyOf(padded, enc.length), enc, prompt);
            assertEquals(tok.eosId, enc[enc.length - 1]);
            if (!c.get("hf_equals_clip_reference").asBoolean()) {
                mismatches++;
                assertTrue(prompt.contains("&amp;"), prompt);
                assertFalse(Arrays.equals(ints(c.get("clip_reference_padded77")), tok.encodePadded(prompt, 77)));
            }
        }
        assertEquals(8, cases.size());
        assertEquals(1, mismatches);
    }

    @Test
    void matchesTextEncoderInputIds() throws IOException {
        try (SafeTensors io = SafeTensors.open(TINY.resolve("reference/text_io.safetensors"))) {
            JsonNode prompts = new ObjectMapper().readTree(io.metadata().get("prompts"));
            long[] ids = io.longs("input_ids");
            assertEquals(3 * 77, ids.length);
            for (int b = 0; b < prompts.size(); b++) {
                int[] mine = tok.encodePadded(prompts.get(b).asText(), 77);
                for (int i = 0; i < 77; i++) assertEquals(ids[b * 77 + i], mine[i], prompts.get(b).asText() + " at " + i);
            }
        }
    }

    @Test
    void decodeRoundTrips() {
        assertEquals("<|startoftext|>a photo of an astronaut riding a horse on mars <|endoftext|>",
                tok.decode(tok.encode("a photo of an astronaut riding a horse on mars")));
        assertEquals("東京の夜景 😀 café", tok.decode(tok.tokenize("東京の夜景 😀 Café")));
    }

    @Test
    void specialTokensInTextStayWhole() {
        int[] ids = tok.tokenize("a<|endoftext|>b");
        assertArrayEquals(new int[] {tok.tokenize("a")[0], 49407, tok.tokenize("b")[0]}, ids);
        assertArrayEquals(new int[] {49406, 49406, 49407}, tok.encode("<|startoftext|>"));
    }

    @Test
    void padsWithTheConfiguredPadToken() throws IOException {
        Path dir = TINY.resolve("tokenizer");
        byte[] vocab = Files.readAllBytes(dir.resolve("vocab.json"));
        byte[] merges = Files.readAllBytes(dir.resolve("merges.txt"));
        byte[] sd2 = "{\"pad_token\": \"!\", \"model_max_length\": 77}".getBytes(StandardCharsets.UTF_8);
        ClipTokenizer t = ClipTokenizer.parse("sd2", vocab, merges, sd2, null);
        assertEquals(0, t.padId);
        int[] p = t.encodePadded("a cat", 10);
        assertArrayEquals(new int[] {49406, 320, 2368, 49407, 0, 0, 0, 0, 0, 0}, p);
        assertEquals(77, ClipTokenizer.parse("none", vocab, merges, null, null).maxLength);
        byte[] badPad = "{\"pad_token\": \"<nope>\"}".getBytes(StandardCharsets.UTF_8);
        var e = assertThrows(LoaderException.class, () -> ClipTokenizer.parse("bad", vocab, merges, badPad, null));
        assertTrue(e.getMessage().contains("<nope>"), e.getMessage());
    }

    @Test
    void badFilesAreNamed() {
        var e = assertThrows(LoaderException.class, () -> ClipTokenizer.load(TINY.resolve("unet")));
        assertTrue(e.getMessage().contains("vocab.json"), e.getMessage());
        byte[] merges = "#version: 0.2\ni n\n".getBytes(StandardCharsets.UTF_8);
        e = assertThrows(LoaderException.class, () -> ClipTokenizer.parse("x", "[1,2]".getBytes(), merges, null, null));
        assertTrue(e.getMessage().contains("vocab.json"), e.getMessage());
        byte[] vocab = "{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1}".getBytes(StandardCharsets.UTF_8);
        e = assertThrows(LoaderException.class, () -> ClipTokenizer.parse("x", vocab, "#version: 0.2\na b c\n".getBytes(), null, null));
        assertTrue(e.getMessage().contains("merges.txt") && e.getMessage().contains("line 2"), e.getMessage());
    }

    @Test
    void truncatesLongPromptsKeepingEos() {
        List<String> words = new ArrayList<>();
        for (int i = 0; i < 200; i++) words.add("cat");
        int[] ids = tok.encode(String.join(" ", words));
        assertEquals(77, ids.length);
        assertEquals(49407, ids[76]);
        assertEquals(77, tok.encodePadded(String.join(" ", words), 77).length);
    }
}
