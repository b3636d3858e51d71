package jdiffusion.engine;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import jdiffusion.loader.LoaderException;
import jdiffusion.loader.TensorInfo;
import jdiffusion.loader.TensorType;
import jdiffusion.loader.Weights;

/**
 * Deterministic random weights for a name -> shape map (e.g. {@link UNet2DConditionModel#parameterShapes} of the SD1.5
 * config), so full-size models can be benchmarked without a multi-GB checkpoint. Each tensor depends only on the seed and
 * its name: matrices and kernels are uniform in +-1/sqrt(fan_in) (PyTorch's default init range), 1-D ".weight"
 * tensors (norm scales) are near 1, biases near 0.
 */
public final class RandomWeights implements Weights {
    private final Map<String, long[]> shapes;
    private final long seed;

    public RandomWeights(Map<String, long[]> shapes, long seed) {
        this.shapes = Collections.unmodifiableMap(new LinkedHashMap<>(shapes));
        this.seed = seed;
    }

    @Override
    public String source() {
        return "random weights (seed " + seed + ", " + shapes.size() + " tensors)";
    }

    @Override
    public Set<String> names() {
        return shapes.keySet();
    }

    @Override
    public TensorInfo info(String name) {
        long[] shape = shapes.get(name);
        if (shape == null) throw new LoaderException(source() + ": no tensor " + name);
        return new TensorInfo(name, TensorType.F32, shape.clone());
    }

    @Override
    public float[] floats(String name) {
        long[] shape = info(name).shape();
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        if (n > Integer.MAX_VALUE - 8) throw new LoaderException(source() + ": tensor " + name + " " + Arrays.toString(shape) + " is too large for one array");
        float[] v = new float[(int) n];
        SplittableRandom r = new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ name.hashCode());
        if (shape.length == 1) {
            float center = name.endsWith(".weight") ? 1f : 0f;
            for (int i = 0; i < v.length; i++) v[i] = center + (float) r.nextDouble(-0.02, 0.02);
        } else {
            double bound = 1 / Math.sqrt(n / shape[0]);
            for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-bound, bound);
        }
        return v;
    }

    @Override
    public short[] halves(String name) {
        float[] f = floats(name);
        short[] h = new short[f.length];
        for (int i = 0; i < f.length; i++) h[i] = Float.floatToFloat16(f[i]);
        return h;
    }

    @Override
    public void close() {
    }
}
