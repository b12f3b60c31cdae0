// Pins NEFTune (lib/train/neftune.ts): the noise is uniform with half-width α/√(T·d) and seeded by
// (seed, step); it reaches the training step through the input embeddings (the step's loss equals
// a direct forward with the noisy embeddings); evaluation is unchanged by it.
//   bun test test/neftune.test.ts
import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { iterateBatches, padAndCollate } from "../lib/data/batch.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import type { Conversation } from "../lib/format/types.ts";
import { maskedCrossEntropySum } from "../lib/train/loss.ts";
import { neftuneNoise, neftuneScale } from "../lib/train/neftune.ts";
import { resolveSFTConfig, SFTTrainer, type SFTConfig } from "../lib/train/trainer.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tok = tinyTokenizer();
const template = new ChatTemplate();
const chat = (user: string, assistant: string): Conversation => [{ role: "user", content: user }, { role: "assistant", content: assistant }];
const examples = [
  chat("What is the capital of France?", "The capital of France is Paris."),
  chat("How many legs does a spider have?", "A spider has eight legs."),
  chat("Write one sentence about the sea.", "The sea is wide, deep and always moving."),
].map((c) => template.renderWithMask(c, tok));
const config = (over: Partial<SFTConfig> = {}) => resolveSFTConfig({ steps: 4, mixProse: 0, lr: 3e-3, warmup: 0, batchSize: 3, maxSeqLen: 64, ...over });

describe("neftune noise", () => {
  test.each([
    [5, 64, 256, 5 / 128],
    [5, 16, 32, 5 / Math.sqrt(512)],
    [0, 16, 32, 0],
  ])("neftuneScale(α %p, T %p, d %p) = α/√(T·d)", (alpha, T, D, expected) => {
    expect(neftuneScale(alpha, T, D)).toBeCloseTo(expected, 12);
  });

  test("uniform on [-s, s] with s = α/√(T·d): bounds, mean 0, variance s²/3; seeded by (seed, step)", () => {
    const [B, T, D] = [4, 48, 32];
    const s = neftuneScale(5, T, D);
    const noise = neftuneNoise([B, T, D], 5, 3, 1);
    expect(noise.shape).toEqual([B, T, D]);
    const xs = (noise.tolist() as number[][][]).flat(2);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    expect(Math.max(...xs.map(Math.abs))).toBeLessThanOrEqual(s);
    expect(Math.max(...xs.map(Math.abs))).toBeGreaterThan(0.99 * s); // it uses the whole range
    expect(Math.abs(mean)).toBeLessThan(0.02 * s); // 6144 draws: the mean's sd is 0.007 s
    expect(Math.abs(variance / ((s * s) / 3) - 1)).toBeLessThan(0.05); // the sample variance's sd is 1.1% here
    expect(neftuneNoise([B, T, D], 5, 3, 1).tolist()).toEqual(noise.tolist());
    expect(neftuneNoise([B, T, D], 5, 3, 2).tolist()).not.toEqual(noise.tolist());
  });
});

describe("neftune in the trainer", () => {
  test("the first step's loss is the loss with the noisy embeddings, and differs from the clean one", async () => {
    const cfg = config({ neftuneAlpha: 5 });
    const noisy = new SFTTrainer(tinyModel(tok.vocabSize, { seed: 1 }), tok, examples, cfg);
    const clean = new SFTTrainer(tinyModel(tok.vocabSize, { seed: 1 }), tok, examples, config());
    const reference = tinyModel(tok.vocabSize, { seed: 1 });
    const first = iterateBatches(examples, { batchSize: 3, seed: 0, groupByLength: true }).next().value!;
    const b = padAndCollate(first.examples, { maxSeqLen: 64, padId: 0, padMultiple: 16 });
    const [B, T] = b.inputs.shape as [number, number];
    const noise = neftuneNoise([B, T, reference.config.hiddenSize], 5, cfg.seed, 1);
    const direct = (embedNoise?: mx.array) => {
      const [sum, n] = maskedCrossEntropySum(reference.head(reference.hidden(b.inputs, undefined, embedNoise)), b.targets, b.mask);
      return (sum.item() as number) / (n.item() as number);
    };
    const [mNoisy, mClean] = [await noisy.trainStep(), await clean.trainStep()];
    expect(mNoisy.loss).toBeCloseTo(direct(noise), 5);
    expect(mClean.loss).toBeCloseTo(direct(), 5);
    expect(Math.abs(mNoisy.loss - mClean.loss)).toBeGreaterThan(1e-4);
  });

  test("evaluation is unchanged: the same weights evaluate the same with and without NEFTune", async () => {
    const noisy = new SFTTrainer(tinyModel(tok.vocabSize, { seed: 2 }), tok, examples, config({ neftuneAlpha: 15 }));
    const clean = new SFTTrainer(tinyModel(tok.vocabSize, { seed: 2 }), tok, examples, config());
    expect(await noisy.evaluate(examples)).toBe(await clean.evaluate(examples));
    await noisy.train(); // noise drawn at every step; evaluation between and after still draws none
    clean.model.update(noisy.model.parameters());
    expect(await noisy.evaluate(examples)).toBe(await clean.evaluate(examples));
  });
});
