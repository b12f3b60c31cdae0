// Rotary embeddings from tables (lib/model/rope.ts, the CPU path) against mx.fast.rope (the Metal
// path, and MLX's reference): the same rotation forward and backward, at any offset, for query and
// key head counts alike; scaled frequencies (linear, Llama-3) as transformers computes them; positions
// given as an array (the compiled decode step) as by an offset. The stories260K conformance
// (test/model.test.ts) and the transformers fixtures (test/hf-conformance.test.ts) run through the tables too.
//   bun test test/rope.test.ts
import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { inverseFrequencies, rotaryHeads, rotateHalfMatrix, type RopeConfig } from "../lib/model/rope.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const maxAbs = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;
// The tables' angles are computed in double precision, fast.rope's in float32: at position p the
// angle differs by up to ~p · 6e-8 rad, so values of size ~3 differ by up to ~1e-4 at p ~ 600.
const TOL = 2e-4;

describe("rotaryHeads", () => {
  test.each([
    // batch, positions, heads, headDim, offset, theta
    { B: 2, T: 16, n: 4, D: 8, offset: 0, theta: 10000 },
    { B: 1, T: 7, n: 2, D: 32, offset: 5, theta: 10000 }, // a prefill after cached tokens
    { B: 3, T: 1, n: 8, D: 16, offset: 37, theta: 500000 }, // one new token, Llama-3 theta
    { B: 1, T: 3, n: 2, D: 64, offset: 600, theta: 10000 }, // past the first table size: it grows
    { B: 1, T: 1, n: 4, D: 32, offset: 9, theta: 10000 }, // one token: rotated by its halves, not by R
  ])("B=$B T=$T heads=$n D=$D offset=$offset theta=$theta: as mx.fast.rope, forward and backward", ({ B, T, n, D, offset, theta }) => {
    mx.random.seed(B * 1000 + T + offset);
    const y = mx.random.normal([B, T, n * D]);
    const ct = mx.random.normal([B, n, T, D]);
    const tables = rotaryHeads(y, n, D, theta, offset, true);
    const fast = rotaryHeads(y, n, D, theta, offset, false);
    expect(tables.shape).toEqual([B, n, T, D]);
    expect(maxAbs(tables, fast)).toBeLessThan(TOL);
    const grad = (useTables: boolean) => mx.grad((a: mx.array) => mx.sum(mx.multiply(rotaryHeads(a, n, D, theta, offset, useTables), ct)))(y) as mx.array;
    expect(maxAbs(grad(true), grad(false))).toBeLessThan(TOL);
  });

  test("position 0 is the identity; a wrong offset is not", () => {
    const y = mx.random.normal([1, 1, 2 * 16]);
    const at0 = rotaryHeads(y, 2, 16, 10000, 0, true);
    expect(maxAbs(at0, y.reshape([1, 1, 2, 16]).transpose(0, 2, 1, 3))).toBe(0);
    expect(maxAbs(rotaryHeads(y, 2, 16, 10000, 3, true), rotaryHeads(y, 2, 16, 10000, 4, false))).toBeGreaterThan(1e-2);
  });
});

test.each([4, 8, 64])("x·rotateHalfMatrix(%d) is rotate_half(x) = [-x2, x1], exactly", (D) => {
  const x = mx.random.normal([5, D]);
  const half = D / 2;
  const expected = mx.concatenate([mx.negative(x.index(mx.Slice(), mx.Slice(half))), x.index(mx.Slice(), mx.Slice(0, half))], -1);
  expect(maxAbs(mx.matmul(x, rotateHalfMatrix(D)), expected)).toBe(0);
});

describe("scaled frequencies", () => {
  // transformers 5.18's ROPE_INIT_FUNCTIONS for head_dim 16 (float32): llama3 with theta 5e5, factor 8,
  // low 1, high 4, original context 64 (high, blended and low frequencies all occur); linear factor 2
  const LLAMA3: RopeConfig = { theta: 5e5, scaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } };
  const LLAMA3_HF = [1.0, 0.07940301299095154, 0.004700753837823868, 0.0009115831344388425, 0.00017677668074611574, 3.428102354519069e-5, 6.647869668086059e-6, 1.289173155782919e-6];
  const LINEAR: RopeConfig = { theta: 1e4, scaling: { type: "linear", factor: 2 } };
  const LINEAR_HF = [0.5, 0.15811388194561005, 0.05000000074505806, 0.015811389312148094, 0.004999999888241291, 0.0015811389312148094, 0.0005000000237487257, 0.00015811389312148094];

  test.each([
    ["llama3", LLAMA3, LLAMA3_HF],
    ["linear", LINEAR, LINEAR_HF],
  ] as const)("%s: inverse frequencies equal transformers' (to float32)", (_, rope, expected) => {
    const got = inverseFrequencies(16, rope);
    expect(got).toHaveLength(expected.length);
    got.forEach((f, i) => expect(Math.abs(f - expected[i]!) / expected[i]!).toBeLessThan(1e-6));
  });

  test("linear: the tables as mx.fast.rope with its position scale", () => {
    const y = mx.random.normal([2, 9, 2 * 16]);
    expect(maxAbs(rotaryHeads(y, 2, 16, LINEAR, 3, true), rotaryHeads(y, 2, 16, LINEAR, 3, false))).toBeLessThan(TOL);
  });

  test("llama3 is never handed to mx.fast.rope, which cannot scale frequencies", () => {
    const y = mx.random.normal([1, 5, 4 * 16]);
    expect(maxAbs(rotaryHeads(y, 4, 16, LLAMA3, 2, false), rotaryHeads(y, 4, 16, LLAMA3, 2, true))).toBe(0);
    expect(maxAbs(rotaryHeads(y, 4, 16, LLAMA3, 2, true), rotaryHeads(y, 4, 16, 5e5, 2, true))).toBeGreaterThan(1e-3);
  });

  test.each([
    ["plain", 10000 as number | RopeConfig],
    ["llama3", LLAMA3],
  ])("%s: positions as an array (the compiled step) rotate as the same offset, and one token as a batch row", (_, rope) => {
    const y = mx.random.normal([1, 1, 2 * 16]);
    const pair = mx.concatenate([y, mx.random.normal([1, 1, 2 * 16])], 0); // two rows: the product with R
    for (const p of [0, 7, 300]) {
      const byArray = rotaryHeads(y, 2, 16, rope, { at: mx.array([p], mx.int32), capacity: 512 }, true);
      expect(maxAbs(byArray, rotaryHeads(y, 2, 16, rope, p, true))).toBe(0);
      expect(maxAbs(byArray, rotaryHeads(pair, 2, 16, rope, p, true).index(mx.Slice(0, 1)))).toBeLessThan(1e-6);
    }
  });
});
