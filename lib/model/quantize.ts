// QLoRA's frozen base: the decoder layers' linear weights quantized with MLX's affine quantization
// (per group of `groupSize` inputs: w ≈ scale·q + bias, q of `bits` bits), in memory only; the
// checkpoint on disk is never touched. Layers MLX cannot quantize stay float32, and the report says
// which and why (the run's config.json keeps it).
//
// The layer is this file's own rather than nn.QuantizedLinear because of speed
// on the CPU: MLX 0.13's CPU quantized matmul is a plain loop, 0.9 GFLOP/s for [512, 1024] x
// [1024, 3072] at 4 or 8 bits (2.2 for the transposed product of the backward pass) against 23 for the
// dense product here, and dequantizing the weight then multiplying dense takes as long as the dense
// product alone. So on the CPU a layer dequantizes its weight for each use; on Metal it uses
// quantizedMatmul. The cost of that on the CPU: a dequantized weight lives until the backward pass
// has used it, so without --grad-checkpoint (one layer at a time) the float32 weights all exist
// during a step, and QLoRA saves memory only with it.
//
// The embedding (a tied model's head too) is quantized as well (QuantizedEmbedding), as mlx-lm's
// QLoRA does: on the Qwen3-0.6B shapes its float32 copy is 622 MB, a third of a 4-bit step's peak.
// A lookup dequantizes only the rows it gathers; as the head, the gradient-checkpointed step projects
// onto one slice of the vocabulary at a time (LlamaModel.headSlice, lib/train/head-loss.ts), so only
// one dequantized slice exists at once. (Dequantized whole for each chunk of positions, it had added
// ~1.8 GB to a step's peak, more than it saved.) An untied head stays float32, as bitsandbytes
// leaves lm_head.
import { core as mx, nn } from "@frost-beta/mlx";
import type { LlamaModel } from "./llama.ts";
import { LINEAR_MODULES, type LinearModule } from "./lora-config.ts";
import { releaseMemory } from "../mlx/memory.ts";
import { onCpu } from "../mlx/parallel.ts";

/** A frozen linear layer whose weight [out, in] is held quantized (packed values, and the scale and
 * bias of each group of inputs). */
export class QuantizedLinear extends nn.Module {
  weight: mx.array; // uint32 [out, in · bits / 32]
  scales: mx.array; // [out, in / groupSize]
  biases: mx.array;
  bias?: mx.array;
  constructor(linear: nn.Linear, readonly groupSize: number, readonly bits: number) {
    super();
    [this.weight, this.scales, this.biases] = mx.quantize(linear.weight, groupSize, bits) as unknown as [mx.array, mx.array, mx.array];
    if (linear.bias) this.bias = linear.bias;
    this.freeze();
  }

  /** The float32 weight [out, in]. */
  dense(): mx.array {
    return mx.dequantize(this.weight, this.scales, this.biases, this.groupSize, this.bits);
  }

  /** As a head: x [..., in] → outputs [start, end) only, dequantizing just those rows. */
  projectRows(x: mx.array, start: number, end: number): mx.array {
    const rows = (a: mx.array) => a.index(mx.Slice(start, end));
    const y = mx.matmul(x, mx.dequantize(rows(this.weight), rows(this.scales), rows(this.biases), this.groupSize, this.bits).T);
    return this.bias ? mx.add(y, rows(this.bias)) : y;
  }

  /** x [..., in] -> [..., out]: dequantized on the CPU (see the header), quantizedMatmul elsewhere. */
  override forward(x: mx.array): mx.array {
    const y = onCpu() ? mx.matmul(x, this.dense().T) : mx.quantizedMatmul(x, this.weight, this.scales, this.biases, true, this.groupSize, this.bits);
    return this.bias ? mx.add(y, this.bias) : y;
  }
}


/** A frozen embedding [V, D] held quantized. A lookup dequantizes the rows it gathers; as a tied head
 * it projects onto all rows (`asLinear`) or onto the rows [start, end) (`projectRows`), dequantizing
 * just those. */
export class QuantizedEmbedding extends nn.Module {
  weight: mx.array; // uint32 [V, D · bits / 32]
  scales: mx.array; // [V, D / groupSize]
  biases: mx.array;
  constructor(embedding: nn.Embedding, readonly groupSize: number, readonly bits: number) {
    super();
    [this.weight, this.scales, this.biases] = mx.quantize(embedding.weight, groupSize, bits) as unknown as [mx.array, mx.array, mx.array];
    this.freeze();
  }

  /** The float32 rows `ids` (any shape) → [..., D]. */
  override forward(ids: mx.array): mx.array {
    const pick = (a: mx.array) => mx.take(a, ids, 0);
    return mx.dequantize(pick(this.weight), pick(this.scales), pick(this.biases), this.groupSize, this.bits);
  }

  /** The float32 weight [V, D], or its rows [start, end). */
  dense(start = 0, end = this.weight.shape[0]!): mx.array {
    const rows = (a: mx.array) => a.index(mx.Slice(start, end));
    return mx.dequantize(rows(this.weight), rows(this.scales), rows(this.biases), this.groupSize, this.bits);
  }

  /** Tied head: h [..., D] → logits [..., V]. */
  asLinear(h: mx.array): mx.array {
    return mx.matmul(h, this.dense().T);
  }

  /** The same, under the name LlamaModel.head asks a head module for. */
  project(h: mx.array): mx.array {
    return this.asLinear(h);
  }

  /** Tied head onto the rows [start, end): h [..., D] → [..., end - start]. */
  projectRows(h: mx.array, start: number, end: number): mx.array {
    return mx.matmul(h, this.dense(start, end).T);
  }
}

export const QUANTIZE_BITS = [4, 8] as const;
export type QuantizeBits = (typeof QUANTIZE_BITS)[number];
export const GROUP_SIZES = [32, 64, 128] as const; // the group sizes MLX 0.13 implements

export interface QuantizeSettings {
  bits: QuantizeBits;
  groupSize: number;
}

export interface QuantizeReport extends QuantizeSettings {
  /** Module kinds quantized in every layer (`q_proj`, ...), and `embed_tokens`. */
  quantized: string[];
  /** Module kinds left in float32, with the reason. */
  kept: Record<string, string>;
  bytesBefore: number; // the weights concerned, float32
  bytesAfter: number; // the same weights quantized (packed values, scales and biases) or kept
}

/** The smallest input dimension MLX 0.13 quantizes at `bits`: 32 packed uint32 words, i.e. 256
 * inputs at 4 bits and 128 at 8 (its own error: "feature dimension ... too small"; pinned by
 * test/lora.test.ts against mx.quantize itself). */
export function minInputDim(bits: number): number {
  return 32 * (32 / bits);
}

/** Why a weight with `inDim` inputs cannot be quantized with `s`, or null when it can. */
export function notQuantizable(inDim: number, { bits, groupSize }: QuantizeSettings): string | null {
  if (inDim % groupSize !== 0) return `input dimension ${inDim} is not a multiple of the group size ${groupSize}`;
  if (inDim < minInputDim(bits)) return `input dimension ${inDim} is below ${minInputDim(bits)}, the least MLX quantizes at ${bits} bits`;
  return null;
}

/** Check the settings; throws an Error naming the value and what is allowed. */
export function checkQuantizeSettings({ bits, groupSize }: QuantizeSettings): void {
  if (!(QUANTIZE_BITS as readonly number[]).includes(bits)) throw new Error(`quantize bits must be 4 or 8, got ${bits}`);
  if (!(GROUP_SIZES as readonly number[]).includes(groupSize)) throw new Error(`quantize group size must be one of ${GROUP_SIZES.join(", ")}, got ${groupSize}`);
}

/**
 * Replace the embedding and the decoder layers' linear layers by quantized ones where MLX can (in
 * place; call before applyLoRA, which then wraps the quantized layers). The embedding first, then
 * each decoder layer, each evaluated as it is replaced and memory released before the next, so that
 * the float32 weights of a model whose arrays are still lazy (a checkpoint loaded with `lazy`, read
 * from the file as they are evaluated; new LlamaModel's random init) never exist all at once.
 */
export async function quantizeModel(model: LlamaModel, settings: QuantizeSettings): Promise<QuantizeReport> {
  checkQuantizeSettings(settings);
  const { bits, groupSize } = settings;
  const quantized = new Set<string>();
  const kept: Record<string, string> = {};
  let bytesBefore = 0;
  let bytesAfter = 0;
  const bytes = (arrays: mx.array[]) => arrays.reduce((n, a) => n + a.nbytes!, 0);
  /** `make()` (the quantized layer) when MLX can quantize `weight`, else `layer` as it is. */
  const convert = (kind: string, layer: nn.Module, weight: mx.array, make: () => QuantizedLinear | QuantizedEmbedding): nn.Module => {
    bytesBefore += weight.nbytes!;
    const why = notQuantizable(weight.shape[1]!, settings);
    if (why) {
      kept[kind] = why;
      bytesAfter += weight.nbytes!;
      return layer;
    }
    const q = make();
    mx.eval(q.weight, q.scales, q.biases);
    bytesAfter += bytes([q.weight, q.scales, q.biases]);
    quantized.add(kind);
    return q;
  };
  const body = model.model as unknown as { embedTokens: nn.Module };
  const embedding = model.model.embedTokens;
  body.embedTokens = convert("embed_tokens", embedding, embedding.weight, () => new QuantizedEmbedding(embedding, groupSize, bits));
  await releaseMemory();
  for (const layer of model.model.layers) {
    for (const [kind, [part, name]] of Object.entries(LINEAR_MODULES) as [LinearModule, readonly [string, string]][]) {
      const parent = layer[part] as unknown as Record<string, nn.Module>;
      const linear = parent[name] as nn.Linear;
      parent[name] = convert(kind, linear, linear.weight, () => new QuantizedLinear(linear, groupSize, bits));
    }
    await releaseMemory(); // the replaced float32 layers' arrays are freed from finalizers
  }
  await releaseMemory();
  model.freeze(); // a quantized base is never trained itself; LoRA adds what trains
  return { bits, groupSize, quantized: [...quantized], kept, bytesBefore, bytesAfter };
}
