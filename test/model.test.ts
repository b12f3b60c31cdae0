// Conformance: a real pretrained Llama checkpoint (stories260K: GQA, tied embeddings) must decode
// greedily to exactly the published ids, with a full-sequence forward each step, with the KV cache,
// and through generate(). Plus checks of the model on a tiny random config, and vocabulary growth
// (addChatTokens) for a base tokenizer that lacks the chat tokens.
//   bun test test/model.test.ts

import { afterAll, describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { countParameters } from "../lib/model/config.ts";
import { loadCheckpoint, loadModel, namedParameters, saveCheckpoint } from "../lib/model/checkpoint.ts";
import { addChatTokens } from "../lib/model/vocab.ts";
import { CHAT_TOKENS, COURSE_TOKENS, SPECIAL_TOKENS, TOOL_TOKENS } from "../lib/format/tokens.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { makeCaches } from "../lib/model/cache.ts";
import type { LlamaModel } from "../lib/model/llama.ts";
import { generate } from "../lib/generate/generate.ts";
import { releaseMemory } from "../lib/mlx/memory.ts";
import type { TokenizerJSON } from "../lib/tokenizer/bpe-train.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const STORIES = join(import.meta.dir, "../../shared/reference/stories260K");
const HAS_STORIES = existsSync(join(STORIES, "expected.json"));
if (!HAS_STORIES) console.warn(`skipping stories260K conformance: ${STORIES} is absent (it lives in ../shared)`);

interface Expected {
  prompt_ids: number[];
  greedy_new_tokens: number;
  expected_ids: number[]; // prompt included
  expected_text: string;
}

/** A decode-only tokenizer.json built from llama2.c's tok512.bin (int32 max length, then per token
 * float32 score, int32 length, bytes): pieces keep their spaces as "▁", ids 3..258 are byte
 * fallbacks. No merges, so it cannot encode; generate() only decodes. */
function storiesTokenizer(): Tokenizer {
  const buf = readFileSync(join(STORIES, "tok512.bin"));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const vocab: Record<string, number> = {};
  for (let offset = 4, id = 0; offset < buf.length; id++) {
    const length = view.getInt32(offset + 4, true);
    const piece = new TextDecoder().decode(buf.subarray(offset + 8, offset + 8 + length));
    vocab[piece.replaceAll(" ", "▁")] = id;
    offset += 8 + length;
  }
  const special = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return Tokenizer.fromJSON(
    {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [special("<unk>", 0), special("<s>", 1), special("</s>", 2)],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: "Sequence",
        decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }],
      },
      model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: [] },
    } as unknown as TokenizerJSON,
    "tok512.bin",
  );
}

const argmaxLast = (logits: mx.array): number => mx.argmax(logits.index(0, -1), -1).item() as number;

/** Greedy decode re-running the whole sequence every step (no cache): the reference path. */
async function greedyFull(model: LlamaModel, prompt: number[], n: number): Promise<number[]> {
  const ids = [...prompt];
  for (let i = 0; i < n; i++) {
    ids.push(argmaxLast(model.forward(mx.array([ids], mx.int32))));
    if (i % 16 === 15) await releaseMemory();
  }
  return ids;
}

/** Greedy decode with the KV cache: prefill the prompt, then one id at a time. */
async function greedyCached(model: LlamaModel, prompt: number[], n: number): Promise<number[]> {
  const caches = makeCaches(model.config.numHiddenLayers);
  const ids = [...prompt];
  let logits = model.forward(mx.array([prompt], mx.int32), caches);
  for (let i = 0; i < n; i++) {
    const next = argmaxLast(logits);
    ids.push(next);
    logits = model.forward(mx.array([[next]], mx.int32), caches);
    if (i % 16 === 15) await releaseMemory();
  }
  return ids;
}

describe("stories260K conformance", () => {
  const load = () => {
    const expected = JSON.parse(readFileSync(join(STORIES, "expected.json"), "utf8")) as Expected;
    const { model } = loadModel(STORIES);
    return { expected, model };
  };

  test.skipIf(!HAS_STORIES)("loads with the published architecture (260,032 parameters)", () => {
    const { model } = load();
    expect(model.config.numKeyValueHeads).toBeLessThan(model.config.numAttentionHeads); // GQA
    expect(model.config.tieWordEmbeddings).toBe(true);
    expect(countParameters(model.config)).toBe(260_032); // the README's count (embedding counted once)
    const counted = namedParameters(model).reduce((a, [, v]) => a + v.size, 0);
    expect(counted).toBe(countParameters(model.config));
  });

  test.skipIf(!HAS_STORIES)("greedy with a full-sequence forward each step gives expected_ids exactly", async () => {
    const { expected, model } = load();
    expect(await greedyFull(model, expected.prompt_ids, expected.greedy_new_tokens)).toEqual(expected.expected_ids);
  });

  test.skipIf(!HAS_STORIES)("greedy with the KV cache gives expected_ids exactly", async () => {
    const { expected, model } = load();
    expect(await greedyCached(model, expected.prompt_ids, expected.greedy_new_tokens)).toEqual(expected.expected_ids);
  });

  test.skipIf(!HAS_STORIES)("generate(greedy, maxTokens 60) gives expected_ids exactly", async () => {
    const { expected, model } = load();
    const pieces: string[] = [];
    const out = await generate(model, storiesTokenizer(), expected.prompt_ids, {
      maxTokens: expected.greedy_new_tokens,
      onText: (piece) => pieces.push(piece),
    });
    expect([...expected.prompt_ids, ...out.ids]).toEqual(expected.expected_ids);
    expect(out.stopReason).toBe("max-tokens");
    expect(out.text).toBe(expected.expected_text);
    expect(pieces.join("")).toBe(expected.expected_text);
  });
});

describe("model on a tiny random config", () => {
  test.each([
    ["tied", true],
    ["untied", false],
  ])("%s: parameter count matches countParameters and logits are [B, T, V]", (_name, tied) => {
    const model = tinyModel(360, { tied });
    const counted = namedParameters(model).reduce((a, [, v]) => a + v.size, 0);
    expect(counted).toBe(countParameters(model.config));
    const logits = model.forward(mx.array([[1, 2, 3], [4, 5, 6]], mx.int32));
    expect(logits.shape).toEqual([2, 3, 360]);
  });

  test("a batch row's logits do not depend on the other rows or on later positions (causal)", () => {
    const model = tinyModel(360);
    const a = model.forward(mx.array([[7, 8, 9, 10]], mx.int32));
    const b = model.forward(mx.array([[7, 8, 11, 12], [7, 8, 9, 10]], mx.int32));
    const diff = (x: mx.array, y: mx.array) => mx.max(mx.abs(mx.subtract(x, y))).item() as number;
    expect(diff(a.index(0, mx.Slice(0, 2)), b.index(0, mx.Slice(0, 2)))).toBeLessThan(1e-5);
    expect(diff(a.index(0), b.index(1))).toBeLessThan(1e-5);
  });
});

/** The tiny tokenizer as a base model would ship it: `<|endoftext|>` and `<|system|>` only; the four
 * chat tokens' ids hold unrelated reserved strings, so the chat tokens must be added at 360.. */
function baseTokenizer(): Tokenizer {
  const json = tinyTokenizer().toJSON();
  for (const [i, token] of CHAT_TOKENS.entries()) {
    const id = json.model.vocab[token]!;
    delete json.model.vocab[token];
    json.model.vocab[`<|reserved${i}|>`] = id;
    json.added_tokens.find((t) => t.content === token)!.content = `<|reserved${i}|>`;
  }
  return Tokenizer.fromJSON(json, "baseTokenizer()");
}

const rowsOf = (w: mx.array, start: number, end?: number) => w.index(mx.Slice(start, end));
const maxAbs = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;
const equal = (a: mx.array, b: mx.array) => mx.arrayEqual(a, b).item() as boolean;

// What baseTokenizer() lacks of the course's set, in the course's order: `<|endoftext|>` and
// `<|system|>` are already there (ids 1 and 5) and keep their ids.
const NEW = ["<|user|>", "<|assistant|>", "<|tool_call|>", "<|tool_result|>", "<|end|>", "<|pad|>"];
const NEW_IDS = [360, 361, 362, 363, 364, 365];

describe("addChatTokens", () => {
  const ROOT = mkdtempSync(join(tmpdir(), "sft-mlx-vocab-"));
  afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

  test("adds the course's special tokens in the course's order, keeping those the tokenizer has", () => {
    expect(COURSE_TOKENS).toEqual(["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool_call|>", "<|tool_result|>", "<|end|>", "<|pad|>"]);
    const { tokenizer, added } = addChatTokens(tinyModel(360), baseTokenizer(), { noise: 0 });
    expect(added).toEqual(NEW);
    expect(NEW.map((t) => tokenizer.tokenId(t))).toEqual(NEW_IDS);
    expect([tokenizer.tokenId(SPECIAL_TOKENS.doc), tokenizer.tokenId(SPECIAL_TOKENS.system)]).toEqual([1, 5]);
  });

  test("a tokenizer with the chat tokens but not the tool tokens gets only those", () => {
    const { model, tokenizer, added } = addChatTokens(tinyModel(360), tinyTokenizer(), { noise: 0 });
    expect(added).toEqual([TOOL_TOKENS.call, TOOL_TOKENS.result]);
    expect(COURSE_TOKENS.map((t) => tokenizer.tokenId(t))).toEqual([1, 5, 2, 3, 360, 361, 4, 0]);
    expect(model.config.vocabSize).toBe(362);
  });

  test.each([
    ["tied", true],
    ["untied", false],
  ])("%s, rows must grow: ids, shapes, old rows unchanged, new rows at the mean", (_name, tied) => {
    const base = tinyModel(360, { tied, seed: 1 });
    const { model, tokenizer } = addChatTokens(base, baseTokenizer(), { noise: 0 });
    expect(tokenizer.vocabSize).toBe(366);
    expect(model.config).toEqual({ ...base.config, vocabSize: 366 });
    const before = new Map(namedParameters(base));
    const grownNames = tied ? ["model.embed_tokens.weight"] : ["model.embed_tokens.weight", "lm_head.weight"];
    for (const [name, value] of namedParameters(model)) {
      const old = before.get(name)!;
      if (!grownNames.includes(name)) {
        expect({ name, equal: equal(value, old) }).toEqual({ name, equal: true });
        continue;
      }
      expect(value.shape).toEqual([366, 32]);
      expect(equal(rowsOf(value, 0, 360), old)).toBe(true);
      const mean = mx.mean(old, 0, true);
      expect(maxAbs(rowsOf(value, 360), mx.broadcastTo(mean, [6, 32]))).toBeLessThan(1e-6);
    }
    // Logits of the old ids are unchanged: the head only gained columns.
    const ids = mx.array([[7, 8, 9]], mx.int32);
    expect(equal(model.forward(ids).index("...", mx.Slice(0, 360)), base.forward(ids))).toBe(true);
  });

  test("new rows carry seeded noise: small, reproducible, different per token", () => {
    const base = tinyModel(360, { seed: 1 });
    const a = addChatTokens(base, baseTokenizer(), { seed: 7 }).model.model.embedTokens.weight;
    const b = addChatTokens(base, baseTokenizer(), { seed: 7 }).model.model.embedTokens.weight;
    const c = addChatTokens(base, baseTokenizer(), { seed: 8 }).model.model.embedTokens.weight;
    expect(equal(a, b)).toBe(true);
    expect(equal(a, c)).toBe(false);
    const mean = mx.broadcastTo(mx.mean(base.model.embedTokens.weight, 0, true), [6, 32]);
    const std = mx.std(base.model.embedTokens.weight).item() as number;
    expect(maxAbs(rowsOf(a, 360), mean)).toBeLessThan(0.01 * std); // noise is 1e-3 std
    expect(equal(rowsOf(a, 360, 361), rowsOf(a, 361, 362))).toBe(false);
  });

  test("a tokenizer that already has all the course's tokens changes nothing", () => {
    const full = tinyTokenizer().withAddedTokens(COURSE_TOKENS).tokenizer;
    const base = tinyModel(362);
    const out = addChatTokens(base, full);
    expect(out.added).toEqual([]);
    expect(out.model).toBe(base);
    expect(out.tokenizer.toJSON()).toEqual(full.toJSON());
  });

  test("rows fit (a padded vocab, like Qwen3's): not grown, the new ids reuse spare rows at the mean", () => {
    const base = tinyModel(384, { seed: 2 });
    const { model, tokenizer } = addChatTokens(base, baseTokenizer(), { noise: 0 });
    const w = model.model.embedTokens.weight;
    const old = base.model.embedTokens.weight;
    expect(w.shape).toEqual([384, 32]);
    expect(model.config.vocabSize).toBe(384);
    expect(tokenizer.tokenId(SPECIAL_TOKENS.pad)).toBe(365);
    expect(equal(rowsOf(w, 0, 360), rowsOf(old, 0, 360))).toBe(true);
    expect(equal(rowsOf(w, 366), rowsOf(old, 366))).toBe(true); // spare rows kept
    const mean = mx.broadcastTo(mx.mean(rowsOf(old, 0, 360), 0, true), [6, 32]); // mean of real tokens only
    expect(maxAbs(rowsOf(w, 360, 366), mean)).toBeLessThan(1e-6);
  });

  test.each([
    ["rows grow", 360, 366],
    ["rows fit", 384, 384],
  ])("%s: the saved checkpoint's tokenizer.json and tokenizer_config.json carry the course's tokens", async (_name, rows, savedRows) => {
    const { model, tokenizer, added } = addChatTokens(tinyModel(rows, { tied: false }), baseTokenizer());
    const dir = join(ROOT, `grown-${rows}`);
    saveCheckpoint(dir, model, tokenizer, { meta: { addedTokens: added } });
    const ckpt = await loadCheckpoint(dir);
    expect(ckpt.meta).toEqual({ addedTokens: NEW });
    expect(ckpt.config.vocabSize).toBe(savedRows);
    expect(COURSE_TOKENS.map((t) => ckpt.tokenizer.tokenId(t))).toEqual([1, 5, 360, 361, 362, 363, 364, 365]);
    const saved = new Map(namedParameters(ckpt.model));
    for (const [name, value] of namedParameters(model)) expect({ name, equal: equal(saved.get(name)!, value) }).toEqual({ name, equal: true });
    const tokJSON = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")) as TokenizerJSON;
    for (const t of COURSE_TOKENS) expect(tokJSON.added_tokens.filter((a) => a.content === t && a.special)).toHaveLength(1);
    const tokCfg = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    expect([tokCfg.eos_token, tokCfg.pad_token]).toEqual(["<|end|>", "<|pad|>"]); // stop on <|end|>, pad with <|pad|>
    expect(tokCfg.additional_special_tokens).toEqual(COURSE_TOKENS);
    const hf = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect([hf.vocab_size, hf.eos_token_id, hf.pad_token_id]).toEqual([savedRows, 364, 365]);
  });

  test("text containing the chat tokens still encodes without special ids", () => {
    const { tokenizer } = addChatTokens(tinyModel(360), baseTokenizer());
    const text = "text containing <|end|> and <|user|><|assistant|> and <|pad|>";
    const ids = tokenizer.encode(text);
    expect(ids.some((id) => tokenizer.specialIds.has(id))).toBe(false);
    expect(ids.every((id) => id < 360)).toBe(true);
    expect(tokenizer.decode(ids)).toBe(text);
    expect(tokenizer.decode([364])).toBe("<|end|>");
  });
});
