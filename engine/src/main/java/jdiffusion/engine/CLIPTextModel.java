package jdiffusion.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import jdiffusion.kernels.DType;
import jdiffusion.kernels.Elementwise;
import jdiffusion.kernels.Embedding;
import jdiffusion.loader.ClipTextConfig;
import jdiffusion.loader.Weights;

/**
 * transformers CLIPTextModel (the text_model of SD's text encoder): token + position embeddings, causal pre-LN encoder
 * layers (self_attn, mlp with quick_gelu or gelu), final_layer_norm; pooled output at the eos token (argmax of the ids).
 * Weight names are the diffusers/transformers ones with or without the "text_model." prefix.
 */
public final class CLIPTextModel implements AutoCloseable {
    static final String NAME = "CLIPTextModel";
    public final ClipTextConfig config;
    final Exec exec;
    final Params params;
    final Tensor tokenEmbedding, positionEmbedding;
    final List<EncoderLayer> layers = new ArrayList<>();
    final Layers.LayerNorm finalLayerNorm;
    private final Plan.Cache plans = new Plan.Cache();

    /** Hidden state of the last layer [b, seq, hidden] (after final_layer_norm; clip_skip takes an earlier layer) and the pooled [b, hidden] one. */
    public record Output(float[] lastHiddenState, float[] pooled) {
    }

    public CLIPTextModel(ClipTextConfig config, Weights weights, Exec exec) {
        this(config, new Params(NAME, weights, exec), exec);
    }

    private CLIPTextModel(ClipTextConfig c, Params p, Exec exec) {
        this.config = c;
        this.exec = exec;
        this.params = p;
        try {
            if (!c.hiddenAct().equals("quick_gelu") && !c.hiddenAct().equals("gelu"))
                throw new IllegalArgumentException(NAME + ": hidden_act " + c.hiddenAct() + " is not supported (quick_gelu or gelu)");
            String prefix = !p.dry() && !p.weights.has("embeddings.token_embedding.weight") && p.weights.has("text_model.embeddings.token_embedding.weight") ? "text_model." : "";
            int d = c.hiddenSize();
            float eps = (float) c.layerNormEps();
            this.tokenEmbedding = p.get(prefix + "embeddings.token_embedding.weight", c.vocabSize(), d);
            this.positionEmbedding = p.get(prefix + "embeddings.position_embedding.weight", c.maxPositionEmbeddings(), d);
            for (int i = 0; i < c.numHiddenLayers(); i++) layers.add(new EncoderLayer(p, prefix + "encoder.layers." + i + ".", c, eps));
            this.finalLayerNorm = new Layers.LayerNorm(p, prefix + "final_layer_norm", d, eps);
        } catch (RuntimeException e) {
            p.close();
            throw e;
        }
    }

    public static Map<String, long[]> parameterShapes(ClipTextConfig c) {
        Params p = new Params(NAME);
        new CLIPTextModel(c, p, null);
        return p.shapes;
    }

    /** CLIPEncoderLayer: x + self_attn(layer_norm1(x)) (causal), then x + mlp(layer_norm2(x)). */
    static final class EncoderLayer {
        final String name;
        final Layers.LayerNorm layerNorm1, layerNorm2;
        final Attention selfAttn;
        final Layers.Linear fc1, fc2;
        final boolean quickGelu;

        EncoderLayer(Params p, String prefix, ClipTextConfig c, float eps) {
            int d = c.hiddenSize();
            this.name = prefix.substring(0, prefix.length() - 1);
            this.layerNorm1 = new Layers.LayerNorm(p, prefix + "layer_norm1", d, eps);
            String a = prefix + "self_attn.";
            this.selfAttn = new Attention(p, a + "attn", a + "q_proj", a + "k_proj", a + "v_proj", a + "out_proj", d, d, c.numAttentionHeads(), c.headDim(), true, false, true, null, 1f);
            this.layerNorm2 = new Layers.LayerNorm(p, prefix + "layer_norm2", d, eps);
            this.fc1 = new Layers.Linear(p, prefix + "mlp.fc1", d, c.intermediateSize(), true);
            this.fc2 = new Layers.Linear(p, prefix + "mlp.fc2", c.intermediateSize(), d, true);
            this.quickGelu = c.hiddenAct().equals("quick_gelu");
        }

        /** x [b, seq, d] -> [b, seq, d] */
        Tensor forward(Activations a, Tensor x) {
            x = selfAttn.forward(a, layerNorm1.forward(a, x), null, x); // x + self_attn(layer_norm1(x))
            Tensor h = fc1.forward(a, layerNorm2.forward(a, x)); // [b, seq, intermediate]
            Tensor act = a.alloc(name + ".mlp.act", h.shape());
            if (quickGelu) Elementwise.quickGelu(a.graph, h.buffer(), act.buffer(), h.elements());
            else Elementwise.gelu(a.graph, h.buffer(), act.buffer(), h.elements());
            return fc2.forward(a, act, x, 1f);                  // x + fc2(act), [b, seq, d]
        }
    }

    /**
     * inputIds [batch, seq] (seq <= max_position_embeddings, usually 77) -> last hidden state [batch, seq, hidden] and
     * pooled [batch, hidden]. clipSkip 0 is the last layer; k > 0 takes the output of layer (layers - k) through
     * final_layer_norm, as diffusers' clip_skip does (the pooled output stays the last layer's).
     */
    public Output forward(int[] inputIds, int batch, int clipSkip) {
        if (inputIds == null || batch <= 0 || inputIds.length % batch != 0 || inputIds.length == 0)
            throw new IllegalArgumentException(NAME + ": input_ids of " + (inputIds == null ? "no" : inputIds.length) + " ids do not form [" + batch + ", seq]");
        int seq = inputIds.length / batch;
        if (seq > config.maxPositionEmbeddings())
            throw new IllegalArgumentException(NAME + ": input_ids [" + batch + ", " + seq + "] longer than max_position_embeddings " + config.maxPositionEmbeddings());
        if (clipSkip < 0 || clipSkip >= config.numHiddenLayers())
            throw new IllegalArgumentException(NAME + ": clip_skip " + clipSkip + " outside [0, " + (config.numHiddenLayers() - 1) + "]");
        int[] eos = new int[batch];
        for (int b = 0; b < batch; b++) {
            int best = 0;
            for (int s = 0; s < seq; s++) {
                int id = inputIds[b * seq + s];
                if (id < 0 || id >= config.vocabSize())
                    throw new IllegalArgumentException(NAME + ": input_ids[" + b + ", " + s + "] = " + id + " is outside the vocabulary [0, " + config.vocabSize() + ")");
                if (id > inputIds[b * seq + best]) best = s;
            }
            eos[b] = b * seq + best; // row of the eos token in [b*seq, hidden]
        }
        Plan plan = plans.get(batch + "x" + seq + "/" + clipSkip, () -> build(batch, seq, clipSkip));
        exec.backend().write(plan.inputs().get(0).buffer(), 0, inputIds, 0, inputIds.length);
        exec.backend().write(plan.inputs().get(1).buffer(), 0, eos, 0, batch);
        plan.acts().graph.execute();
        float[] last = exec.backend().read(plan.output().buffer());
        float[] pooled = exec.backend().read(plan.inputs().get(2).buffer());
        return new Output(last, pooled);
    }

    private Plan build(int batch, int seq, int clipSkip) {
        Activations a = new Activations(NAME + "[" + batch + "x" + seq + (clipSkip > 0 ? ", clip_skip " + clipSkip : "") + "]", exec);
        try {
            int d = config.hiddenSize();
            Tensor ids = a.host("input_ids", DType.I32, batch * seq);
            Tensor eos = a.host("eos_rows", DType.I32, batch);
            // 1. embeddings
            Tensor tok = a.alloc("embeddings.token_embedding", batch, seq, d); // [b, seq, d]
            Embedding.gather(a.graph, ids.buffer(), tokenEmbedding.buffer(), tok.buffer(), batch * seq, d, config.vocabSize());
            Tensor x = a.alloc("embeddings", batch, seq, d);                   // [b, seq, d]
            Elementwise.addChannel(a.graph, tok.buffer(), positionEmbedding.buffer(), x.buffer(), batch, seq * d, 1, false);
            // 2. encoder
            Tensor skipped = null;
            for (int i = 0; i < layers.size(); i++) {
                x = layers.get(i).forward(a, x);
                if (clipSkip > 0 && i == layers.size() - 1 - clipSkip) skipped = x;
            }
            // 3. final_layer_norm and pooling at the eos rows
            Tensor last = finalLayerNorm.forward(a, x);                         // [b, seq, d]
            Tensor pooled = a.host("pooled", batch, d);                         // [b, d]
            Embedding.gather(a.graph, eos.buffer(), last.buffer(), pooled.buffer(), batch, d, batch * seq);
            Tensor out = a.keep(skipped == null ? last : new Layers.LayerNorm("final_layer_norm.clip_skip", finalLayerNorm.weight(), finalLayerNorm.bias(), d, finalLayerNorm.eps()).forward(a, skipped));
            double seconds = a.graph.warmup();
            return new Plan(a, List.of(ids, eos, pooled), out, seconds);
        } catch (RuntimeException e) {
            a.close();
            throw e;
        }
    }

    public double compileSeconds() {
        return plans.lastCompileSeconds();
    }

    @Override
    public void close() {
        plans.close();
        params.close();
    }
}
