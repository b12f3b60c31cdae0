// A run on the course notebook's own data: instructions.json as the notebook writes it ({kind, user,
// assistant}), held out with the notebook's split (--course-split), over-long rows cut as its
// pad_and_collate cuts them (--truncate); the kinds reach summary.json, samples.md and report.html.
//   bun test test/course-run.test.ts
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveCheckpoint } from "../lib/model/checkpoint.ts";
import { createRunDir } from "../lib/run/folder.ts";
import { readJSON } from "../lib/io/files.ts";
import { resolveRunConfig, type RunConfig } from "../lib/sft/run-config.ts";
import { executeRun, prepareRun } from "../lib/sft/run.ts";
import { resolveSFTConfig } from "../lib/train/config.ts";
import { truncateExamples, truncationWarnings } from "../lib/data/batch.ts";
import { courseSplit } from "../lib/data/split.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tmp = mkdtempSync(join(tmpdir(), "course-run-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const tok = tinyTokenizer();
const base = join(tmp, "base");
saveCheckpoint(base, tinyModel(tok.vocabSize, { seed: 1 }), tok);

const LONG = "The quick brown fox jumps over the lazy dog and the dog sleeps in the sun while the fox runs away.";
const pairs = [
  ...["What is the capital of France?", "How many legs does a spider have?", "Who was tired of sitting by her sister?", "What does the fox do?", "Where does the dog sleep?"]
    .map((user, i) => ({ kind: "factual", user, assistant: ["Paris.", "Eight.", "Alice.", "It jumps.", "In the sun."][i]! })),
  ...["Write one sentence about the sea.", "Write one sentence about the fox.", "Write one sentence about Alice.", "Write one sentence about the sun.", "Write one long sentence."]
    .map((user, i) => ({ kind: "creative", user, assistant: i === 4 ? LONG : "The sea is wide, deep and always moving." })),
];
const data = join(tmp, "instructions.json");
writeFileSync(data, JSON.stringify(pairs, null, 2) + "\n"); // json.dumps(sft_pairs, indent=2) + "\n"
const out = join(tmp, "runs");
const config = (over: Partial<RunConfig> = {}) =>
  resolveRunConfig({}, { base, data, out, courseSplit: true, mixProse: 0, steps: 4, evalEvery: 2, batchSize: 2, maxSeqLen: 40, logEvery: 2, lr: 3e-3, probeTokens: 2, ...over });

describe("a run on the course's data", () => {
  test("without --truncate an over-long row is refused, naming the fix", async () => {
    await expect(prepareRun(config({ truncate: false }))).rejects.toThrow(/\[length\]/);
  });

  test("--course-split --truncate: the notebook's held-out rows, rows cut and counted, kinds reported", async () => {
    const cfg = config({ truncate: true });
    const p = await prepareRun(cfg);
    const held = courseSplit(pairs); // 10 // 5 = 2 held out, in file order
    expect(p.evalConversations.map((c) => c[0]!.content)).toEqual(held.eval.map((r) => r.user));
    expect(p.evalKinds).toEqual(held.eval.map((r) => r.kind));
    const dir = createRunDir(cfg.out, cfg.name);
    expect(await executeRun(p, dir)).toBe(0);
    const summary = readJSON(join(dir, "summary.json"));
    expect(summary.truncatedExamples).toBeGreaterThan(0);
    const kinds = [...new Set(held.eval.map((r) => r.kind))];
    expect(Object.keys(summary.evalLossByKind).sort()).toEqual(kinds.sort());
    for (const k of kinds) expect(summary.evalLossByKind[k].loss).toBeGreaterThan(0);
    expect(summary.probes.categories.map((c: { category: string }) => c.category).sort()).toEqual(kinds.sort());
    expect(summary.probes.sft.prefillProbes).toBe(3); // the shipped probes' prefilled turns
    expect(readFileSync(join(dir, "samples.md"), "utf8")).toContain("## By kind");
    expect(readFileSync(join(dir, "report.html"), "utf8")).toContain("<h2>By kind</h2>");
    const config_ = readJSON(join(dir, "config.json"));
    expect([config_.courseSplit, config_.splitSeed, config_.truncate]).toEqual([true, 13, true]);
    expect(config_.provenance.dataSha256.eval).toBe(config_.provenance.dataSha256.train); // held out of the same file
  });
});

describe("--truncate's bookkeeping", () => {
  const END = 4;
  test("rows cut from the end are counted; a cut that removes a supervised <|end|> is named", () => {
    const examples = [
      { ids: [2, 9, 3, 9, 9, END], mask: [0, 0, 0, 1, 1, 1] }, // fits 5 targets
      { ids: [2, 9, 3, 9, 9, 9, END], mask: [0, 0, 0, 1, 1, 1, 1] }, // its <|end|> is cut
      { ids: [2, 9, 3, 9, END, 2, 9, 9], mask: [0, 0, 0, 1, 1, 0, 0, 0] }, // cut, but the <|end|> stays
    ];
    const t = truncateExamples(examples, 5, END);
    expect(t.cut).toEqual([1, 2]);
    expect(t.endLost).toEqual([1]);
    expect(t.examples[0]).toBe(examples[0]!);
    expect(t.examples[1]).toEqual({ ids: [2, 9, 3, 9, 9, 9], mask: [0, 0, 0, 1, 1, 1] });
    expect(truncationWarnings(t, 3, "training", 5)).toEqual([
      "cut 2 of 3 training examples to max-seq-len 5 targets (from the end, as the course's pad_and_collate does)",
      "the cut removed an assistant turn's <|end|> from training example 1 (counted from 0): those rows no longer teach the model to stop there; raise --max-seq-len or shorten them",
    ]);
    expect(truncationWarnings(truncateExamples(examples.slice(0, 1), 5, END), 1, "eval", 5)).toEqual([]);
  });

  test("--drop-overlength and --truncate together are refused", () => {
    expect(() => resolveSFTConfig({ dropOverlength: true, truncate: true })).toThrow(/choose one \(--drop-overlength or --truncate\)/);
  });
});
