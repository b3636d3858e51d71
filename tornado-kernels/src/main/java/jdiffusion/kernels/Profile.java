package jdiffusion.kernels;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** One profiled run of a {@link TaskGraph} ({@link TaskGraph#profile}): milliseconds per task, and totals per kernel. */
public record Profile(String graph, String backend, boolean hostTimed, List<TaskTime> tasks) {
    /** One task: its name, its kernel's id (family/name[options]) and its time. */
    public record TaskTime(String task, String kernel, double millis) {
    }

    /** One kernel: launches, total milliseconds and share of the whole run. */
    public record KernelTime(String kernel, int calls, double millis, double share) {
    }

    public double totalMillis() {
        double s = 0;
        for (TaskTime t : tasks) s += t.millis();
        return s;
    }

    /** Totals per kernel id, largest first. */
    public List<KernelTime> byKernel() {
        Map<String, double[]> sums = new LinkedHashMap<>();  // kernel -> {calls, ms}
        for (TaskTime t : tasks) {
            double[] s = sums.computeIfAbsent(t.kernel(), k -> new double[2]);
            s[0]++;
            s[1] += t.millis();
        }
        double total = Math.max(totalMillis(), 1e-12);
        List<KernelTime> out = new ArrayList<>();
        sums.forEach((k, s) -> out.add(new KernelTime(k, (int) s[0], s[1], s[1] / total)));
        out.sort((a, b) -> Double.compare(b.millis(), a.millis()));
        return out;
    }

    /** "kernel,calls,total_ms,share" and a row per kernel, largest first (kernel ids quoted). */
    public String csv() {
        StringBuilder sb = new StringBuilder("kernel,calls,total_ms,share\n");
        for (KernelTime k : byKernel())
            sb.append(quote(k.kernel())).append(String.format(Locale.ROOT, ",%d,%.4f,%.4f%n", k.calls(), k.millis(), k.share()));
        return sb.toString();
    }

    /** "task,kernel,ms" and a row per task in execution order (names and kernel ids quoted). */
    public String tasksCsv() {
        StringBuilder sb = new StringBuilder("task,kernel,ms\n");
        for (TaskTime t : tasks)
            sb.append(quote(t.task())).append(',').append(quote(t.kernel())).append(String.format(Locale.ROOT, ",%.4f%n", t.millis()));
        return sb.toString();
    }

    /** A CSV field in double quotes, inner quotes doubled. */
    private static String quote(String s) {
        return '"' + s.replace("\"", "\"\"") + '"';
    }

    /** The top {@code n} kernels as aligned text lines, with the total. */
    public String top(int n) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "profile of %s on %s: %d tasks, %.3f ms%s%n", graph, backend, tasks.size(), totalMillis(),
                hostTimed ? " (host-timed)" : " (device-timed, one task at a time)"));
        List<KernelTime> all = byKernel();
        for (KernelTime k : all.subList(0, Math.min(n, all.size())))
            sb.append(String.format(Locale.ROOT, "%6.1f%% %10.3f ms %5d x  %s%n", 100 * k.share(), k.millis(), k.calls(), k.kernel()));
        return sb.toString();
    }
}
