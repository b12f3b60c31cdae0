// A Llama-family decoder in MLX: token embedding, RMSNorm, rotary position embeddings in the
// Hugging Face "rotate-half" convention, grouped-query attention (optionally with a per-head RMSNorm
// of queries and keys, as Qwen3), SwiGLU MLP, tied or untied head. This is the only forward pass:
// training, evaluation, prefill and single-token decoding (eager, and the compiled step of decode.ts)
// all run these layers, with a different cache (cache.ts). Loading and saving live in checkpoint.ts.
import { core as mx, nn } from "@frost-beta/mlx";
import type { LlamaConfig } from "./config.ts";
import type { AttentionInputs, LayerCache } from "./cache.ts";
import { rotaryHeads, splitHeads, type Positions, type RopeConfig } from "./rope.ts";

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

/** x·Wᵀ (+ b) for x [..., in], W [out, in]. For a single row (one token) OpenBLAS is faster with
 * either layout than with x·Wᵀ over W's transposed view (README "Performance"): x·Wᵀ with `weightT`,
 * Wᵀ stored [in, out] row-major, where the caller keeps such a copy (the compiled decode step), else
 * the matrix-vector product W·x. */
export function linear(x: mx.array, weight: mx.array, bias?: mx.array, weightT?: mx.array | null): mx.array {
  const [out, inDim] = weight.shape as [number, number];
  if (x.size === inDim) {
    const y = weightT ? mx.matmul(x, weightT) : mx.matmul(weight, x.reshape([inDim, 1])).reshape([...x.shape.slice(0, -1), out]);
    return bias ? mx.add(y, bias) : y;
  }
  return bias ? mx.addmm(bias, x, weight.T) : mx.matmul(x, weight.T);
}

/** nn.Linear through `linear`. */
export class Linear extends nn.Linear {
  /** The weight transposed to [in, out] row-major, set only while the compiled decode step traces
   * (decode.ts passes these copies in as inputs). Underscored: not a parameter. */
  _weightT: mx.array | null = null;

  override forward(x: mx.array): mx.array {
    return linear(x, this.weight, this.bias, this._weightT);
  }
}

/** Attention of queries q [B, H, T, D] over `inputs` (grouped-query: H is a multiple of the
 * key/value heads) → [B, H, T, D]. */
export function attend(q: mx.array, { keys, values, past }: AttentionInputs, scale: number, mask: mx.array | null): mx.array {
  if (!past) return mx.fast.scaledDotProductAttention(q, keys, values, scale, mask ?? undefined);
  // One new position (the compiled step) beside the buffer of earlier ones, its softmax over
  // [buffer, new] written out so that the two never need to be concatenated or sliced.
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const hkv = keys.shape[1]!;
  const qs = mx.multiply(q, scale).reshape([B, hkv, (H / hkv) * T, D]); // a key/value head's queries as rows
  const sPast = mx.add(mx.matmul(qs, past.keys.transpose(0, 1, 3, 2)), past.mask); // [B, Hkv, rep, capacity]
  // a matmul, not sum(q * k): fused into one kernel with k's rotation, that sum made the compiled
  // step read out of bounds when k is also returned (without GQA; MLX 0.0.7 binding)
  const sNew = mx.matmul(qs, keys.transpose(0, 1, 3, 2)); // [B, Hkv, rep, 1]
  const m = mx.maximum(mx.max(sPast, -1, true), sNew);
  const ePast = mx.exp(mx.subtract(sPast, m));
  const eNew = mx.exp(mx.subtract(sNew, m));
  const total = mx.add(mx.sum(ePast, -1, true), eNew);
  const out = mx.divide(mx.add(mx.matmul(ePast, past.values), mx.multiply(eNew, values)), total); // [B, Hkv, rep, D]
  return out.reshape([B, H, T, D]);
}

class Attention extends nn.Module {
  qProj: Linear;
  kProj: Linear;
  vProj: Linear;
  oProj: Linear;
  qNorm?: nn.RMSNorm; // per-head RMSNorm of queries and keys before RoPE (Qwen3)
  kNorm?: nn.RMSNorm;
  nHeads: number;
  nKVHeads: number;
  headDim: number;
  scale: number;
  rope: RopeConfig;

  constructor(c: LlamaConfig) {
    super();
    this.nHeads = c.numAttentionHeads;
    this.nKVHeads = c.numKeyValueHeads;
    this.headDim = c.headDim;
    this.scale = 1 / Math.sqrt(c.headDim);
    this.rope = c.rope;
    this.qProj = new Linear(c.hiddenSize, this.nHeads * c.headDim, c.attentionBias);
    this.kProj = new Linear(c.hiddenSize, this.nKVHeads * c.headDim, c.attentionBias);
    this.vProj = new Linear(c.hiddenSize, this.nKVHeads * c.headDim, c.attentionBias);
    this.oProj = new Linear(this.nHeads * c.headDim, c.hiddenSize, c.outputBias);
    if (c.qkNorm) {
      this.qNorm = new nn.RMSNorm(c.headDim, c.rmsNormEps);
      this.kNorm = new nn.RMSNorm(c.headDim, c.rmsNormEps);
    }
  }

  /** A projection's output [B, T, n·D] as n heads [B, n, T, D], normalised per head if the
   * architecture says so, then rotated to its positions. */
  private rotary(y: mx.array, nHeads: number, norm: nn.RMSNorm | undefined, positions: Positions): mx.array {
    const [B, T] = y.shape;
    const normed = norm ? norm.forward(y.reshape([B, T, nHeads, this.headDim])).reshape([B, T, -1]) : y;
    return rotaryHeads(normed, nHeads, this.headDim, this.rope, positions);
  }

  override forward(x: mx.array, mask: mx.array | null, cache?: LayerCache): mx.array {
    const [B, T] = x.shape;
    const positions = cache?.positions ?? 0;
    const q = this.rotary(this.qProj.forward(x), this.nHeads, this.qNorm, positions); // [B, H, T, D]
    const k = this.rotary(this.kProj.forward(x), this.nKVHeads, this.kNorm, positions); // [B, Hkv, T, D]
    const v = splitHeads(this.vProj.forward(x), this.nKVHeads, this.headDim);
    const out = attend(q, cache ? cache.update(k, v) : { keys: k, values: v }, this.scale, mask); // [B, H, T, D]
    return this.oProj.forward(mergeHeads(out, B, T)); // [B, T, H*D]
  }
}

/** [B, n, T, D] → [B, T, n·D] (for one position, a plain reshape). */
function mergeHeads(y: mx.array, B: number, T: number): mx.array {
  return (T === 1 ? y : y.transpose(0, 2, 1, 3)).reshape([B, T, -1]);
}

class MLP extends nn.Module {
  gateProj: Linear;
  upProj: Linear;
  downProj: Linear;

  constructor(c: LlamaConfig) {
    super();
    this.gateProj = new Linear(c.hiddenSize, c.intermediateSize, c.mlpBias);
    this.upProj = new Linear(c.hiddenSize, c.intermediateSize, c.mlpBias);
    this.downProj = new Linear(c.intermediateSize, c.hiddenSize, c.mlpBias);
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

  override forward(x: mx.array, mask: mx.array | null, cache?: LayerCache): mx.array {
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

  override forward(ids: mx.array, caches?: LayerCache[], embedNoise?: mx.array): mx.array {
    let h = this.embedTokens.forward(ids); // [B, T, D]
    if (embedNoise) h = mx.add(h, embedNoise); // NEFTune, training only: lib/train/neftune.ts
    const T = ids.shape[1]!;
    // A single new token attends to everything cached: no mask needed.
    const mask = T > 1 ? causalMask(T, firstPosition(caches?.[0]?.positions ?? 0), h.dtype) : null;
    this.layers.forEach((layer, i) => {
      h = layer.forward(h, mask, caches?.[i]);
    });
    return this.norm.forward(h);
  }
}

function firstPosition(positions: Positions): number {
  if (typeof positions !== "number") throw new Error("a causal mask needs consecutive positions from a number");
  return positions;
}

/** `LlamaForCausalLM`: parameter paths mirror the Hugging Face names once converted to snake_case
 * (`model.layers.0.selfAttn.qProj.weight` ↔ `model.layers.0.self_attn.q_proj.weight`). */
export class LlamaModel extends nn.Module {
  model: LlamaBody;
  lmHead?: Linear;
  readonly config: LlamaConfig;

  constructor(config: LlamaConfig) {
    super();
    this.config = config;
    this.model = new LlamaBody(config);
    if (!config.tieWordEmbeddings) this.lmHead = new Linear(config.hiddenSize, config.vocabSize, false);
  }

  /** Final hidden states [B, T, D] (before the output head). `embedNoise` [B, T, D] is added to the
   * input embeddings (NEFTune's training-time noise; never given at evaluation or generation). */
  hidden(ids: mx.array, caches?: LayerCache[], embedNoise?: mx.array): mx.array {
    return this.model.forward(ids, caches, embedNoise);
  }

  /** Project hidden states to vocabulary logits: [..., D] -> [..., V]. A head module with its own
   * `project` (an adapter's trainable rows, lib/model/lora.ts) computes them itself. */
  head(h: mx.array): mx.array {
    const m: nn.Module = this.lmHead ?? this.model.embedTokens;
    if (typeof (m as { project?: unknown }).project === "function") return (m as unknown as { project(h: mx.array): mx.array }).project(h);
    return linear(h, m.weight as mx.array);
  }

  /** The logits of the vocabulary rows [start, end) only: [..., D] -> [..., end - start], the same
   * values as those columns of `head(h)`. The gradient-checkpointed step's loss walks the
   * vocabulary in such slices (lib/train/head-loss.ts), so that neither the [N, V] logits nor a
   * quantized head's dequantized [V, D] weight ever exists whole. */
  headSlice(h: mx.array, start: number, end: number): mx.array {
    return projectRows(this.lmHead ?? this.model.embedTokens, h, start, end);
  }

  /** Logits [B, T, V] for int32 token ids [B, T]. */
  override forward(ids: mx.array, caches?: LayerCache[]): mx.array {
    return this.head(this.hidden(ids, caches));
  }
}

/** h [..., D] projected onto the rows [start, end) of a head's (or tied embedding's) weight [V, D]. A
 * module with its own `projectRows` (quantized, or with an adapter's rows) computes them itself. */
export function projectRows(m: nn.Module, h: mx.array, start: number, end: number): mx.array {
  const own = m as unknown as { projectRows?: (h: mx.array, start: number, end: number) => mx.array };
  if (typeof own.projectRows === "function") return own.projectRows(h, start, end);
  const rows = (a: mx.array) => a.index(mx.Slice(start, end));
  const y = mx.matmul(h, rows(m.weight as mx.array).T);
  return m.bias ? mx.add(y, rows(m.bias as mx.array)) : y;
}
