package jdiffusion.engine;

/** Numeric mode of a run: fp32 (IEEE), tf32 (fp32 storage, TF32 tensor-core GEMMs where the device has them), fp16 (fp16 weights and activations, fp32 accumulation). */
public enum Precision {
    FP32, TF32, FP16;

    public static Precision parse(String s) {
        return switch (s.toLowerCase(java.util.Locale.ROOT)) {
            case "fp32", "float32" -> FP32;
            case "tf32", "fp32-high" -> TF32;
            case "fp16", "float16", "half" -> FP16;
            default -> throw new IllegalArgumentException("unknown precision '" + s + "' (fp32, tf32 or fp16)");
        };
    }
}
