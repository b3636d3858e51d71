package jdiffusion.engine;

import java.util.List;
import java.util.Map;
import jdiffusion.loader.VaeConfig;
import jdiffusion.loader.Weights;

/**
 * diffusers AutoencoderKL: decode = post_quant_conv + Decoder; encode = Encoder + quant_conv, giving the diagonal
 * Gaussian's mean and logvar (clamped to [-30, 20]) and std = exp(logvar / 2). One TaskGraph per input shape and direction.
 */
public final class AutoencoderKL implements AutoCloseable {
    static final String NAME = "AutoencoderKL";
    public final VaeConfig config;
    final Exec exec;
    final Params params;
    final Encoder encoder;
    final Decoder decoder;
    final Layers.Conv quantConv, postQuantConv;
    private double lastCompileSeconds;
    private final Plan.Cache decodePlans = new Plan.Cache(), encodePlans = new Plan.Cache();

    /** DiagonalGaussianDistribution of encode: each [b, latent, h, w]. */
    public record Encoded(float[] mean, float[] logvar, float[] std) {
    }

    public AutoencoderKL(VaeConfig config, Weights weights, Exec exec) {
        this(config, new Params(NAME, weights, exec), exec);
    }

    private AutoencoderKL(VaeConfig c, Params p, Exec exec) {
        this.config = c;
        this.exec = exec;
        this.params = p;
        try {
            for (String t : c.downBlockTypes()) if (!t.equals("DownEncoderBlock2D")) unsupported("down block type " + t);
            for (String t : c.upBlockTypes()) if (!t.equals("UpDecoderBlock2D")) unsupported("up block type " + t);
            if (!"silu".equals(c.actFn())) unsupported("act_fn " + c.actFn());
            int lat = c.latentChannels();
            this.encoder = new Encoder(p, "encoder.", c);
            this.quantConv = c.useQuantConv() ? new Layers.Conv(p, "quant_conv", 2 * lat, 2 * lat, 1, 1, 0) : null;
            this.postQuantConv = c.usePostQuantConv() ? new Layers.Conv(p, "post_quant_conv", lat, lat, 1, 1, 0) : null;
            this.decoder = new Decoder(p, "decoder.", c);
        } catch (RuntimeException e) {
            p.close();
            throw e;
        }
    }

    private static void unsupported(String what) {
        throw new IllegalArgumentException(NAME + ": " + what + " is not supported");
    }

    public static Map<String, long[]> parameterShapes(VaeConfig c) {
        Params p = new Params(NAME);
        new AutoencoderKL(c, p, null);
        return p.shapes;
    }

    /** Image size / latent size (2 per block after the first). */
    public int scaleFactor() {
        return 1 << (config.blocks() - 1);
    }

    /** latents [b, latent, h, w] (already divided by scaling_factor) -> image [b, out, h*f, w*f], about [-1, 1], unclamped. */
    public float[] decode(float[] latents, int batch, int h, int w) {
        int lat = config.latentChannels();
        check("latents", latents, batch, lat, h, w, 1);
        Plan plan = decodePlans.get(batch + "x" + h + "x" + w, () -> build("decode", batch, lat, h, w));
        exec.backend().write(plan.inputs().get(0).buffer(), latents);
        plan.acts().graph.execute();
        return exec.backend().read(plan.output().buffer());
    }

    /** image [b, in, h, w] (h, w multiples of the scale factor) -> mean, logvar, std [b, latent, h/f, w/f]. */
    public Encoded encode(float[] image, int batch, int h, int w) {
        check("image", image, batch, config.inChannels(), h, w, scaleFactor());
        Plan plan = encodePlans.get(batch + "x" + h + "x" + w, () -> build("encode", batch, config.inChannels(), h, w));
        exec.backend().write(plan.inputs().get(0).buffer(), image);
        plan.acts().graph.execute();
        float[] moments = exec.backend().read(plan.output().buffer()); // [b, 2*latent, h/f, w/f]
        int lat = config.latentChannels(), plane = lat * (h / scaleFactor()) * (w / scaleFactor());
        float[] mean = new float[batch * plane], logvar = new float[batch * plane], std = new float[batch * plane];
        for (int b = 0; b < batch; b++) {
            System.arraycopy(moments, 2 * b * plane, mean, b * plane, plane);
            for (int i = 0; i < plane; i++) {
                float lv = Math.clamp(moments[(2 * b + 1) * plane + i], -30f, 20f);
                logvar[b * plane + i] = lv;
                std[b * plane + i] = (float) Math.exp(0.5 * lv);
            }
        }
        return new Encoded(mean, logvar, std);
    }

    private void check(String what, float[] x, int batch, int c, int h, int w, int multiple) {
        if (batch <= 0 || h <= 0 || w <= 0 || h % multiple != 0 || w % multiple != 0)
            throw new IllegalArgumentException(NAME + ": bad " + what + " size batch " + batch + ", " + h + "x" + w + (multiple > 1 ? " (must be multiples of " + multiple + ")" : ""));
        long n = (long) batch * c * h * w;
        if (x == null || x.length != n)
            throw new IllegalArgumentException(NAME + ": " + what + " has " + (x == null ? "no" : x.length) + " values, expected [" + batch + ", " + c + ", " + h + ", " + w + "] = " + n);
    }

    private Plan build(String direction, int batch, int c, int h, int w) {
        Activations a = new Activations(NAME + "." + direction + "[" + batch + "x" + c + "x" + h + "x" + w + "]", exec);
        try {
            Tensor x = a.host(direction.equals("decode") ? "latents" : "image", batch, c, h, w);
            Tensor out = a.keep(direction.equals("decode") ? decode(a, x) : encode(a, x));
            lastCompileSeconds = a.graph.warmup();
            return new Plan(a, List.of(x), out, lastCompileSeconds);
        } catch (RuntimeException e) {
            a.close();
            throw e;
        }
    }

    /** z [b, latent, h, w] -> image [b, out, H, W] */
    Tensor decode(Activations a, Tensor z) {
        if (postQuantConv != null) z = postQuantConv.forward(a, z); // [b, latent, h, w]
        return decoder.forward(a, z);
    }

    /** image [b, in, H, W] -> moments [b, 2*latent, h, w] */
    Tensor encode(Activations a, Tensor x) {
        Tensor m = encoder.forward(a, x);
        return quantConv == null ? m : quantConv.forward(a, m); // [b, 2*latent, h, w]
    }

    public double compileSeconds() {
        return lastCompileSeconds;
    }

    @Override
    public void close() {
        decodePlans.close();
        encodePlans.close();
        params.close();
    }
}
