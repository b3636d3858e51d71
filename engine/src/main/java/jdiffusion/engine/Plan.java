package jdiffusion.engine;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * A built forward graph for one input shape: its activations (and TaskGraph), the device input tensors written before
 * each replay, and the output tensor read after it.
 */
record Plan(Activations acts, List<Tensor> inputs, Tensor output, double compileSeconds) implements AutoCloseable {
    /** Graphs kept per model (most recently used), beyond which the oldest is freed. */
    static final int KEEP = Integer.getInteger("jdiffusion.engine.graphs", 2);

    @Override
    public void close() {
        acts.close();
    }

    /** Per-shape plans of one model, least recently used first. */
    static final class Cache implements AutoCloseable {
        private final LinkedHashMap<String, Plan> plans = new LinkedHashMap<>(8, 0.75f, true);
        private double lastCompileSeconds;
        private Plan last;
        private long lastActivationBytes, lastNaiveBytes;

        Plan get(String key, Supplier<Plan> build) {
            Plan p = plans.get(key);
            if (p != null) return last = p;
            while (plans.size() >= Math.max(1, KEEP)) {
                Iterator<Map.Entry<String, Plan>> it = plans.entrySet().iterator();
                it.next().getValue().close();
                it.remove();
            }
            p = build.get();
            lastCompileSeconds = p.compileSeconds();
            lastActivationBytes = p.acts().bytes();
            lastNaiveBytes = p.acts().naiveBytes();
            plans.put(key, p);
            return last = p;
        }

        /** The graph of the plan used last (for TaskGraph.profile), or null. */
        jdiffusion.kernels.TaskGraph lastGraph() {
            return last == null || !plans.containsValue(last) ? null : last.acts().graph;
        }

        double lastCompileSeconds() {
            return lastCompileSeconds;
        }

        /** Device bytes of the last built graph's activations: {planned, with a buffer each}. */
        long[] lastActivationBytes() {
            return new long[]{lastActivationBytes, lastNaiveBytes};
        }

        @Override
        public void close() {
            for (Plan p : plans.values()) p.close();
            plans.clear();
        }
    }
}
