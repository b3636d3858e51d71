package jdiffusion.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import jdiffusion.kernels.DType;
import jdiffusion.loader.UNetConfig;
import jdiffusion.loader.Weights;

/**
 * diffusers UNet2DConditionModel for the SD1.x / SD2.x configurations: time_proj + time_embedding, conv_in, down_blocks
 * (DownBlock2D / CrossAttnDownBlock2D), mid_block (UNetMidBlock2DCrossAttn), up_blocks (UpBlock2D / CrossAttnUpBlock2D),
 * conv_norm_out + SiLU, conv_out. Every layer appends kernel-family tasks to one TaskGraph per input shape, which is
 * warmed up (JIT-compiled) when built and replayed on later calls with new inputs written into its device buffers.
 */
public final class UNet2DConditionModel implements AutoCloseable {
    static final String NAME = "UNet2DConditionModel";
    public final UNetConfig config;
    final Exec exec;
    final Params params;
    final TimestepEmbedding timeEmbedding;
    final Layers.Conv convIn, convOut;
    final List<UNetBlocks.DownBlock2D> downBlocks = new ArrayList<>();
    final UNetBlocks.UNetMidBlock2DCrossAttn midBlock;
    final List<UNetBlocks.UpBlock2D> upBlocks = new ArrayList<>();
    final Layers.GroupNorm convNormOut;
    private final Plan.Cache plans = new Plan.Cache();

    public UNet2DConditionModel(UNetConfig config, Weights weights, Exec exec) {
        this(config, new Params(NAME, weights, exec), exec);
    }

    private UNet2DConditionModel(UNetConfig c, Params p, Exec exec) {
        this.config = c;
        this.exec = exec;
        this.params = p;
        try {
            checkSupported(c);
            int n = c.blocks();
            int[] ch = c.blockOutChannels();
            int temb = c.timeEmbedDim(), groups = c.normNumGroups();
            float eps = (float) c.normEps();
            this.timeEmbedding = new TimestepEmbedding(p, "time_embedding.", ch[0], temb, c.flipSinToCos(), c.freqShift());
            this.convIn = new Layers.Conv(p, "conv_in", c.inChannels(), ch[0], c.convInKernel(), 1, (c.convInKernel() - 1) / 2);
            int out = ch[0];
            for (int i = 0; i < n; i++) {
                int in = out;
                out = ch[i];
                UNetBlocks.CrossAttn attn = c.hasAttention(i)
                        ? new UNetBlocks.CrossAttn(c.heads(i), c.transformerLayersPerBlock()[i], c.crossAttentionDim()[i], groups, c.useLinearProjection(), c.upcastAttention())
                        : null;
                downBlocks.add(new UNetBlocks.DownBlock2D(p, "down_blocks." + i + ".", in, out, c.layersPerBlock()[i], temb, groups, eps, i < n - 1, c.downsamplePadding(), attn));
            }
            this.midBlock = new UNetBlocks.UNetMidBlock2DCrossAttn(p, "mid_block.", ch[n - 1], temb, groups, eps, (float) c.midBlockScaleFactor(),
                    new UNetBlocks.CrossAttn(c.midHeads(), c.midTransformerLayers(), c.midCrossAttentionDim(), groups, c.useLinearProjection(), c.upcastAttention()));
            out = ch[n - 1];
            for (int i = 0; i < n; i++) {
                int prevOut = out;
                out = c.upChannels(i);
                int in = ch[Math.max(n - 2 - i, 0)];
                UNetBlocks.CrossAttn attn = c.upHasAttention(i)
                        ? new UNetBlocks.CrossAttn(c.upHeads(i), c.upTransformerLayers(i), c.upCrossAttentionDim(i), groups, c.useLinearProjection(), c.upcastAttention())
                        : null;
                upBlocks.add(new UNetBlocks.UpBlock2D(p, "up_blocks." + i + ".", in, prevOut, out, c.upLayers(i), temb, groups, eps, i < n - 1, attn));
            }
            this.convNormOut = new Layers.GroupNorm(p, "conv_norm_out", groups, ch[0], eps);
            this.convOut = new Layers.Conv(p, "conv_out", ch[0], c.outChannels(), c.convOutKernel(), 1, (c.convOutKernel() - 1) / 2);
        } catch (RuntimeException e) {
            p.close();
            throw e;
        }
    }

    private static void checkSupported(UNetConfig c) {
        for (String t : c.downBlockTypes())
            if (!t.equals("DownBlock2D") && !t.equals("CrossAttnDownBlock2D")) unsupported("down block type " + t);
        for (String t : c.upBlockTypes())
            if (!t.equals("UpBlock2D") && !t.equals("CrossAttnUpBlock2D")) unsupported("up block type " + t);
        if (!"UNetMidBlock2DCrossAttn".equals(c.midBlockType())) unsupported("mid_block_type " + c.midBlockType());
        for (boolean b : c.onlyCrossAttention()) if (b) unsupported("only_cross_attention true");
        if (c.midBlockOnlyCrossAttention() != null && c.midBlockOnlyCrossAttention()) unsupported("mid_block_only_cross_attention true");
        if (!"silu".equals(c.actFn())) unsupported("act_fn " + c.actFn());
        if (!"default".equals(c.resnetTimeScaleShift())) unsupported("resnet_time_scale_shift " + c.resnetTimeScaleShift());
        if (!"positional".equals(c.timeEmbeddingType())) unsupported("time_embedding_type " + c.timeEmbeddingType());
        if (c.classEmbedType() != null || c.numClassEmbeds() != null) unsupported("class embeddings");
        if (c.additionEmbedType() != null) unsupported("addition_embed_type " + c.additionEmbedType());
        if (c.encoderHidDim() != null) unsupported("encoder_hid_dim");
        if (c.timeCondProjDim() != null) unsupported("time_cond_proj_dim");
        if (c.timeEmbeddingActFn() != null) unsupported("time_embedding_act_fn " + c.timeEmbeddingActFn());
        if (c.timestepPostAct() != null) unsupported("timestep_post_act " + c.timestepPostAct());
        if (c.dualCrossAttention()) unsupported("dual_cross_attention");
        if (c.centerInputSample()) unsupported("center_input_sample");
        if (c.crossAttentionNorm() != null) unsupported("cross_attention_norm " + c.crossAttentionNorm());
        if (!"default".equals(c.attentionType())) unsupported("attention_type " + c.attentionType());
        if (c.convInKernel() % 2 == 0 || c.convOutKernel() % 2 == 0) unsupported("even conv_in/conv_out kernel");
        if (c.downsamplePadding() != 1 && c.downsamplePadding() != 0) unsupported("downsample_padding " + c.downsamplePadding());
    }

    private static void unsupported(String what) {
        throw new IllegalArgumentException(NAME + ": " + what + " is not supported (SD1.x/SD2.x configurations only)");
    }

    /** Every parameter name and shape the model loads for this config (what a checkpoint must hold). */
    public static Map<String, long[]> parameterShapes(UNetConfig c) {
        Params p = new Params(NAME);
        new UNet2DConditionModel(c, p, null);
        return p.shapes;
    }

    /** Latent height/width must be a multiple of this (2 per downsampling block). */
    public int sizeMultiple() {
        return 1 << (config.blocks() - 1);
    }

    /**
     * sample [batch, in, height, width], timesteps [batch] (or one value for all), encoderHiddenStates [batch, seqLen,
     * cross_attention_dim] -> noise prediction [batch, out, height, width].
     */
    public float[] forward(float[] sample, int batch, int height, int width, float[] timesteps, float[] encoderHiddenStates, int seqLen) {
        int in = config.inChannels(), cross = config.crossAttentionDim()[0];
        if (batch <= 0 || height <= 0 || width <= 0 || seqLen <= 0)
            throw new IllegalArgumentException(NAME + ": bad sizes batch " + batch + ", " + height + "x" + width + ", seq " + seqLen);
        if (height % sizeMultiple() != 0 || width % sizeMultiple() != 0)
            throw new IllegalArgumentException(NAME + ": latent size " + height + "x" + width + " is not a multiple of " + sizeMultiple());
        for (int d : config.crossAttentionDim())
            if (d != cross) throw new IllegalArgumentException(NAME + ": per-block cross_attention_dim " + Arrays.toString(config.crossAttentionDim()) + " is not supported");
        check("sample", sample, (long) batch * in * height * width, "[" + batch + ", " + in + ", " + height + ", " + width + "]");
        check("encoder_hidden_states", encoderHiddenStates, (long) batch * seqLen * cross, "[" + batch + ", " + seqLen + ", " + cross + "]");
        if (timesteps == null || (timesteps.length != batch && timesteps.length != 1))
            throw new IllegalArgumentException(NAME + ": timesteps has " + (timesteps == null ? "no" : timesteps.length) + " values, expected [" + batch + "] or one");
        float[] t = timesteps;
        if (t.length != batch) {
            t = new float[batch];
            Arrays.fill(t, timesteps[0]);
        }
        Plan plan = plans.get(batch + "x" + height + "x" + width + "x" + seqLen, () -> build(batch, height, width, seqLen));
        exec.backend().write(plan.inputs().get(0).buffer(), sample);
        exec.backend().write(plan.inputs().get(1).buffer(), t);
        exec.backend().write(plan.inputs().get(2).buffer(), encoderHiddenStates);
        plan.acts().graph.execute();
        return exec.backend().read(plan.output().buffer());
    }

    private static void check(String what, float[] x, long expected, String shape) {
        if (x == null || x.length != expected)
            throw new IllegalArgumentException(NAME + ": " + what + " has " + (x == null ? "no" : x.length) + " values, expected " + shape + " = " + expected);
    }

    private Plan build(int batch, int height, int width, int seqLen) {
        Activations a = new Activations(NAME + "[" + batch + "x" + config.inChannels() + "x" + height + "x" + width + ", seq " + seqLen + "]", exec);
        try {
            Tensor sample = a.host("sample", batch, config.inChannels(), height, width);
            Tensor timesteps = a.host("timesteps", DType.F32, batch);
            Tensor ehs = a.host("encoder_hidden_states", batch, seqLen, config.crossAttentionDim()[0]);
            Tensor out = a.keep(forward(a, sample, timesteps, ehs));
            double seconds = a.graph.warmup();
            return new Plan(a, List.of(sample, timesteps, ehs), out, seconds);
        } catch (RuntimeException e) {
            a.close();
            throw e;
        }
    }

    /** sample [b, in, h, w], timesteps F32 [b], encoderHiddenStates [b, seq, cross] -> [b, out, h, w] */
    Tensor forward(Activations a, Tensor sample, Tensor timesteps, Tensor encoderHiddenStates) {
        // 1. time
        Tensor emb = timeEmbedding.forward(a, timesteps);          // [b, temb]
        Tensor embAct = Layers.silu(a, "time_embedding.silu", emb); // [b, temb], the nonlinearity every resnet applies before time_emb_proj
        // 2. pre-process
        Tensor x = convIn.forward(a, sample);                       // [b, c0, h, w]
        // 3. down
        List<Tensor> skips = new ArrayList<>();
        skips.add(x);
        for (UNetBlocks.DownBlock2D block : downBlocks) x = block.forward(a, x, embAct, encoderHiddenStates, skips); // [b, ci, h/2^i, w/2^i]
        // 4. mid
        x = midBlock.forward(a, x, embAct, encoderHiddenStates);
        // 5. up
        for (UNetBlocks.UpBlock2D block : upBlocks) x = block.forward(a, x, embAct, encoderHiddenStates, skips);   // [b, c, 2h', 2w']
        // 6. post-process
        x = convNormOut.forward(a, x, true);                        // [b, c0, h, w]
        return convOut.forward(a, x);                               // [b, out, h, w]
    }

    /** Seconds the last graph built took to warm up (JIT compile or kernel-cache load). */
    public double compileSeconds() {
        return plans.lastCompileSeconds();
    }

    /** Device bytes of the last graph built's activations: {as planned (-Djdiffusion.arena), with a buffer each}. */
    public long[] activationBytes() {
        return plans.lastActivationBytes();
    }

    /** The graph the last forward ran (for TaskGraph.profile, e.g. Study --profile), or null before the first forward. */
    public jdiffusion.kernels.TaskGraph lastGraph() {
        return plans.lastGraph();
    }

    /** Device bytes of the uploaded weights. */
    public long weightBytes() {
        return params.bytes();
    }

    @Override
    public void close() {
        plans.close();
        params.close();
    }
}
