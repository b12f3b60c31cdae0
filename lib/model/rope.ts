// Rotary position embeddings in the Hugging Face "rotate-half" convention, from precomputed tables.
//
// On Metal mx.fast.rope is one fused kernel, and that is what runs there. On the CPU this MLX build
// runs it as its fallback graph: slices of each half, a concatenation, and cos and sin evaluated once
// per element of the broadcast [B, H, T, D] (scalar sinf and cosf inside the fused kernel). Forward
// and backward of one [8, 8, 256, 32] tensor took ~8.5 ms that way against ~3.5 ms here, where
// rotate-half is a product with a D×D signed permutation matrix (one small matmul, and one more for
// its gradient, instead of slices and a concatenation) and the angles come from tables built once:
// x·cos + (x·R)·sin. Both agree to float32 rounding of the angles (test/rope.test.ts).
import { core as mx } from "@frost-beta/mlx";
import { compileFlat } from "../mlx/autodiff.ts";
import { onCpu } from "../mlx/parallel.ts";

/** cos and sin tables [capacity, headDim] for rotate-half RoPE: entry [p, j] is the angle
 * p · theta^(-2(j mod D/2)/D), computed in double precision and stored as float32. */
export function ropeTables(capacity: number, headDim: number, theta: number): { cos: mx.array; sin: mx.array } {
  const half = headDim / 2;
  const cos: number[] = [];
  const sin: number[] = [];
  for (let p = 0; p < capacity; p++) {
    for (let j = 0; j < headDim; j++) {
      const angle = p * Math.pow(theta, -(2 * (j % half)) / headDim);
      cos.push(Math.cos(angle));
      sin.push(Math.sin(angle));
    }
  }
  return { cos: mx.array(cos).reshape([capacity, headDim]), sin: mx.array(sin).reshape([capacity, headDim]) };
}

/** R [D, D] with x·R = rotate_half(x) = [-x[D/2:], x[:D/2]]: row i has one ±1, in column i ± D/2. */
export function rotateHalfMatrix(headDim: number): mx.array {
  const half = headDim / 2;
  const rows = Array.from({ length: headDim }, (_, i) =>
    Array.from({ length: headDim }, (_, j) => (i < half && j === i + half ? 1 : i >= half && j === i - half ? -1 : 0)),
  );
  return mx.array(rows, mx.float32);
}

interface Tables {
  cos: mx.array;
  sin: mx.array;
  rotateHalf: mx.array;
  capacity: number;
}

const MIN_CAPACITY = 256; // positions; tables grow in powers of two past this
const tables = new Map<string, Tables>(); // by headDim and theta: shared by every layer and model

function tablesFor(headDim: number, theta: number, positions: number): Tables {
  const key = `${headDim}:${theta}`;
  const have = tables.get(key);
  if (have && have.capacity >= positions) return have;
  const capacity = Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(positions)));
  const made = { ...ropeTables(capacity, headDim, theta), rotateHalf: rotateHalfMatrix(headDim), capacity };
  tables.set(key, made);
  return made;
}

const rotations = new Map<string, (...args: mx.array[]) => mx.array[]>();

/** y [B, T, n·D], cos and sin [T, D], R [D, D] → [B, n, T, D], as one compiled graph per head count
 * and size. Its intermediates then stay inside MLX and are freed as soon as they are used, also where
 * the caller is not compiled (evaluation); built from JavaScript they were held until the next
 * collection, which raised the evaluation's peak, and so an SFT run's resident memory, by ~50 MB.
 * Inside the compiled training step it measured the same as the plain function, within noise. */
function rotation(nHeads: number, headDim: number): (...args: mx.array[]) => mx.array[] {
  const key = `${nHeads}:${headDim}`;
  let fn = rotations.get(key);
  if (!fn) {
    const raw = (y: mx.array, cos: mx.array, sin: mx.array, rotateHalf: mx.array) => {
      const [B, T] = y.shape;
      const heads = (a: mx.array) => a.reshape([B, T, nHeads, headDim]).transpose(0, 2, 1, 3);
      const rotated = mx.matmul(y.reshape([B * T * nHeads, headDim]), rotateHalf).reshape([B, T, nHeads * headDim]);
      return [mx.add(mx.multiply(heads(y), cos), mx.multiply(heads(rotated), sin))];
    };
    fn = compileFlat((...a) => raw(a[0]!, a[1]!, a[2]!, a[3]!));
    rotations.set(key, fn);
  }
  return fn;
}

/** Split a projection's output y [B, T, n·D] into n heads and rotate them for positions
 * offset … offset+T−1: [B, n, T, D]. `useTables` defaults to true on the CPU (see the header). */
export function rotaryHeads(y: mx.array, nHeads: number, headDim: number, theta: number, offset: number, useTables = onCpu()): mx.array {
  const [B, T] = y.shape;
  if (!useTables) return mx.fast.rope(y.reshape([B, T, nHeads, headDim]).transpose(0, 2, 1, 3), headDim, false, theta, 1, offset);
  const t = tablesFor(headDim, theta, offset + T);
  const rows = mx.Slice(offset, offset + T);
  return rotation(nHeads, headDim)(y, t.cos.index(rows), t.sin.index(rows), t.rotateHalf)[0]!;
}
