// Pins the masked, token-weighted cross-entropy: hand values, invariance to masked positions
// (value and gradient), the zero-token batch, and token-weighted evaluation.
//   bun test -t masked_cross_entropy

import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { maskedCrossEntropy, maskedCrossEntropySum } from "../lib/train/loss.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const lse = (xs: number[]) => Math.log(xs.reduce((s, x) => s + Math.exp(x), 0));
const num = (a: mx.array) => a.item() as number;

// logits [1, 2, 3]: position 0 predicts id 2, position 1 (flat logits) predicts id 1.
const logits = mx.array([[[1, 2, 3], [0, 0, 0]]], mx.float32); // [B=1, T=2, V=3]
const targets = mx.array([[2, 1]], mx.int32);
const ce0 = lse([1, 2, 3]) - 3; // 0.4076
const ce1 = Math.log(3); // 1.0986

describe("masked_cross_entropy", () => {
  test.each([
    [[1, 1], (ce0 + ce1) / 2, 2],
    [[1, 0], ce0, 1],
    [[0, 1], ce1, 1],
  ])("mask %p equals the hand-computed value", (mask, expected, ntoks) => {
    const m = mx.array([mask], mx.float32);
    expect(num(maskedCrossEntropy(logits, targets, m))).toBeCloseTo(expected, 6);
    const [sum, n] = maskedCrossEntropySum(logits, targets, m);
    expect(num(sum)).toBeCloseTo(expected * ntoks, 6);
    expect(num(n)).toBe(ntoks);
  });

  test("bf16 logits are reduced in float32", () => {
    const loss = maskedCrossEntropy(logits.astype(mx.bfloat16), targets, mx.array([[1, 1]], mx.float32));
    expect(loss.dtype).toBe(mx.float32);
    expect(num(loss)).toBeCloseTo((ce0 + ce1) / 2, 6); // these logits are exact in bf16
  });

  test("masked positions (user, padding) change neither the value nor the gradient", () => {
    const [B, T, extra, V] = [2, 3, 4, 5];
    mx.random.seed(0);
    const real = mx.random.normal([B, T, V]);
    const junk = mx.multiply(mx.random.normal([B, extra, V]), 10); // large random logits at masked positions
    const realTargets = mx.array([[1, 4, 0], [3, 3, 2]], mx.int32);
    const realMask = mx.array([[0, 1, 1], [1, 0, 1]], mx.float32); // a user position in each row
    const padded = mx.concatenate([real, junk], 1); // [B, T + extra, V]
    const paddedTargets = mx.concatenate([realTargets, mx.random.randint(0, V, [B, extra], mx.int32)], 1);
    const paddedMask = mx.concatenate([realMask, mx.zeros([B, extra], mx.float32)], 1);

    const gradReal = mx.valueAndGrad((x: mx.array) => maskedCrossEntropy(x, realTargets, realMask));
    const gradPadded = mx.valueAndGrad((x: mx.array) => maskedCrossEntropy(x, paddedTargets, paddedMask));
    const [v1, g1] = gradReal(real);
    const [v2, g2] = gradPadded(padded);
    expect(num(v2)).toBeCloseTo(num(v1), 6);
    const g2List = g2.tolist() as number[][][];
    expect(g2List.map((row) => row.slice(0, T))).toEqual(g1.tolist() as number[][][]);
    expect(g2List.flatMap((row) => row.slice(T)).flat()).toEqual(new Array(B * extra * V).fill(0));
    // unsupervised real positions get zero gradient too
    expect((g1.tolist() as number[][][])[0]![0]).toEqual(new Array(V).fill(0));
  });

  test("a batch with zero supervised tokens gives loss 0, ntoks 0, zero gradient, no NaN", () => {
    const zeroMask = mx.zeros([1, 2], mx.float32);
    const loss = maskedCrossEntropy(logits, targets, zeroMask);
    expect(Number.isNaN(num(loss))).toBe(false);
    expect(num(loss)).toBe(0);
    expect(num(maskedCrossEntropySum(logits, targets, zeroMask)[1])).toBe(0);
    const g = mx.grad((x: mx.array) => maskedCrossEntropy(x, targets, zeroMask))(logits);
    expect((g.tolist() as number[][][]).flat(2)).toEqual(new Array(6).fill(0));
  });

  test("token-weighted evaluation over two batches equals the flat mean, not the mean of means", () => {
    // batch 1: 3 supervised tokens; batch 2: 1 supervised token (of different T)
    const l1 = mx.array([[[2, 0, 0], [0, 1, 0], [0, 0, 0.5]]], mx.float32);
    const t1 = mx.array([[0, 2, 2]], mx.int32);
    const l2 = mx.array([[[0, 4, 0], [1, 1, 1]], [[3, 0, 0], [0, 0, 0]]], mx.float32);
    const t2 = mx.array([[0, 0], [1, 1]], mx.int32);
    const m2 = mx.array([[1, 0], [0, 0]], mx.float32);
    const perToken = [lse([2, 0, 0]) - 2, lse([0, 1, 0]) - 0, lse([0, 0, 0.5]) - 0.5, lse([0, 4, 0]) - 0];
    const flatMean = perToken.reduce((a, b) => a + b) / perToken.length;

    let [sum, ntoks] = [0, 0];
    for (const [l, t, m] of [[l1, t1, mx.ones([1, 3], mx.float32)], [l2, t2, m2]]) {
      const [s, n] = maskedCrossEntropySum(l!, t!, m!);
      sum += num(s);
      ntoks += num(n);
    }
    expect(ntoks).toBe(4);
    expect(sum / ntoks).toBeCloseTo(flatMean, 6);
    const meanOfMeans = ((perToken[0]! + perToken[1]! + perToken[2]!) / 3 + perToken[3]!) / 2;
    expect(Math.abs(meanOfMeans - flatMean)).toBeGreaterThan(0.1); // the test can tell them apart
  });
});
