// Masked, token-weighted cross-entropy over target-aligned masks (see lib/data/batch.ts).
//
// Like mlx-lm, the loss is a mean over supervised tokens and the token count travels with it, so
// evaluation can accumulate `sum` and `ntoks` over batches and divide once (never a mean of means).
//
// A batch with zero supervised tokens (e.g. every answer cut away) yields loss 0 and ntoks 0, not
// NaN: the denominator is max(ntoks, 1), so the value and its gradient are exactly 0. The trainer
// sees ntoks = 0 and skips the batch with a warning rather than stepping on it.

import { core as mx } from "@frost-beta/mlx";

/** Per-position cross-entropy, unmasked: logits [B, T, V] (any float dtype; computed in float32),
 * targets [B, T] int32 → [B, T] float32. */
export function tokenCrossEntropy(logits: mx.array, targets: mx.array): mx.array {
  const lf = logits.astype(mx.float32); // logsumexp in float32: bf16 logits lose the small differences
  const lse = mx.logsumexp(lf, -1); // [B, T]
  const picked = mx.squeeze(mx.takeAlongAxis(lf, mx.expandDims(targets, -1), -1), -1); // [B, T]
  return mx.subtract(lse, picked);
}

/** Sum of per-token cross-entropy over supervised positions, and the supervised-token count.
 * logits [B, T, V] (any float dtype; computed in float32), targets [B, T] int32, mask [B, T]. */
export function maskedCrossEntropySum(logits: mx.array, targets: mx.array, mask: mx.array): [mx.array, mx.array] {
  const m = mask.astype(mx.float32);
  const ce = mx.multiply(tokenCrossEntropy(logits, targets), m); // [B, T], 0 where unsupervised
  return [mx.sum(ce), mx.sum(m)];
}

/** Mean cross-entropy over supervised tokens: sum(CE * mask) / max(sum(mask), 1). A scalar array;
 * 0 (not NaN) when the mask is all zero. */
export function maskedCrossEntropy(logits: mx.array, targets: mx.array, mask: mx.array): mx.array {
  const [sum, ntoks] = maskedCrossEntropySum(logits, targets, mask);
  return mx.divide(sum, mx.maximum(ntoks, 1));
}
