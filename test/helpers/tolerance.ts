// Tolerances for float32 results that another summation order may change (another BLAS kernel,
// blocking or thread split, micro-batches against one batch), derived from the computation's size
// and float32's unit roundoff rather than copied from one machine.
//
// A float32 sum or dot product of n terms, in any order, is within γ_n·S of the exact value, where
// S = Σ|terms| and γ_n = n·u/(1 − n·u), u = 2⁻²⁴ (Higham, Accuracy and Stability of Numerical
// Algorithms, 2nd ed., §3.1 and §4.2). Two orders of the same sum therefore differ by at most 2·γ_n·S.

/** float32's unit roundoff (round to nearest). */
export const F32_UNIT_ROUNDOFF = 2 ** -24;

/** γ_n: the relative error bound of an n-term float32 sum. */
export function gamma(n: number): number {
  const nu = n * F32_UNIT_ROUNDOFF;
  if (nu >= 1) throw new Error(`gamma(${n}): n·u ≥ 1, the bound is void`);
  return nu / (1 - nu);
}

/** The largest |a − b| for one n-term float32 sum computed in two orders, its terms' |values| summing to at most `S`. */
export function reorderBound(n: number, S: number): number {
  return 2 * gamma(n) * S;
}
