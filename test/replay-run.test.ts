// The run-level side of replay, NEFTune and epochs: steps/epochs and --preset layering, which text a
// run replays (the user's, the bundled sample, a recorded corpus, or the bundled sample standing in
// for a base's own text, with a note that says so), and one tiny run end to end with replay and noise.
//   bun test test/replay-run.test.ts
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveCheckpoint } from "../lib/model/checkpoint.ts";
import { createRunDir } from "../lib/run/folder.ts";
import { readMetrics, type TrainRow } from "../lib/run/metrics.ts";
import { readJSON } from "../lib/io/files.ts";
import { DEFAULT_PROSE_SAMPLE } from "../lib/util/paths.ts";
import { resolveRunConfig, type RunConfig } from "../lib/sft/run-config.ts";
import { resolveProseSource } from "../lib/sft/prose-source.ts";
import { executeRun, prepareRun } from "../lib/sft/run.ts";
import { resumeRun } from "../lib/sft/resume.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { chat, fileWriter, interruptAfterFirstEval } from "./helpers/tiny-run.ts";
import { TINY_TEXT, tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tmp = mkdtempSync(join(tmpdir(), "replay-run-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const write = fileWriter(tmp);

describe("steps, epochs and presets", () => {
  test.each([
    ["defaults: 10 epochs with replay", {}, {}, undefined, { epochs: 10, lr: 3e-4, mixProse: 0.25, neftuneAlpha: 0 }],
    ["--steps over the default epochs", {}, { steps: 30 }, undefined, { steps: 30, epochs: 0 }],
    ["--epochs over the default steps", {}, { epochs: 4 }, undefined, { epochs: 4 }],
    ["--preset course: the course's recipe", {}, {}, "course", { steps: 500, epochs: 0, lr: 3e-4, mixProse: 0, neftuneAlpha: 0 }],
    ["a flag over the preset", {}, { lr: 1e-4 }, "course", { steps: 500, lr: 1e-4 }],
    ["--epochs over the preset's steps", {}, { epochs: 3 }, "course", { epochs: 3 }],
    ["--steps over a config file's epochs", { epochs: 6, steps: 120 }, { steps: 40 }, undefined, { steps: 40, epochs: 0 }],
    ["a config.json's epochs and derived steps, reused", { epochs: 6, steps: 120 }, {}, undefined, { steps: 120, epochs: 6 }],
  ] as const)("%s", (_name, file, flags, preset, expected) => {
    expect(resolveRunConfig(file as Partial<RunConfig>, flags as Partial<RunConfig>, preset)).toMatchObject(expected);
  });

  test("--steps and --epochs together, or an unknown preset, are refused", () => {
    expect(() => resolveRunConfig({}, { steps: 10, epochs: 2 })).toThrow(/--steps 10 and --epochs 2 both set the training length: give one/);
    expect(() => resolveRunConfig({}, {}, "fast")).toThrow(/--preset expects one of course, got `fast`/);
  });
});

describe("which text a run replays", () => {
  const prose = write("prose.txt", TINY_TEXT);
  const opts = { mixProse: 0.25, proseData: "auto", base: "/somewhere/base", isBundledBase: false, meta: {} };

  test("no mix: nothing; --prose-data without a mix is refused", () => {
    expect(resolveProseSource({ ...opts, mixProse: 0 })).toBeNull();
    expect(() => resolveProseSource({ ...opts, mixProse: 0, proseData: prose })).toThrow(/--prose-data is the text replayed by --mix-prose, which is 0/);
  });

  test("--prose-data first, byte ranges kept; a missing file is named", () => {
    expect(resolveProseSource({ ...opts, proseData: `${prose}:0-100,${prose}` })).toEqual({ specs: [`${prose}:0-100`, prose], origin: "--prose-data" });
    expect(() => resolveProseSource({ ...opts, proseData: join(tmp, "nope.txt") })).toThrow(/--prose-data `.*nope.txt`: no such file/);
  });

  test("the bundled base: the shipped sample of its own pretraining text", () => {
    expect(resolveProseSource({ ...opts, isBundledBase: true })).toEqual({ specs: [DEFAULT_PROSE_SAMPLE], origin: "bundled sample" });
    expect(existsSync(DEFAULT_PROSE_SAMPLE)).toBe(true);
  });

  test("a base that records its pretraining corpus (scripts/pretrain.ts writes it): that corpus", () => {
    expect(resolveProseSource({ ...opts, meta: { corpus: [`${prose}:0-200`] } })).toEqual({ specs: [`${prose}:0-200`], origin: "base's pretraining corpus" });
  });

  test.each([
    ["no corpus recorded (a downloaded Qwen3)", {}, "it records no pretraining corpus"],
    ["a corpus not on this machine", { corpus: ["/elsewhere/books.txt"] }, "its pretraining corpus (/elsewhere/books.txt) is not on this machine"],
  ])("a base with %s replays the bundled sample in its place, and says why and how to choose", (_name, meta, why) => {
    const source = resolveProseSource({ ...opts, meta });
    expect(source).toMatchObject({ specs: [DEFAULT_PROSE_SAMPLE], origin: "bundled sample, not the base's own text" });
    expect(source!.note).toContain(`for --base /somewhere/base ${why}: replaying the bundled sample data/prose/gutenberg-sample.txt`);
    expect(source!.note).toMatch(/pass --prose-data FILE\[,FILE\].*or --mix-prose 0/);
  });

  test("the base's own text, when at hand, never gets a note", () => {
    expect(resolveProseSource({ ...opts, isBundledBase: true })!.note).toBeUndefined();
    expect(resolveProseSource({ ...opts, meta: { corpus: [prose] } })!.note).toBeUndefined();
  });
});

describe("a tiny run with replay and NEFTune", () => {
  const tok = tinyTokenizer();
  const base = join(tmp, "base");
  saveCheckpoint(base, tinyModel(tok.vocabSize, { seed: 1 }), tok, { meta: { kind: "test-base" } });
  const data = write("train.json", [
    chat("What is the capital of France?", "The capital of France is Paris."),
    chat("How many legs does a spider have?", "A spider has eight legs."),
    chat("Write one sentence about the sea.", "The sea is wide, deep and always moving."),
  ]);
  const evalData = write("eval.json", [chat("Where does the dog sleep?", "The dog sleeps in the sun.")]);
  const out = join(tmp, "runs");
  const config = (over: Partial<RunConfig> = {}) =>
    resolveRunConfig({}, { base, data, evalData, out, epochs: 2, evalEvery: 2, batchSize: 2, maxSeqLen: 64, logEvery: 2, lr: 3e-3, probeTokens: 2, mixProse: 0.5, neftuneAlpha: 5, ...over });

  test("a base with no known corpus and no --prose-data replays the bundled sample; config.json and summary.json say so", async () => {
    const cfg = config({ name: "fallback", epochs: 1, probeTokens: 0 });
    const p = await prepareRun(cfg);
    expect(p.replay!.source).toContain("bundled sample, not the base's own text");
    expect(p.replayNote).toMatch(/records no pretraining corpus: replaying the bundled sample/);
    const dir = createRunDir(cfg.out, cfg.name);
    expect(await executeRun(p, dir)).toBe(0);
    const saved = readJSON(join(dir, "config.json"));
    expect(saved.proseData).toBe(DEFAULT_PROSE_SAMPLE);
    expect(saved.provenance.replay).toEqual({ source: p.replay!.source, note: p.replayNote });
    expect(readJSON(join(dir, "summary.json")).replay.source).toContain("not the base's own text");
  });

  test("with --prose-data: steps from epochs, prose loss logged apart, what was used recorded", async () => {
    const proseData = write("books.txt", TINY_TEXT.repeat(3));
    const cfg = config({ proseData });
    const p = await prepareRun(cfg);
    expect(cfg.steps).toBe(4); // 2 epochs × ceil(3 / 2)
    const dir = createRunDir(cfg.out, cfg.name);
    expect(await executeRun(p, dir)).toBe(0);
    const saved = readJSON(join(dir, "config.json"));
    expect([saved.steps, saved.epochs, saved.mixProse, saved.neftuneAlpha, saved.proseData]).toEqual([4, 2, 0.5, 5, proseData]);
    expect(saved.provenance.dataSha256.prose).toMatch(/^[0-9a-f]{64}$/);
    expect(saved.provenance.replay).toEqual({ source: expect.stringContaining("--prose-data") }); // the user's text: no note
    const train = readMetrics(dir).filter((m): m is TrainRow => m.type === "train");
    expect(train.every((m) => m.proseLoss! > 0 && m.proseNtoks! > 0 && m.loss > 0)).toBe(true);
    const summary = readJSON(join(dir, "summary.json"));
    expect(summary.epochs).toBe(2);
    expect(summary.replay).toMatchObject({ rowsPerBatch: 2, source: expect.stringContaining("--prose-data") });
    expect(summary.probes.settings.trainingAnswers).toBe(3);
  });

  test("interrupted and resumed with replay: the same losses as a run never interrupted; changed replay text is refused", async () => {
    const proseData = write("books-resume.txt", TINY_TEXT.repeat(3));
    const over = { proseData, probeTokens: 0, neftuneAlpha: 0 };
    const straight = await prepareRun(config({ ...over, name: "straight" }));
    const straightDir = createRunDir(out, "straight");
    expect(await executeRun(straight, straightDir)).toBe(0);

    const cfg = config({ ...over, name: "interrupt" });
    const p = await prepareRun(cfg);
    const dir = createRunDir(cfg.out, cfg.name);
    expect(await interruptAfterFirstEval(p, dir)).toBe(130);
    // Held-out losses at every evaluation, and the last report window (the interruption splits the
    // windows before it), as the run never interrupted: the same batches and the same replay windows.
    const losses = (d: string) => {
      const rows = readMetrics(d);
      const last = rows.filter((m): m is TrainRow => m.type === "train").at(-1)!;
      return [...rows.flatMap((m) => (m.type === "eval" ? [[m.step, m.evalLoss]] : [])), [last.step, last.loss, last.proseLoss]];
    };
    appendFileSync(proseData, "more text"); // the replay text changed: resuming would replay other windows
    await expect(resumeRun(dir)).rejects.toThrow(/the replay text changed since this run started/);
    writeFileSync(proseData, TINY_TEXT.repeat(3));
    expect(await resumeRun(dir)).toBe(0);
    expect(losses(dir)).toEqual(losses(straightDir));
  });
});
