package jdiffusion.kernels;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A recorded sequence of kernel launches over device-resident buffers, after TornadoVM's TaskGraph and execution plan.
 * Layers append tasks once (shapes are fixed per graph); {@link #warmup} JIT-compiles every kernel the graph uses
 * (or loads it from the kernel cache); {@link #execute} replays all tasks with no host round trip (on CUDA, a captured
 * CUDA graph when the backend supports it). Inputs that change between executions are written into their buffers
 * with {@link Backend#write} before {@code execute}; weights are uploaded once when the graph is built.
 */
public final class TaskGraph implements AutoCloseable {
    public final String name;
    public final Backend backend;
    /** fp32 GEMMs and convolutions may use TF32 tensor cores (PyTorch's allow_tf32 / matmul precision "high"). */
    public final boolean tf32;
    private final List<Task> tasks = new ArrayList<>();
    private final List<Buffer> scratch = new ArrayList<>();
    private Runnable replay;
    private long compileNanos;

    public TaskGraph(String name, Backend backend) {
        this(name, backend, false);
    }

    public TaskGraph(String name, Backend backend, boolean tf32) {
        this.name = name;
        this.backend = backend;
        this.tf32 = tf32;
    }

    /** A workspace buffer owned by this graph (freed by {@link #close}); kernels use it for intermediates. */
    public Buffer scratch(String what, DType dtype, long length) {
        Buffer b = backend.allocate(name + "/" + what, dtype, length);
        scratch.add(b);
        return b;
    }

    /** Frees the graph's scratch buffers (not the buffers its tasks were given). */
    @Override
    public void close() {
        for (Buffer b : scratch) b.close();
        scratch.clear();
    }

    /** Appends a launch. Args are {@link Buffer}s of this graph's backend and Integer, Long or Float scalars. */
    public TaskGraph task(String taskName, Kernel kernel, Launch launch, Object... args) {
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a instanceof Buffer b) {
                if (b.backend() != backend)
                    throw new KernelException("task " + taskName + " (" + kernel.id() + "): argument " + i + " lives on backend " + b.backend().name() + ", graph " + name + " runs on " + backend.name());
            } else if (!(a instanceof Integer || a instanceof Long || a instanceof Float)) {
                throw new KernelException("task " + taskName + " (" + kernel.id() + "): argument " + i + " has unsupported type " + (a == null ? "null" : a.getClass().getSimpleName()));
            }
        }
        tasks.add(new Task(taskName, kernel, launch, args));
        replay = null;
        return this;
    }

    public List<Task> tasks() {
        return List.copyOf(tasks);
    }

    /** Distinct kernels in first-use order. */
    public List<Kernel> kernels() {
        Map<String, Kernel> seen = new LinkedHashMap<>();
        for (Task t : tasks) seen.putIfAbsent(t.kernel().id(), t.kernel());
        return List.copyOf(seen.values());
    }

    /** Compiles (or loads from the cache) every kernel, then lets the backend plan the replay. Returns compile seconds. */
    public double warmup() {
        long t0 = System.nanoTime();
        for (Kernel k : kernels()) backend.prepare(k);
        replay = backend instanceof Replayable r ? r.capture(name, List.copyOf(tasks)) : this::launchAll;
        compileNanos = System.nanoTime() - t0;
        return compileNanos / 1e9;
    }

    /** Runs every task in order; does not wait for completion (call {@link Backend#finish} or read a buffer). */
    public void execute() {
        if (replay == null) warmup();
        replay.run();
    }

    public double compileSeconds() {
        return compileNanos / 1e9;
    }

    private void launchAll() {
        for (Task t : tasks) backend.launch(t);
    }

    /** A backend that can capture a task list once and replay it cheaply (CUDA graphs). */
    public interface Replayable {
        Runnable capture(String graphName, List<Task> tasks);
    }
}
