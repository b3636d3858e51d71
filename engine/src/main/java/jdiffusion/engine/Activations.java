package jdiffusion.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jdiffusion.kernels.Buffer;
import jdiffusion.kernels.DType;
import jdiffusion.kernels.TaskGraph;

/**
 * One forward graph being built: the TaskGraph the layers append to, and every device activation they allocate.
 * Intermediates come from {@link #alloc} as TaskGraph temps, which the graph's liveness plan packs into shared buffers at
 * warmup (-Djdiffusion.arena=false: a buffer each); what the host writes or reads is a real buffer: {@link #host} for
 * inputs, {@link #keep} for a result computed into a temp. Closing frees the host buffers and the graph's memory.
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

    /** A transient activation: valid from the task that writes it to the last task that reads it. */
    Tensor alloc(String name, DType type, int... shape) {
        return new Tensor(graph.temp(name, type, elements(name, shape)), shape);
    }

    Tensor host(String name, int... shape) {
        return host(name, dtype, shape);
    }

    /** A buffer the host writes (a graph input) or reads, outside the plan. */
    Tensor host(String name, DType type, int... shape) {
        Buffer b = exec.backend().allocate(graph.name + "/" + name, type, elements(name, shape));
        buffers.add(b);
        bytes += b.bytes();
        return new Tensor(b, shape);
    }

    /** x on a buffer the host can read after execute (a graph output). */
    Tensor keep(Tensor x) {
        return new Tensor(graph.keep(x.buffer()), x.shape());
    }

    private long elements(String name, int[] shape) {
        long n = 1;
        for (int d : shape) n = Math.multiplyExact(n, d);
        if (n <= 0) throw new IllegalArgumentException(graph.name + ": activation " + name + " has empty shape " + Arrays.toString(shape));
        return n;
    }

    /** Device bytes of the activations: host buffers and planned temps (all of them once warmed up). */
    long bytes() {
        return bytes + graph.plannedBytes();
    }

    /** Device bytes the activations would take with a buffer each. */
    long naiveBytes() {
        return bytes + graph.naiveBytes();
    }

    @Override
    public void close() {
        graph.close();
        for (Buffer b : buffers) b.close();
        buffers.clear();
    }
}
