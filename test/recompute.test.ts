// Gradient checkpointing (lib/train/recompute.ts): the step that recomputes each layer in the
// backward pass, and runs the head over the vocabulary in slices (lib/train/head-loss.ts), takes the
// same step as the compiled one: losses, gradient norms and every updated parameter (the head's, the
// embedding's and the trainable token rows' included).
//   bun test test/recompute.test.ts
import { expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { applyLoRA, loraLayers } from "../lib/model/lora.ts";
import { TrainStep, type StepBatch } from "../lib/train/step.ts";
import { padAndCollate } from "../lib/data/batch.ts";
import { seededRandom } from "../lib/util/random.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const V = 64;
const cpuStreams = (n: number) => Array.from({ length: n }, () => mx.newStream(mx.cpu));
const maxAbsDiff = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;

/** Four rows; with `extras`, the last is a replay row (`prose`) and every position gets NEFTune-like
 * noise on its input embedding. */
function batch(seed: number, extras = false): StepBatch {
  const rand = seededRandom(seed);
  const rows = [40, 63, 35, 55].map((len) => { // over 128 positions: the head runs in more than one chunk
    const ids = Array.from({ length: len }, () => 6 + Math.floor(rand() * (V - 6)));
    return { ids, mask: ids.map((_, t) => (t < 3 ? 0 : 1)) };
  });
  const b = padAndCollate(rows, { maxSeqLen: 64, padId: 0 });
  if (!extras) return b;
  const [B, T] = b.mask.shape as [number, number];
  const lastRow = mx.array(Array.from({ length: B }, (_, r) => (r === B - 1 ? 1 : 0)), mx.float32).reshape([B, 1]);
  return { ...b, prose: mx.multiply(b.mask, lastRow), noise: mx.random.uniform(-0.05, 0.05, [B, T, 32], mx.float32, mx.random.key(seed)) };
}

test.each([
  ["full fine-tuning, tied, dense head, 1 stream", { lora: false, tied: true, sparseHead: false, streams: 1 }],
  ["full fine-tuning, untied, sparse head, 2 streams", { lora: false, tied: false, sparseHead: true, streams: 2 }],
  ["LoRA + token rows, tied, sparse head, 2 streams", { lora: true, tied: true, sparseHead: true, streams: 2 }],
  ["LoRA + token rows, untied, dense head, 2 streams", { lora: true, tied: false, sparseHead: false, streams: 2 }],
  ["LoRA + token rows, tied, sparse head, replay row and NEFTune noise", { lora: true, tied: true, sparseHead: true, streams: 2, extras: true }],
  ["full fine-tuning, untied, dense head, replay row and NEFTune noise", { lora: false, tied: false, sparseHead: false, streams: 1, extras: true }],
])("recomputed gradients give the compiled step (%s), two steps and two micro-batches", async (_name, o: { lora: boolean; tied: boolean; sparseHead: boolean; streams: number; extras?: boolean }) => {
  const extras = o.extras ?? false;
  const make = (recompute: boolean) => {
    const model = tinyModel(V, { seed: 4, tied: o.tied });
    if (o.lora) {
      applyLoRA(model, { rank: 4, alpha: 8, dropout: 0, targets: ["q_proj", "v_proj", "down_proj"] }, { tokenIndices: [60, 61] });
      mx.random.seed(1);
      for (const [, l] of loraLayers(model)) l.loraB = mx.multiply(mx.random.normal(l.loraB.shape), 0.2); // so A's gradient is not zero
    }
    // the vocabulary in slices of 24 rows: two whole and one short (V 64), so the sliced head is checked
    return new TrainStep(model, undefined, { sparseHead: o.sparseHead, embedNoise: extras, streams: cpuStreams(o.streams), recompute, vocabChunk: 24 });
  };
  const [ref, rec] = [make(false), make(true)];
  for (const b of [batch(1, extras), [batch(2, extras), batch(3, extras)]]) {
    const [a, c] = [await ref.step(b, 1e-2), await rec.step(b, 1e-2)];
    expect(c.loss).toBeCloseTo(a.loss, 5);
    expect(c.gradNorm).toBeCloseTo(a.gradNorm, 4);
    expect(c.proseSum).toBeCloseTo(a.proseSum, 3);
    expect(a.proseSum > 0).toBe(extras);
  }
  const [p, q] = [ref.flat.read(), rec.flat.read()];
  for (const [i, x] of p.entries()) expect([ref.flat.paths[i], maxAbsDiff(q[i]!, x) < 1e-5]).toEqual([ref.flat.paths[i], true]);
});
