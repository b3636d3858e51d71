package jdiffusion.engine;

import java.util.Arrays;
import jdiffusion.kernels.Buffer;
import jdiffusion.kernels.DType;

/** A device buffer with its logical row-major shape (NCHW for images, [batch, seq, dim] for tokens). The buffer is null in a dry (shape-only) build. */
public record Tensor(Buffer buffer, int[] shape) {
    public Tensor {
        shape = shape.clone();
        long n = 1;
        for (int d : shape) {
            if (d <= 0) throw new IllegalArgumentException("non-positive dimension in shape " + Arrays.toString(shape));
            n = Math.multiplyExact(n, d);
        }
        if (buffer != null && buffer.length() < n)
            throw new IllegalArgumentException("buffer " + buffer + " holds " + buffer.length() + " elements, shape " + Arrays.toString(shape) + " needs " + n);
    }

    public long elements() {
        long n = 1;
        for (int d : shape) n *= d;
        return n;
    }

    public int dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public int rank() {
        return shape.length;
    }

    public DType dtype() {
        return buffer.dtype();
    }

    /** The same buffer seen with another shape of equal element count (torch view/reshape). */
    public Tensor view(int... newShape) {
        Tensor t = new Tensor(buffer, newShape);
        if (t.elements() != elements())
            throw new IllegalArgumentException("cannot view " + Arrays.toString(shape) + " as " + Arrays.toString(newShape));
        return t;
    }

    /** Product of the dimensions from {@code from} on (the "hw" of [n, c, h, w] for from = 2). */
    public int inner(int from) {
        long n = 1;
        for (int i = from; i < shape.length; i++) n *= shape[i];
        return Math.toIntExact(n);
    }

    @Override
    public String toString() {
        return Arrays.toString(shape);
    }
}
