// The loss with one coordinate of one parameter moved, for central finite-difference checks of a
// gradient (test/autodiff.test.ts, test/lora.test.ts).
import { core as mx } from "@frost-beta/mlx";
import type { FlatParams } from "../../lib/mlx/autodiff.ts";

/** `loss()` with `params[i]`'s element `k` moved by `delta`; the model gets `params` back after. */
export function lossWithBump(flat: FlatParams, params: mx.array[], loss: () => number, i: number, k: number, delta: number): number {
  const p = params.slice();
  const bump = new Array<number>(params[i]!.size).fill(0);
  bump[k] = delta;
  p[i] = mx.add(params[i]!, mx.array(bump, mx.float32).reshape(params[i]!.shape));
  flat.write(p);
  const l = loss();
  flat.write(params);
  return l;
}
