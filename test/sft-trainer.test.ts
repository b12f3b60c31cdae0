// The SFT trainer on a tiny random model and the tiny tokenizer: schedule, overfitting,
// determinism, token-weighted evaluation, early stopping, skipped/over-length/NaN batches, a collapsed run, the
// mask ablation and resuming.
//   bun test -t trainer
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { maskedCrossEntropySum } from "../lib/train/loss.ts";
import { padAndCollate } from "../lib/data/batch.ts";
import { ChatTemplate, type MaskMode } from "../lib/format/template.ts";
import { resolveSFTConfig, SFTTrainer, type SFTConfig } from "../lib/train/trainer.ts";
import { collapseReason } from "../lib/train/collapse.ts";
import type { Conversation, SFTExample } from "../lib/format/types.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tok = tinyTokenizer();
const template = new ChatTemplate();
const chat = (user: string, assistant: string): Conversation => [
  { role: "user", content: user },
  { role: "assistant", content: assistant },
];
const TRAIN = [
  chat("What is the capital of France?", "The capital of France is Paris."),
  chat("How many legs does a spider have?", "A spider has eight legs."),
  chat("Write one sentence about the sea.", "The sea is wide, deep and always moving."),
  chat("Who was tired of sitting by her sister?", "Alice was."),
];
const HELD_OUT = [
  chat("What does the fox do?", "The quick brown fox jumps over the lazy dog."),
  chat("Where does the dog sleep?", "The dog sleeps in the sun."),
  chat("How many apples were in the basket?", "There were 12 apples in the basket."),
];
const render = (convs: Conversation[], maskMode: MaskMode = "assistant") => convs.map((c) => template.renderWithMask(c, tok, { maskMode }));

/** A small, fast config: no warmup surprises, no early stopping unless a test asks. */
const config = (over: Partial<SFTConfig> = {}) =>
  resolveSFTConfig({ steps: 40, mixProse: 0, lr: 3e-3, warmup: 0, batchSize: 4, maxSeqLen: 64, evalEvery: 10, patience: 0, logEvery: 10, ...over });

const trainer = (examples: SFTExample[], over: Partial<SFTConfig> = {}, modelSeed = 0, hooks = {}) =>
  new SFTTrainer(tinyModel(tok.vocabSize, { seed: modelSeed }), tok, examples, config(over), hooks);

describe("trainer", () => {
  describe("config", () => {
    test.each([
      ["lr", -1, /lr must be a number > 0, got `-1`/],
      ["steps", 2.5, /steps must be an integer > 0, got `2.5`/],
      ["minLrRatio", 2, /minLrRatio must be a number >= 0 <= 1, got `2`/],
      ["maskMode", "user", /maskMode must be "assistant" or "all", got `"user"`/],
      ["groupByLength", "yes", /groupByLength must be true or false/],
      ["learningRate", 1e-3, /unknown SFT config key `learningRate`/],
    ])("%s = %p is refused, naming the key and the value", (key, value, message) => {
      expect(() => resolveSFTConfig({ [key]: value } as Partial<SFTConfig>)).toThrow(message);
    });

    test("defaults: the course's 500 steps at 3e-4, no weight decay, pad to multiples of 16, no early stopping, last weights kept", () => {
      const cfg = resolveSFTConfig({});
      expect([cfg.steps, cfg.lr, cfg.weightDecay, cfg.padMultiple, cfg.maskMode, cfg.patience, cfg.keep]).toEqual([500, 3e-4, 0, 16, "assistant", 0, "last"]);
    });
  });

  const sched = trainer(render(TRAIN), { lr: 1e-3, warmup: 10, steps: 100, minLrRatio: 0.1 });
  test.each([
    ["warmup start", 1, 1e-4],
    ["peak at the end of warmup", 10, 1e-3],
    ["peak held one more step: the cosine starts (the course's convention)", 11, 1e-3],
    ["cosine midpoint", 56, 1e-4 + 0.5 * 9e-4],
    ["minLr one step past the last", 101, 1e-4],
  ])("lr schedule: %s (step %d)", (_name, step, expected) => {
    expect(sched.lr(step)).toBeCloseTo(expected, 12);
  });

  test("lr() is the next step's rate", () => {
    expect(sched.lr()).toBe(sched.lr(1));
  });

  test("overfit: 4 conversations, 40 steps, supervised loss falls below 40% of its start", async () => {
    const examples = render(TRAIN);
    const t = trainer(examples);
    const start = await t.evaluate(examples);
    const h = await t.train();
    const end = await t.evaluate(examples);
    expect(h.status).toBe("completed");
    expect(t.step).toBe(40);
    expect(end).toBeLessThan(0.4 * start);
  });

  test("same seed: bit-identical losses over 200 steps; another seed: different", async () => {
    const losses = async (seed: number, steps: number) => {
      const t = trainer(render([...TRAIN, ...HELD_OUT]), { steps, batchSize: 2, lr: 1e-3, seed });
      return (await t.train()).train.map((m) => m.loss);
    };
    const a = await losses(7, 200);
    const b = await losses(7, 200);
    const c = await losses(8, 20); // another batch order shows within a few steps
    expect(a).toHaveLength(200);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a.slice(0, 20));
  });

  test.each([false, true])("evaluate is token-weighted: equals the sum over every example's targets divided once (gradCheckpoint %p; true: the sliced head of lib/train/head-loss.ts)", async (gradCheckpoint) => {
    const examples = render([...TRAIN, ...HELD_OUT]); // 7 examples of different lengths, batches of 3
    const t = trainer(examples, { batchSize: 3, gradCheckpoint });
    let sum = 0;
    let ntoks = 0;
    for (const ex of examples) {
      const b = padAndCollate([ex], { maxSeqLen: 64, padId: 0 }); // one row, no padding
      const [s, n] = maskedCrossEntropySum(t.model.forward(b.inputs), b.targets, b.mask);
      sum += s.item() as number;
      ntoks += n.item() as number;
    }
    expect(await t.evaluate(examples)).toBeCloseTo(sum / ntoks, 5);
  });

  test("early stopping: stops after `patience` evaluations without improvement and restores the best weights", async () => {
    const evalSet = render(HELD_OUT);
    const evals: { step: number; isBest: boolean }[] = [];
    const t = trainer(render(TRAIN), { steps: 400, lr: 1e-2, evalEvery: 5, patience: 2, keep: "best" }, 0, {
      onEval: (e: { step: number }, isBest: boolean) => evals.push({ step: e.step, isBest }),
    });
    const h = await t.train(evalSet);
    expect(h.status).toBe("stopped-early");
    expect(h.reason).toMatch(/did not improve/);
    expect(t.step).toBeLessThan(400);
    expect(h.bestStep).toBeLessThan(t.step);
    expect(h.bestEvalLoss).toBe(Math.min(...h.eval.map((e) => e.evalLoss)));
    expect(evals.slice(-2).every((e) => !e.isBest)).toBe(true);
    expect(await t.evaluate(evalSet)).toBeCloseTo(h.bestEvalLoss, 5); // the model now holds the best weights
  });

  test("keep last: the run ends with the last step's weights, not the best ones", async () => {
    const evalSet = render(HELD_OUT);
    const over = { steps: 120, lr: 1e-2, evalEvery: 10 };
    const best = trainer(render(TRAIN), { ...over, keep: "best" });
    const last = trainer(render(TRAIN), over); // the default
    const [hb, hl] = [await best.train(evalSet), await last.train(evalSet)];
    expect(hl.eval.map((e) => e.evalLoss)).toEqual(hb.eval.map((e) => e.evalLoss)); // same run
    expect(hb.bestStep).toBeLessThan(120); // over-fits: the best is not the last step
    expect(await best.evaluate(evalSet)).toBeCloseTo(hb.bestEvalLoss, 5);
    expect(await last.evaluate(evalSet)).toBeCloseTo(hl.eval[hl.eval.length - 1]!.evalLoss, 5);
  });

  test("releaseTrainingState keeps the weights (the probes still evaluate them) and refuses more training", async () => {
    const evalSet = render(HELD_OUT);
    const t = trainer(render(TRAIN), { steps: 4, evalEvery: 4 });
    const h = await t.train(evalSet);
    t.releaseTrainingState();
    expect(await t.evaluate(evalSet)).toBeCloseTo(h.eval.at(-1)!.evalLoss, 5);
    await expect(t.trainStep()).rejects.toThrow(/optimizer state was released \(releaseTrainingState\): it cannot train again/);
  });

  test("a batch with zero supervised tokens is skipped and counted, never NaN", async () => {
    const unsupervised = render(HELD_OUT).map((ex) => ({ ids: ex.ids, mask: ex.mask.map(() => 0) }));
    const t = trainer([...render(TRAIN), ...unsupervised], { steps: 20, batchSize: 1 });
    const h = await t.train();
    const skipped = h.train.filter((m) => m.skipped);
    expect(h.status).toBe("completed");
    expect(h.skippedBatches).toBe(skipped.length);
    expect(skipped.length).toBeGreaterThan(0);
    expect(skipped.every((m) => m.ntoks === 0)).toBe(true);
    expect(h.train.every((m) => Number.isFinite(m.loss))).toBe(true);
    expect(t.step).toBe(20); // skipped batches do not use up optimizer steps
  });

  test("examples without any supervised target are refused at construction", () => {
    const none = render(TRAIN).map((ex) => ({ ids: ex.ids, mask: ex.mask.map(() => 0) }));
    expect(() => trainer(none)).toThrow(/none of the 4 training examples has a supervised target/);
  });

  test("over-length examples: refused with index and length, or dropped and counted when asked", () => {
    const examples = render(TRAIN);
    const long = examples[2]!.ids.length;
    expect(() => trainer(examples, { maxSeqLen: long - 2 })).toThrow(new RegExp(`training example 2 has length ${long} ids`));
    const t = trainer(examples, { maxSeqLen: long - 2, dropOverlength: true });
    expect(t.history.droppedExamples).toBe(1);
  });

  test("maxSeqLen beyond the model's context is refused", () => {
    expect(() => trainer(render(TRAIN), { maxSeqLen: 512 })).toThrow(/longer than the model's context \(128\)/);
  });

  test('maskMode "all" trains on user text: loss on user-only text drops more than with "assistant"', async () => {
    // User turns alone, every token supervised: what the "all" model also learned to predict.
    const userOnly = TRAIN.map((c) => {
      const ids = tok.encode(c[0]!.content);
      return { ids, mask: ids.map(() => 1) };
    });
    const drop = async (maskMode: MaskMode) => {
      const t = trainer(render(TRAIN, maskMode), { maskMode });
      const before = await t.evaluate(userOnly);
      await t.train();
      return before - await t.evaluate(userOnly);
    };
    expect(await drop("all")).toBeGreaterThan((await drop("assistant")) + 0.5);
  });

  test("an infinite loss stops the run with status failed and finite (best) weights", async () => {
    const t = trainer(render(TRAIN), { lr: 1e30, evalEvery: 1 });
    const h = await t.train(render(HELD_OUT));
    expect(h.status).toBe("failed");
    expect(h.reason).toMatch(/^(loss|gradient norm) (NaN|-?Infinity) at step \d+ .*diverged/);
    expect(Number.isFinite(await t.evaluate(render(HELD_OUT)))).toBe(true);
  });

  test.each([
    // the bundled base: 5.8661 at step 0, V = 4096 (ln V = 8.3178); --lr 1e4 gave 8.3178 at step 3
    [8.3178, 5.8661, 4096, /^the model collapsed to near-uniform output \(held-out loss 8\.3178 ≈ ln V = 8\.3178 at step 3, lr 1\.00e\+4\); try a lower --lr$/],
    [7.9, 5.8661, 4096, /near-uniform output \(held-out loss 7\.9000 ≈ ln V/], // within 0.5 nats of uniform
    [7.8, 5.8661, 4096, null],
    [4.4583, 5.8661, 4096, null], // a normal run
    [1758.5, 1.14, 360, /to worse than uniform output \(held-out loss 1758\.5000 > ln V = 5\.8861/],
    [8.4, 8.5, 4096, null], // an untrained (random) base is near uniform itself: only 1.5x its loss counts
    [12.8, 8.5, 4096, /worse than uniform/],
    [NaN, 5.8661, 4096, /^held-out loss NaN at step 3, lr 1\.00e\+4: training diverged/],
  ])("collapse rule: held-out %p after a base of %p, V = %p", (evalLoss, baseLoss, vocab, expected) => {
    const reason = collapseReason(evalLoss, baseLoss, vocab, 3, 1e4);
    if (expected === null) expect(reason).toBeNull();
    else expect(reason).toMatch(expected);
  });

  test("a collapsed run (--lr 1e4: finite losses, near-uniform output) ends failed with the reason and the best weights, whatever keep says", async () => {
    // A "base" that knows its data (held-out loss well below ln V), then a far too high lr.
    const examples = render(TRAIN);
    const base = trainer(examples, { steps: 30 });
    await base.train(examples);
    const t = new SFTTrainer(base.model, tok, examples, config({ steps: 12, lr: 1e4, evalEvery: 3, keep: "last" }));
    const h = await t.train(examples);
    const start = h.eval[0]!.evalLoss;
    expect(start).toBeLessThan(Math.log(tok.vocabSize) - 1);
    expect(h.status).toBe("failed");
    expect(h.reason).toMatch(/^the model collapsed to (near-uniform|worse than uniform) output \(held-out loss [\d.]+ (≈|>) ln V = 5\.8861 at step 3, lr [\d.e+]+\); try a lower --lr; kept the best weights \(step 0, held-out loss [\d.]+\)$/);
    expect(h.eval.map((e) => e.step)).toEqual([0, 3]); // stopped at the collapse
    expect(await t.evaluate(examples)).toBe(start); // the step-0 weights, not the collapsed ones
  });

  test("shouldStop interrupts; saveState/loadState resumes bit-identically", async () => {
    const examples = render([...TRAIN, ...HELD_OUT]);
    const over = { steps: 20, batchSize: 2, evalEvery: 5 };
    const straight = await trainer(examples, over).train(render(HELD_OUT));

    const first = trainer(examples, over, 0, { shouldStop: () => first.step >= 8 }); // between two evaluations
    const h1 = await first.train(render(HELD_OUT));
    expect(h1.status).toBe("interrupted");
    expect(first.step).toBe(8);
    const dir = mkdtempSync(join(tmpdir(), "sft-trainer-"));
    try {
      first.saveState(dir);
      const second = trainer(examples, over, 99); // different init: every weight must come from the state
      second.loadState(dir);
      const h2 = await second.train(render(HELD_OUT));
      expect(h2.status).toBe("completed");
      expect(h2.train.map((m) => m.loss)).toEqual(straight.train.map((m) => m.loss));
      expect(h2.eval).toEqual(straight.eval);
      expect(h2.bestEvalLoss).toBe(straight.bestEvalLoss);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
