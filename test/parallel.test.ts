// Sharding a batch over compute streams (lib/mlx/parallel.ts) must not change the mathematics: a step
// whose rows are split over two CPU streams gives the same loss, gradient norm and new weights as the
// same step on one stream, for the dense and the sparse head, odd row counts and a shard with no
// supervised target at all.
//   bun test test/parallel.test.ts
import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { balance, blasThreads, shardRanges, useBlasFor } from "../lib/mlx/parallel.ts";
import { maskedCrossEntropySum } from "../lib/train/loss.ts";
import { TrainStep, type StepBatch } from "../lib/train/step.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const VOCAB = 64;

/** A [rows, T] batch; row `emptyRow` (if any) has no supervised target, others are half masked. */
function batch(rows: number, T: number, seed: number, emptyRow = -1): StepBatch {
  mx.random.seed(seed);
  const data = mx.random.randint(0, VOCAB, [rows, T + 1]).astype(mx.int32);
  const mask = Array.from({ length: rows }, (_, r) => Array.from({ length: T }, (_, t) => (r === emptyRow ? 0 : t >= T / 2 - r ? 1 : 0)));
  return { inputs: data.index(mx.Slice(), mx.Slice(0, T)), targets: data.index(mx.Slice(), mx.Slice(1)), mask: mx.array(mask, mx.float32) };
}

const cpuStreams = (n: number) => Array.from({ length: n }, () => mx.newStream(mx.cpu));
const maxAbsDiff = (a: mx.array[], b: mx.array[]) => Math.max(...a.map((x, i) => mx.max(mx.abs(mx.subtract(x, b[i]!))).item() as number));

describe("parallel", () => {
  test("shardRanges covers every row once, in order, in near-equal shards", () => {
    expect(shardRanges(8, 2)).toEqual([[0, 4], [4, 8]]);
    expect(shardRanges(3, 2)).toEqual([[0, 1], [1, 3]]);
    expect(shardRanges(1, 4)).toEqual([[0, 1]]); // never an empty shard
    for (const [rows, k] of [[16, 3], [5, 5], [7, 2]] as const) {
      const r = shardRanges(rows, k);
      expect(r[0]![0]).toBe(0);
      expect(r[r.length - 1]![1]).toBe(rows);
      r.slice(1).forEach(([start], i) => expect(start).toBe(r[i]![1]));
      const sizes = r.map(([s, e]) => e - s);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });

  test("balance spreads parameter sizes so no bin exceeds another by more than the largest item", () => {
    const sizes = [1024, 256, 256, 32, 32, 32, 688, 688, 4096];
    const bins = balance(sizes, 2);
    const load = [0, 1].map((j) => sizes.reduce((acc, s, i) => acc + (bins[i] === j ? s : 0), 0));
    expect(load[0]! + load[1]!).toBe(sizes.reduce((a, b) => a + b));
    expect(Math.abs(load[0]! - load[1]!)).toBeLessThanOrEqual(Math.max(...sizes));
    expect(balance([5], 3)).toEqual([0]);
  });

  for (const sparseHead of [false, true]) {
    test(`a step sharded over 2 streams equals the step on 1 (${sparseHead ? "sparse" : "dense"} head; 3 rows, one unsupervised)`, async () => {
      const runs = [1, 2].map((n) => {
        const model = tinyModel(VOCAB, { seed: 3 });
        return new TrainStep(model, undefined, { sparseHead, streams: cpuStreams(n) });
      });
      for (let s = 0; s < 3; s++) {
        const b = batch(3, 16, 10 + s, s === 1 ? 0 : -1);
        const [one, two] = [await runs[0]!.step(b, 1e-2), await runs[1]!.step(b, 1e-2)];
        expect(two.loss).toBeCloseTo(one.loss, 5);
        expect(two.gradNorm).toBeCloseTo(one.gradNorm, 4);
      }
      // float noise: the two add the same gradients in another order, and Adam's m/√v turns a ~1e-7
      // difference in an element's small gradient into ~1e-5 of its weight after 3 steps at lr 1e-2
      // (measured up to 1.04e-5, in one projection; 8.5e-6 before its update took gradient sums)
      expect(maxAbsDiff(runs[1]!.flat.read(), runs[0]!.flat.read())).toBeLessThan(2e-5);
    });
  }

  test("a shard may hold rows with no supervised target: the loss is the whole batch's mean", async () => {
    const model = tinyModel(VOCAB, { seed: 4 });
    const b = batch(2, 16, 7, 1); // shard 2 of 2 is the unsupervised row
    const [sum, ntoks] = maskedCrossEntropySum(model.forward(b.inputs), b.targets, b.mask);
    const expected = (sum.item() as number) / (ntoks.item() as number);
    const step = new TrainStep(model, undefined, { streams: cpuStreams(2) });
    expect((await step.step(b, 0)).loss).toBeCloseTo(expected, 5);
  });

  for (const sparseHead of [false, true]) {
    test(`TrainStep.lossSum is the eager sum under each step's weights and leaves the model's arrays in place (${sparseHead ? "sparse" : "dense"} head)`, async () => {
      const model = tinyModel(VOCAB, { seed: 8 });
      const step = new TrainStep(model, undefined, { sparseHead, streams: cpuStreams(2) });
      const sums: number[] = [];
      for (let s = 0; s < 3; s++) {
        const b = batch(5, s === 2 ? 32 : 24, 9); // the third a new shape: a second trace
        const held = step.flat.read();
        const got = step.lossSum(b);
        step.flat.read().forEach((a, i) => expect(a).toBe(held[i]!)); // not the trace's placeholders
        const [sum] = maskedCrossEntropySum(model.forward(b.inputs), b.targets, b.mask);
        expect(got).toBeCloseTo(sum.item() as number, 3);
        sums.push(got);
        await step.step(batch(3, 16, 20 + s), 1e-2); // new weights: the compiled graph must read them, not the traced ones
      }
      expect(sums[1]).not.toBeCloseTo(sums[0]!, 3);
      const noisy = { ...batch(2, 8, 1), noise: mx.zeros([2, 8, model.config.hiddenSize]) };
      expect(() => step.lossSum(noisy)).toThrow(/no embedding `noise`/);
    });
  }

  const blasReason = blasThreads() === null ? "OpenBLAS is not the BLAS in use" : "";
  test.skipIf(blasReason !== "")(`OpenBLAS runs one thread per call while shards run side by side, its default otherwise${blasReason ? ` (skipped: ${blasReason})` : ""}`, () => {
    useBlasFor(1);
    const own = blasThreads();
    useBlasFor(2);
    expect(blasThreads()).toBe(1);
    useBlasFor(1);
    expect(blasThreads()).toBe(own);
  });
});
