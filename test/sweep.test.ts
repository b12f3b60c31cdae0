// Pins the sweep without training anything: values and defaults per parameter, pass-through flags,
// the plan and each run's train.ts arguments, nested data subsets and noise files, resume, and the
// aggregation of hand-written run folders into exact CSV rows.
//   bun test test/sweep.test.ts

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_NOISE, DEFAULT_TRAIN_DATA } from "../lib/util/paths.ts";
import { loadConversations, loadNoiseTemplates, offPatternRate } from "../lib/data/data.ts";
import { flagValue, splitArgs, withoutFlag } from "../lib/sweep/args.ts";
import { baseNumbers, collectRows, markdownTable, toCSV } from "../lib/sweep/aggregate.ts";
import { PARAMS, resolveParam } from "../lib/sweep/params.ts";
import { buildPlan, readPlan, runData, TRAIN_FLAGS, trainArgs, writePlan, writeRunData, type SweepPlan } from "../lib/sweep/plan.ts";
import { writeSweepReport } from "../lib/sweep/report.ts";
import { runSweep, type Spawner } from "../lib/sweep/run.ts";
import { usageError } from "./helpers/errors.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const TMP = mkdtempSync(join(tmpdir(), "sweep-test-"));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => {
  const d = join(TMP, `sweep-${dirCount++}`);
  mkdirSync(d);
  return d;
};

describe("values", () => {
  test.each([
    ["lr", ["3e-5", "1e-4", "3e-4", "6e-4", "1e-3", "3e-3"]],
    ["steps", ["100", "250", "500", "1000"]],
    ["data-size", ["10", "25", "50", "all"]],
    ["mask", ["assistant", "all"]],
    ["noise", ["0", "10", "25", "50"]],
  ])("defaults of %s", (param, values) => {
    expect(resolveParam({ param }).values).toEqual(values);
  });

  test.each([
    ["lr", "1e-4, 3e-4", ["1e-4", "3e-4"]], // the user's spelling is kept for run names
    ["steps", "30,60", ["30", "60"]],
    ["data-size", "5,all", ["5", "all"]],
    ["mask", "all", ["all"]],
    ["noise", "0,100", ["0", "100"]],
  ])("--param %s --values %s", (param, values, expected) => {
    expect(resolveParam({ param, values }).values).toEqual(expected);
  });

  test.each([
    [{ param: "lr", values: "1e-4,-3" }, /--values expects a number > 0, got `-3`/],
    [{ param: "lr", values: "fast" }, /got `fast`/],
    [{ param: "steps", values: "10.5" }, /an integer > 0/],
    [{ param: "data-size", values: "0" }, /an integer > 0, got `0`/],
    [{ param: "mask", values: "user" }, /--values expects assistant or all, got `user`/],
    [{ param: "steps", values: "1e2" }, /--values expects an integer > 0, got `1e2`/],
    [{ param: "noise", values: "150" }, /<= 100, got `150`/],
    [{ param: "lr", values: "1e-4,1e-4" }, /lists `1e-4` twice/],
    [{ param: "lr", values: " , " }, /--values is empty/],
    [{ param: "batch" }, /--param expects one of lr, steps, epochs, data-size, mask, noise, mix-prose, neftune, lora-rank, got `batch`/],
    [{}, /say what to vary: --param/],
    [{ preset: "collapse" }, /--preset expects one of format-collapse, prose-loss, unmasked-loss, data-size-10-50, plain-text-ce, prefilled-turn/],
    [{ preset: "prose-loss", param: "steps" }, /sweeps `lr`, but --param says `steps`/],
  ])("rejects %j", (flags, message) => {
    expect(usageError(() => resolveParam(flags))).toMatch(message);
  });

  test.each([
    ["format-collapse", "steps"],
    ["prose-loss", "lr"],
  ])("--preset %s sweeps %s with its defaults", (preset, param) => {
    const r = resolveParam({ preset });
    expect(r.param.name).toBe(param as keyof typeof PARAMS);
    expect(r.values).toEqual(PARAMS[param as keyof typeof PARAMS].defaults);
    expect(r.preset).toBe(preset);
  });

  test.each([
    ["unmasked-loss", "mask", ["assistant", "all"], "all"],
    ["data-size-10-50", "data-size", ["10", "50"], "30"],
    ["plain-text-ce", "steps", ["100", "500"], "30"],
    ["prefilled-turn", "steps", ["100", "500"], "30"],
  ])("the course's exercise --preset %s sweeps %s over %j; --values overrides them", (preset, param, values, other) => {
    expect(resolveParam({ preset })).toMatchObject({ param: { name: param }, values, preset });
    expect(resolveParam({ preset, values: other }).values).toEqual([other]);
  });

  test("--course-split is refused in a data-size sweep: the held-out set would differ between runs", () => {
    expect(usageError(() => buildPlan({ param: "data-size", values: ["10"], passthrough: ["--course-split"], preset: "data-size-10-50" }))).toMatch(/Give one held-out file with --eval-data instead/);
  });

  test("a preset's implied flags: data-size-10-50 trains 300 steps as the course does, unless --steps is given", () => {
    expect(flagValue(buildPlan({ param: "data-size", values: ["10", "50"], passthrough: [], preset: "data-size-10-50" }).passthrough, "steps")).toBe("300");
    expect(flagValue(buildPlan({ param: "data-size", values: ["10", "50"], passthrough: ["--steps", "30"], preset: "data-size-10-50" }).passthrough, "steps")).toBe("30");
    expect(flagValue(buildPlan({ param: "data-size", values: ["10", "50"], passthrough: [] }).passthrough, "steps")).toBeUndefined();
  });
});

describe("pass-through flags", () => {
  const OWN = { param: "string", values: "string", "dry-run": "boolean" } as const;
  test.each([
    [["--param", "lr", "--steps", "30"], { param: "lr" }, ["--steps", "30"]],
    [["--param=mask", "--base=/tmp/devbase", "--eval-every", "10"], { param: "mask" }, ["--base", "/tmp/devbase", "--eval-every", "10"]],
    [["--lr", "-1", "--dry-run", "--values", "1,2"], { "dry-run": true, values: "1,2" }, ["--lr", "-1"]],
    [["--drop-overlength", "--steps", "5", "--no-group-by-length"], {}, ["--drop-overlength", "--steps", "5", "--no-group-by-length"]], // switches take no value
    [["--drop-overlength=false", "--no-dry-run"], { "dry-run": false }, ["--no-drop-overlength"]],
  ])("%j", (argv, own, passthrough) => {
    expect(splitArgs(argv, OWN, TRAIN_FLAGS)).toEqual({ own, passthrough });
  });

  test.each([
    [["lr"], /unexpected argument `lr`/],
    [["--param"], /--param needs a value/],
    [["--step", "5"], /unknown flag `--step`: did you mean `--steps`\?/], // train.ts would ignore it: refused before any run
    [["--compile", "--steps", "5"], /unknown flag `--compile`/],
    [["--no-steps"], /unknown flag `--no-steps`/],
    [["--base", "--steps", "5"], /--base needs a value, but the next argument is the flag `--steps`/],
    [["--drop-overlength=yes"], /--drop-overlength is a switch/],
  ])("rejects %j", (argv, message) => {
    expect(usageError(() => splitArgs(argv, OWN, TRAIN_FLAGS))).toMatch(message);
  });

  test.each([
    [["--steps", "abc"], /--steps expects an integer > 0, got `abc`/],
    [["--steps", "0x10"], /--steps expects an integer > 0, got `0x10`; write it in plain decimal, e.g. `16`/],
    [["--mask", "user"], /--mask expects assistant or all, got `user`/],
    [["--name", "a/b"], /--name `a\/b` may only contain/],
  ])("a train.ts flag value train.ts would refuse stops the plan before any run: %j", (passthrough, message) => {
    expect(usageError(() => buildPlan({ param: "lr", values: ["1e-4"], passthrough }))).toMatch(message);
  });

  test("flagValue and withoutFlag", () => {
    const args = ["--steps", "30", "--compile", "--data", "a.json", "--steps", "40"];
    expect(flagValue(args, "steps")).toBe("40"); // the last one wins
    expect(flagValue(args, "compile")).toBe("");
    expect(flagValue(args, "lr")).toBeUndefined();
    expect(withoutFlag(args, "data")).toEqual(["--steps", "30", "--compile", "--steps", "40"]);
  });
});

describe("plan", () => {
  test("lr: every run gets the pass-through flags, its value, the sweep folder and its name", () => {
    const plan = buildPlan({ param: "lr", values: ["1e-4", "3e-4"], passthrough: ["--steps", "30", "--base", "/tmp/devbase"] });
    expect(plan.runs.map((r) => [r.name, r.status, r.attempts])).toEqual([["lr-1e-4", "pending", 0], ["lr-3e-4", "pending", 0]]);
    expect(trainArgs(plan, plan.runs[1]!, "/s")).toEqual(["--steps", "30", "--base", "/tmp/devbase", "--lr", "3e-4", "--out", "/s", "--name", "lr-3e-4"]);
    expect(runData(plan)).toEqual([]);
  });

  test("data-size: --data is the source and each run gets its own file", () => {
    const plan = buildPlan({ param: "data-size", values: ["10", "all"], passthrough: ["--data", DEFAULT_TRAIN_DATA, "--steps", "30"] });
    expect(plan.sourceData).toBe(DEFAULT_TRAIN_DATA);
    expect(plan.passthrough).toEqual(["--steps", "30"]);
    expect(trainArgs(plan, plan.runs[0]!, "/s")).toEqual(["--steps", "30", "--data", "/s/data/data-size-10.json", "--out", "/s", "--name", "data-size-10"]);
  });

  test.each([
    [[], ["--patience", "0", "--keep", "last"]], // early stopping would end the long runs where the short ones end
    [["--patience", "5"], ["--patience", "5", "--keep", "last"]],
    [["--keep", "best"], ["--keep", "best", "--patience", "0"]],
  ])("steps: --patience 0 and --keep last unless the flags say otherwise: %j", (passthrough, expected) => {
    expect(buildPlan({ param: "steps", values: ["100"], passthrough }).passthrough).toEqual(expected);
  });

  test.each([
    [[], ["--lora"]],
    [["--lora", "--lr", "1e-3"], ["--lora", "--lr", "1e-3"]],
  ])("lora-rank: adds --lora (a boolean flag, alone) unless given: %j", (passthrough, expected) => {
    const plan = buildPlan({ param: "lora-rank", values: ["1", "8"], passthrough });
    expect(plan.passthrough).toEqual(expected);
    expect(trainArgs(plan, plan.runs[0]!, "/tmp/sweep")).toEqual(expect.arrayContaining(["--lora", "--lora-rank", "1"]));
  });

  test("a --config file's data is the source of a data sweep, and its patience is respected", () => {
    const config = join(freshDir(), "run.json");
    writeFileSync(config, JSON.stringify({ data: "data/sft/eval.json", patience: 2 }));
    expect(buildPlan({ param: "data-size", values: ["5"], passthrough: ["--config", config] }).sourceData).toBe(join(process.cwd(), "data/sft/eval.json"));
    expect(buildPlan({ param: "steps", values: ["5"], passthrough: ["--config", config] }).passthrough).toEqual(["--config", config, "--keep", "last"]);
    expect(usageError(() => buildPlan({ param: "steps", values: ["5"], passthrough: ["--config", "/nonexistent.json"] }))).toMatch(/--config \/nonexistent.json: no such file/);
  });

  test.each([
    [{ param: "lr" as const, values: ["1e-4"], passthrough: ["--lr", "1e-3"] }, /--lr is what this sweep varies/],
    [{ param: "mask" as const, values: ["all"], passthrough: ["--mask", "all"] }, /--mask is what this sweep varies/],
    [{ param: "steps" as const, values: ["10"], passthrough: ["--name", "x"] }, /--name is set by the sweep/],
    [{ param: "steps" as const, values: ["10"], passthrough: ["--out", "x"] }, /--out is set by the sweep/],
  ])("rejects flags that fight the sweep: %j", (args, message) => {
    expect(usageError(() => buildPlan(args))).toMatch(message);
  });

  test("data-size larger than the data is an error naming the size", () => {
    const plan = buildPlan({ param: "data-size", values: ["10", "999"], passthrough: [] });
    expect(usageError(() => runData(plan))).toMatch(/`999` is more than the 154 conversations .* use at most 154/);
  });

  test("data-size subsets are nested, seeded, and written in the messages form", () => {
    const dir = freshDir();
    const plan = buildPlan({ param: "data-size", values: ["10", "25", "50", "all"], passthrough: [], dataSeed: 7 });
    writeRunData(dir, runData(plan));
    expect(plan.sourceSize).toBe(154);
    const sets = plan.runs.map((r) => loadConversations(join(dir, r.data!)).map((c) => JSON.stringify(c)));
    expect(sets.map((s) => s.length)).toEqual([10, 25, 50, 154]);
    for (let k = 1; k < sets.length; k++) expect(sets[k]!.slice(0, sets[k - 1]!.length)).toEqual(sets[k - 1]!);
    const again = buildPlan({ param: "data-size", values: ["10"], passthrough: [], dataSeed: 7 });
    expect(runData(again)[0]!.convs.map((c) => JSON.stringify(c))).toEqual(sets[0]!);
    expect(JSON.parse(readFileSync(join(dir, plan.runs[0]!.data!), "utf8"))[0]).toHaveProperty("messages");
  });

  test.each([0, 10, 25, 50])("noise %d percent: exactly that share of answers gets chat filler, and every one is detected", (percent) => {
    const plan = buildPlan({ param: "noise", values: [String(percent)], passthrough: [] });
    expect(plan.noisePath).toBe(DEFAULT_NOISE);
    const { detectors } = loadNoiseTemplates(DEFAULT_NOISE);
    const clean = loadConversations(DEFAULT_TRAIN_DATA).flatMap((c) => c.filter((m) => m.role === "assistant").map((m) => m.content));
    const noisy = runData(plan)[0]!.convs.flatMap((c) => c.filter((m) => m.role === "assistant").map((m) => m.content));
    const changed = noisy.filter((text, i) => text !== clean[i]);
    expect(offPatternRate(clean, detectors)).toBe(0); // the clean data never trips a detector
    expect(changed.length).toBe(Math.round((percent / 100) * clean.length));
    expect(offPatternRate(changed, detectors)).toBe(changed.length ? 1 : 0);
  });
});

// ---- fake run folders, as train.ts leaves them ----

interface FakeRun {
  status?: string; // summary.json status; undefined = no summary.json
  exitCode?: number;
  evals?: [number, number][];
  summary?: Record<string, unknown>;
  noFolder?: boolean; // train.ts failed before making its run folder
}

// summary.json as train.ts writes it (lib/run/summary.ts); a measure it does not have is null
// (JSON's NaN), which the table shows as n/a.
const generation = (rates: Record<string, number>) => ({
  chatProbes: 0, stops: 0, stopRate: null, leaks: 0, roleLeakage: null, meanLength: null, repetition: null, offPattern: 0, offPatternRate: null,
  proseProbes: 0, continued: 0, continuationRate: null, answered: 0, answeredRate: null, ...rates,
});
const score = (accuracy: number | null) => ({ correct: 0, total: 0, accuracy, meanMargin: null });
const probes = (sft: Record<string, number>, extra: Record<string, unknown> = {}) => ({
  settings: { maxTokens: 8, temperature: 0, seed: 0, stopToken: "<|end|>", probesPath: "p", probePrompts: 0, evalPrompts: 0, prosePath: "p", retentionPath: "r", noisePath: "n", memorisedRun: 8, trainingAnswers: 154 },
  base: generation({ chatProbes: 40, stopRate: 0.05, roleLeakage: 0, offPatternRate: 0, memorisedRate: 0, continuationRate: 1, answeredRate: 0 }),
  sft: generation(sft),
  prose: { baseLoss: 4, sftLoss: 4.2, delta: 0.2, relative: 0.05, ntoks: 0, windows: 0, windowLen: 0 },
  retention: { base: score(0.6), sft: score(0.55), items: [] },
  samples: [],
  verdict: "",
  ...extra,
});
const fakeSummary = (status: string, over: Record<string, unknown> = {}) => ({
  status, step: 0, steps: 0, wallSec: 0, wallTime: "0:00:00", bestStep: -1, bestEvalLoss: null, finalEvalLoss: null, initialEvalLoss: null,
  finalTrainLoss: null, evals: 0, tokens: 0, supervisedTokens: 0, paddingFraction: null, tokensPerSec: null, stepSec: 0, skippedBatches: 0,
  droppedExamples: 0, peakMemMB: 0, trainPeakMemMB: 0, base: { path: "b", hashBefore: "h", hashAfter: "h", unchanged: true }, checkpoint: "checkpoint",
  probes: null, ...over,
});

let clock = 0;
function writeFakeRun(out: string, name: string, run: FakeRun): void {
  if (run.noFolder) return;
  const dir = join(out, `20250101-${String(100000 + clock++)}-${name}`); // distinct, ordered timestamps
  mkdirSync(dir);
  const lines = (run.evals ?? []).flatMap(([step, loss]) => [{ type: "train", step, loss: loss + 0.5, lr: 1e-4 }, { type: "eval", step, evalLoss: loss }]);
  writeFileSync(join(dir, "metrics.jsonl"), lines.map((l) => JSON.stringify(l) + "\n").join(""));
  if (run.status) writeFileSync(join(dir, "summary.json"), JSON.stringify(fakeSummary(run.status, run.summary)));
}

/** A spawner that plays train.ts from a script of outcomes per run name, recording each call. */
function fakeTrain(script: Record<string, FakeRun>, calls: string[]): Spawner {
  return async (args) => {
    const resume = flagValue(args, "resume");
    if (resume) {
      // train.ts --resume: the same folder, its summary.json rewritten
      calls.push(`resume ${resume.split("/").at(-1)}`);
      writeFileSync(join(resume, "summary.json"), JSON.stringify(fakeSummary("completed")));
      return 0;
    }
    const name = flagValue(args, "name")!;
    calls.push(name);
    writeFakeRun(flagValue(args, "out")!, name, script[name]!);
    return script[name]!.exitCode ?? 0;
  };
}

describe("running and resuming", () => {
  test("failed runs are recorded and the sweep goes on; --resume skips finished runs, continues the interrupted one, reruns the rest", async () => {
    const dir = freshDir();
    const plan = buildPlan({ param: "steps", values: ["10", "20", "30", "40", "50"], passthrough: ["--eval-every", "5"] });
    writePlan(dir, plan);
    const calls: string[] = [];
    const first = await runSweep(plan, dir, {
      spawn: fakeTrain({
        "steps-10": { status: "completed", evals: [[5, 3]] },
        "steps-20": { noFolder: true, exitCode: 2 },
        "steps-30": { status: "failed", exitCode: 1, summary: { reason: "loss is NaN at step 12" } },
        "steps-40": { status: "interrupted", exitCode: 130 },
        "steps-50": { status: "stopped-early" },
      }, calls),
    });
    expect(calls).toEqual(["steps-10", "steps-20", "steps-30", "steps-40", "steps-50"]);
    expect(first).toEqual({ ran: 5, skipped: 0, failed: 2, stopped: false });
    const saved = readPlan(dir);
    expect(saved.runs.map((r) => [r.status, r.exitCode, r.reason])).toEqual([
      ["completed", 0, undefined],
      ["failed", 2, "train.ts exited with code 2 before making a run folder: see its error above"],
      ["failed", 1, "loss is NaN at step 12"],
      ["interrupted", 130, undefined],
      ["stopped-early", 0, undefined],
    ]);
    expect(saved.runs[0]!.command).toBe(`bun scripts/train.ts --eval-every 5 --patience 0 --keep last --steps 10 --out ${dir} --name steps-10`);

    const failedDir = saved.runs[2]!.dir;
    const interruptedDir = saved.runs[3]!.dir;
    const again: string[] = [];
    const second = await runSweep(saved, dir, {
      spawn: fakeTrain({
        "steps-20": { status: "completed" },
        "steps-30": { status: "completed" },
      }, again),
    });
    expect(again).toEqual(["steps-20", "steps-30", `resume ${interruptedDir}`]); // the interrupted run continues in its folder
    expect(second).toEqual({ ran: 3, skipped: 2, failed: 0, stopped: false });
    expect(readPlan(dir).runs.map((r) => [r.status, r.attempts])).toEqual([
      ["completed", 1], ["completed", 2], ["completed", 2], ["completed", 2], ["stopped-early", 1],
    ]);
    expect(readPlan(dir).runs[3]!.dir).toBe(interruptedDir);
    // the rerun's folder is recorded, not the failed attempt's
    expect(readPlan(dir).runs[2]!.dir).not.toBe(failedDir);
  });

  test("exit code 0 without summary.json, or a non-zero exit after `completed`, is a failure", async () => {
    const dir = freshDir();
    const plan = buildPlan({ param: "mask", values: ["assistant", "all"], passthrough: [] });
    await runSweep(plan, dir, {
      spawn: fakeTrain({ "mask-assistant": {}, "mask-all": { status: "completed", exitCode: 137 } }, []),
    });
    expect(plan.runs.map((r) => [r.status, r.reason])).toEqual([
      ["failed", "train.ts exited with code 0 and left no summary.json"],
      ["failed", "train.ts exited with code 137 after writing status `completed`"],
    ]);
  });

  test("Ctrl-C during a run's probes: recorded as interrupted, and --resume continues it (train.ts --resume runs the probes)", async () => {
    const dir = freshDir();
    const plan = buildPlan({ param: "mask", values: ["assistant"], passthrough: [] });
    await runSweep(plan, dir, { spawn: fakeTrain({ "mask-assistant": { status: "completed", exitCode: 130, summary: { probeStatus: "pending" } } }, []) });
    expect(plan.runs.map((r) => [r.status, r.reason])).toEqual([["interrupted", "interrupted during the probes"]]);
    const calls: string[] = [];
    await runSweep(plan, dir, { spawn: fakeTrain({}, calls) });
    expect(calls).toEqual([`resume ${plan.runs[0]!.dir}`]);
    expect(plan.runs[0]!.status).toBe("completed");
  });

  test("Ctrl-C: the interrupted run is recorded and no further run starts", async () => {
    const dir = freshDir();
    const plan = buildPlan({ param: "lr", values: ["1e-4", "3e-4"], passthrough: [] });
    let stopping = false;
    const calls: string[] = [];
    const spawn: Spawner = async (args) => {
      stopping = true; // the user pressed Ctrl-C during this run
      return fakeTrain({ "lr-1e-4": { status: "interrupted", exitCode: 130 } }, calls)(args);
    };
    const result = await runSweep(plan, dir, { spawn, shouldStop: () => stopping });
    expect(calls).toEqual(["lr-1e-4"]);
    expect(result.stopped).toBe(true);
    expect(plan.runs.map((r) => r.status)).toEqual(["interrupted", "pending"]);
  });
});

describe("aggregation", () => {
  // Four runs: complete, failed before its folder, failed mid-way (metrics but no probes), and one
  // whose summary lacks the probe fields and the eval losses (they come from metrics.jsonl).
  const dir = freshDir();
  const plan: SweepPlan = buildPlan({ param: "lr", values: ["1e-4", "3e-4", "1e-3", "3e-3"], passthrough: ["--steps", "30"] });
  const sft = { chatProbes: 40, stopRate: 0.9, roleLeakage: 0.05, offPatternRate: 0.1, memorisedRate: 0.3, continuationRate: 0.75, answeredRate: 0.25, prefillProbes: 2, prefillCompleted: 1, prefillCompletedRate: 0.5 };
  const script: Record<string, FakeRun> = {
    "lr-1e-4": { status: "completed", evals: [[10, 2.5], [20, 2.1], [30, 2.2]], summary: { bestEvalLoss: 2.1, finalEvalLoss: 2.2, bestStep: 20, wallSec: 61.24, probes: probes(sft) } },
    "lr-3e-4": { noFolder: true, exitCode: 1 },
    "lr-1e-3": { status: "failed", exitCode: 1, evals: [[10, 2.4]], summary: { reason: "loss is NaN at step 14", wallSec: 20 } },
    "lr-3e-3": { status: "completed", evals: [[10, 3.123456], [20, 2.9], [30, 3.0]], summary: { wallSec: 58, probes: probes({ stopRate: 0.5 }, { prose: { baseLoss: null, sftLoss: null, delta: null, relative: null, ntoks: 0, windows: 0, windowLen: 0 }, retention: { base: score(null), sft: score(null), items: [] } }) } },
  };

  test("exact CSV rows", async () => {
    await runSweep(plan, dir, { spawn: fakeTrain(script, []) });
    const rows = collectRows(plan, dir);
    expect(toCSV(plan, rows).split("\n")).toEqual([
      "lr,status,best_eval_loss,final_eval_loss,best_step,stop_rate,role_leakage,off_pattern_rate,memorised,prose_continued,prose_answered,prefill_completed,prose_loss,prose_loss_delta,prose_loss_relative,retention,wall_sec,dir",
      `1e-4,completed,2.1,2.2,20,0.9,0.05,0.1,0.3,0.75,0.25,0.5,4.2,0.2,0.05,0.55,61.2,${plan.runs[0]!.dir}`,
      "3e-4,failed,,,,,,,,,,,,,,,,",
      `1e-3,failed,2.4,2.4,10,,,,,,,,,,,,20,${plan.runs[2]!.dir}`,
      `3e-3,completed,2.9,3,20,0.5,,,,,,,,,,,58,${plan.runs[3]!.dir}`,
      "",
    ]);
    expect(rows.map((r) => r.evalCurve.length)).toEqual([3, 0, 1, 3]);
    expect(rows.map((r) => r.reason)).toEqual([undefined, "train.ts exited with code 1 before making a run folder: see its error above", "loss is NaN at step 14", undefined]);
  });

  test("markdown: a base reference row, n/a for what is missing", () => {
    const md = markdownTable(plan, collectRows(plan, dir), baseNumbers(plan, dir)).split("\n");
    expect(md[0]).toBe("| lr | status | best held-out loss | final held-out loss | stop rate | role leakage | off-pattern | memorised | prose continued | prose answered | prefill completed | prose loss | prose loss vs base | retention | wall |");
    expect(md[2]).toBe("| base model | reference |  |  | 5% | 0% | 0% | 0% | 100% | 0% | n/a | 4.000 |  | 60% |  |"); // the base's prose loss: before SFT
    expect(md[3]).toBe("| 1e-4 | completed | 2.100 @20 | 2.200 | 90% | 5% | 10% | 30% | 75% | 25% | 50% | 4.200 | +0.200 (+5.0%) | 55% | 0:01:01 |");
    expect(md[4]).toBe("| 3e-4 | failed | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |");
    expect(md[6]).toBe("| 3e-3 | completed | 2.900 @20 | 3.000 | 50% | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | 0:00:58 |");
  });

  test("report files: summary.md, summary.csv, report.html and the SVG plots", () => {
    const { files } = writeSweepReport(plan, dir);
    expect(files).toEqual([
      "summary.md", "summary.csv", "report.html", "loss-curves.svg", "best-eval-loss.svg", "final-eval-loss.svg",
      "stop-rate.svg", "role-leakage.svg", "off-pattern-rate.svg", "memorised.svg", "prose-answered.svg", "prefill-completed.svg", "prose-loss.svg", "prose-loss-delta.svg", "retention.svg",
    ]);
    for (const f of files) expect(existsSync(join(dir, f))).toBe(true);
    const html = readFileSync(join(dir, "report.html"), "utf8");
    expect(html.match(/<svg /g)?.length).toBe(files.length - 3);
    expect(html).toContain("loss is NaN at step 14");
    const md = readFileSync(join(dir, "summary.md"), "utf8");
    expect(md).toContain("![Held-out loss during training](loss-curves.svg)");
    expect(md).toContain("Each run: `bun scripts/train.ts --steps 30 --lr <value> --out <sweep folder> --name lr-<value>`");
  });
});
