// The memory a full fine-tuning step needs, estimated from the model's shape before anything is
// allocated: a run that cannot fit is refused up front, with what would lower it, rather than
// killed by the kernel minutes in (a 0.6B base on a 24 GiB machine). An estimate of what step.ts
// holds today: change it with the step (the README's Performance section has the measured peaks).
import type { LlamaConfig } from "../model/config.ts";
import { countParameters } from "../model/config.ts";

const BYTES = 4; // float32: weights, gradients, moments and activations alike

export interface StepMemoryEstimate {
  parameters: number;
  weightsMB: number; // the model itself
  momentsMB: number; // AdamW's m and v
  gradientsMB: number; // the gradient sums, and the shards' gradients of the largest parameter
  updateMB: number; // the update's temporaries (weights and moments are overwritten in place)
  activationsMB: number; // what the backward pass keeps of the forward, and the output head's logits
  totalMB: number; // weights, moments, gradients, and the larger of the update and the activations

}

/** Memory of one training step of `c` on `rows` rows of `seqLen` positions, `supervised` of them
 * through the output head (the trainer runs the head only there; at most rows × seqLen).
 *
 * The activations and the update never coexist: gradient clipping needs the global norm of every
 * gradient, so no parameter is updated before the whole backward pass has ended and released the
 * activations. Peak = weights + moments + gradients + the larger of the two. */
export function estimateStepMemory(
  c: LlamaConfig,
  { rows, seqLen, supervised = rows * seqLen }: { rows: number; seqLen: number; supervised?: number },
): StepMemoryEstimate {
  const parameters = countParameters(c);
  const perParam = (copies: number) => (copies * parameters * BYTES) / 2 ** 20;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  // Per position and layer, the arrays the backward pass reads: the residual stream and the two
  // norms' outputs (~6 × hidden), q/k/v before and after the norms and RoPE and the attention output
  // (3q + 4kv), the attention scores and probabilities (2 × heads × positions), and the MLP's gate,
  // up, activation, product and SiLU's sigmoid (5 × intermediate).
  const perPosition = c.numHiddenLayers * (6 * c.hiddenSize + 3 * q + 4 * kv + 2 * c.numAttentionHeads * seqLen + 5 * c.intermediateSize);
  // The head: logits, their softmax and its gradient at each supervised position.
  const head = 3 * supervised * c.vocabSize;
  const activationsMB = ((rows * seqLen * perPosition + head) * BYTES) / 2 ** 20;
  const est = {
    parameters,
    weightsMB: perParam(1),
    momentsMB: perParam(2),
    // The gradient sums, and both streams' gradients of the largest parameter: the shards' gradients
    // are added layer by layer as the backward pass makes them, but a tied embedding's head part
    // arrives first and its lookup part last, so both shards' copies live through the backward pass.
    gradientsMB: perParam(1) + (2 * largestParameter(c) * BYTES) / 2 ** 20,
    // AdamW overwrites weights and moments in place (lib/train/adamw.ts); a temporary the size of
    // the largest parameter (its squared gradient for the norm, a layout copy at the first step)
    updateMB: (largestParameter(c) * BYTES) / 2 ** 20,
    activationsMB,
  };
  return { ...est, totalMB: est.weightsMB + est.momentsMB + est.gradientsMB + Math.max(est.updateMB, est.activationsMB) };
}

/** Elements of the largest single parameter: the embedding, or an MLP projection. */
function largestParameter(c: LlamaConfig): number {
  return Math.max(c.vocabSize * c.hiddenSize, c.hiddenSize * c.intermediateSize, c.hiddenSize * c.numAttentionHeads * c.headDim);
}
