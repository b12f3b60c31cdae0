// One SFT run end to end on a tiny checkpoint written to a temporary folder: config layering, the
// checks that run before any folder exists, the run folder's files, interrupt and resume.
//   bun test -t train_run
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashCheckpoint, saveCheckpoint } from "../lib/model/checkpoint.ts";
import { createRunDir } from "../lib/run/folder.ts";
import { readMetrics as readRows } from "../lib/run/metrics.ts";
import { readJSON } from "../lib/io/files.ts";
import { readRunConfigFile, resolveRunConfig, type RunConfig } from "../lib/sft/run-config.ts";
import { executeRun, prepareRun } from "../lib/sft/run.ts";
import { resumeRun } from "../lib/sft/resume.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { chat, tinyRunFiles, interruptAfterFirstEval } from "./helpers/tiny-run.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tmp = mkdtempSync(join(tmpdir(), "sft-run-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tok = tinyTokenizer();
const readMetrics = (dir: string) => readRows(dir) as Record<string, any>[]; // rows of either type, for brevity
const base = join(tmp, "base");
saveCheckpoint(base, tinyModel(tok.vocabSize, { seed: 1 }), tok, { meta: { kind: "test-base" } });
const { write, data, evalData, out } = tinyRunFiles(tmp);

/** A fast run: tiny steps, probes with 2-token replies. */
const config = (over: Partial<RunConfig> = {}) =>
  resolveRunConfig({}, { base, data, evalData, out, mixProse: 0, steps: 6, evalEvery: 3, batchSize: 2, maxSeqLen: 64, logEvery: 2, lr: 3e-3, probeTokens: 2, ...over });
const runDirs = () => (existsSync(out) ? readdirSync(out) : []);

describe("train_run", () => {
  test("precedence: flags > config file > defaults; a flag left undefined does not hide the file", () => {
    const file = readRunConfigFile(write("cfg.json", { steps: 7, lr: 1e-4, "eval-every": 2, mask: "all" }));
    const cfg = resolveRunConfig(file, { lr: 2e-4, steps: undefined });
    expect([cfg.steps, cfg.lr, cfg.evalEvery, cfg.maskMode, cfg.batchSize]).toEqual([7, 2e-4, 2, "all", 8]);
  });

  test.each([
    ["an unknown key", { learning_rate: 1 }, /unknown option `learning_rate`/],
    ["a bad value", { lr: "fast" }, /cfg-bad.json: lr must be a number > 0, got `"fast"`/],
    ["a bad setting", { probeTokens: -1 }, /probeTokens must be an integer >= 0, got `-1`/],
    ["not an object", [1, 2], /expected a JSON object/],
  ])("a config file with %s is refused, naming the file and key", (_name, json, message) => {
    expect(() => readRunConfigFile(write("cfg-bad.json", json))).toThrow(message);
  });

  test("a run's own config.json can be reused as --config (provenance is ignored)", () => {
    const file = readRunConfigFile(write("cfg-run.json", { ...config(), provenance: { git: "abc" } }));
    expect(resolveRunConfig(file, {})).toEqual(config());
  });

  test.each([
    ["a missing base", { base: join(tmp, "nope") }, /--base .*nope: no such directory/],
    ["invalid data", { data: write("bad.json", [{ messages: [{ role: "assistant", content: "hi" }] }]) }, /bad.json: record 0/],
    ["an over-length conversation", { maxSeqLen: 12 }, /self-check of the training data .* failed[\s\S]*conversation 0 \[length\]/],
    // the fix never suggests a --max-seq-len beyond the base's context (128), and names --drop-overlength
    ["a conversation that fits the context", { maxSeqLen: 12 }, /conversation 0 \[length\]: \d+ ids \(\d+ targets after the shift\), more than max-seq-len 12\. Fix: raise --max-seq-len to at least \d+ \(the model's context is 128\), or pass --drop-overlength to leave such conversations out/],
    ["a conversation longer than the context", { data: write("long.json", [chat("Tell me a long story.", "The sea is wide. ".repeat(60))]) }, /\[length\]: \d+ ids \(\d+ targets after the shift\), more than max-seq-len 64\. Fix: it does not fit the model's context \(128\) at any --max-seq-len: pass --drop-overlength/],
    ["a max-seq-len beyond the context", { maxSeqLen: 512 }, /longer than the model's context \(128\)/],
  ])("%s is refused before any run folder exists", async (_name, over, message) => {
    const before = runDirs().length;
    await expect(prepareRun(config(over))).rejects.toThrow(message);
    expect(runDirs().length).toBe(before);
  });

  test("a run leaves config, metrics, summary with probes, the best checkpoint, samples and report; the base is untouched", async () => {
    const hash = hashCheckpoint(base);
    const cfg = config();
    const p = await prepareRun(cfg);
    const dir = createRunDir(cfg.out, cfg.name);
    expect(await executeRun(p, dir)).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["checkpoint", "config.json", "metrics.jsonl", "report.html", "samples.md", "summary.json"]);
    const config_ = readJSON(join(dir, "config.json"));
    expect(config_.provenance.baseHash).toBe(hash);
    expect(config_.provenance.dataSha256.train).toMatch(/^[0-9a-f]{64}$/);
    const metrics = readMetrics(dir);
    expect(metrics.filter((m) => m.type === "eval").map((m) => m.step)).toEqual([0, 3, 6]);
    expect(metrics.filter((m) => m.type === "train").map((m) => m.step)).toEqual([2, 4, 6]);
    expect(Object.keys(metrics.find((m) => m.type === "train")!)).toEqual(expect.arrayContaining(["loss", "lr", "gradNorm", "tokensPerSec", "ntoks", "paddingFraction", "rssMB"]));
    const summary = readJSON(join(dir, "summary.json"));
    expect(summary.status).toBe("completed");
    expect(summary.bestEvalLoss).toBe(Math.min(...metrics.filter((m) => m.type === "eval").map((m) => m.evalLoss)));
    expect(summary.base).toEqual({ path: base, hashBefore: hash, hashAfter: hash, unchanged: true });
    expect(summary.probes.sft.chatProbes).toBeGreaterThan(0);
    expect(readJSON(join(dir, "checkpoint", "sft-mlx.json")).baseHash).toBe(hash);
    expect(hashCheckpoint(base)).toBe(hash);
  });

  test("Ctrl-C ends the step, writes summary (interrupted), checkpoint and state; --resume finishes the run", async () => {
    const cfg = config({ name: "interrupt", probeTokens: 0 });
    const p = await prepareRun(cfg);
    const dir = createRunDir(cfg.out, cfg.name);
    expect(await interruptAfterFirstEval(p, dir)).toBe(130);
    const interrupted = readJSON(join(dir, "summary.json"));
    expect([interrupted.status, interrupted.step]).toEqual(["interrupted", 1]);
    expect(existsSync(join(dir, "checkpoint", "model.safetensors"))).toBe(true);
    expect(existsSync(join(dir, "trainer-state", "trainer-state.json"))).toBe(true);

    expect(await resumeRun(dir)).toBe(0);
    const done = readJSON(join(dir, "summary.json"));
    expect([done.status, done.step]).toEqual(["completed", 6]);
    expect(existsSync(join(dir, "trainer-state"))).toBe(false);
    expect(readMetrics(dir).filter((m) => m.type === "eval").map((m) => m.step)).toEqual([0, 3, 6]);
    await expect(resumeRun(dir)).rejects.toThrow(/nothing to resume \(status `completed`/);
  });
});
