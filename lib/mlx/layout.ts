// Memory layouts of MLX arrays on the CPU, where they decide which kernel runs.
//
// A fused elementwise kernel of a compiled graph (mx.compile) runs its plain loop, which the compiler
// vectorizes, only when every full-size input has the same layout: all row-major or all column-major
// (MLX 0.13, compiled_check_contiguity). One input laid out otherwise — a transposed view, a broadcast —
// sends the whole kernel down its "strided" path: per element, one index step per input, no SIMD.
// MLX's autodiff returns the gradient of a weight used as x·Wᵀ as the transposed view of xᵀ·dy: a
// column-major array. Held beside a row-major weight and row-major moments, it made every AdamW update
// of a projection run strided (lib/train/adamw.ts). MLX 0.13 does not expose an array's strides, so
// the layouts are set here where they are known, not tested.
import { core as mx } from "@frost-beta/mlx";

/** `a` (2-D) with the same values, stored column-major: the transposed view of a row-major copy of aᵀ.
 * Costs one copy when `a` is row-major, nothing when it is column-major already. */
export function columnMajor(a: mx.array): mx.array {
  if (a.ndim !== 2) throw new Error(`columnMajor: expected a 2-D array, got shape [${a.shape.join(", ")}]`);
  const [rows, cols] = a.shape as [number, number];
  // A reshape copies only what it cannot view: aᵀ of a row-major `a` is not row-major, so flattening
  // it writes a row-major copy of aᵀ; of a column-major `a`, aᵀ is row-major and nothing is copied.
  return a.T.reshape([-1]).reshape([cols, rows]).T;
}

/** Zeros of `shape` (2-D), stored column-major. */
export function zerosColumnMajor(shape: number[], dtype: mx.Dtype = mx.float32): mx.array {
  if (shape.length !== 2) throw new Error(`zerosColumnMajor: expected a 2-D shape, got [${shape.join(", ")}]`);
  return mx.zeros([shape[1]!, shape[0]!], dtype).T;
}
