// The compiled single-token decode step (lib/model/decode.ts) against the eager KV-cache path:
// same logits, across GQA and untied heads, and it follows weight updates made after it was built;
// greedy generation through it runs one token ahead and still stops exactly where it should. Long
// contexts decode compiled too, over a buffer that grows by buckets of positions.
import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { tinyModel } from "./helpers/tiny-model.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { makeCaches } from "../lib/model/cache.ts";
import { bufferFor, CompiledDecoder } from "../lib/model/decode.ts";
import { decoderFor, generate } from "../lib/generate/generate.ts";
import { TrainStep } from "../lib/train/step.ts";
import type { LlamaModel } from "../lib/model/llama.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const maxAbsDiff = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;

/** Greedy ids by full-sequence forward passes: the reference that shares no code with either cache. */
function greedyFull(model: LlamaModel, prompt: number[], n: number): number[] {
  const ids = [...prompt];
  for (let i = 0; i < n; i++) ids.push(mx.argmax(model.forward(mx.array([ids], mx.int32)).index(0, -1), -1).item() as number);
  return ids.slice(prompt.length);
}

describe("compiled decode", () => {
  test.each([
    ["tied, GQA 4/2", { tied: true }],
    ["untied, no GQA", { tied: false, overrides: { num_key_value_heads: 4 } }],
    ["q/k/v and MLP biases", { tied: true, overrides: { attention_bias: true, mlp_bias: true } }],
    ["qwen3: per-head q/k norms, head_dim 16 (not 32/4)", { tied: true, overrides: { model_type: "qwen3", head_dim: 16 } }],
    ["llama3 RoPE scaling", { tied: false, overrides: { rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } } }],
    ["projections as W·x (no transposed copies)", { tied: true, transposeWeights: false }],
  ])("logits equal the eager cached path step by step (%s)", (_, { transposeWeights, ...opts }: { transposeWeights?: boolean; tied: boolean; overrides?: Record<string, unknown> }) => {
    const model = tinyModel(300, { seed: 3, ...opts });
    const prompt = [5, 17, 42, 7];
    const eager = makeCaches(model.config.numHiddenLayers);
    const prefill = makeCaches(model.config.numHiddenLayers);
    let le = model.forward(mx.array([prompt], mx.int32), eager).index(0, -1);
    model.forward(mx.array([prompt], mx.int32), prefill);
    const dec = new CompiledDecoder(model, { transposeWeights });
    dec.start(prefill);
    for (let i = 0; i < 30; i++) {
      const next = (i * 37) % 300;
      le = model.forward(mx.array([[next]], mx.int32), eager).index(0, -1);
      const lc = dec.next(next);
      expect(maxAbsDiff(le, lc)).toBeLessThan(1e-4);
    }
    expect(dec.offset).toBe(prompt.length + 30);
  });

  test("one cache: the compiled step continues the prefill's KVCache in place, and eager steps can follow it", () => {
    const model = tinyModel(300, { seed: 5 });
    const prompt = [5, 17, 42, 7];
    const ref = makeCaches(model.config.numHiddenLayers);
    const caches = makeCaches(model.config.numHiddenLayers);
    model.forward(mx.array([prompt], mx.int32), ref);
    model.forward(mx.array([prompt], mx.int32), caches);
    const dec = new CompiledDecoder(model);
    dec.start(caches);
    for (let i = 0; i < 12; i++) {
      const next = (i * 53) % 300;
      const want = model.forward(mx.array([[next]], mx.int32), ref).index(0, -1);
      // alternate: compiled, eager, compiled, ... over the same caches
      const got = i % 2 === 0 ? dec.next(next) : model.forward(mx.array([[next]], mx.int32), caches).index(0, -1);
      expect(maxAbsDiff(want, got)).toBeLessThan(1e-4);
      expect(caches[0]!.offset).toBe(prompt.length + i + 1);
    }
    expect(dec.offset).toBe(caches[0]!.offset);
  });

  test("generate uses the model's current weights after training", async () => {
    const tok = tinyTokenizer();
    const model = tinyModel(tok.vocabSize, { seed: 4 });
    const prompt = tok.encode("The quick brown fox");
    const before = await generate(model, tok, prompt, { maxTokens: 12 });
    expect(before.ids).toEqual(greedyFull(model, prompt, 12));
    const step = new TrainStep(model);
    const ids = mx.array([tok.encode("the cat sat on the mat and the dog sat on the log")], mx.int32);
    const batch = { inputs: ids.index(mx.Slice(), mx.Slice(0, -1)), targets: ids.index(mx.Slice(), mx.Slice(1)), mask: mx.ones([1, ids.shape[1] - 1]) };
    for (let i = 0; i < 30; i++) await step.step(batch, 1e-2);
    const after = await generate(model, tok, prompt, { maxTokens: 12 });
    expect(after.ids).toEqual(greedyFull(model, prompt, 12));
    expect(after.ids).not.toEqual(before.ids);
  });

  // generate() queues the step for token i+1 before it reads token i: these stop at every place
  // that queued step could leak through (an end id, max tokens, the context) and check that a
  // wasted step leaves nothing behind for the next call.
  test.each([
    ["an end id", "end-token"],
    ["max tokens", "max-tokens"],
    ["the context", "context"],
  ] as const)("one token ahead stops exactly at %s", async (_, reason) => {
    const tok = tinyTokenizer();
    const model = tinyModel(tok.vocabSize, { seed: 9, overrides: { max_position_embeddings: 16 } });
    const prompt = tok.encode("the cat sat");
    const ref = greedyFull(model, prompt, 16 - prompt.length + 1); // every id the context allows
    const stopAt = 5;
    const opts =
      reason === "end-token" ? { maxTokens: 100, stopIds: [ref[stopAt]!] } : reason === "max-tokens" ? { maxTokens: stopAt + 1 } : { maxTokens: 100 };
    const expected = reason === "context" ? ref : ref.slice(0, reason === "end-token" ? ref.indexOf(ref[stopAt]!) + 1 : stopAt + 1);
    for (let run = 0; run < 2; run++) {
      const out = await generate(model, tok, prompt, opts);
      expect(out.stopReason).toBe(reason);
      expect(out.ids).toEqual(expected);
    }
  });

  test.each([
    [1, 4096, 256],
    [256, 4096, 256],
    [257, 4096, 512],
    [1025, 32768, 2048],
    [32768, 32768, 32768],
    [100, 128, 128], // a context below the smallest bucket
    [700, 1000, 1000], // one that is no power of two
  ])("bufferFor(%d positions, context %d) = %d", (positions, context, want) => {
    expect(bufferFor(positions, context)).toBe(want);
  });

  test("a long context decodes compiled over a bucket, not the whole context, and grows past it", () => {
    const model = tinyModel(300, { seed: 6, overrides: { max_position_embeddings: 4096 } });
    const prompt = Array.from({ length: 250 }, (_, i) => (i * 31 + 7) % 300);
    const eager = makeCaches(model.config.numHiddenLayers);
    const caches = makeCaches(model.config.numHiddenLayers);
    model.forward(mx.array([prompt], mx.int32), eager);
    model.forward(mx.array([prompt], mx.int32), caches);
    const dec = new CompiledDecoder(model);
    dec.start(caches);
    for (let i = 0; i < 20; i++) {
      // positions 250 .. 269: across the first bucket's end (256), where the cache grows to 512
      const next = (i * 41) % 300;
      const le = model.forward(mx.array([[next]], mx.int32), eager).index(0, -1);
      expect(maxAbsDiff(le, dec.next(next))).toBeLessThan(1e-4);
      expect(caches[0]!.keys!.shape[2]).toBe(bufferFor(dec.offset, 4096));
    }
    expect(caches[0]!.keys!.shape[2]).toBe(512);
    expect(dec.steps.compiled).toBe(20);
  });

  // No model silently decodes eagerly because of its context (it once did above 1,024 positions).
  test.each([4096, 32768])("generate on a %d-position context: compiled, and the ids of full forward passes", async (context) => {
    const tok = tinyTokenizer();
    const model = tinyModel(tok.vocabSize, { seed: 7, overrides: { max_position_embeddings: context } });
    const text = "the cat sat on the mat and the dog sat on the log ";
    const prompt = tok.encode(text.repeat(12)).slice(0, 240);
    const out = await generate(model, tok, prompt, { maxTokens: 40 }); // across the 256 bucket's end
    expect(out.ids).toEqual(greedyFull(model, prompt, 40));
    expect(decoderFor(model)!.steps.compiled).toBe(39); // every token after the prefill's
  });

  test("projections decode on transposed copies while they are small (the bundled base's), as W·x when large", () => {
    expect(new CompiledDecoder(tinyModel(300)).transposeWeights).toBe(true);
    // two layers of Qwen3-0.6B's projections: 123 MB
    const large = tinyModel(300, { overrides: { hidden_size: 1024, intermediate_size: 3072, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128 } });
    expect(new CompiledDecoder(large).transposeWeights).toBe(false);
    expect(new CompiledDecoder(large, { transposeWeights: true }).transposeWeights).toBe(true);
  });
});
