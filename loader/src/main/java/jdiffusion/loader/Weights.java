package jdiffusion.loader;

import java.util.Set;

/**
 * Named tensors of one model component under diffusers parameter names, whatever they were stored in: a safetensors
 * file, a sharded or variant set of them, an ONNX model's initializers, or a single-file original checkpoint.
 * Every failure is a {@link LoaderException} naming {@link #source()} and the tensor.
 */
public interface Weights extends AutoCloseable {
    /** The file or folder the tensors come from, for messages. */
    String source();

    Set<String> names();

    default boolean has(String name) {
        return names().contains(name);
    }

    /** Throws LoaderException naming the source and tensor when it is missing. */
    TensorInfo info(String name);

    /** The tensor converted to float (from F32, F16, BF16, I32 or I64). */
    float[] floats(String name);

    /** The tensor as IEEE fp16 bits (from F16 as stored, or rounded from F32/BF16). */
    short[] halves(String name);

    @Override
    void close();
}
