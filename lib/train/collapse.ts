// When a run has collapsed, so that it ends `failed` instead of `completed`. A model that predicts
// every id equally has a loss of ln V nats/token (V = vocabulary size: 8.3178 for 4096 ids); a
// learning rate far too high (`--lr 1e4`) drives a model there in a few steps with finite losses,
// so the NaN check alone does not see it. The rule, on each held-out evaluation after step 0:
//   - a non-finite held-out loss, or
//   - when the base (the step-0 evaluation) was better than near-uniform: a held-out loss within
//     NEAR_UNIFORM nats of ln V or above it (the model has lost what the base knew), or
//   - when the base was itself near uniform (a freshly initialised model): a held-out loss above
//     EXPLODED times the base's.
// Both lines sit at or above ln V - NEAR_UNIFORM: over-fitting raises a held-out loss from its best,
// but a model that still predicts text stays far below uniform, so what is flagged is noise.

/** Nats/token below ln V that still count as uniform output. */
export const NEAR_UNIFORM = 0.5;
/** Multiple of the base's held-out loss that counts as exploded, when the base is near uniform. */
export const EXPLODED = 1.5;

/** The held-out loss at or above which a run counts as collapsed. */
export function collapseThreshold(baseLoss: number, vocabSize: number): number {
  const nearUniform = Math.log(vocabSize) - NEAR_UNIFORM;
  return baseLoss < nearUniform ? nearUniform : EXPLODED * baseLoss;
}

/** Why the run collapsed (for `History.reason`), or null when `evalLoss` is still a model's. */
export function collapseReason(evalLoss: number, baseLoss: number, vocabSize: number, step: number, lr: number): string | null {
  const uniform = Math.log(vocabSize);
  const at = `at step ${step}, lr ${lr.toExponential(2)}`;
  if (!Number.isFinite(evalLoss)) return `held-out loss ${evalLoss} ${at}: training diverged; try a lower --lr or a longer --warmup`;
  if (evalLoss < collapseThreshold(baseLoss, vocabSize)) return null;
  // Both thresholds are at least ln V - NEAR_UNIFORM, so a collapsed loss is near uniform or above it.
  const where = evalLoss - uniform <= NEAR_UNIFORM
    ? `to near-uniform output (held-out loss ${evalLoss.toFixed(4)} ≈ ln V = ${uniform.toFixed(4)}`
    : `to worse than uniform output (held-out loss ${evalLoss.toFixed(4)} > ln V = ${uniform.toFixed(4)}`;
  return `the model collapsed ${where} ${at}); try a lower --lr`;
}
