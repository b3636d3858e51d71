package jdiffusion.engine;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import jdiffusion.loader.SafeTensors;
import jdiffusion.loader.TensorInfo;
import jdiffusion.loader.Weights;

/** The bundled tiny-sd fixture (engine/tiny-sd, found through -Dtiny.sd) and comparison helpers for the model tests. */
final class Fixtures {
    private Fixtures() {
    }

    static Path tinySd() {
        String dir = System.getProperty("tiny.sd");
        if (dir == null) throw new IllegalStateException("-Dtiny.sd is not set (the parent pom sets it for surefire)");
        Path p = Path.of(dir);
        if (!Files.isDirectory(p)) throw new IllegalStateException("tiny.sd " + p + " is not a directory");
        return p;
    }

    /** engine/tiny-sd/reference/NAME.safetensors, all tensors as floats. */
    static Map<String, float[]> reference(String name) {
        try (SafeTensors st = SafeTensors.open(tinySd().resolve("reference").resolve(name + ".safetensors"))) {
            Map<String, float[]> m = new java.util.HashMap<>();
            for (String n : st.names()) m.put(n, st.floats(n));
            return m;
        }
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
        return Math.sqrt(num / den);
    }

    static void assertClose(String what, float[] ours, float[] ref, double tolerance) {
        for (float v : ours) if (!Float.isFinite(v)) throw new AssertionError(what + ": non-finite output " + v);
        double e = relErr(ours, ref);
        System.out.printf("%-60s rel L2 error %.3e (tolerance %.0e)%n", what, e, tolerance);
        if (!(e <= tolerance)) throw new AssertionError(what + ": relative L2 error " + e + " > " + tolerance);
    }

    /** A view of weights with one tensor hidden or reshaped (for the error-path tests). */
    static Weights tampered(Weights w, String name, Function<TensorInfo, TensorInfo> change) {
        return new Weights() {
            @Override
            public String source() {
                return w.source() + " (tampered)";
            }

            @Override
            public Set<String> names() {
                Set<String> s = new java.util.LinkedHashSet<>(w.names());
                if (change.apply(w.info(name)) == null) s.remove(name);
                return s;
            }

            @Override
            public TensorInfo info(String n) {
                return n.equals(name) ? change.apply(w.info(n)) : w.info(n);
            }

            @Override
            public float[] floats(String n) {
                return w.floats(n);
            }

            @Override
            public short[] halves(String n) {
                return w.halves(n);
            }

            @Override
            public void close() {
                w.close();
            }
        };
    }
}
