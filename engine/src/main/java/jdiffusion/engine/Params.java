package jdiffusion.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Buffer;
import jdiffusion.kernels.DType;
import jdiffusion.loader.LoaderException;
import jdiffusion.loader.TensorInfo;
import jdiffusion.loader.Weights;

/**
 * Weight upload: layers ask for their parameters by checkpoint name and shape while they are constructed (a prefix walk);
 * each is checked against the stored tensor and uploaded once as F32 (FP32/TF32) or F16 (FP16).
 * A dry instance (no weights, no backend) only records the name -> shape of every parameter asked for, which is how
 * {@code parameterShapes} is derived from the same constructors that load.
 */
final class Params implements AutoCloseable {
    final String model;
    final Weights weights;
    final Backend backend;
    final DType dtype;
    final Map<String, long[]> shapes = new LinkedHashMap<>();
    private final List<Buffer> buffers = new ArrayList<>();

    Params(String model, Weights weights, Exec exec) {
        this.model = model;
        this.weights = weights;
        this.backend = exec.backend();
        this.dtype = exec.precision() == Precision.FP16 ? DType.F16 : DType.F32;
    }

    /** Shape recording only. */
    Params(String model) {
        this.model = model;
        this.weights = null;
        this.backend = null;
        this.dtype = DType.F32;
    }

    boolean dry() {
        return weights == null;
    }

    /** The parameter {@code name} with exactly {@code shape}, uploaded; LoaderException naming the tensor when it is missing or misshaped. */
    Tensor get(String name, int... shape) {
        return get(name, null, shape);
    }

    /** As {@link #get(String, int...)}, with the host values transformed before upload (layout changes only). */
    Tensor get(String name, java.util.function.UnaryOperator<float[]> transform, int... shape) {
        long[] want = Arrays.stream(shape).asLongStream().toArray();
        if (shapes.putIfAbsent(name, want) != null) throw new IllegalStateException(model + ": parameter " + name + " asked for twice");
        if (dry()) return new Tensor(null, shape);
        if (!weights.has(name))
            throw new LoaderException(model + ": weight " + name + " " + Arrays.toString(shape) + " is missing in " + weights.source());
        TensorInfo info = weights.info(name);
        if (!Arrays.equals(info.shape(), want))
            throw new LoaderException(model + ": weight " + name + " in " + weights.source() + " has shape " + Arrays.toString(info.shape()) + ", expected " + Arrays.toString(want));
        float[] values = weights.floats(name);
        if (values.length != info.elements())
            throw new LoaderException(model + ": weight " + name + " in " + weights.source() + " gave " + values.length + " values for shape " + Arrays.toString(want));
        return upload(name, transform == null ? values : transform.apply(values), shape);
    }

    /** Uploads host values derived from the weights (not a checkpoint tensor itself). */
    Tensor upload(String name, float[] values, int... shape) {
        Buffer b = backend.allocate(model + "." + name, dtype, values.length);
        buffers.add(b);
        backend.write(b, values);
        return new Tensor(b, shape);
    }

    long bytes() {
        long n = 0;
        for (Buffer b : buffers) n += b.bytes();
        return n;
    }

    @Override
    public void close() {
        for (Buffer b : buffers) b.close();
        buffers.clear();
    }
}
