// Rotary position embeddings in the Hugging Face "rotate-half" convention: the one RoPE of every path
// (training, evaluation, prefill, the compiled decode step), with one CPU and one Metal implementation.
//
// CPU: tables. This MLX build runs mx.fast.rope on the CPU as its fallback graph (slices of each half,
// a concatenation, cos and sin evaluated per element of the broadcast [B, H, T, D]); here rotate-half
// is a product with a D×D signed permutation matrix and the angles come from tables built once:
// x·cos + (x·R)·sin (README "Performance"); a single token is rotated by its halves instead. Metal: mx.fast.rope, one fused kernel, wherever it can
// express the rotation; it takes neither frequencies (Llama-3 scaling) nor positions as an array
// (the compiled decode step), and there the same tables run. Both agree to float32 rounding of the
// angles (test/rope.test.ts).
import { core as mx } from "@frost-beta/mlx";
import { compileFlat } from "../mlx/autodiff.ts";
import { onCpu } from "../mlx/parallel.ts";

/** How RoPE frequencies are stretched for contexts beyond pretraining (config.json `rope_type`). */
export type RopeScaling =
  | { type: "linear"; factor: number } // every frequency divided by factor (positions interpolated)
  | {
      type: "llama3"; // low frequencies divided by factor, high ones kept, a smooth blend between
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface RopeConfig {
  theta: number; // base of the frequencies
  scaling: RopeScaling | null; // null: plain RoPE
}

/** Where the T tokens of a forward pass sit in the sequence: a number is the first of T consecutive
 * positions; `{ at, capacity }` gives each token's position as an int32 array [T] below `capacity`
 * (the compiled decode step's: its graph must not change with the position). */
export type Positions = number | { at: mx.array; capacity: number };

const asConfig = (rope: RopeConfig | number): RopeConfig => (typeof rope === "number" ? { theta: rope, scaling: null } : rope);

/** The inverse frequencies θ^(-2i/D), i < D/2, with the scaling applied, in double precision
 * (as transformers' `_compute_linear_scaling_rope_parameters` and `_compute_llama3_parameters`). */
export function inverseFrequencies(headDim: number, rope: RopeConfig | number): number[] {
  const { theta, scaling } = asConfig(rope);
  const plain = Array.from({ length: headDim / 2 }, (_, i) => Math.pow(theta, -(2 * i) / headDim));
  if (scaling === null) return plain;
  if (scaling.type === "linear") return plain.map((f) => f / scaling.factor);
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = scaling;
  const lowFreqWavelen = old / lowFreqFactor;
  const highFreqWavelen = old / highFreqFactor;
  return plain.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f; // high frequencies: kept
    if (wavelen > lowFreqWavelen) return f / factor; // low frequencies: scaled
    const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/** cos and sin tables [capacity, headDim] for rotate-half RoPE: entry [p, j] is the angle
 * p · invFreq[j mod D/2], computed in double precision and stored as float32. */
export function ropeTables(capacity: number, headDim: number, rope: RopeConfig | number): { cos: mx.array; sin: mx.array } {
  const half = headDim / 2;
  const inv = inverseFrequencies(headDim, rope);
  const cos: number[] = [];
  const sin: number[] = [];
  for (let p = 0; p < capacity; p++) {
    for (let j = 0; j < headDim; j++) {
      const angle = p * inv[j % half]!;
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
const tables = new Map<string, Tables>(); // by head size and RoPE config: shared by every layer and model

function tablesFor(headDim: number, rope: RopeConfig, positions: number): Tables {
  const key = `${headDim}:${JSON.stringify(rope)}`;
  const have = tables.get(key);
  if (have && have.capacity >= positions) return have;
  const capacity = Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(positions)));
  const made = { ...ropeTables(capacity, headDim, rope), rotateHalf: rotateHalfMatrix(headDim), capacity };
  tables.set(key, made);
  return made;
}

const rotations = new Map<string, (...args: mx.array[]) => mx.array[]>();

/** y [B, T, n·D], cos and sin [T, D], R [D, D] → [B, n, T, D], as one compiled graph per head count
 * and size. Its intermediates then stay inside MLX and are freed as soon as they are used, also where
 * the caller is not compiled (evaluation); built from JavaScript they were held until the next
 * collection, which raised the evaluation's peak, and so an SFT run's resident memory. */
function rotation(nHeads: number, headDim: number): (...args: mx.array[]) => mx.array[] {
  const key = `${nHeads}:${headDim}`;
  let fn = rotations.get(key);
  if (!fn) {
    const raw = (y: mx.array, cos: mx.array, sin: mx.array, rotateHalf: mx.array) => {
      const [B, T] = y.shape;
      const rotated = mx.matmul(y.reshape([B * T * nHeads, headDim]), rotateHalf).reshape([B, T, nHeads * headDim]);
      return [mx.add(mx.multiply(splitHeads(y, nHeads, headDim), cos), mx.multiply(splitHeads(rotated, nHeads, headDim), sin))];
    };
    fn = compileFlat((...a) => raw(a[0]!, a[1]!, a[2]!, a[3]!));
    rotations.set(key, fn);
  }
  return fn;
}

/** [B, T, n·D] → [B, n, T, D]. For one position this is a plain reshape: no transposed view for
 * the ops after it to copy (the decode step). */
export function splitHeads(y: mx.array, nHeads: number, headDim: number): mx.array {
  const [B, T] = y.shape;
  if (T === 1) return y.reshape([B, nHeads, 1, headDim]);
  return y.reshape([B, T, nHeads, headDim]).transpose(0, 2, 1, 3);
}

/** Split a projection's output y [B, T, n·D] into n heads and rotate each token by its position
 * (see Positions): [B, n, T, D]. The tables run on the CPU (`useTables`, for tests) and wherever
 * mx.fast.rope cannot express the rotation; mx.fast.rope otherwise (see the header). */
export function rotaryHeads(y: mx.array, nHeads: number, headDim: number, rope: RopeConfig | number, positions: Positions, useTables = onCpu()): mx.array {
  const config = asConfig(rope);
  const T = y.shape[1]!;
  if (!useTables && fastRopeCan(config, positions)) {
    const offset = positions as number; // fastRopeCan: a number
    const scale = config.scaling?.type === "linear" ? 1 / config.scaling.factor : 1;
    return mx.fast.rope(splitHeads(y, nHeads, headDim), headDim, false, config.theta, scale, offset);
  }
  const t = tablesFor(headDim, config, typeof positions === "number" ? positions + T : positions.capacity);
  const rows = (table: mx.array) => (typeof positions === "number" ? table.index(mx.Slice(positions, positions + T)) : mx.take(table, positions.at, 0));
  if (y.shape[0]! * T === 1) {
    // One token (decoding): rotate-half by its two halves, inline. The product with R pays off in
    // training, where it also keeps slices out of the gradient; this is how the compiled decode
    // step rotated before it ran the shared layers, and its intermediates are a few hundred floats.
    const x = splitHeads(y, nHeads, headDim); // [1, n, 1, D]
    const half = headDim / 2;
    const rotated = mx.concatenate([mx.negative(x.index("...", mx.Slice(half))), x.index("...", mx.Slice(0, half))], -1);
    return mx.add(mx.multiply(x, rows(t.cos)), mx.multiply(rotated, rows(t.sin)));
  }
  return rotation(nHeads, headDim)(y, rows(t.cos), rows(t.sin), t.rotateHalf)[0]!;
}

/** Whether mx.fast.rope computes this rotation: consecutive positions from a number, and plain or
 * linearly scaled frequencies (its `scale` multiplies the positions). */
function fastRopeCan(rope: RopeConfig, positions: Positions): boolean {
  return typeof positions === "number" && (rope.scaling === null || rope.scaling.type === "linear");
}
