package jdiffusion.kernels;

/** Element types a device buffer can hold. F16 is IEEE binary16 (stored as short bits on the JVM). */
public enum DType {
    F32(4), F16(2), I32(4);

    public final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }
}
