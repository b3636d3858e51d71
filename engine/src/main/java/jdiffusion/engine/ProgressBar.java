package jdiffusion.engine;

import java.io.PrintStream;

/** A tqdm-like one-line progress bar redrawn with carriage returns: " 40%|████      | 4/10 [00:02<00:03, 1.95 it/s]". */
public final class ProgressBar implements StableDiffusionPipeline.StepListener {
    private static final int WIDTH = Integer.getInteger("jdiffusion.progress.width", 30);
    private final PrintStream out;
    private long start = System.nanoTime();

    public ProgressBar(PrintStream out) {
        this.out = out;
    }

    @Override
    public void onStart(int steps) {
        start = System.nanoTime();
        out.print("\r" + line(0, steps, 0));
        out.flush();
    }

    @Override
    public void onStep(int step, int steps, float timestep, float[] latents) {
        out.print("\r" + line(step + 1, steps, (System.nanoTime() - start) / 1e9));
        if (step + 1 == steps) out.println();
        out.flush();
    }

    /** The bar after {@code done} of {@code total} steps, {@code seconds} in. */
    static String line(int done, int total, double seconds) {
        double frac = total == 0 ? 1 : Math.min(1, (double) done / total);
        int fill = (int) Math.round(frac * WIDTH);
        double rate = seconds > 0 ? done / seconds : 0;
        double left = rate > 0 ? (total - done) / rate : 0;
        return String.format("%3d%%|%s%s| %d/%d [%s<%s, %s]", Math.round(frac * 100), "\u2588".repeat(fill), " ".repeat(WIDTH - fill),
                done, total, clock(seconds), clock(left), rate >= 1 || rate == 0 ? String.format("%.2f it/s", rate) : String.format("%.2f s/it", 1 / rate));
    }

    private static String clock(double s) {
        long t = Math.round(s);
        return t >= 3600 ? String.format("%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String.format("%02d:%02d", t / 60, t % 60);
    }
}
