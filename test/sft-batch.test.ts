// Pins the one-token shift, the target-aligned mask, padding by position, and the batch order.
//   bun test -t pad_and_collate

import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { checkLengths, collateArrays, groupByLength, iterateBatches, padAndCollate } from "../lib/data/batch.ts";
import type { SFTExample } from "../lib/format/types.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const ex = (ids: number[], mask: number[]): SFTExample => ({ ids, mask });

// Row A: 2 prompt ids then 3 supervised; row B: 1 prompt id then 2 supervised.
const A = ex([10, 11, 12, 13, 14], [0, 0, 1, 1, 1]);
const B = ex([20, 21, 22], [0, 1, 1]);

describe("pad_and_collate", () => {
  test("exact inputs, targets and mask for two rows of different lengths", () => {
    const c = collateArrays([A, B], { maxSeqLen: 16, padId: 0 });
    expect(c.inputs).toEqual([
      [10, 11, 12, 13],
      [20, 21, 22, 0], // padded, then shifted: the last real id is an input whose target is padding
    ]);
    expect(c.targets).toEqual([
      [11, 12, 13, 14],
      [21, 22, 0, 0],
    ]);
    expect(c.mask).toEqual([
      [0, 1, 1, 1],
      [1, 1, 0, 0],
    ]);
    expect(c.ntoks).toBe(5);
    expect(c.paddingFraction).toBe(2 / 8);
  });

  test.each([
    ["one row", [ex([1, 2, 3, 4, 5, 6], [0, 0, 1, 0, 1, 1])]],
    ["ragged rows", [ex([7, 8], [0, 1]), ex([9, 8, 7, 6, 5, 4, 3], [1, 1, 0, 0, 1, 1, 1]), ex([5, 5, 5], [0, 0, 1])]],
  ])("targets[t] = ids[t+1], inputs[t] = ids[t], mask[t] = example.mask[t+1]: %s", (_name, examples) => {
    const c = collateArrays(examples, { maxSeqLen: 32, padId: 0 });
    examples.forEach(({ ids, mask }, i) => {
      for (let t = 0; t < ids.length - 1; t++) {
        expect(c.inputs[i]![t]).toBe(ids[t]!);
        expect(c.targets[i]![t]).toBe(ids[t + 1]!);
        expect(c.mask[i]![t]).toBe(mask[t + 1]!);
      }
    });
  });

  test("regression (mlx-lm off-by-one): a padded row is not trained to predict the first padding token", () => {
    const everySupervised = ex([20, 21, 22], [1, 1, 1]);
    const c = collateArrays([A, everySupervised], { maxSeqLen: 16, padId: 0 });
    const n = everySupervised.ids.length - 1; // real positions; t = n is the first padding target
    expect(c.targets[1]![n]).toBe(0);
    expect(c.mask[1]![n]).toBe(0);
    expect(c.mask[1]).toEqual([1, 1, 0, 0]);
  });

  test("a pad id equal to a real id still gets its mask by position", () => {
    const c = collateArrays([A, B], { maxSeqLen: 16, padId: 22 }); // 22 is B's last, supervised target
    expect(c.targets[1]).toEqual([21, 22, 22, 22]);
    expect(c.mask[1]).toEqual([1, 1, 0, 0]);
    expect(c.ntoks).toBe(5);
  });

  test("an over-length example is an error naming its index, length and the fix", () => {
    const long = ex([1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 1, 1]);
    const run = () => collateArrays([B, long], { maxSeqLen: 4, padId: 0 });
    expect(run).toThrow(/example 1 has length 6 ids/);
    expect(run).toThrow(/raise --max-seq-len to at least 5 if the model's context allows it, or pass --drop-overlength/);
    expect(() => checkLengths([B, long], 4, 5)).toThrow(/raise --max-seq-len to at least 5 \(the model's context is 5\), or pass --drop-overlength/);
    expect(() => checkLengths([B, long], 4, 4)).toThrow(/it does not fit the model's context \(4\) at any --max-seq-len: pass --drop-overlength/);
    // exactly maxSeqLen + 1 ids fits: maxSeqLen targets after the shift
    expect(collateArrays([long], { maxSeqLen: 5, padId: 0 }).inputs[0]).toHaveLength(5);
  });

  test("pads to the batch's longest row, not to maxSeqLen", () => {
    const c = collateArrays([A, B], { maxSeqLen: 1024, padId: 0 });
    expect(c.inputs.map((r) => r.length)).toEqual([4, 4]);
  });

  test.each([
    // longest row after the shift is 4 (row A)
    [{ padMultiple: 1, maxSeqLen: 64 }, 4],
    [{ padMultiple: 3, maxSeqLen: 64 }, 6],
    [{ padMultiple: 8, maxSeqLen: 64 }, 8],
    [{ padMultiple: 8, maxSeqLen: 5 }, 5], // rounding never exceeds maxSeqLen
  ])("padMultiple %o gives T = %d", (opts, T) => {
    const c = collateArrays([A, B], { padId: 0, ...opts });
    expect(c.inputs.map((r) => r.length)).toEqual([T, T]);
    expect(c.mask.map((r) => r.length)).toEqual([T, T]);
    expect(c.paddingFraction).toBe((T - 4 + T - 2) / (2 * T));
    expect(c.ntoks).toBe(5);
  });

  test("padAndCollate gives int32 ids and a float32 mask, equal to collateArrays", () => {
    const opts = { maxSeqLen: 16, padId: 0, padMultiple: 2 };
    const b = padAndCollate([A, B], opts);
    const c = collateArrays([A, B], opts);
    expect([b.inputs.dtype, b.targets.dtype, b.mask.dtype]).toEqual([mx.int32, mx.int32, mx.float32]);
    expect(b.inputs.shape).toEqual([2, 4]);
    expect(b.inputs.tolist()).toEqual(c.inputs);
    expect(b.targets.tolist()).toEqual(c.targets);
    expect(b.mask.tolist()).toEqual(c.mask);
    expect([b.ntoks, b.paddingFraction]).toEqual([c.ntoks, c.paddingFraction]);
  });

  test.each([
    ["an empty batch", [], /empty batch/],
    ["a 1-id example", [ex([5], [1])], /example 0 has 1 ids/],
    ["a misaligned mask", [A, ex([1, 2, 3], [0, 1])], /example 1 has 3 ids but 2 mask values/],
  ])("rejects %s", (_name, examples, message) => {
    expect(() => collateArrays(examples, { maxSeqLen: 16, padId: 0 })).toThrow(message);
  });
});

describe("batch order", () => {
  // Lengths 2..21 in a scrambled order.
  const data = Array.from({ length: 20 }, (_, i) => {
    const n = 2 + ((i * 7) % 20);
    return ex(new Array(n).fill(1), new Array(n).fill(1));
  });
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const allIndices = data.map((_, i) => i);

  test("groupByLength: every index once, batches of similar length, order set by the seed", () => {
    const batches = groupByLength(data, 6, 7);
    expect(batches.map((b) => b.length).sort()).toEqual([2, 6, 6, 6]);
    expect(sorted(batches.flat())).toEqual(allIndices);
    const lengths = batches.map((b) => b.map((i) => data[i]!.ids.length));
    for (const ls of lengths) expect(Math.max(...ls) - Math.min(...ls)).toBeLessThanOrEqual(5); // 6 consecutive lengths
    expect(groupByLength(data, 6, 7)).toEqual(batches);
    const orders = [1, 2, 3, 4, 5].map((seed) => JSON.stringify(groupByLength(data, 6, seed)));
    expect(new Set(orders).size).toBeGreaterThan(1);
  });

  test.each([false, true])("iterateBatches (groupByLength %p): each epoch covers every index once, deterministically", (grouped) => {
    const opts = { batchSize: 4, seed: 3, groupByLength: grouped, epochs: 3 };
    const run = [...iterateBatches(data, opts)];
    expect(run).toHaveLength(15);
    for (const epoch of [0, 1, 2]) {
      const batches = run.filter((b) => b.epoch === epoch);
      expect(sorted(batches.flatMap((b) => b.indices))).toEqual(allIndices);
      for (const b of batches) expect(b.examples).toEqual(b.indices.map((i) => data[i]!));
    }
    expect([...iterateBatches(data, opts)].map((b) => b.indices)).toEqual(run.map((b) => b.indices));
    const epochOrder = (e: number) => JSON.stringify(run.filter((b) => b.epoch === e).map((b) => b.indices));
    expect(epochOrder(0)).not.toBe(epochOrder(1));
  });

  test("iterateBatches loops forever without epochs", () => {
    const it = iterateBatches(data, { batchSize: 8, seed: 0 });
    const epochs = Array.from({ length: 10 }, () => it.next().value!.epoch);
    expect(epochs).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
  });
});
