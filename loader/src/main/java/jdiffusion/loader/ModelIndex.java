package jdiffusion.loader;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * model_index.json of a diffusers pipeline: the pipeline class and, per component folder, [library, class]
 * (e.g. unet -> [diffusers, UNet2DConditionModel]). Components stored as [null, null] are absent and left out;
 * scalar entries (requires_safety_checker...) are kept in options.
 */
public record ModelIndex(String className, String diffusersVersion, Map<String, Component> components,
                         Map<String, String> options) {

    public record Component(String library, String className) {}

    public static ModelIndex load(Path modelIndexJson) {
        return of(Json.read(modelIndexJson));
    }

    public static ModelIndex parse(String json, String source) {
        return of(Json.parse(json.getBytes(StandardCharsets.UTF_8), source));
    }

    static ModelIndex of(Json j) {
        var components = new LinkedHashMap<String, Component>();
        var options = new LinkedHashMap<String, String>();
        for (var f : j.root.properties()) {
            String key = f.getKey();
            JsonNode v = f.getValue();
            if (key.startsWith("_")) continue;
            if (v.isArray()) {
                if (v.size() != 2) throw j.fail(key, "must be [library, class], got " + Json.describe(v));
                JsonNode lib = v.get(0), cls = v.get(1);
                if (lib.isNull() && cls.isNull()) continue;
                if (!lib.isTextual() || !cls.isTextual())
                    throw j.fail(key, "must be [library, class] strings, got " + Json.describe(v));
                components.put(key, new Component(lib.textValue(), cls.textValue()));
            } else if (v.isValueNode()) {
                options.put(key, v.asText());
            } else {
                throw j.fail(key, "must be [library, class] or a scalar, got " + Json.describe(v));
            }
        }
        return new ModelIndex(j.string("_class_name", null), j.string("_diffusers_version", null),
                Collections.unmodifiableMap(components), Collections.unmodifiableMap(options));
    }

    public boolean has(String component) {
        return components.containsKey(component);
    }
}
