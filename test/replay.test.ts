// Pins pretraining replay (lib/data/replay.ts) and its place in the trainer: prose windows as
// {ids, mask} rows with every target supervised, the rows per batch, seeded windows cut to the
// conversations' padded length (no extra padding), the replay mask, the SFT and prose losses logged
// apart (each equal to a direct computation), resume with replay, and --epochs.
//   bun test test/replay.test.ts
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { core as mx } from "@frost-beta/mlx";
import { collateArrays, iterateBatches, paddedLength } from "../lib/data/batch.ts";
import { collateMixed, mixRows, packDocuments, proseExample, proseRowsPerBatch, ProseReplay } from "../lib/data/replay.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import type { Conversation } from "../lib/format/types.ts";
import { maskedCrossEntropySum } from "../lib/train/loss.ts";
import { resolveSFTConfig, SFTTrainer, stepsForEpochs, type SFTConfig } from "../lib/train/trainer.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { TINY_TEXT, tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tok = tinyTokenizer();
const template = new ChatTemplate();
const chat = (user: string, assistant: string): Conversation => [{ role: "user", content: user }, { role: "assistant", content: assistant }];
const TRAIN = [
  chat("What is the capital of France?", "The capital of France is Paris."),
  chat("How many legs does a spider have?", "A spider has eight legs."),
  chat("Write one sentence about the sea.", "The sea is wide, deep and always moving."),
  chat("Who was tired of sitting by her sister?", "Alice was."),
  chat("What does the fox do?", "The quick brown fox jumps over the lazy dog."),
];
const examples = TRAIN.map((c) => template.renderWithMask(c, tok));
const stream = packDocuments([TINY_TEXT, TINY_TEXT.toUpperCase()], tok).tokens;
const opts = { maxSeqLen: 64, padId: 0, padMultiple: 16 };

describe("replay rows", () => {
  test("a prose window is an example whose every id after the first is a target", () => {
    expect(proseExample([7, 8, 9])).toEqual({ ids: [7, 8, 9], mask: [0, 1, 1] });
    const c = collateArrays([proseExample([7, 8, 9])], { maxSeqLen: 8, padId: 0 });
    expect([c.inputs[0], c.targets[0], c.mask[0]]).toEqual([[7, 8], [8, 9], [1, 1]]); // the one shift, batch.ts
  });

  test("packDocuments: the document separator after each document, as pretraining packed them", () => {
    const sep = tok.tokenId("<|endoftext|>");
    const { tokens } = packDocuments(["Alice was tired.", "The dog sleeps."], tok);
    const ids = Array.from(tokens);
    expect(ids.filter((id) => id === sep)).toHaveLength(2);
    expect(ids.at(-1)).toBe(sep);
    expect(ids.slice(0, ids.indexOf(sep))).toEqual(tok.encode("Alice was tired."));
  });

  test.each([
    [8, 0, 0],
    [8, 0.25, 3], // 8 conversations + 3 prose rows: 27% of 11 rows
    [8, 0.5, 8],
    [8, 0.75, 24],
    [1, 0.1, 1], // any mix gets at least one row
  ])("proseRowsPerBatch(%d, %p) = %d", (batchSize, mix, rows) => {
    expect(proseRowsPerBatch(batchSize, mix)).toBe(rows);
  });

  test("a mix beyond 0.75 is refused", () => {
    expect(() => proseRowsPerBatch(8, 0.9)).toThrow(/mixProse must be in \[0, 0.75\], got `0.9`/);
  });

  test("windows: seeded by (seed, batch index), len + 1 ids, inside the stream", () => {
    const r = new ProseReplay(stream, 3, 7, "test");
    const a = r.windows(4, 20);
    expect(r.windows(4, 20)).toEqual(a);
    expect(r.windows(5, 20).starts).not.toEqual(a.starts);
    expect(new ProseReplay(stream, 3, 8, "test").windows(4, 20).starts).not.toEqual(a.starts);
    a.examples.forEach((ex, k) => {
      expect(ex.ids).toEqual(Array.from(stream.subarray(a.starts[k]!, a.starts[k]! + 21)));
      expect(a.starts[k]! + 21).toBeLessThanOrEqual(stream.length);
    });
    expect(() => new ProseReplay(stream.subarray(0, 10), 1, 0, "ten tokens").windows(0, 20)).toThrow(/ten tokens\) has 10 tokens, fewer than one window of 21/);
  });

  test("mixed rows: conversations first, windows cut to their padded length, so no padding is added", () => {
    const sft = examples.slice(0, 3);
    const r = new ProseReplay(stream, 2, 0, "test");
    const { examples: rows, sftRows } = mixRows(sft, r, 0, opts);
    expect(sftRows).toBe(3);
    expect(rows.slice(0, 3)).toEqual(sft);
    const T = paddedLength(sft, opts);
    expect(rows.slice(3).map((ex) => ex.ids.length)).toEqual([T + 1, T + 1]);
    expect(collateArrays(rows, opts).inputs[0]).toHaveLength(T); // the batch length is the conversations'
  });

  test("collateMixed: the prose mask is the mask on the replay rows only", () => {
    const b = collateMixed(examples.slice(0, 3), new ProseReplay(stream, 2, 0, "test"), 0, opts);
    const mask = b.mask.tolist() as number[][];
    const prose = b.prose.tolist() as number[][];
    expect(prose.slice(0, 3).flat().every((v) => v === 0)).toBe(true);
    expect(prose.slice(3)).toEqual(mask.slice(3));
    expect(prose.slice(3).flat().every((v) => v === 1)).toBe(true); // every target of a window
    expect(b.proseNtoks).toBe(2 * (b.inputs.shape[1] as number));
    expect(collateMixed(examples.slice(0, 3), null, 0, opts).proseNtoks).toBe(0);
  });
});

/** A small, fast config as in the trainer tests. */
const config = (over: Partial<SFTConfig> = {}) =>
  resolveSFTConfig({ steps: 12, mixProse: 0, lr: 3e-3, warmup: 0, batchSize: 2, maxSeqLen: 64, evalEvery: 4, patience: 0, logEvery: 4, ...over });
const replayFor = (cfg: SFTConfig) => new ProseReplay(stream, proseRowsPerBatch(cfg.batchSize, cfg.mixProse), cfg.seed, "tiny text");
const trainer = (over: Partial<SFTConfig> = {}, modelSeed = 0, hooks = {}) => {
  const cfg = config(over);
  return new SFTTrainer(tinyModel(tok.vocabSize, { seed: modelSeed }), tok, examples, cfg, hooks, { replay: cfg.mixProse > 0 ? replayFor(cfg) : null });
};

describe("trainer with replay", () => {
  test("the first step logs the conversations' loss and the prose loss apart, each as computed directly", async () => {
    const t = trainer({ mixProse: 0.5 });
    const reference = tinyModel(tok.vocabSize, { seed: 0 }); // the same initial weights, never stepped
    const m = await t.trainStep();
    const first = iterateBatches(examples, { batchSize: 2, seed: 0, groupByLength: true }).next().value!;
    const b = collateMixed(first.examples, replayFor(t.cfg), 0, { maxSeqLen: 64, padId: 0, padMultiple: 16 });
    const logits = reference.forward(b.inputs);
    const [sftSum, sftN] = maskedCrossEntropySum(logits, b.targets, mx.subtract(b.mask, b.prose));
    const [proseSum, proseN] = maskedCrossEntropySum(logits, b.targets, b.prose);
    expect(m.ntoks).toBe(sftN.item() as number);
    expect(m.proseNtoks).toBe(proseN.item() as number);
    expect(m.loss).toBeCloseTo((sftSum.item() as number) / m.ntoks, 4);
    expect(m.proseLoss!).toBeCloseTo((proseSum.item() as number) / m.proseNtoks, 4);
  });

  test("replay trains the prose rows: prose loss falls, and the conversations still train", async () => {
    const h = await trainer({ mixProse: 0.5, steps: 40 }).train();
    const [a, z] = [h.train[0]!, h.train.at(-1)!];
    expect(z.proseLoss!).toBeLessThan(a.proseLoss! - 0.5);
    expect(z.loss).toBeLessThan(a.loss - 0.5);
  });

  test("without replay: no prose loss and no prose targets", async () => {
    const h = await trainer().train();
    expect(h.train.every((m) => m.proseLoss === undefined && m.proseNtoks === 0)).toBe(true);
  });

  test("mixProse without replay text, or replay text with mixProse 0, is refused", () => {
    expect(() => new SFTTrainer(tinyModel(tok.vocabSize), tok, examples, config({ mixProse: 0.25 }))).toThrow(/mixProse 0.25 needs replay text/);
    expect(() => new SFTTrainer(tinyModel(tok.vocabSize), tok, examples, config(), {}, { replay: replayFor(config({ mixProse: 0.25 })) })).toThrow(/mixProse is 0/);
  });

  test("interrupted and resumed with replay: the same windows, bit-identical losses", async () => {
    const over = { mixProse: 0.25, steps: 12 };
    const straight = await trainer(over).train();
    const first = trainer(over, 0, { shouldStop: () => first.step >= 5 });
    await first.train();
    const dir = mkdtempSync(join(tmpdir(), "replay-"));
    try {
      first.saveState(dir);
      const second = trainer(over, 99);
      second.loadState(dir);
      const h = await second.train();
      expect(h.train.map((m) => [m.loss, m.proseLoss])).toEqual(straight.train.map((m) => [m.loss, m.proseLoss]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("epochs", () => {
  test.each([
    [1, 154, 8, 20],
    [3, 154, 8, 60],
    [2, 16, 8, 4],
    [1, 5, 8, 1],
  ])("stepsForEpochs(%d epochs, %d rows, batch %d) = %d", (epochs, rows, batch, steps) => {
    expect(stepsForEpochs(epochs, rows, batch)).toBe(steps);
  });

  test("--epochs sets the trainer's steps from its rows and ends on a pass boundary", async () => {
    const t = trainer({ epochs: 2, steps: 500 }); // 5 rows, batches of 2: 3 per pass
    expect(t.cfg.steps).toBe(6);
    await t.train();
    expect([t.step, t.epochsDone]).toEqual([6, 2]);
  });

  test("--grad-accum: each step draws its batches, so the epochs take fewer steps", async () => {
    expect(stepsForEpochs(2, 5, 2, 2)).toBe(3);
    expect(stepsForEpochs(1, 5, 2, 2)).toBe(2); // 3 batches: the second step's second batch starts pass 2
    const t = trainer({ epochs: 2, steps: 500, gradAccum: 2 });
    expect(t.cfg.steps).toBe(3);
    await t.train();
    expect([t.step, t.epochsDone]).toEqual([3, 2]);
  });
});
