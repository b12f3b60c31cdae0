// Rotary embeddings from tables (lib/model/rope.ts, the CPU path) against mx.fast.rope (the Metal
// path, and MLX's reference): the same rotation forward and backward, at any offset, for query and
// key head counts alike. The stories260K conformance (test/model.test.ts) runs through the tables too.
//   bun test test/rope.test.ts
import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { rotaryHeads, rotateHalfMatrix } from "../lib/model/rope.ts";

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
