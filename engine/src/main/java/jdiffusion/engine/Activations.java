package jdiffusion.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jdiffusion.kernels.Buffer;
import jdiffusion.kernels.DType;
import jdiffusion.kernels.TaskGraph;

/**
 * One forward graph being built: the TaskGraph the layers append to, and every device activation they allocate.
 * All allocation of intermediates goes through {@link #alloc}, so a liveness-planned arena replaces only this class.
 * Closing frees the activations and the graph's scratch.
 */
final class Activations implements AutoCloseable {
    final TaskGraph graph;
    final Exec exec;
    /** dtype of activations: F16 for fp16 runs, F32 otherwise. */
    final DType dtype;
    private final List<Buffer> buffers = new ArrayList<>();
    private long bytes;

    Activations(String name, Exec exec) {
        this.exec = exec;
        this.dtype = exec.precision() == Precision.FP16 ? DType.F16 : DType.F32;
        this.graph = new TaskGraph(name, exec.backend(), exec.precision() == Precision.TF32);
    }

    Tensor alloc(String name, int... shape) {
        return alloc(name, dtype, shape);
    }

    Tensor alloc(String name, DType type, int... shape) {
        long n = 1;
        for (int d : shape) n = Math.multiplyExact(n, d);
        if (n <= 0) throw new IllegalArgumentException(graph.name + ": activation " + name + " has empty shape " + Arrays.toString(shape));
        Buffer b = exec.backend().allocate(graph.name + "/" + name, type, n);
        buffers.add(b);
        bytes += b.bytes();
        return new Tensor(b, shape);
    }

    long bytes() {
        return bytes;
    }

    @Override
    public void close() {
        graph.close();
        for (Buffer b : buffers) b.close();
        buffers.clear();
    }
}
