// The head and cross-entropy over the vocabulary in slices (lib/train/head-loss.ts) against the
// unsliced head: the same per-target cross-entropy, and the same gradient of sum(ce · w) wrt the rows
// and the trainable token rows, on heads that are a float embedding, a 4-bit quantized embedding
// (QLoRA's), each with an adapter's trainable rows, and an untied float head.
//   bun test test/head-loss.test.ts
import { expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { applyLoRA, tokenLayers } from "../lib/model/lora.ts";
import { QuantizedEmbedding, quantizeModel } from "../lib/model/quantize.ts";
import { slicedCrossEntropy } from "../lib/train/head-loss.ts";
import { tokenCrossEntropy } from "../lib/train/loss.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const V = 300; // not a multiple of the slice: the last slice is short
const WIDE = { hidden_size: 256, intermediate_size: 512, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2 };
const maxAbsDiff = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;

test.each([
  ["tied float embedding + token rows", { tied: true, quantize: false, tokens: [5, 150, 299] }],
  ["tied 4-bit embedding + token rows", { tied: true, quantize: true, tokens: [5, 150, 299] }],
  ["tied 4-bit embedding, no token rows", { tied: true, quantize: true, tokens: [] }],
  ["untied float head + token rows", { tied: false, quantize: false, tokens: [7, 298] }],
])("sliced cross-entropy and its gradient equal the unsliced head's (%s)", async (_name, o) => {
  const model = tinyModel(V, { seed: 3, tied: o.tied, overrides: WIDE });
  if (o.quantize) {
    const report = await quantizeModel(model, { bits: 4, groupSize: 64 });
    expect(report.quantized).toContain("embed_tokens");
    expect(model.model.embedTokens).toBeInstanceOf(QuantizedEmbedding);
  }
  applyLoRA(model, { rank: 2, alpha: 2, dropout: 0, targets: ["q_proj"] }, { tokenIndices: o.tokens });
  const layers = tokenLayers(model);
  const head = layers.find(([name]) => name === (o.tied ? "embed_tokens" : "lm_head"))?.[1];
  if (head) head.rows = mx.add(head.rows, mx.multiply(mx.random.normal(head.rows.shape, mx.float32, 0, 1, mx.random.key(1)), 0.3)); // moved from the base's
  const n = 37;
  const rows = mx.random.normal([n, 256], mx.float32, 0, 1, mx.random.key(2));
  const ids = [5, 150, 299, 7, 298, 0, 63, 64, 127, 128, 255, 256]; // the token rows' ids and the slices' edges
  const targets = mx.array(Array.from({ length: n }, (_, i) => ids[i % ids.length]!), mx.int32);
  const weights = mx.array(Array.from({ length: n }, (_, i) => (i % 4 === 3 ? 0 : 1)), mx.float32);

  // the head's trainable parameter (the token rows, if any) as a vjp primal
  const withRows = (fn: (r: mx.array) => mx.array) => (r: mx.array, ...p: mx.array[]) => {
    const saved = head?.rows;
    if (head && p.length) head.rows = p[0]!;
    try {
      return fn(r);
    } finally {
      if (head && saved) head.rows = saved;
    }
  };
  const primals = head ? [head.rows] : [];
  const sliced = await slicedCrossEntropy(model, rows, targets, weights, (fn, r, ct) => mx.vjp(withRows(fn), [r, ...primals], [ct])[1], { vocabChunk: 64 });

  const whole = (r: mx.array) => tokenCrossEntropy(model.head(r).reshape([1, n, V]), targets.reshape([1, n])).reshape([n]);
  const [[ce], grads] = mx.vjp(withRows(whole), [rows, ...primals], [weights]);
  expect(maxAbsDiff(sliced.ce, ce!)).toBeLessThan(1e-4);
  expect(sliced.grads.length).toBe(grads.length);
  for (const [i, g] of grads.entries()) {
    expect(maxAbsDiff(sliced.grads[i]!, g)).toBeLessThan(1e-5);
    expect(mx.max(mx.abs(g)).item() as number).toBeGreaterThan(1e-3); // a gradient that is there
  }
});
