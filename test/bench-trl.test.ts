// lib/bench/trl.ts: the TRL case of the benchmark without running either stack: the interleaving,
// the figures read from our summary.json and from trl_sft.py's JSON line, the pair ratio, and the
// project's own rows that TRL's render is checked against (the shipped data's counts, as
// ../shared/bench/trl/README.md states them).
//   bun test test/bench-trl.test.ts
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compareWithTrl, interleave, ourJobRun, trlJobRun, writeProjectRows, type JobRun } from "../lib/bench/trl.ts";
import { DEFAULT_EVAL_DATA, DEFAULT_TRAIN_DATA } from "../lib/util/paths.ts";
import type { RunSummary } from "../lib/run/summary.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

test("interleave runs ours, then the peer, pair after pair", async () => {
  const calls: string[] = [];
  const r = await interleave(3, (i) => (calls.push(`ours${i}`), i), async (i) => (calls.push(`peer${i}`), 10 + i));
  expect(calls).toEqual(["ours0", "peer0", "ours1", "peer1", "ours2", "peer2"]);
  expect(r).toEqual({ ours: [0, 1, 2], peer: [10, 11, 12] });
});

describe("ourJobRun: summary.json -> training tokens/s", () => {
  const summary = { status: "completed", wallSec: 130, probeSec: 20, stepSec: 90, tokens: 10_000, paddingFraction: 0.2, finalEvalLoss: 5.3, trainPeakMemMB: 600 } as RunSummary;
  test("non-padding positions over steps + evaluations, the probes left out", () => {
    const r = ourJobRun(summary, 140);
    expect(r).toEqual({ stack: "sft-mlx", tokensPerSec: 8000 / 110, trainSec: 110, stepSec: 90, processSec: 140, realPositions: 8000, paddedPositions: 10_000, finalEvalLoss: 5.3, peakRssMB: 600 });
  });
  test("a run without probes (probeSec absent) counts its whole wallSec", () => {
    expect(ourJobRun({ ...summary, probeSec: undefined }, 120).trainSec).toBe(130);
  });
  test("refuses a run that did not complete, with its reason", () => {
    expect(() => ourJobRun({ ...summary, status: "failed", reason: "loss NaN at step 3" }, 5)).toThrow(/ended failed \(loss NaN at step 3\): no figures to compare/);
  });
});

describe("trlJobRun: trl_sft.py's last stdout line -> training tokens/s", () => {
  const span = (train: number, evalRows: number) => ({ train: { rows: 154, rows_differing_from_project: train }, eval: { rows: 24, rows_differing_from_project: evalRows } });
  const result = { stack: "trl", train_wall_s: 55, step_s: 40, real_positions: 165_000, tokens_fed: 200_000, heldout_loss: 5.29, peak_rss_mb: 900, supervised_span: span(0, 0) };
  test("reads the last line, after the log lines", () => {
    const r = trlJobRun(`{"supervised_span": {}}\nsome log\n${JSON.stringify(result)}\n`, 70);
    expect(r).toEqual({ stack: "trl", tokensPerSec: 3000, trainSec: 55, stepSec: 40, processSec: 70, realPositions: 165_000, paddedPositions: 200_000, finalEvalLoss: 5.29, peakRssMB: 900 });
  });
  test.each([
    { what: "train rows differ", r: { ...result, supervised_span: span(2, 0) }, error: /2 train rows of TRL's render differ/ },
    { what: "eval rows differ", r: { ...result, supervised_span: span(0, 1) }, error: /1 eval rows of TRL's render differ/ },
    { what: "no row check", r: { ...result, supervised_span: { train: { rows: 154 }, eval: { rows: 24 } } }, error: /no row check for train/ },
  ])("refuses a run whose $what", ({ r, error }) => {
    expect(() => trlJobRun(JSON.stringify(r), 1)).toThrow(error);
  });
  test("refuses output that does not end in a JSON line", () => {
    expect(() => trlJobRun("Traceback (most recent call last):\n  boom", 1)).toThrow(/expected a JSON line last on stdout, got `  boom`/);
  });
});

test("compareWithTrl: the median of per-pair ratios of training tokens/s, and TRL's training time over ours", () => {
  const run = (tokensPerSec: number, trainSec: number) => ({ tokensPerSec, trainSec }) as JobRun;
  const r = compareWithTrl([run(2000, 80), run(1000, 160), run(2400, 70)], [run(2500, 60), run(1000, 150), run(2000, 80)]);
  expect(r.pairRatios).toEqual([0.8, 1, 1.2]);
  expect(r.pairRatio).toBe(1);
  expect(r.ratio).toBe(2000 / 2000);
  expect(r.trainSecRatios).toEqual([60 / 80, 150 / 160, 80 / 70]);
});

test("writeProjectRows: the project's render of the shipped data, in trl_sft.py's --project-rows format", async () => {
  const dir = mkdtempSync(join(tmpdir(), "trl-rows-"));
  const train = await writeProjectRows(DEFAULT_TRAIN_DATA, join(dir, "train.json"));
  const evalRows = await writeProjectRows(DEFAULT_EVAL_DATA, join(dir, "eval.json"));
  expect(train).toEqual({ rows: 154, supervisedTargets: 4185 });
  expect(evalRows).toEqual({ rows: 24, supervisedTargets: 502 });
  const rows = JSON.parse(readFileSync(join(dir, "train.json"), "utf8"));
  expect(Object.keys(rows[0]).sort()).toEqual(["ids", "mask"]);
  for (const r of rows) {
    expect(r.mask.length).toBe(r.ids.length);
    expect(r.mask.every((m: number) => m === 0 || m === 1)).toBe(true);
  }
});
