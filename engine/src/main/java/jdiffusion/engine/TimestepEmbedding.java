package jdiffusion.engine;

import jdiffusion.kernels.DType;
import jdiffusion.kernels.Embedding;

/**
 * diffusers Timesteps (time_proj: sinusoidal, computed in fp32 and cast to the model dtype as diffusers does) followed by
 * TimestepEmbedding (linear_1, SiLU, linear_2).
 */
final class TimestepEmbedding {
    final int projDim, embedDim;
    final boolean flipSinToCos;
    final float freqShift;
    final Layers.Linear linear1, linear2;

    TimestepEmbedding(Params p, String prefix, int projDim, int embedDim, boolean flipSinToCos, float freqShift) {
        this.projDim = projDim;
        this.embedDim = embedDim;
        this.flipSinToCos = flipSinToCos;
        this.freqShift = freqShift;
        this.linear1 = new Layers.Linear(p, prefix + "linear_1", projDim, embedDim, true);
        this.linear2 = new Layers.Linear(p, prefix + "linear_2", embedDim, embedDim, true);
    }

    /** timesteps F32 [n] -> emb [n, embedDim] */
    Tensor forward(Activations a, Tensor timesteps) {
        int n = timesteps.dim(0);
        Tensor proj = a.alloc("time_proj", DType.F32, n, projDim); // [n, projDim]
        Embedding.timestep(a.graph, timesteps.buffer(), proj.buffer(), n, projDim, flipSinToCos, freqShift, 10000f);
        Tensor h = linear1.forward(a, Layers.cast(a, "time_proj.cast", proj, a.dtype)); // [n, embedDim]
        return linear2.forward(a, Layers.silu(a, "time_embedding.act", h));             // [n, embedDim]
    }
}
