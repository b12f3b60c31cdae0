// Generation: greedy is the argmax of a full forward; the KV cache matches the full-sequence pass
// (also across the cache's 256-position chunk boundary); stop ids, max tokens, stop strings, context
// and interruption end generation with the right reason; sampling is seeded; top-k=1 and tiny top-p
// are greedy; repetition penalty follows the CTRL rule; streamed pieces concatenate to `text` and
// never split a character.
//   bun test test/generate.test.ts

import { describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { decoderFor, generate, sampleNext, samplingCandidates, warmUp, type SampleOptions, type StopReason } from "../lib/generate/generate.ts";
import { KVCache, makeCaches } from "../lib/model/cache.ts";
import type { LlamaModel } from "../lib/model/llama.ts";
import { releaseMemory } from "../lib/mlx/memory.ts";
import { seededRandom } from "../lib/util/random.ts";
import { SPECIAL_TOKENS } from "../lib/format/tokens.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const V = 360; // tiny tokenizer's vocabulary
const END = 4; // <|end|> in the tiny tokenizer
const PROMPT = [1, 100, 101, 102, 103];

const maxAbs = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;

/** Greedy by re-running the whole sequence each step (no cache): the reference. */
async function greedyFull(model: LlamaModel, prompt: number[], n: number): Promise<number[]> {
  const ids = [...prompt];
  for (let i = 0; i < n; i++) {
    const logits = model.forward(mx.array([ids], mx.int32)); // [1, T, V]
    ids.push(mx.argmax(logits.index(0, -1), -1).item() as number);
    if (i % 16 === 15) await releaseMemory();
  }
  return ids.slice(prompt.length);
}

/**
 * A stand-in model that emits a fixed script of ids (one-hot logits), keeping the caches' offsets
 * as a real model would: it isolates generate()'s control flow and streaming from the network.
 */
function scriptedModel(script: number[], { context = 128, vocab = V }: { context?: number; vocab?: number } = {}): LlamaModel {
  let step = 0;
  const forward = (ids: mx.array, caches: KVCache[]) => {
    for (const c of caches) c.offset += ids.shape[1];
    const row = new Array(vocab).fill(0);
    row[script[Math.min(step++, script.length - 1)]] = 10;
    return mx.broadcastTo(mx.array(row, mx.float32), [1, ids.shape[1], vocab]);
  };
  return { config: { maxPositionEmbeddings: context, numHiddenLayers: 2 }, forward } as unknown as LlamaModel;
}

describe("greedy and the KV cache", () => {
  test("generate(greedy) = argmax of a full forward each step", async () => {
    const model = tinyModel(V, { seed: 11 });
    const out = await generate(model, tinyTokenizer(), PROMPT, { maxTokens: 24 });
    expect(out.ids).toEqual(await greedyFull(model, PROMPT, 24));
    expect(out.stopReason).toBe("max-tokens");
    expect(out.promptTokens).toBe(PROMPT.length);
  });

  test("warmUp runs the compiled decode step ahead and leaves nothing behind: the same ids after it", async () => {
    const model = tinyModel(V, { seed: 11 });
    await warmUp(model, tinyTokenizer());
    expect(decoderFor(model)!.steps.compiled).toBeGreaterThan(0); // the decode step ran, through the compiled graph
    const sampled = { maxTokens: 24, temperature: 0.8, seed: 3 };
    const out = await generate(model, tinyTokenizer(), PROMPT, sampled);
    expect(out.ids).toEqual((await generate(tinyModel(V, { seed: 11 }), tinyTokenizer(), PROMPT, sampled)).ids); // a model never warmed
    expect((await generate(model, tinyTokenizer(), PROMPT, { maxTokens: 24 })).ids).toEqual(await greedyFull(model, PROMPT, 24));
  });

  test("cached logits equal full-sequence logits, across the 256-position chunk boundary", async () => {
    const model = tinyModel(V, { seed: 12, overrides: { max_position_embeddings: 512 } });
    const rand = seededRandom(3);
    const ids = Array.from({ length: 300 }, () => 6 + Math.floor(rand() * (V - 6)));
    const full = model.forward(mx.array([ids], mx.int32)).index(0); // [300, V]
    const caches = makeCaches(model.config.numHiddenLayers);
    // Prefill 250, a 10-id chunk that crosses 256, then one id at a time.
    const pieces: [number, number][] = [[0, 250], [250, 260]];
    for (let t = 260; t < 300; t++) pieces.push([t, t + 1]);
    let worst = 0;
    for (const [start, end] of pieces) {
      const cached = model.forward(mx.array([ids.slice(start, end)], mx.int32), caches).index(0); // [end-start, V]
      worst = Math.max(worst, maxAbs(cached, full.index(mx.Slice(start, end))));
      expect(mx.argmax(cached, -1).tolist()).toEqual(mx.argmax(full.index(mx.Slice(start, end)), -1).tolist() as number[]);
    }
    expect(caches[0].offset).toBe(300);
    expect(caches[0].keys!.shape[2]).toBe(512); // grew by one chunk
    expect(worst).toBeLessThan(1e-4);
    await releaseMemory();
  });

  test("generate across the chunk boundary gives the full-forward ids", async () => {
    const model = tinyModel(V, { seed: 13, overrides: { max_position_embeddings: 512 } });
    const rand = seededRandom(4);
    const prompt = Array.from({ length: 250 }, () => 6 + Math.floor(rand() * (V - 6)));
    const out = await generate(model, tinyTokenizer(), prompt, { maxTokens: 16 });
    expect(out.ids).toEqual(await greedyFull(model, prompt, 16));
  });
});

describe("why generation stops", () => {
  const tok = tinyTokenizer();
  const hello = tok.encode("Hello there, friend.");

  test("an id past the tokenizer (a spare embedding row, as Qwen3 has) decodes as nothing, not an error", async () => {
    const spare = tok.vocabSize + 3; // the model's vocabulary is larger than the tokenizer's
    const out = await generate(scriptedModel([...hello, spare, END], { vocab: tok.vocabSize + 8 }), tok, PROMPT, { stopIds: [END], maxTokens: 50 });
    expect(out.ids).toEqual([...hello, spare, END]);
    expect(out.text).toBe("Hello there, friend.");
  });

  test("a stop id ends it with end-token; the id is in ids but not in text", async () => {
    const out = await generate(scriptedModel([...hello, END, 50]), tok, PROMPT, { stopIds: [END], maxTokens: 50 });
    expect(out.stopReason).toBe("end-token");
    expect(out.ids).toEqual([...hello, END]);
    expect(out.text).toBe("Hello there, friend.");
  });

  test("maxTokens ends it with max-tokens", async () => {
    const out = await generate(scriptedModel([...hello, END]), tok, PROMPT, { stopIds: [END], maxTokens: 3 });
    expect(out.stopReason).toBe("max-tokens");
    expect(out.ids).toEqual(hello.slice(0, 3));
  });

  test.each([
    ["one stop string", [", "], "Hello there", "stop-string"],
    ["the earliest of several", ["friend", "there"], "Hello ", "stop-string"],
    ["a string that never appears", ["zebra"], "Hello there, friend.", "end-token"],
  ] as [string, string[], string, StopReason][])("stop strings: %s", async (_name, stopStrings, expected, reason) => {
    const pieces: string[] = [];
    const out = await generate(scriptedModel([...hello, END]), tok, PROMPT, {
      stopIds: [END],
      stopStrings,
      onText: (p) => pieces.push(p),
    });
    expect(out.text).toBe(expected);
    expect(out.stopReason).toBe(reason);
    expect(pieces.join("")).toBe(out.text); // nothing streamed that the stop string cut off
  });

  test("the context length ends it with context", async () => {
    const short = await generate(scriptedModel([50], { context: 8 }), tok, PROMPT, { maxTokens: 100 });
    expect(short.stopReason).toBe("context");
    expect(PROMPT.length + short.ids.length).toBe(9); // 8 positions fed, the 9th id predicted from them
  });

  test("shouldStop ends it with interrupted", async () => {
    let polls = 0;
    const out = await generate(scriptedModel([50]), tok, PROMPT, { maxTokens: 100, shouldStop: () => ++polls >= 5 });
    expect(out.stopReason).toBe("interrupted");
    expect(out.ids).toHaveLength(5);
  });

  test("a prompt longer than the context keeps its last context-1 ids", async () => {
    const out = await generate(scriptedModel([50], { context: 8 }), tok, [...PROMPT, ...PROMPT], { maxTokens: 1 });
    expect(out.promptTokens).toBe(7);
  });

  test("an empty prompt is refused", async () => {
    await expect(generate(scriptedModel([50]), tok, [])).rejects.toThrow(/prompt is empty/);
  });
});

describe("streaming", () => {
  const tok = tinyTokenizer();

  test.each([
    ["accents", "café, naïve"],
    ["CJK", "日本語のテキスト"],
    ["emoji and ZWJ sequences", "emoji 🎉 and 👩‍👩‍👧"],
    ["plain text", "The quick brown fox."],
  ])("%s: pieces concatenate to text and never split a character", async (_name, reply) => {
    const script = tok.encode(reply);
    const pieces: string[] = [];
    const out = await generate(scriptedModel([...script, END]), tok, PROMPT, { stopIds: [END], onText: (p) => pieces.push(p) });
    expect(out.text).toBe(reply);
    expect(pieces.join("")).toBe(reply);
    for (const p of pieces) expect(p).not.toContain("\uFFFD");
    for (const p of pieces) expect(p.length).toBeGreaterThan(0);
    if (/[^\x00-\x7f]/.test(reply)) expect(script.length).toBeGreaterThan([...reply].length); // bytes really were split
  });

  test("special ids in the middle are not streamed", async () => {
    const pieces: string[] = [];
    const ids = [...tok.encode("a"), tok.tokenId(SPECIAL_TOKENS.user), ...tok.encode("b")];
    const out = await generate(scriptedModel([...ids, END]), tok, PROMPT, { stopIds: [END], onText: (p) => pieces.push(p) });
    expect(out.text).toBe("ab");
    expect(pieces.join("")).toBe("ab");
  });
});

describe("sampling", () => {
  const model = tinyModel(V, { seed: 21 });
  const tok = tinyTokenizer();
  const run = (opts: SampleOptions) => generate(model, tok, PROMPT, { maxTokens: 20, ...opts });

  test("the same seed gives the same ids with temperature > 0; other seeds differ", async () => {
    const a = await run({ temperature: 1.5, seed: 1 });
    const b = await run({ temperature: 1.5, seed: 1 });
    const c = await run({ temperature: 1.5, seed: 2 });
    expect(a.ids).toEqual(b.ids);
    expect(c.ids).not.toEqual(a.ids);
  });

  test.each([
    ["top-k = 1", { temperature: 1.5, topK: 1 }],
    ["top-p tiny", { temperature: 1.5, topP: 1e-6 }],
    ["temperature 0 with top-k and top-p set", { temperature: 0, topK: 5, topP: 0.5 }],
  ])("%s equals greedy", async (_name, opts) => {
    const greedy = await run({});
    expect((await run({ ...opts, seed: 9 })).ids).toEqual(greedy.ids);
  });

  const rand = () => 0.5;
  test.each([
    // [name, logits, history, penalty, expected id]
    ["positive logit divided: 2.0/1.5 < 1.8", [2.0, 1.8, 0.0], [0], 1.5, 1],
    ["no penalty keeps the argmax", [2.0, 1.8, 0.0], [0], 1, 0],
    ["negative logit multiplied: -1*2 < -1.5", [-1.0, -1.5, -3.0], [0], 2, 1],
    ["an id seen twice is penalised once", [2.0, 1.2, 0.0], [0, 0, 0], 1.5, 0],
    ["unseen ids are untouched", [2.0, 1.8, 0.0], [2], 1.5, 0],
  ])("repetition penalty: %s", (_name, logits, history, repetitionPenalty, expected) => {
    expect(sampleNext(Float32Array.from(logits), history, { repetitionPenalty }, rand)).toBe(expected);
  });

  // The whole vocabulary sorted, as sampling did before it sorted only the likely ids: the cut must
  // be the same (ids, order and weights) however peaked or flat the logits are.
  function candidatesBySortingAll(x: Float32Array, { temperature = 1, topK = 0, topP = 1 }: SampleOptions) {
    let max = -Infinity;
    for (const v of x) max = Math.max(max, v);
    let ids = Array.from(x.keys()).sort((a, b) => x[b] - x[a] || a - b);
    if (topK > 0) ids = ids.slice(0, topK);
    let weights = ids.map((i) => Math.exp((x[i] - max) / temperature));
    if (topP < 1) {
      const total = topK > 0 ? weights.reduce((a, b) => a + b, 0) : Array.from(x).reduce((a, v) => a + Math.exp((v - max) / temperature), 0);
      let cum = 0;
      let keep = 0;
      while (keep < weights.length && cum < topP * total) cum += weights[keep++];
      ids = ids.slice(0, Math.max(1, keep));
      weights = weights.slice(0, ids.length);
    }
    return { ids, weights };
  }

  test.each([
    ["peaked logits, top-p 0.9", 8, { temperature: 0.7, topP: 0.9 }],
    ["flat logits, top-p 0.9 (the threshold must come down)", 0.01, { temperature: 0.7, topP: 0.9 }],
    ["flat logits, top-p 0.999", 0.001, { temperature: 1, topP: 0.999 }],
    ["top-k 50 of flat logits", 0.01, { temperature: 1, topK: 50 }],
    ["top-k 50 of peaked logits (few above the first threshold)", 30, { temperature: 0.5, topK: 50 }],
    ["top-k 3000 and top-p 0.95", 3, { temperature: 1.3, topK: 3000, topP: 0.95 }],
    ["top-k larger than the vocabulary", 2, { temperature: 1, topK: 10000 }],
    ["top-p 1e-6: the argmax alone", 2, { temperature: 1, topP: 1e-6 }],
  ])("sampling candidates: %s equal those of sorting the whole vocabulary", (_name, scale, opts) => {
    const r = seededRandom(11);
    for (let trial = 0; trial < 5; trial++) {
      // 4,096 logits with repeated values (ties must break by id, as a stable sort of the ids does)
      const x = Float32Array.from({ length: 4096 }, () => Math.round((r() - 0.5) * scale * 64) / 64);
      const got = samplingCandidates(x, opts);
      const want = candidatesBySortingAll(x, opts);
      expect(got.ids).toEqual(want.ids);
      expect(got.weights).toEqual(want.weights);
      const sum = want.weights.reduce((a, b) => a + b, 0);
      expect(Math.abs(got.total - sum) / sum).toBeLessThan(1e-12);
    }
  });

  test("sampling candidates: a long tail below the first threshold that top-p or top-k needs is included", () => {
    // One id at 10 and 4,095 at 0: each tail weight e^-10 ≈ 4.5e-5, together 16% of the mass
    const x = Float32Array.from({ length: 4096 }, (_, i) => (i === 7 ? 10 : 0));
    const got = samplingCandidates(x, { temperature: 1, topP: 0.9 });
    expect(got.ids).toEqual(candidatesBySortingAll(x, { temperature: 1, topP: 0.9 }).ids);
    expect(got.ids[0]).toBe(7);
    expect(got.ids.length).toBeGreaterThan(1000);
    const topK = samplingCandidates(x, { temperature: 1, topK: 5 }); // four of the tail, by id
    expect(topK.ids).toEqual([7, 0, 1, 2, 3]);
    expect(topK.ids).toEqual(candidatesBySortingAll(x, { temperature: 1, topK: 5 }).ids);
  });

  test("sampling candidates without top-k or top-p are every id, in id order", () => {
    const x = Float32Array.from([0.5, -1, 2, 2]);
    const { ids, weights, total } = samplingCandidates(x, { temperature: 2 });
    expect(ids).toEqual([0, 1, 2, 3]);
    expect(weights[2]).toBe(1);
    expect(weights[0]).toBeCloseTo(Math.exp(-0.75), 12);
    expect(total).toBeCloseTo(weights.reduce((a, b) => a + b, 0), 12);
  });

  test("sampleNext draws in proportion to softmax(logits / T), restricted by top-k and top-p", () => {
    const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    const draw = (opts: SampleOptions, n = 4000) => {
      const r = seededRandom(5);
      const counts = [0, 0, 0];
      for (let i = 0; i < n; i++) counts[sampleNext(logits, [], opts, r)]++;
      return counts.map((c) => c / n);
    };
    const plain = draw({ temperature: 1 });
    [0.5, 0.3, 0.2].forEach((p, i) => expect(Math.abs(plain[i] - p)).toBeLessThan(0.03));
    const topK = draw({ temperature: 1, topK: 2 });
    expect(topK[2]).toBe(0);
    expect(Math.abs(topK[0] - 0.625)).toBeLessThan(0.03);
    const topP = draw({ temperature: 1, topP: 0.6 }); // 0.5 < 0.6 so the top two are kept
    expect(topP[2]).toBe(0);
    expect(Math.abs(topP[0] - 0.625)).toBeLessThan(0.03);
    expect(sampleNext(logits, [], { temperature: 1, topP: 0.5 }, () => 0.99)).toBe(0); // exactly 0.5: top one only
  });
});
