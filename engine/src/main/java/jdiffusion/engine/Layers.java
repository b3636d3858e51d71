package jdiffusion.engine;

import jdiffusion.kernels.Conv2d;
import jdiffusion.kernels.DType;
import jdiffusion.kernels.Elementwise;
import jdiffusion.kernels.Gemm;
import jdiffusion.kernels.Norm;
import jdiffusion.kernels.Resample;

/** The torch.nn leaves the model components are made of (Linear, Conv2d, GroupNorm, LayerNorm) and the pointwise ops between them; each appends kernel-family tasks. */
final class Layers {
    private Layers() {
    }

    /**
     * -Djdiffusion.fuse (default true; the fused kernels passed the CPU warp emulator, PoCL, java and, on 2026-11-26, the
     * H100's CUDA tests; read when a model is constructed and when a graph is recorded): residual connections
     * (ResnetBlock2D's shortcut and output_scale_factor, the transformer blocks' h + attn / ff, CLIP's) go into the epilogue
     * of the GEMM / conv that produces the branch, and GEGLU into net.0.proj's GEMM (weights uploaded in
     * {@link Gemm#gegluInterleave}'s order); where a backend has no fused kernel the kernel family appends the
     * elementwise task itself. false: the separate add / add_scaled / geglu tasks, as diffusers writes the model.
     */
    static boolean fuse() {
        return Boolean.parseBoolean(System.getProperty("jdiffusion.fuse", "true"));
    }

    /** nn.Linear: weight [out, in], optional bias [out]. {@code weightShape} lets a 1x1 conv checkpoint tensor [out, in, 1, 1] act as a linear layer. */
    record Linear(String name, Tensor weight, Tensor bias, int in, int out) {
        Linear(Params p, String name, int in, int out, boolean bias) {
            this(p, name, in, out, bias, false);
        }

        Linear(Params p, String name, int in, int out, boolean bias, boolean storedAsConv1x1) {
            this(name, storedAsConv1x1 ? p.get(name + ".weight", out, in, 1, 1) : p.get(name + ".weight", out, in), bias ? p.get(name + ".bias", out) : null, in, out);
        }

        /** x [..., in] -> [..., out] */
        Tensor forward(Activations a, Tensor x) {
            if (x.dim(-1) != in) throw new IllegalArgumentException(name + ": input " + x + " does not end in " + in);
            int rows = Math.toIntExact(x.elements() / in);
            int[] shape = x.shape().clone();
            shape[shape.length - 1] = out;
            Tensor y = a.alloc(name, shape); // [..., out]
            Gemm.linear(a.graph, x.buffer(), weight.buffer(), bias == null ? null : bias.buffer(), y.buffer(), rows, out, in);
            return y;
        }

        /**
         * x [b, hw, in] (tokens) -> [b, out, hw] (channels-first) = (x . weight^T + bias)^T + residual [b, out, hw], times
         * beta: the Linear, the transpose back to the spatial layout and the residual in one GEMM (its epilogue) when
         * {@link #fuse()}; else the three tasks.
         */
        Tensor forwardToChannels(Activations a, Tensor x, Tensor residual, float beta) {
            int b = x.dim(0), hw = x.dim(1);
            if (x.rank() != 3 || x.dim(2) != in) throw new IllegalArgumentException(name + ": input " + x + " is not [b, hw, " + in + "]");
            if (residual.elements() != (long) b * out * hw) throw new IllegalArgumentException(name + ": residual " + residual + " is not [" + b + ", " + out + ", " + hw + "]");
            if (!fuse()) return addScaled(a, name + ".residual", residual, transpose(a, name + ".spatial", forward(a, x), b, hw, out).view(residual.shape()), beta);
            Tensor y = a.alloc(name + ".residual", residual.shape()); // [b, out, hw...]
            Gemm.linearToChannels(a.graph, x.buffer(), weight.buffer(), bias == null ? null : bias.buffer(), residual.buffer(), beta, y.buffer(), b, hw, out, in);
            return y;
        }

        /** (x . weight^T + bias + residual) * beta: x [..., in], residual [..., out] -> [..., out]; the residual in the GEMM's epilogue when {@link #fuse()}. */
        Tensor forward(Activations a, Tensor x, Tensor residual, float beta) {
            if (!fuse()) return addScaled(a, name + ".residual", residual, forward(a, x), beta);
            if (x.dim(-1) != in) throw new IllegalArgumentException(name + ": input " + x + " does not end in " + in);
            int rows = Math.toIntExact(x.elements() / in);
            if (residual.elements() != (long) rows * out) throw new IllegalArgumentException(name + ": residual " + residual + " does not match " + rows + " x " + out);
            Tensor y = a.alloc(name, residual.shape()); // [..., out]
            Gemm.linear(a.graph, x.buffer(), weight.buffer(), bias == null ? null : bias.buffer(), residual.buffer(), beta, y.buffer(), rows, out, in);
            return y;
        }
    }

    /** nn.Conv2d, square kernel, zero padding: weight [cOut, cIn, k, k], bias [cOut]. */
    record Conv(String name, Tensor weight, Tensor bias, int cIn, int cOut, int kernel, int stride, int padding) {
        Conv(Params p, String name, int cIn, int cOut, int kernel, int stride, int padding) {
            this(name, p.get(name + ".weight", cOut, cIn, kernel, kernel), p.get(name + ".bias", cOut), cIn, cOut, kernel, stride, padding);
        }

        /** x [n, cIn, h, w] -> [n, cOut, hOut, wOut] */
        Tensor forward(Activations a, Tensor x) {
            if (x.rank() != 4 || x.dim(1) != cIn) throw new IllegalArgumentException(name + ": input " + x + " is not [n, " + cIn + ", h, w]");
            int n = x.dim(0), h = x.dim(2), w = x.dim(3);
            int hOut = (h + 2 * padding - kernel) / stride + 1, wOut = (w + 2 * padding - kernel) / stride + 1;
            Tensor y = a.alloc(name, n, cOut, hOut, wOut); // [n, cOut, hOut, wOut]
            Conv2d.conv2d(a.graph, x.buffer(), weight.buffer(), bias == null ? null : bias.buffer(), y.buffer(), n, cIn, h, w, cOut, kernel, stride, padding);
            return y;
        }

        /** (conv(x) + bias + residual) * beta: x [n, cIn, h, w], residual [n, cOut, hOut, wOut] -> [n, cOut, hOut, wOut]; in the conv's epilogue when {@link #fuse()}. */
        Tensor forward(Activations a, Tensor x, Tensor residual, float beta) {
            if (!fuse()) return addScaled(a, name + ".residual", residual, forward(a, x), beta);
            if (x.rank() != 4 || x.dim(1) != cIn) throw new IllegalArgumentException(name + ": input " + x + " is not [n, " + cIn + ", h, w]");
            int n = x.dim(0), h = x.dim(2), w = x.dim(3);
            int hOut = (h + 2 * padding - kernel) / stride + 1, wOut = (w + 2 * padding - kernel) / stride + 1;
            if (residual.elements() != (long) n * cOut * hOut * wOut)
                throw new IllegalArgumentException(name + ": residual " + residual + " is not [" + n + ", " + cOut + ", " + hOut + ", " + wOut + "]");
            Tensor y = a.alloc(name, n, cOut, hOut, wOut); // [n, cOut, hOut, wOut]
            Conv2d.conv2d(a.graph, x.buffer(), weight.buffer(), bias == null ? null : bias.buffer(), residual.buffer(), beta, y.buffer(), n, cIn, h, w, cOut, kernel,
                    stride, padding);
            return y;
        }
    }

    /** nn.GroupNorm over [n, c, ...], optionally followed by SiLU (fused). */
    record GroupNorm(String name, Tensor weight, Tensor bias, int groups, int channels, float eps) {
        GroupNorm(Params p, String name, int groups, int channels, float eps) {
            this(name, p.get(name + ".weight", channels), p.get(name + ".bias", channels), groups, channels, eps);
            if (channels % groups != 0) throw new IllegalArgumentException(name + ": " + channels + " channels do not split into " + groups + " groups");
        }

        /** x [n, c, ...] -> same shape */
        Tensor forward(Activations a, Tensor x, boolean silu) {
            if (x.dim(1) != channels) throw new IllegalArgumentException(name + ": input " + x + " does not have " + channels + " channels");
            Tensor y = a.alloc(name, x.shape());
            Norm.groupNorm(a.graph, x.buffer(), weight.buffer(), bias.buffer(), y.buffer(), x.dim(0), channels, x.inner(2), groups, eps, silu);
            return y;
        }
    }

    /** nn.LayerNorm over the last dimension. */
    record LayerNorm(String name, Tensor weight, Tensor bias, int dim, float eps) {
        LayerNorm(Params p, String name, int dim, float eps) {
            this(name, p.get(name + ".weight", dim), p.get(name + ".bias", dim), dim, eps);
        }

        /** x [..., dim] -> same shape */
        Tensor forward(Activations a, Tensor x) {
            if (x.dim(-1) != dim) throw new IllegalArgumentException(name + ": input " + x + " does not end in " + dim);
            Tensor y = a.alloc(name, x.shape());
            Norm.layerNorm(a.graph, x.buffer(), weight.buffer(), bias.buffer(), y.buffer(), Math.toIntExact(x.elements() / dim), dim, eps);
            return y;
        }
    }

    static Tensor silu(Activations a, String name, Tensor x) {
        Tensor y = a.alloc(name, x.shape());
        Elementwise.silu(a.graph, x.buffer(), y.buffer(), x.elements());
        return y;
    }

    static Tensor add(Activations a, String name, Tensor x, Tensor r) {
        if (x.elements() != r.elements()) throw new IllegalArgumentException(name + ": cannot add " + x + " and " + r);
        Tensor y = a.alloc(name, x.shape());
        Elementwise.add(a.graph, x.buffer(), r.buffer(), y.buffer(), x.elements());
        return y;
    }

    /** (x + r) * alpha */
    static Tensor addScaled(Activations a, String name, Tensor x, Tensor r, float alpha) {
        if (alpha == 1f) return add(a, name, x, r);
        if (x.elements() != r.elements()) throw new IllegalArgumentException(name + ": cannot add " + x + " and " + r);
        Tensor y = a.alloc(name, x.shape());
        Elementwise.addScaled(a.graph, x.buffer(), r.buffer(), y.buffer(), x.elements(), alpha);
        return y;
    }

    /** x [batch, rows, cols] -> [batch, cols, rows] */
    static Tensor transpose(Activations a, String name, Tensor x, int batch, int rows, int cols) {
        Tensor y = a.alloc(name, batch, cols, rows); // [batch, cols, rows]
        Resample.transpose(a.graph, x.buffer(), y.buffer(), batch, rows, cols);
        return y;
    }

    /** Converts to {@code type} (F32 <-> F16); returns x itself when it already is. */
    static Tensor cast(Activations a, String name, Tensor x, DType type) {
        if (x.dtype() == type) return x;
        Tensor y = a.alloc(name, type, x.shape());
        Elementwise.cast(a.graph, x.buffer(), y.buffer(), x.elements());
        return y;
    }
}
