package jdiffusion.loader;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An original (CompVis / A1111) single-file Stable Diffusion checkpoint in safetensors form, seen as three diffusers
 * components without copying: model.diffusion_model.* (UNet), first_stage_model.* (VAE) and either
 * cond_stage_model.transformer.* (SD1.x, OpenAI CLIP in transformers layout) or cond_stage_model.model.* (SD2.x,
 * OpenCLIP: resblocks -> layers, fused in_proj split into q/k/v row slices). The key mapping is derived from the
 * configs (block counts, layers per block, which blocks have attention). Without configs the bundled ones are used:
 * SD1.5 (runwayml/stable-diffusion-v1-5) or, when OpenCLIP keys are present, SD2.1 768-v (v_prediction; pass configs
 * explicitly for 2.x-base). The component views stay valid until this checkpoint is closed; closing a view does
 * nothing.
 */
public final class SingleFileCheckpoint implements AutoCloseable {
    public static final String UNET = "model.diffusion_model.";
    public static final String VAE = "first_stage_model.";
    public static final String CLIP = "cond_stage_model.transformer.";
    public static final String OPEN_CLIP = "cond_stage_model.model.";

    private enum Kind { PLAIN, UNET_RESNET, UNET_ATTENTION, VAE_RESNET, VAE_ATTENTION }

    private record Rule(String prefix, Kind kind) {}

    private static final Map<String, String> UNET_RESNET = Map.of(
            "in_layers.0", "norm1", "in_layers.2", "conv1", "emb_layers.1", "time_emb_proj",
            "out_layers.0", "norm2", "out_layers.3", "conv2", "skip_connection", "conv_shortcut");
    private static final Map<String, String> VAE_ATTENTION = Map.of(
            "norm", "group_norm", "q", "to_q", "k", "to_k", "v", "to_v", "proj_out", "to_out.0");

    private final SafeTensors file;
    private final UNetConfig unetConfig;
    private final VaeConfig vaeConfig;
    private final ClipTextConfig textConfig;
    private final SchedulerConfig schedulerConfig;
    private final boolean openClip;
    private final MappedWeights unet, vae, text;
    private final List<String> unmapped = new ArrayList<>();

    private SingleFileCheckpoint(SafeTensors file, UNetConfig u, VaeConfig v, ClipTextConfig t, SchedulerConfig s) {
        this.file = file;
        this.openClip = file.names().stream().anyMatch(n -> n.startsWith(OPEN_CLIP));
        String family = openClip ? "sd21" : "sd15";
        this.unetConfig = u != null ? u : UNetConfig.of(bundled(family, "unet"));
        this.vaeConfig = v != null ? v : VaeConfig.of(bundled(family, "vae"));
        this.textConfig = t != null ? t : ClipTextConfig.of(bundled(family, "text_encoder"));
        this.schedulerConfig = s != null ? s : SchedulerConfig.of(bundled(family, "scheduler"));
        var unetRules = unetRules(unetConfig);
        var vaeRules = vaeRules(vaeConfig);
        var u2 = new LinkedHashMap<String, MappedWeights.Entry>();
        var v2 = new LinkedHashMap<String, MappedWeights.Entry>();
        var t2 = new LinkedHashMap<String, MappedWeights.Entry>();
        for (String key : file.names()) {
            if (key.startsWith(UNET)) {
                String name = unetName(unetRules, key.substring(UNET.length()));
                if (name == null) unmapped.add(key);
                else put(u2, name, reshaped(key, name, unetConfig.useLinearProjection()));
            } else if (key.startsWith(VAE)) {
                String name = vaeName(vaeRules, key.substring(VAE.length()));
                if (name == null) unmapped.add(key);
                else put(v2, name, reshaped(key, name, true));
            } else if (key.startsWith(CLIP) && !openClip) {
                String name = key.substring(CLIP.length());
                if (name.startsWith("text_model.")) name = name.substring("text_model.".length());
                put(t2, name, MappedWeights.whole(file, key));
            } else if (key.startsWith(OPEN_CLIP)) {
                if (!openClip(t2, key, key.substring(OPEN_CLIP.length()))) unmapped.add(key);
            } else {
                unmapped.add(key);
            }
        }
        this.unet = new MappedWeights(file.source() + "#unet", u2, List.of(), null);
        this.vae = new MappedWeights(file.source() + "#vae", v2, List.of(), null);
        this.text = new MappedWeights(file.source() + "#text_encoder", t2, List.of(), "text_model.");
    }

    /** Opens with the bundled configs (SD1.5, or SD2.1 768-v when the file has OpenCLIP keys). */
    public static SingleFileCheckpoint open(Path file) {
        return open(file, null, null, null, null);
    }

    /** Opens with the given configs (null = bundled default of the detected family). */
    public static SingleFileCheckpoint open(Path file, UNetConfig unet, VaeConfig vae, ClipTextConfig text,
                                            SchedulerConfig scheduler) {
        SafeTensors st = SafeTensors.open(file);
        try {
            return new SingleFileCheckpoint(st, unet, vae, text, scheduler);
        } catch (RuntimeException e) {
            st.close();
            throw e;
        }
    }

    /** Same, over an already opened file (the checkpoint takes ownership and closes it). */
    public static SingleFileCheckpoint of(SafeTensors file, UNetConfig unet, VaeConfig vae, ClipTextConfig text,
                                          SchedulerConfig scheduler) {
        return new SingleFileCheckpoint(file, unet, vae, text, scheduler);
    }

    public Weights unet() {
        return unet;
    }

    public Weights vae() {
        return vae;
    }

    public Weights textEncoder() {
        return text;
    }

    public UNetConfig unetConfig() {
        return unetConfig;
    }

    public VaeConfig vaeConfig() {
        return vaeConfig;
    }

    public ClipTextConfig textEncoderConfig() {
        return textConfig;
    }

    public SchedulerConfig schedulerConfig() {
        return schedulerConfig;
    }

    /** Whether the text encoder is OpenCLIP (SD2.x). */
    public boolean openClip() {
        return openClip;
    }

    /** Stored keys that belong to no component (EMA copies, alphas_cumprod, text_projection, dropped layers...). */
    public List<String> unmapped() {
        return List.copyOf(unmapped);
    }

    @Override
    public void close() {
        file.close();
    }

    // ---- the key mappings (original key without the component prefix -> diffusers name; null = not mapped)

    /** Diffusers UNet name of an original key like "input_blocks.1.1.proj_in.weight" (without model.diffusion_model.). */
    public static String unetName(UNetConfig c, String originalKey) {
        return unetName(unetRules(c), originalKey);
    }

    /** Diffusers VAE name of an original key like "decoder.up.3.block.0.conv1.weight" (without first_stage_model.). */
    public static String vaeName(VaeConfig c, String originalKey) {
        return vaeName(vaeRules(c), originalKey);
    }

    private static Map<String, Rule> unetRules(UNetConfig c) {
        var r = new HashMap<String, Rule>();
        r.put("time_embed.0", new Rule("time_embedding.linear_1", Kind.PLAIN));
        r.put("time_embed.2", new Rule("time_embedding.linear_2", Kind.PLAIN));
        r.put("input_blocks.0.0", new Rule("conv_in", Kind.PLAIN));
        r.put("out.0", new Rule("conv_norm_out", Kind.PLAIN));
        r.put("out.2", new Rule("conv_out", Kind.PLAIN));
        int n = c.blocks(), k = 1;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < c.layersPerBlock()[i]; j++, k++) {
                r.put("input_blocks." + k + ".0", new Rule("down_blocks." + i + ".resnets." + j, Kind.UNET_RESNET));
                if (c.hasAttention(i))
                    r.put("input_blocks." + k + ".1", new Rule("down_blocks." + i + ".attentions." + j, Kind.UNET_ATTENTION));
            }
            if (i < n - 1) r.put("input_blocks." + k++ + ".0.op", new Rule("down_blocks." + i + ".downsamplers.0.conv", Kind.PLAIN));
        }
        r.put("middle_block.0", new Rule("mid_block.resnets.0", Kind.UNET_RESNET));
        if (c.midHasAttention()) {
            r.put("middle_block.1", new Rule("mid_block.attentions.0", Kind.UNET_ATTENTION));
            r.put("middle_block.2", new Rule("mid_block.resnets.1", Kind.UNET_RESNET));
        } else {
            r.put("middle_block.1", new Rule("mid_block.resnets.1", Kind.UNET_RESNET));
        }
        k = 0;
        for (int i = 0; i < n; i++) {
            int layers = c.upLayers(i);
            for (int j = 0; j < layers; j++, k++) {
                r.put("output_blocks." + k + ".0", new Rule("up_blocks." + i + ".resnets." + j, Kind.UNET_RESNET));
                if (c.upHasAttention(i))
                    r.put("output_blocks." + k + ".1", new Rule("up_blocks." + i + ".attentions." + j, Kind.UNET_ATTENTION));
                if (j == layers - 1 && i < n - 1)
                    r.put("output_blocks." + k + "." + (c.upHasAttention(i) ? 2 : 1) + ".conv",
                            new Rule("up_blocks." + i + ".upsamplers.0.conv", Kind.PLAIN));
            }
        }
        return r;
    }

    private static Map<String, Rule> vaeRules(VaeConfig c) {
        var r = new HashMap<String, Rule>();
        for (String p : List.of("quant_conv", "post_quant_conv", "encoder.conv_in", "encoder.conv_out", "decoder.conv_in", "decoder.conv_out"))
            r.put(p, new Rule(p, Kind.PLAIN));
        for (String coder : List.of("encoder", "decoder")) {
            r.put(coder + ".norm_out", new Rule(coder + ".conv_norm_out", Kind.PLAIN));
            r.put(coder + ".mid.block_1", new Rule(coder + ".mid_block.resnets.0", Kind.VAE_RESNET));
            r.put(coder + ".mid.block_2", new Rule(coder + ".mid_block.resnets.1", Kind.VAE_RESNET));
            r.put(coder + ".mid.attn_1", new Rule(coder + ".mid_block.attentions.0", Kind.VAE_ATTENTION));
        }
        int n = c.blocks();
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < c.layersPerBlock(); j++)
                r.put("encoder.down." + i + ".block." + j, new Rule("encoder.down_blocks." + i + ".resnets." + j, Kind.VAE_RESNET));
            if (i < n - 1) r.put("encoder.down." + i + ".downsample.conv", new Rule("encoder.down_blocks." + i + ".downsamplers.0.conv", Kind.PLAIN));
            int orig = n - 1 - i; // the original decoder numbers its up blocks from the lowest resolution's end
            for (int j = 0; j < c.layersPerBlock() + 1; j++)
                r.put("decoder.up." + orig + ".block." + j, new Rule("decoder.up_blocks." + i + ".resnets." + j, Kind.VAE_RESNET));
            if (i < n - 1) r.put("decoder.up." + orig + ".upsample.conv", new Rule("decoder.up_blocks." + i + ".upsamplers.0.conv", Kind.PLAIN));
        }
        return r;
    }

    private static String unetName(Map<String, Rule> rules, String key) {
        return translate(rules, key);
    }

    private static String vaeName(Map<String, Rule> rules, String key) {
        return translate(rules, key);
    }

    /** Finds the longest rule prefix of key (cut at dots) and renames the prefix and, per kind, the inner layer. */
    private static String translate(Map<String, Rule> rules, String key) {
        for (int cut = key.lastIndexOf('.'); cut > 0; cut = key.lastIndexOf('.', cut - 1)) {
            Rule rule = rules.get(key.substring(0, cut));
            if (rule == null) continue;
            String rest = key.substring(cut + 1);
            String inner = switch (rule.kind) {
                case PLAIN, UNET_ATTENTION -> rest.contains(".") && rule.kind == Kind.PLAIN ? null : rest;
                case UNET_RESNET -> renameLayer(UNET_RESNET, rest);
                case VAE_RESNET -> rest.startsWith("nin_shortcut.") ? "conv_shortcut." + rest.substring("nin_shortcut.".length())
                        : rest.matches("(norm1|norm2|conv1|conv2)\\.(weight|bias)") ? rest : null;
                case VAE_ATTENTION -> renameLayer(VAE_ATTENTION, rest);
            };
            return inner == null ? null : rule.prefix + "." + inner;
        }
        return null;
    }

    private static String renameLayer(Map<String, String> layers, String rest) {
        int dot = rest.lastIndexOf('.');
        if (dot < 0) return null;
        String to = layers.get(rest.substring(0, dot));
        return to == null ? null : to + rest.substring(dot);
    }

    /** 1x1 conv [c,c,1,1] vs linear [c,c]: VAE attention is linear in diffusers; UNet proj_in/out per config. */
    private MappedWeights.Entry reshaped(String key, String name, boolean linear) {
        long[] s = file.shape(key);
        boolean projection = name.matches(".*attentions\\.\\d+\\.(proj_in|proj_out|to_q|to_k|to_v|to_out\\.0)\\.weight")
                && (name.startsWith("encoder.") || name.startsWith("decoder.") || name.contains(".proj_"));
        if (projection && linear && s.length == 4 && s[2] == 1 && s[3] == 1) s = new long[]{s[0], s[1]}; // [o,i,1,1] -> [o,i]
        else if (projection && !linear && s.length == 2) s = new long[]{s[0], s[1], 1, 1}; // [o,i] -> [o,i,1,1]
        return new MappedWeights.Entry(file, key, s, -1); // same elements, only the shape differs
    }

    private boolean openClip(Map<String, MappedWeights.Entry> out, String key, String k) {
        switch (k) {
            case "token_embedding.weight" -> put(out, "embeddings.token_embedding.weight", MappedWeights.whole(file, key));
            case "positional_embedding" -> put(out, "embeddings.position_embedding.weight", MappedWeights.whole(file, key));
            case "ln_final.weight", "ln_final.bias" -> put(out, "final_layer_norm." + k.substring(9), MappedWeights.whole(file, key));
            default -> {
                if (!k.startsWith("transformer.resblocks.")) return false;
                String rest = k.substring("transformer.resblocks.".length());
                int dot = rest.indexOf('.');
                if (dot <= 0) return false;
                int layer;
                try {
                    layer = Integer.parseInt(rest.substring(0, dot));
                } catch (NumberFormatException e) {
                    return false;
                }
                if (layer < 0 || layer >= textConfig.numHiddenLayers()) return false; // diffusers drops OpenCLIP's last layer for SD2
                String p = "encoder.layers." + layer + ".";
                String leaf = rest.substring(dot + 1);
                switch (leaf) {
                    case "attn.in_proj_weight", "attn.in_proj_bias" -> {
                        long[] s = file.shape(key);
                        if (s.length < 1 || s[0] % 3 != 0)
                            throw new LoaderException(file.source() + ": tensor '" + key + "' is not a fused [3h, ...] q/k/v");
                        long h = s[0] / 3, per = s.length == 2 ? h * s[1] : h;
                        long[] shape = s.length == 2 ? new long[]{h, s[1]} : new long[]{h};
                        String what = leaf.endsWith("weight") ? "weight" : "bias";
                        put(out, p + "self_attn.q_proj." + what, new MappedWeights.Entry(file, key, shape, 0));
                        put(out, p + "self_attn.k_proj." + what, new MappedWeights.Entry(file, key, shape, per));
                        put(out, p + "self_attn.v_proj." + what, new MappedWeights.Entry(file, key, shape, 2 * per));
                    }
                    default -> {
                        String to = leaf.replaceFirst("^ln_1\\.", "layer_norm1.").replaceFirst("^ln_2\\.", "layer_norm2.")
                                .replaceFirst("^attn\\.out_proj\\.", "self_attn.out_proj.")
                                .replaceFirst("^mlp\\.c_fc\\.", "mlp.fc1.").replaceFirst("^mlp\\.c_proj\\.", "mlp.fc2.");
                        if (to.equals(leaf)) return false;
                        put(out, p + to, MappedWeights.whole(file, key));
                    }
                }
            }
        }
        return true;
    }

    private void put(Map<String, MappedWeights.Entry> out, String name, MappedWeights.Entry e) {
        MappedWeights.Entry old = out.put(name, e);
        if (old != null)
            throw new LoaderException(file.source() + ": keys '" + old.stored() + "' and '" + e.stored()
                    + "' both map to diffusers name '" + name + "'");
    }

    static Json bundled(String family, String component) {
        return Json.parse(bundledText(family, component).getBytes(StandardCharsets.UTF_8), "bundled " + family + "/" + component + ".json");
    }

    /** The bundled diffusers config file as it is stored: family "sd15" or "sd21", component unet | vae | text_encoder | scheduler. */
    public static String bundledText(String family, String component) {
        String res = family + "/" + component + ".json";
        try (InputStream in = SingleFileCheckpoint.class.getResourceAsStream(res)) {
            if (in == null) throw new LoaderException("bundled config " + res + " is missing from the jar");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new LoaderException("bundled config " + res + ": " + e, e);
        }
    }

    /** The bundled diffusers configs: family "sd15" or "sd21", component unet | vae | text_encoder | scheduler. */
    public static UNetConfig bundledUNet(String family) {
        return UNetConfig.of(bundled(family, "unet"));
    }

    public static VaeConfig bundledVae(String family) {
        return VaeConfig.of(bundled(family, "vae"));
    }

    public static ClipTextConfig bundledTextEncoder(String family) {
        return ClipTextConfig.of(bundled(family, "text_encoder"));
    }

    public static SchedulerConfig bundledScheduler(String family) {
        return SchedulerConfig.of(bundled(family, "scheduler"));
    }
}
