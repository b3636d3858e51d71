package jdiffusion.kernels;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Liveness plan of a TaskGraph's transient buffers ({@link TaskGraph#temp}): a temp is live from the first to the last
 * task that takes it; temps of one dtype whose live ranges do not overlap share one physical buffer. Greedy by size:
 * the largest temp first, into the smallest physical buffer that is free over its whole range, else into a new buffer
 * of its own size (so a physical buffer is never smaller than any of its tenants). Two temps taken by the same task
 * overlap, so reuse never aliases a task's input with its output. Physical buffers are not cleared between tenants:
 * every kernel writes all of its output. The recorded tasks are rewritten onto the physical buffers, so backends
 * (CUDA-graph capture included) only ever see real buffers.
 */
final class BufferPlan implements AutoCloseable {
    /** A graph-owned placeholder buffer in recorded tasks; {@code kept} is its own real buffer when the host reads or writes it. */
    static final class Temp implements Buffer {
        final TaskGraph graph;
        final String what;
        final DType dtype;
        final long length;
        Buffer kept;

        Temp(TaskGraph graph, String what, DType dtype, long length) {
            this.graph = graph;
            this.what = what;
            this.dtype = dtype;
            this.length = length;
        }

        @Override
        public Backend backend() {
            return graph.backend;
        }

        @Override
        public DType dtype() {
            return dtype;
        }

        @Override
        public long length() {
            return length;
        }

        /** The graph frees it. */
        @Override
        public void close() {
        }

        @Override
        public String toString() {
            return "Temp[" + graph.name + "/" + what + ", " + dtype + " x " + length + "]";
        }
    }

    /** One physical buffer to be: its dtype and length, and the live ranges [first, last] of its tenants. */
    private static final class Slot {
        final DType dtype;
        final long length;
        final List<long[]> ranges = new ArrayList<>();
        final String firstTenant;

        Slot(DType dtype, long length, String firstTenant) {
            this.dtype = dtype;
            this.length = length;
            this.firstTenant = firstTenant;
        }

        boolean freeDuring(long first, long last) {
            for (long[] r : ranges) if (r[0] <= last && first <= r[1]) return false;
            return true;
        }
    }

    final List<Task> tasks;
    final List<Buffer> physical = new ArrayList<>();
    final long bytes;

    /** Plans the temps of {@code recorded} (kept ones map to their own buffers) and allocates the physical buffers on backend. */
    BufferPlan(Backend backend, String graphName, List<Task> recorded) {
        Map<Temp, long[]> live = new IdentityHashMap<>();
        List<Temp> order = new ArrayList<>();
        for (int i = 0; i < recorded.size(); i++)
            for (Object a : recorded.get(i).args())
                if (a instanceof Temp t && t.kept == null) {
                    long[] r = live.get(t);
                    if (r == null) {
                        live.put(t, new long[]{i, i});
                        order.add(t);
                    } else {
                        r[1] = i;
                    }
                }
        order.sort(Comparator.comparingLong((Temp t) -> -t.length).thenComparingLong(t -> live.get(t)[0])); // stable: ties keep first-use order
        List<Slot> slots = new ArrayList<>();
        Map<Temp, Slot> home = new IdentityHashMap<>();
        for (Temp t : order) {
            long[] r = live.get(t);
            Slot best = null;
            for (Slot s : slots)
                if (s.dtype == t.dtype && s.length >= t.length && s.freeDuring(r[0], r[1]) && (best == null || s.length < best.length)) best = s;
            if (best == null) {
                best = new Slot(t.dtype, t.length, t.what);
                slots.add(best);
            }
            best.ranges.add(r);
            home.put(t, best);
        }
        Map<Slot, Buffer> buffers = new IdentityHashMap<>();
        long total = 0;
        try {
            for (int i = 0; i < slots.size(); i++) {
                Slot s = slots.get(i);
                Buffer b = backend.allocate(graphName + "/arena." + i + " (" + s.ranges.size() + " temps, largest " + s.firstTenant + ")", s.dtype, s.length);
                physical.add(b);
                buffers.put(s, b);
                total += b.bytes();
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        this.bytes = total;
        List<Task> out = new ArrayList<>(recorded.size());
        for (Task task : recorded) {
            Object[] args = task.args().clone();
            boolean changed = false;
            for (int j = 0; j < args.length; j++)
                if (args[j] instanceof Temp t) {
                    args[j] = t.kept != null ? t.kept : buffers.get(home.get(t));
                    changed = true;
                }
            out.add(changed ? new Task(task.name(), task.kernel(), task.launch(), args) : task);
        }
        this.tasks = List.copyOf(out);
    }

    @Override
    public void close() {
        for (Buffer b : physical) b.close();
        physical.clear();
    }
}
