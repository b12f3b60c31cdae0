// The benchmark's comparison with the PyTorch peer: interleaved runs and their ratio
// (lib/bench/peer.ts), and the hook that puts a peer run between two of ours (lib/bench/measure.ts);
// the decode-context case's steps run where they say (lib/bench/decode.ts).
//   bun test test/bench.test.ts
import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { benchTrainStep } from "../lib/bench/measure.ts";
import { benchDecodeContext } from "../lib/bench/decode.ts";
import { interleavedRatio } from "../lib/bench/peer.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

describe("interleavedRatio", () => {
  test.each([
    // ours, peer, ratio of medians, median of pair ratios
    { ours: [100], peer: [50], ratio: 2, pairRatio: 2 },
    { ours: [100, 110, 90], peer: [100, 100, 100], ratio: 1, pairRatio: 1 },
    // a slow moment for both in the second pair: still a fair pair, while the medians mix moments
    { ours: [100, 50, 90], peer: [80, 40, 100], ratio: 90 / 80, pairRatio: 1.25 },
    { ours: [100, 60, 100], peer: [110, 50, 110], ratio: 100 / 110, pairRatio: 100 / 110 },
    { ours: [90, 120, 100, 110], peer: [100, 100, 100, 100], ratio: 1.05, pairRatio: 1.05 }, // even: mean of the middle two
  ])("ours $ours vs peer $peer", ({ ours, peer, ratio, pairRatio }) => {
    const r = interleavedRatio(ours, peer);
    expect(r.ratio).toBeCloseTo(ratio, 10);
    expect(r.pairRatio).toBeCloseTo(pairRatio, 10);
    expect(r.pairRatios).toEqual(ours.map((x, i) => x / peer[i]!));
  });

  test.each([
    { ours: [1, 2], peer: [1] },
    { ours: [], peer: [] },
  ])("refuses $ours against $peer", ({ ours, peer }) => {
    expect(() => interleavedRatio(ours, peer)).toThrow(/runs of ours against/);
  });
});

test("benchTrainStep calls afterRun once after each timed run, outside the timing", async () => {
  const batch = { inputs: mx.zeros([2, 8], mx.int32), targets: mx.ones([2, 8], mx.int32), mask: mx.ones([2, 8]) };
  const calls: number[] = [];
  const r = await benchTrainStep(tinyModel(64, { seed: 3 }), () => ({ batch, tokens: 16, paddingFraction: 0 }), {
    warmup: 1,
    steps: 2,
    runs: 3,
    peakGflops: 1,
    afterRun: async (run) => {
      calls.push(run);
      await Bun.sleep(300); // a peer run: must not count against our tokens/s
    },
  });
  expect(calls).toEqual([0, 1, 2]);
  // 2 steps of 16 tokens in well under 300 ms on any machine: had the sleep been timed, < 107 tokens/s
  for (const t of r.runsTokensPerSec) expect(t).toBeGreaterThan(16 * 2 / 0.3);
  expect(r.runsTokensPerCpuSec).toHaveLength(3); // the sleep uses no CPU either
  for (const t of r.runsTokensPerCpuSec) expect(t).toBeGreaterThan(16 * 2 / 0.3);
}, 30_000);

test("benchDecodeContext measures each bucket up to the context, past its half", async () => {
  const model = tinyModel(300, { seed: 1, overrides: { max_position_embeddings: 2048 } });
  const rows = [];
  for await (const r of benchDecodeContext(model)) rows.push(r); // it throws if a step ran over another buffer
  expect(rows.map((r) => [r.buffer, r.position])).toEqual([[256, 130], [1024, 514], [2048, 1026]]);
  for (const r of rows) for (const ms of [r.eagerMs, r.compiledMs, r.compiledWxMs, r.firstCompiledMs]) expect(ms).toBeGreaterThan(0);
});
