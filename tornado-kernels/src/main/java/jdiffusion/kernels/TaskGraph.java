package jdiffusion.kernels;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * A recorded sequence of kernel launches over device-resident buffers, after TornadoVM's TaskGraph and execution plan.
 * Layers append tasks once (shapes are fixed per graph); {@link #warmup} JIT-compiles every kernel the graph uses
 * (or loads it from the kernel cache); {@link #execute} replays all tasks with no host round trip (on CUDA, a captured
 * CUDA graph when the backend supports it). Inputs that change between executions are written into their buffers
 * with {@link Backend#write} before {@code execute}; weights are uploaded once when the graph is built.
 * Transient buffers come from {@link #temp}: at warmup a liveness plan ({@link BufferPlan}) puts temps whose live ranges do
 * not overlap into shared physical buffers and rewrites the task list onto them. Knob: -Djdiffusion.arena=false (each
 * temp is its own buffer, allocated at once, as before the plan).
 */
public final class TaskGraph implements AutoCloseable {
    public final String name;
    public final Backend backend;
    /**
     * fp32 GEMMs and convolutions may use TF32 tensor cores (PyTorch's allow_tf32 / matmul precision "high"). Off (strict
     * fp32), CUDA still runs GEMM, conv and FLASH attention on tensor cores as 3xTF32 (fp32-accurate emulation, not IEEE
     * fp32 FMA order) unless -Djdiffusion.fp32x3=false; see {@link Gemm}.
     */
    public final boolean tf32;
    private final List<Task> tasks = new ArrayList<>();
    private final List<Buffer> scratch = new ArrayList<>();
    /** Tasks of {@link #derived} buffers: run once at warmup (those from onceRun on), never replayed. */
    private final List<Task> once = new ArrayList<>();
    private final Map<Object, Buffer> derived = new HashMap<>();
    private int onceRun;
    private boolean recordingOnce;
    /** Temps share physical buffers by liveness (-Djdiffusion.arena, default true); when false each temp is a buffer of its own. */
    public final boolean arena;
    private long naiveBytes, keptBytes;
    private BufferPlan plan;
    private List<Task> planned;
    private Runnable replay;
    private long compileNanos;

    public TaskGraph(String name, Backend backend) {
        this(name, backend, false);
    }

    public TaskGraph(String name, Backend backend, boolean tf32) {
        this(name, backend, tf32, Boolean.parseBoolean(System.getProperty("jdiffusion.arena", "true")));
    }

    public TaskGraph(String name, Backend backend, boolean tf32, boolean arena) {
        this.name = name;
        this.backend = backend;
        this.tf32 = tf32;
        this.arena = arena;
    }

    /**
     * A transient buffer of this graph that tasks take like any buffer: only the tasks between its first and last use may
     * rely on its contents (not later executions, not the host). Its memory comes from the plan made at warmup.
     * Without arena it is a buffer of its own, allocated now.
     */
    public Buffer temp(String what, DType dtype, long length) {
        if (length < 0) throw new KernelException("negative length " + length + " for " + name + "/" + what);
        naiveBytes += length * dtype.bytes;
        if (!arena) return scratch(what, dtype, length);
        replay = null;
        planned = null;
        return new BufferPlan.Temp(this, what, dtype, length);
    }

    /**
     * The real buffer behind {@code b} for the host to write or read (a graph input or output): a temp of this graph gets a
     * buffer of its own, outside the plan and alive until {@link #close}; any other buffer is returned as it is.
     */
    public Buffer keep(Buffer b) {
        if (!(b instanceof BufferPlan.Temp t)) return b;
        if (t.graph != this) throw new KernelException("graph " + name + " cannot keep " + t + ", a temp of graph " + t.graph.name);
        if (t.kept == null) {
            t.kept = scratch(t.what, t.dtype, t.length);
            keptBytes += t.bytes();
            replay = null;
            planned = null;
        }
        return t.kept;
    }

    /** Bytes the temps would take with a buffer each. */
    public long naiveBytes() {
        return naiveBytes;
    }

    /** Bytes the temps take: the planned physical buffers (after warmup) and the kept ones; without arena, naiveBytes. */
    public long plannedBytes() {
        return arena ? keptBytes + (plan == null ? 0 : plan.bytes) : naiveBytes;
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
        derived.clear();
        once.clear();
        onceRun = 0;
        if (plan != null) plan.close();
        plan = null;
        planned = null;
        replay = null;
    }

    /** Appends a launch. Args are {@link Buffer}s of this graph's backend and Integer, Long or Float scalars. */
    public TaskGraph task(String taskName, Kernel kernel, Launch launch, Object... args) {
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a instanceof Buffer b) {
                if (b instanceof BufferPlan.Temp t && t.graph != this)
                    throw new KernelException("task " + taskName + " (" + kernel.id() + "): argument " + i + " is " + t + ", a temp of another graph than " + name);
                if (b.backend() != backend)
                    throw new KernelException("task " + taskName + " (" + kernel.id() + "): argument " + i + " lives on backend " + b.backend().name() + ", graph " + name + " runs on " + backend.name());
            } else if (!(a instanceof Integer || a instanceof Long || a instanceof Float)) {
                throw new KernelException("task " + taskName + " (" + kernel.id() + "): argument " + i + " has unsupported type " + (a == null ? "null" : a.getClass().getSimpleName()));
            }
        }
        if (recordingOnce) {
            for (Object a : args)
                if (a instanceof BufferPlan.Temp t) throw new KernelException("task " + taskName + " (" + kernel.id() + ") derives a constant buffer and cannot take " + t + ", a temp");
            once.add(new Task(taskName, kernel, launch, args));
            return this;
        }
        tasks.add(new Task(taskName, kernel, launch, args));
        replay = null;
        planned = null;
        return this;
    }

    /**
     * A buffer computed from constant inputs (weights) by the tasks {@code record} appends, which run once, at the next
     * {@link #warmup} (before the first execution), and are never replayed: e.g. conv weights re-laid out for a kernel,
     * instead of a permute on every step. The same key in one graph gives the same buffer (recorded once). The buffer is
     * this graph's (freed by {@link #close}); the inputs must not change after that warmup (rebuild the graph if they do).
     */
    public Buffer derived(Object key, String what, DType dtype, long length, Consumer<Buffer> record) {
        Buffer b = derived.get(key);
        if (b != null) return b;
        b = scratch(what, dtype, length);
        recordingOnce = true;
        try {
            record.accept(b);
        } finally {
            recordingOnce = false;
        }
        derived.put(key, b);
        replay = null;
        return b;
    }

    /** The tasks as recorded; after warmup, as planned (temps replaced by their physical buffers). */
    public List<Task> tasks() {
        return planned != null ? planned : List.copyOf(tasks);
    }

    /** Distinct kernels in first-use order. */
    public List<Kernel> kernels() {
        Map<String, Kernel> seen = new LinkedHashMap<>();
        for (Task t : once) seen.putIfAbsent(t.kernel().id(), t.kernel());
        for (Task t : tasks) seen.putIfAbsent(t.kernel().id(), t.kernel());
        return List.copyOf(seen.values());
    }

    /** Compiles (or loads from the cache) every kernel, then lets the backend plan the replay. Returns compile seconds. */
    public double warmup() {
        long t0 = System.nanoTime();
        for (Kernel k : kernels()) backend.prepare(k);
        for (; onceRun < once.size(); onceRun++) backend.launch(once.get(onceRun));
        planTemps();
        replay = backend instanceof Replayable r ? r.capture(name, planned) : this::launchAll;
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
        for (Task t : planned) backend.launch(t);
    }

    /** (Re)plans the temps onto physical buffers and sets {@code planned}, the task list the backend runs. */
    private void planTemps() {
        if (plan != null) plan.close();
        plan = null;
        if (!arena) {
            planned = List.copyOf(tasks);
            return;
        }
        plan = new BufferPlan(backend, name, tasks);
        planned = plan.tasks;
    }

    /**
     * Runs every task once, one at a time, timing each on the device where the backend can ({@link Timed}; CUDA events
     * on {@link CudaBackend}), else by the host clock around launch + finish. Compiles first when needed. For
     * profiling only: each task waits for the previous one (no CUDA graph), so totals exceed {@link #execute}'s time.
     */
    public Profile profile() {
        if (replay == null) warmup();
        backend.finish();
        Timed timer = backend instanceof Timed t ? t
                : backend instanceof CudaBackend cb ? task -> cb.elapsedMillis(() -> cb.launch(task))
                : task -> {
                    long t0 = System.nanoTime();
                    backend.launch(task);
                    backend.finish();
                    return (System.nanoTime() - t0) / 1e6;
                };
        List<Profile.TaskTime> times = new ArrayList<>();
        for (Task t : tasks()) times.add(new Profile.TaskTime(t.name(), t.kernel().id(), timer.millis(t)));
        return new Profile(name, backend.name(), !(backend instanceof Timed || backend instanceof CudaBackend), times);
    }

    /** A backend that measures the device time of one launch (waits for it). */
    public interface Timed {
        double millis(Task task);
    }

    /** A backend that can capture a task list once and replay it cheaply (CUDA graphs). */
    public interface Replayable {
        Runnable capture(String graphName, List<Task> tasks);
    }
}
