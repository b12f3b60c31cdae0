// LoRA on a Llama-family model, by model surgery: the chosen linear layers of every decoder layer are
// wrapped in a LoRALinear (frozen base + scale·B·A, B zero at the start so the model is unchanged),
// and when chat tokens were added to the base, the embedding (and an untied head) in TrainableTokens,
// which hold the new tokens' rows as a small trainable array of their own. Everything else is frozen,
// so the trainer's flat parameter list (FlatParams, from trainableParameters()) is the adapter only.
// The same two pieces as PEFT's LoRA layers and its TrainableTokens (`trainable_token_indices`), so an
// adapter maps one to one onto PEFT's files (lib/model/adapter.ts).
//
// Why the new rows are their own array rather than the whole embedding trained with the other rows'
// gradient masked: for a 152k-token vocabulary (Qwen3) that would keep a [V, D] gradient and two Adam
// moments (~1.9 GB at D 1024) to train 4 rows, and would not compose with a quantized embedding.
import { core as mx, nn } from "@frost-beta/mlx";
import { LlamaModel, projectRows } from "./llama.ts";
import { setNamedParameters } from "./checkpoint.ts";
import { countParameters } from "./config.ts";
import { LINEAR_MODULES, type LoRASettings } from "./lora-config.ts";
import { flattenParams } from "../mlx/autodiff.ts";
import { QuantizedEmbedding, QuantizedLinear } from "./quantize.ts";

type DenseOrQuantized = nn.Linear | QuantizedLinear;
type EmbeddingLike = nn.Embedding | QuantizedEmbedding;
const isEmbedding = (m: nn.Module): m is EmbeddingLike => m instanceof nn.Embedding || m instanceof QuantizedEmbedding;

/** The PRNG key that LoRA dropout draws from inside a compiled training step. A compiled graph bakes
 * in any key taken from MLX's global state when it is traced, so the step passes a fresh key in as an
 * input each call (lib/train/step.ts) and every LoRALinear splits its own key off this one. */
export class DropoutKeys {
  key: mx.array | null = null;

  /** The next key, or undefined (MLX's global state) when no step has set one. */
  next(): mx.array | undefined {
    if (!this.key) return undefined;
    const keys = mx.random.split(this.key); // [2, 2]
    this.key = keys.index(0);
    return keys.index(1);
  }
}

/** y = base(x) + (α/r)·(dropout(x)·Aᵀ)·Bᵀ, with A [r, in] and B [out, r] as PEFT stores them. */
export class LoRALinear extends nn.Module {
  base: DenseOrQuantized;
  loraA: mx.array;
  loraB: mx.array;
  scale: number;
  dropout: number;
  private readonly keys: DropoutKeys;

  constructor(base: DenseOrQuantized, { rank, alpha, dropout }: Omit<LoRASettings, "targets">, keys: DropoutKeys, key?: mx.array) {
    super();
    const [outDims, inDims] = linearShape(base);
    this.base = base;
    // A as PEFT initialises it (kaiming-uniform with a = √5, i.e. U(±1/√in)); B zero: no change at step 0
    const bound = 1 / Math.sqrt(inDims);
    this.loraA = mx.random.uniform(-bound, bound, [rank, inDims], mx.float32, key);
    this.loraB = mx.zeros([outDims, rank]);
    this.scale = alpha / rank;
    this.dropout = dropout;
    this.keys = keys;
  }

  override forward(x: mx.array): mx.array {
    let xa = x;
    if (this.dropout > 0 && this.training) {
      const keep = mx.random.bernoulli(1 - this.dropout, x.shape, this.keys.next());
      xa = mx.divide(mx.multiply(x, keep), 1 - this.dropout);
    }
    const update = mx.matmul(mx.matmul(xa, this.loraA.T), this.loraB.T); // [..., r] then [..., out]
    return mx.add(this.base.forward(x), mx.multiply(update, this.scale));
  }

  /** The dense weight this layer computes with: W + (α/r)·B·A. */
  mergedWeight(): mx.array {
    return mx.add(denseWeight(this.base), mx.multiply(mx.matmul(this.loraB, this.loraA), this.scale));
  }
}

/** An embedding (or untied output head) whose rows `indices` are a trainable array of their own
 * (`rows`, the rows' full values, PEFT's `trainable_tokens_delta`) while the rest stays frozen. */
export class TrainableTokens extends nn.Module {
  base: EmbeddingLike | DenseOrQuantized;
  rows: mx.array; // [n, D]
  // Lookup tables (a leading underscore keeps them out of parameters()): the row of `rows` each of
  // the V ids reads (0 for ids that are not trainable, whose value is then masked out: see below), and
  // whether an id is trainable.
  //
  // Why no zero row or column concatenated for the other ids to gather (the obvious way): MLX 0.13's
  // gradient through a concatenation is wrong once the result reaches a matmul and the same array is
  // used elsewhere too (measured against finite differences: the rows of a tied embedding, read by the
  // lookup and by the head, got gradients off by up to 100%; test/lora.test.ts pins it).
  private readonly _indices: Int32Array; // a typed array: a plain one would be walked as child modules
  private readonly _slots: mx.array; // [V] int32, in [0, n)
  private readonly _isRow: mx.array; // [V] bool

  constructor(base: EmbeddingLike | DenseOrQuantized, indices: number[]) {
    super();
    const V = base.weight.shape[0]!; // rows (ids for an embedding, outputs for a head), quantized or not
    const bad = indices.find((i) => !Number.isInteger(i) || i < 0 || i >= V);
    if (bad !== undefined) throw new Error(`trainable token id ${bad} is outside the ${V} rows of the embedding`);
    if (new Set(indices).size !== indices.length) throw new Error(`trainable token ids repeat: ${indices.join(", ")}`);
    this.base = base;
    this._indices = Int32Array.from(indices);
    const slots = new Int32Array(V).fill(0);
    const isRow = new Array<boolean>(V).fill(false);
    indices.forEach((id, j) => {
      slots[id] = j;
      isRow[id] = true;
    });
    this._slots = mx.array(Array.from(slots), mx.int32);
    this._isRow = mx.array(isRow, mx.bool_);
    this.rows = this.baseRows(); // start where the base is
  }

  get indices(): number[] {
    return Array.from(this._indices);
  }

  /** Embedding lookup: ids [...] -> [..., D]. */
  lookup(ids: mx.array): mx.array {
    const e = (this.base as EmbeddingLike).forward(ids);
    const r = mx.take(this.rows, mx.take(this._slots, ids), 0);
    return mx.where(mx.expandDims(mx.take(this._isRow, ids), -1), r, e);
  }

  /** Output head: h [..., D] -> logits [..., V]. The trainable rows' columns are the base's plus
   * h·(rows - base rows)ᵀ rather than h·rowsᵀ: the same value, but exactly the base's logits while
   * the rows are unchanged (a matmul of another shape rounds differently). */
  project(h: mx.array): mx.array {
    const b = this.base;
    const logits = isEmbedding(b) ? b.asLinear(h) : b.forward(h);
    const delta = mx.subtract(this.rows, this.baseRows()); // [n, D]
    return mx.add(logits, mx.where(this._isRow, mx.take(mx.matmul(h, delta.T), this._slots, -1), 0)); // [..., n] -> [..., V]
  }

  /** `project`'s columns [start, end) only, the base's rows dequantized only there. */
  projectRows(h: mx.array, start: number, end: number): mx.array {
    const logits = projectRows(this.base, h, start, end); // [..., end - start]
    const delta = mx.subtract(this.rows, this.baseRows()); // [n, D]
    const part = (a: mx.array) => a.index(mx.Slice(start, end));
    return mx.add(logits, mx.where(part(this._isRow), mx.take(mx.matmul(h, delta.T), part(this._slots), -1), 0));
  }

  /** The base's values of the trainable rows [n, D] (dequantized if quantized). */
  private baseRows(): mx.array {
    const b = this.base;
    const ids = mx.array(this.indices, mx.int32);
    if (b instanceof QuantizedLinear || b instanceof QuantizedEmbedding) {
      const pick = (a: mx.array) => mx.take(a, ids, 0);
      return mx.dequantize(pick(b.weight), pick(b.scales), pick(b.biases), b.groupSize, b.bits);
    }
    return mx.take(b.weight, ids, 0);
  }

  override forward(x: mx.array): mx.array {
    return isEmbedding(this.base) ? this.lookup(x) : this.project(x);
  }

  /** Tied head: the embedding used as the output projection. */
  asLinear(h: mx.array): mx.array {
    return this.project(h);
  }

  /** The dense weight with the trainable rows written in: the base's weight copied once, then the
   * rows scattered into the copy (a [V, D] gather of the rows to pick from would be a second
   * embedding-sized array: 622 MB more at the merge for Qwen3's 152k rows). */
  mergedWeight(): mx.array {
    // stopGradient shares the base's buffer, which is held elsewhere, so the scatter writes into a
    // copy; a dequantized weight, used by nothing else, is written in place.
    const merged = mx.stopGradient(denseWeight(this.base));
    merged.indexPut_(mx.array(this.indices, mx.int32), this.rows);
    return merged;
  }
}


/** [out, in] of a linear layer, quantized or not (a quantized weight packs 32/bits values per uint32). */
export function linearShape(l: DenseOrQuantized): [number, number] {
  const [out, packed] = l.weight.shape as [number, number];
  return l instanceof QuantizedLinear ? [out, (packed * 32) / l.bits] : [out, packed];
}

/** The float weight a layer computes with: dequantized, adapters merged. */
export function denseWeight(m: nn.Module): mx.array {
  if (m instanceof LoRALinear || m instanceof TrainableTokens) return m.mergedWeight();
  if (m instanceof QuantizedLinear || m instanceof QuantizedEmbedding) return m.dense();
  return m.weight as mx.array;
}

export interface LoRAOptions {
  seed?: number; // draws A
  tokenIndices?: number[]; // ids whose embedding (and untied head) rows train: the added chat tokens
}

export interface LoRASummary {
  trainable: number; // parameters the optimizer updates
  total: number; // the base's parameters
  modules: number; // LoRALinear layers
}

/**
 * Freeze `model` and add LoRA to `settings.targets` in every decoder layer (in place), plus
 * TrainableTokens for `tokenIndices` on the embedding and, when untied, the head. Afterwards
 * `model.trainableParameters()` is exactly the adapter.
 */
export function applyLoRA(model: LlamaModel, settings: LoRASettings, { seed = 0, tokenIndices = [] }: LoRAOptions = {}): LoRASummary {
  if (model.modules().some((m) => m instanceof LoRALinear || m instanceof TrainableTokens)) throw new Error("applyLoRA: this model already has adapters");
  if (!(settings.rank >= 1 && Number.isInteger(settings.rank))) throw new Error(`lora rank must be a positive integer, got ${settings.rank}`);
  if (!(settings.dropout >= 0 && settings.dropout < 1)) throw new Error(`lora dropout must be in [0, 1), got ${settings.dropout}`);
  if (settings.targets.length === 0) throw new Error("lora targets are empty");
  model.freeze();
  const keys = new DropoutKeys();
  let key = mx.random.key(seed);
  let modules = 0;
  for (const layer of model.model.layers) {
    for (const target of settings.targets) {
      const [part, name] = LINEAR_MODULES[target];
      const parent = layer[part] as unknown as Record<string, DenseOrQuantized>;
      const split = mx.random.split(key);
      key = split.index(0);
      parent[name] = new LoRALinear(parent[name]!, settings, keys, split.index(1)) as unknown as DenseOrQuantized;
      modules += 1;
    }
  }
  if (tokenIndices.length) {
    const body = model.model as unknown as Record<string, unknown>;
    body.embedTokens = new TrainableTokens(model.model.embedTokens, tokenIndices);
    if (model.lmHead) (model as unknown as Record<string, unknown>).lmHead = new TrainableTokens(model.lmHead, tokenIndices);
  }
  mx.eval(model.parameters());
  const count = (tree: unknown) => flattenParams(tree).reduce((n, [, a]) => n + a.size, 0);
  return { trainable: count(model.trainableParameters()), total: countParameters(model.config), modules };
}

/** The LoRA layers of a model with their Hugging Face module paths (`model.layers.0.self_attn.q_proj`). */
export function loraLayers(model: LlamaModel): [string, LoRALinear][] {
  const out: [string, LoRALinear][] = [];
  model.model.layers.forEach((layer, i) => {
    for (const [target, [part, name]] of Object.entries(LINEAR_MODULES)) {
      const m = (layer[part] as unknown as Record<string, unknown>)[name];
      if (m instanceof LoRALinear) out.push([`model.layers.${i}.${part === "selfAttn" ? "self_attn" : "mlp"}.${target}`, m]);
    }
  });
  return out;
}

/** The TrainableTokens of a model: `embed_tokens` and, untied, `lm_head` (PEFT's names for them). */
export function tokenLayers(model: LlamaModel): [string, TrainableTokens][] {
  const out: [string, TrainableTokens][] = [];
  const embed: unknown = model.model.embedTokens;
  if (embed instanceof TrainableTokens) out.push(["embed_tokens", embed]);
  if (model.lmHead instanceof TrainableTokens) out.push(["lm_head", model.lmHead]);
  return out;
}

/** The source of the dropout keys of a model's LoRA layers, when any of them uses dropout. */
export function dropoutKeysOf(model: nn.Module): DropoutKeys | null {
  const withDropout = model.modules().find((m) => m instanceof LoRALinear && m.dropout > 0);
  return withDropout ? (withDropout as unknown as { keys: DropoutKeys }).keys : null;
}

/**
 * A plain LlamaModel computing what `model` computes: LoRA merged into the weights, trainable rows
 * written in, quantized weights dequantized. The model itself is not changed, and every array the
 * adapter does not touch is shared, not copied: on a float32 base only the adapted projections and
 * the embedding (and an untied head) with trainable rows are new. Decoding runs on this (the adapted
 * model decodes too, through the same forward pass, but each token would pay for the adapter's extra
 * products and, quantized, for dequantizing every layer) and a merged checkpoint holds it.
 */
export function mergeLoRA(model: LlamaModel): LlamaModel {
  return plainModel(model, true);
}

/**
 * A plain LlamaModel computing what `model`'s frozen base computes, the adapter off: its arrays are
 * the base's own (nothing is copied; LoRA never changes them), so a LoRA run probes its base without
 * loading it again. A quantized base is refused: its values are not the checkpoint's, so load that.
 */
export function unadapted(model: LlamaModel): LlamaModel {
  if (model.modules().some((m) => m instanceof QuantizedLinear || m instanceof QuantizedEmbedding)) {
    throw new Error("unadapted: the base is quantized, so its weights are not the checkpoint's: load the base checkpoint instead");
  }
  return plainModel(model, false);
}

/** A LlamaModel of `model`'s config holding, at each path, the adapted value (`merged`) or the base's. */
function plainModel(model: LlamaModel, merged: boolean): LlamaModel {
  const plain = new LlamaModel(model.config); // its random init is lazy and replaced before use
  const named = flattenParams(plain.parameters()).map(([path]): [string, mx.array] => [toSnake(path), parameterAt(model, path, merged)]);
  setNamedParameters(plain, named);
  mx.eval(plain.parameters());
  return plain;
}

const toSnake = (path: string) => path.replace(/[A-Z]/g, (ch) => "_" + ch.toLowerCase());

/** The value a plain model would hold at `path` (e.g. `model.layers.0.selfAttn.qProj.weight`): with
 * the adapter merged (`merged`), or the base's under it. */
function parameterAt(model: nn.Module, path: string, merged: boolean): mx.array {
  const parts = path.split(".");
  let node: any = model;
  for (const part of parts.slice(0, -1)) {
    node = node[part];
    if (node instanceof LoRALinear || node instanceof TrainableTokens) break;
  }
  const leaf = parts.at(-1)!;
  if (leaf === "weight" && merged) return denseWeight(node);
  const owner = node instanceof LoRALinear || node instanceof TrainableTokens ? node.base : node;
  const value = owner[leaf];
  if (!(value instanceof mx.array)) throw new Error(`no parameter at ${path} in this model`);
  return value;
}
