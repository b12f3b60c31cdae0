// NEFTune: noise on the input embeddings while fine-tuning, never at evaluation or generation
// (Jain et al. 2023, "NEFTune: Noisy Embeddings Improve Instruction Finetuning", arXiv:2310.05914,
// Algorithm 1):
//   X_emb ← X_emb + (α / √(L·d)) · ε,   ε ~ Uniform(−1, 1) elementwise,
// with L the sequence length and d the embedding width. L is the batch's padded length T, as in the
// hook behind TRL's `neftune_noise_alpha` (Hugging Face transformers 5.18,
// transformers/integrations/neftune.py `neftune_post_forward_hook`: `dims = output.size(1) *
// output.size(2)`, noise on every position of the padded batch tensor). Padding positions get noise
// too, as there: with right padding and a causal mask no real token attends to them, and they carry
// no loss. Replay rows (lib/data/replay.ts) are in the same batch and get the same noise.
import { core as mx } from "@frost-beta/mlx";

/** The noise's half-width for a batch of length `T` and embedding width `D`: α / √(T·D). */
export function neftuneScale(alpha: number, T: number, D: number): number {
  return alpha / Math.sqrt(T * D);
}

/** Noise for the input embeddings of one training batch, [B, T, D] float32. Drawn from a key made of
 * (seed, step, micro-batch `micro` of the step under --grad-accum), so the same step of a resumed run
 * draws the same noise; micro-batch 0 uses the step's key itself. */
export function neftuneNoise([B, T, D]: [number, number, number], alpha: number, seed: number, step: number, micro = 0): mx.array {
  const stepKey = mx.random.key(seed * 1_000_003 + step);
  const key = micro === 0 ? stepKey : mx.random.split(stepKey, micro + 1).index(micro);
  const scale = neftuneScale(alpha, T, D);
  return mx.random.uniform(-scale, scale, [B, T, D], mx.float32, key);
}
