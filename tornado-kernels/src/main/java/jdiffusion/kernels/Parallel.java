package jdiffusion.kernels;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;

/**
 * Splits a range over all cores for the Java references (the interpreted backend). Uses its own pool of
 * {@code jdiffusion.threads} workers (default: every core; the common pool would leave one core idle, and all of them
 * on a 2-core machine).
 */
public final class Parallel {
    private static final ForkJoinPool POOL = new ForkJoinPool(Integer.getInteger("jdiffusion.threads", Runtime.getRuntime().availableProcessors()));

    private Parallel() {
    }

    /** Worker threads the Java references use. */
    public static int threads() {
        return POOL.getParallelism();
    }

    @FunctionalInterface
    public interface Body {
        void run(int from, int to);
    }

    /** Runs body over [0, n) in chunks of at least {@code grain} items, on the common ForkJoin pool. */
    public static void range(int n, int grain, Body body) {
        if (n <= 0) return;
        int threads = POOL.getParallelism();
        if (threads <= 1 || n <= grain) {
            body.run(0, n);
            return;
        }
        int chunk = Math.max(grain, (n + threads * 4 - 1) / (threads * 4));
        if (ForkJoinTask.inForkJoinPool() && ForkJoinTask.getPool() == POOL) new Split(0, n, chunk, body).invoke();
        else POOL.invoke(new Split(0, n, chunk, body));
    }

    /** Runs body(i) for each i in [0, n), in parallel when n is large enough. */
    public static void each(int n, java.util.function.IntConsumer body) {
        range(n, 1, (from, to) -> {
            for (int i = from; i < to; i++) body.accept(i);
        });
    }

    private static final class Split extends RecursiveAction {
        final int from, to, chunk;
        final Body body;

        Split(int from, int to, int chunk, Body body) {
            this.from = from;
            this.to = to;
            this.chunk = chunk;
            this.body = body;
        }

        @Override
        protected void compute() {
            if (to - from <= chunk) {
                body.run(from, to);
                return;
            }
            int mid = (from + to) >>> 1;
            invokeAll(new Split(from, mid, chunk, body), new Split(mid, to, chunk, body));
        }
    }
}
