// The output head and cross-entropy over the vocabulary in slices, for the gradient-checkpointed
// step (lib/train/recompute.ts). With a 152k-token vocabulary (Qwen3) the head's logits are the
// largest arrays of a LoRA step: [n, V] floats, their softmax and its gradient, and with a quantized
// embedding (QLoRA) its dequantized [V, D] copy (622 MB at D 1024). Here only one slice of
// `vocabChunk` rows exists at a time (LlamaModel.headSlice):
//   pass 1, forward only: the logsumexp over the slices, online (a running max and a rescaled sum),
//           and each target's logit from the slice that holds it;
//   pass 2: per slice, the logits again and d logits = (softmax − onehot(target))·w, pulled back
//           through the slice by the caller's vjp: the gradient wrt the rows and the head's parameters.
// The same cross-entropy and gradients as the unsliced head (test/head-loss.test.ts), for one more
// forward product of the head: pass 2's vjp never evaluates its own forward output (MLX is lazy),
// only the products the gradient needs.
import { core as mx } from "@frost-beta/mlx";
import type { LlamaModel } from "../model/llama.ts";
import { releaseMemory } from "../mlx/memory.ts";

export const VOCAB_CHUNK = 16384; // vocabulary rows per slice: 512 rows × 16k × 4 B = 32 MB of logits, a 64 MB dequantized slice at D 1024

/** The vjp of `fn` (rows [n, D] → logits [n, Vs]) at `rows` with cotangent `ct`: [d rows, ...d of
 * the head's trainable parameters], which the caller binds. */
export type HeadVjp = (fn: (rows: mx.array) => mx.array, rows: mx.array, ct: mx.array) => mx.array[];

/**
 * Cross-entropy of `model`'s head at `rows` [n, D] (final-norm outputs) against `targets` [n] int32,
 * and the gradient of sum(ce · weights): per target `ce` [n], and [d rows, ...d head parameters]
 * summed over the slices (`grads`; none without `vjp`: evaluation). Arrays are evaluated and memory
 * released after every slice.
 */
export async function slicedCrossEntropy(
  model: LlamaModel,
  rows: mx.array,
  targets: mx.array,
  weights: mx.array,
  vjp: HeadVjp | null,
  { vocabChunk = VOCAB_CHUNK }: { vocabChunk?: number } = {},
): Promise<{ ce: mx.array; grads: mx.array[] }> {
  const V = model.config.vocabSize;
  const n = rows.shape[0]!;
  const slices: [number, number][] = [];
  for (let start = 0; start < V; start += vocabChunk) slices.push([start, Math.min(V, start + vocabChunk)]);
  /** Where each target falls in the slice [start, end): its column there, and whether it is there. */
  const inSlice = (start: number, end: number) => ({
    here: mx.logicalAnd(mx.greaterEqual(targets, start), mx.less(targets, end)), // [n] bool
    column: mx.clip(mx.subtract(targets, start), 0, end - start - 1).astype(mx.int32), // [n]
  });

  // Pass 1: logsumexp and the target logits.
  let max = mx.full([n], -Infinity, mx.float32);
  let sum = mx.zeros([n], mx.float32);
  let picked = mx.zeros([n], mx.float32);
  for (const [start, end] of slices) {
    const logits = model.headSlice(rows, start, end).astype(mx.float32); // [n, Vs]
    const next = mx.maximum(max, mx.max(logits, -1));
    sum = mx.add(mx.multiply(sum, mx.exp(mx.subtract(max, next))), mx.sum(mx.exp(mx.subtract(logits, mx.expandDims(next, -1))), -1));
    const { here, column } = inSlice(start, end);
    picked = mx.add(picked, mx.where(here, mx.squeeze(mx.takeAlongAxis(logits, mx.expandDims(column, -1), -1), -1), 0));
    max = next;
    mx.eval(max, sum, picked);
    await releaseMemory(); // eager: the slice's logits go with the collector
  }
  const lse = mx.add(max, mx.log(sum)); // [n]
  const ce = mx.subtract(lse, picked);
  mx.eval(lse, ce);
  if (!vjp) return { ce, grads: [] };

  // Pass 2: the gradient, one slice at a time.
  let grads: mx.array[] = [];
  const w = mx.expandDims(weights.astype(mx.float32), -1); // [n, 1]
  for (const [start, end] of slices) {
    const fn = (r: mx.array) => model.headSlice(r, start, end);
    const logits = fn(rows).astype(mx.float32);
    const { here, column } = inSlice(start, end);
    const onehot = mx.multiply(mx.equal(mx.expandDims(column, -1), mx.arange(0, end - start, 1, mx.int32)), mx.expandDims(here, -1)); // [n, Vs] bool
    const dLogits = mx.multiply(mx.subtract(mx.exp(mx.subtract(logits, mx.expandDims(lse, -1))), onehot.astype(mx.float32)), w);
    const g = vjp(fn, rows, dLogits);
    grads = grads.length ? grads.map((a, i) => mx.add(a, g[i]!)) : g;
    mx.eval(...grads);
    await releaseMemory();
  }
  return { ce, grads };
}
