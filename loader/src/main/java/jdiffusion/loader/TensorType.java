package jdiffusion.loader;

/** Element types found in checkpoints (safetensors dtype strings, ONNX TensorProto data types). */
public enum TensorType {
    F32(4), F16(2), BF16(2), I64(8), I32(4);

    public final int bytes;

    TensorType(int bytes) {
        this.bytes = bytes;
    }
}
