package jdiffusion.engine;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import jdiffusion.loader.SafeTensors;
import jdiffusion.loader.SchedulerConfig;

/** The diffusers pipeline references of the tiny-sd fixture (pipeline_{ddim,euler,pndm}.safetensors) for scheduler and pipeline tests. */
record PipelineRefs(String name, Map<String, float[]> t, Map<String, long[]> shapes) {

    static Path tinySd() {
        String dir = System.getProperty("tiny.sd");
        if (dir == null) throw new IllegalStateException("-Dtiny.sd is not set (the parent pom sets it for surefire)");
        return Path.of(dir);
    }

    static PipelineRefs load(String scheduler) {
        Path p = tinySd().resolve("reference").resolve("pipeline_" + scheduler + ".safetensors");
        try (SafeTensors st = SafeTensors.open(p)) {
            Map<String, float[]> t = new HashMap<>();
            Map<String, long[]> s = new HashMap<>();
            for (String n : st.names()) {
                t.put(n, st.floats(n));
                s.put(n, st.info(n).shape());
            }
            return new PipelineRefs(scheduler, t, s);
        }
    }

    static SchedulerConfig config(String scheduler) {
        return SchedulerConfig.load(tinySd().resolve("scheduler").resolve("scheduler_config_" + scheduler + ".json"));
    }

    float[] get(String tensor) {
        float[] v = t.get(tensor);
        if (v == null) throw new AssertionError(name + ": no reference tensor " + tensor);
        return v;
    }

    float scalar(String tensor) {
        return get(tensor)[0];
    }

    int steps() {
        return (int) shapes.get("step_latents")[0];
    }

    /** Slice i of a stacked per-step tensor, e.g. step_latents[i]. */
    float[] step(String tensor, int i) {
        float[] all = get(tensor);
        int per = all.length / (int) shapes.get(tensor)[0];
        return Arrays.copyOfRange(all, i * per, (i + 1) * per);
    }

    /** ||ours - ref|| / ||ref|| */
    static double relErr(float[] ours, float[] ref) {
        if (ours.length != ref.length) throw new AssertionError("length " + ours.length + " != reference " + ref.length);
        double num = 0, den = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = (double) ours[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    static void assertClose(String what, float[] ours, float[] ref, double tolerance) {
        for (float v : ours) if (!Float.isFinite(v)) throw new AssertionError(what + ": non-finite value " + v);
        double e = relErr(ours, ref);
        if (!(e <= tolerance)) throw new AssertionError(what + ": relative L2 error " + e + " > " + tolerance);
    }
}
