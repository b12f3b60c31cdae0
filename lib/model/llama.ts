// A Llama-family decoder in MLX: token embedding, RMSNorm, rotary position embeddings in the
// Hugging Face "rotate-half" convention, grouped-query attention, SwiGLU MLP, tied or untied head.
// Architecture only: loading and saving live in checkpoint.ts, decoding in generate.ts.
import { core as mx, nn } from "@frost-beta/mlx";
import type { LlamaConfig } from "./config.ts";
import type { KVCache } from "./cache.ts";
import { rotaryHeads } from "./rope.ts";

/** An additive causal mask for `t` new queries attending to `offset + t` keys: [t, offset + t].
 * Hidden keys get -inf rather than a large negative number: the CPU's expf returns 0 for -inf at
 * once but takes a slow underflow path for finite values below about -104 (measured ~5% of a
 * training step). Every query sees at least itself, so no row of the softmax is all -inf. */
export function causalMask(t: number, offset = 0, dtype: mx.Dtype = mx.float32): mx.array {
  const rows = mx.arange(offset, offset + t).reshape([t, 1]);
  const cols = mx.arange(0, offset + t).reshape([1, offset + t]);
  return mx.where(mx.greater(cols, rows), mx.array(-Infinity, dtype), mx.array(0, dtype));
}

/** SiLU, x·σ(x), written as x / (1 + exp(-x)): the same function, but every op in it and in its
 * gradient is one that MLX fuses into a compiled kernel, whereas its sigmoid ran as a separate,
 * scalar pass forward and backward (4% of a CPU training step). See lib/mlx/jit.ts. */
export function silu(x: mx.array): mx.array {
  return mx.divide(x, mx.add(1, mx.exp(mx.negative(x))));
}

class Attention extends nn.Module {
  qProj: nn.Linear;
  kProj: nn.Linear;
  vProj: nn.Linear;
  oProj: nn.Linear;
  nHeads: number;
  nKVHeads: number;
  headDim: number;
  scale: number;
  ropeTheta: number;

  constructor(c: LlamaConfig) {
    super();
    this.nHeads = c.numAttentionHeads;
    this.nKVHeads = c.numKeyValueHeads;
    this.headDim = c.headDim;
    this.scale = 1 / Math.sqrt(c.headDim);
    this.ropeTheta = c.ropeTheta;
    this.qProj = new nn.Linear(c.hiddenSize, this.nHeads * c.headDim, c.attentionBias);
    this.kProj = new nn.Linear(c.hiddenSize, this.nKVHeads * c.headDim, c.attentionBias);
    this.vProj = new nn.Linear(c.hiddenSize, this.nKVHeads * c.headDim, c.attentionBias);
    this.oProj = new nn.Linear(this.nHeads * c.headDim, c.hiddenSize, false);
  }

  override forward(x: mx.array, mask: mx.array | null, cache?: KVCache): mx.array {
    const [B, T] = x.shape;
    const offset = cache?.offset ?? 0;
    // [B, T, H*D] -> [B, H, T, D], queries and keys rotated (rotate-half, as Hugging Face checkpoints)
    const q = rotaryHeads(this.qProj.forward(x), this.nHeads, this.headDim, this.ropeTheta, offset);
    let k = rotaryHeads(this.kProj.forward(x), this.nKVHeads, this.headDim, this.ropeTheta, offset);
    let v = this.vProj.forward(x).reshape([B, T, this.nKVHeads, this.headDim]).transpose(0, 2, 1, 3);
    if (cache) [k, v] = cache.updateAndFetch(k, v);
    const out = mx.fast.scaledDotProductAttention(q, k, v, this.scale, mask ?? undefined);
    return this.oProj.forward(out.transpose(0, 2, 1, 3).reshape([B, T, -1])); // [B, T, H*D]
  }
}

class MLP extends nn.Module {
  gateProj: nn.Linear;
  upProj: nn.Linear;
  downProj: nn.Linear;

  constructor(c: LlamaConfig) {
    super();
    this.gateProj = new nn.Linear(c.hiddenSize, c.intermediateSize, c.mlpBias);
    this.upProj = new nn.Linear(c.hiddenSize, c.intermediateSize, c.mlpBias);
    this.downProj = new nn.Linear(c.intermediateSize, c.hiddenSize, c.mlpBias);
  }

  override forward(x: mx.array): mx.array {
    return this.downProj.forward(mx.multiply(silu(this.gateProj.forward(x)), this.upProj.forward(x)));
  }
}

class DecoderLayer extends nn.Module {
  selfAttn: Attention;
  mlp: MLP;
  inputLayernorm: nn.RMSNorm;
  postAttentionLayernorm: nn.RMSNorm;

  constructor(c: LlamaConfig) {
    super();
    this.selfAttn = new Attention(c);
    this.mlp = new MLP(c);
    this.inputLayernorm = new nn.RMSNorm(c.hiddenSize, c.rmsNormEps);
    this.postAttentionLayernorm = new nn.RMSNorm(c.hiddenSize, c.rmsNormEps);
  }

  override forward(x: mx.array, mask: mx.array | null, cache?: KVCache): mx.array {
    const h = mx.add(x, this.selfAttn.forward(this.inputLayernorm.forward(x), mask, cache));
    return mx.add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h)));
  }
}

class LlamaBody extends nn.Module {
  embedTokens: nn.Embedding;
  layers: DecoderLayer[];
  norm: nn.RMSNorm;

  constructor(c: LlamaConfig) {
    super();
    this.embedTokens = new nn.Embedding(c.vocabSize, c.hiddenSize);
    this.layers = Array.from({ length: c.numHiddenLayers }, () => new DecoderLayer(c));
    this.norm = new nn.RMSNorm(c.hiddenSize, c.rmsNormEps);
  }

  override forward(ids: mx.array, caches?: KVCache[]): mx.array {
    let h = this.embedTokens.forward(ids); // [B, T, D]
    const T = ids.shape[1];
    const offset = caches?.[0]?.offset ?? 0;
    // A single new token attends to everything cached: no mask needed.
    const mask = T > 1 ? causalMask(T, offset, h.dtype) : null;
    this.layers.forEach((layer, i) => {
      h = layer.forward(h, mask, caches?.[i]);
    });
    return this.norm.forward(h);
  }
}

/** `LlamaForCausalLM`: parameter paths mirror the Hugging Face names once converted to snake_case
 * (`model.layers.0.selfAttn.qProj.weight` ↔ `model.layers.0.self_attn.q_proj.weight`). */
export class LlamaModel extends nn.Module {
  model: LlamaBody;
  lmHead?: nn.Linear;
  readonly config: LlamaConfig;

  constructor(config: LlamaConfig) {
    super();
    this.config = config;
    this.model = new LlamaBody(config);
    if (!config.tieWordEmbeddings) this.lmHead = new nn.Linear(config.hiddenSize, config.vocabSize, false);
  }

  /** Final hidden states [B, T, D] (before the output head). */
  hidden(ids: mx.array, caches?: KVCache[]): mx.array {
    return this.model.forward(ids, caches);
  }

  /** Project hidden states to vocabulary logits: [..., D] -> [..., V]. */
  head(h: mx.array): mx.array {
    return this.lmHead ? this.lmHead.forward(h) : this.model.embedTokens.asLinear(h);
  }

  /** Logits [B, T, V] for int32 token ids [B, T]. */
  override forward(ids: mx.array, caches?: KVCache[]): mx.array {
    return this.head(this.hidden(ids, caches));
  }
}
