// Tokenizer tests: fixed special ids, no special-token injection through encode, round trips,
// save/load, withAddedTokens, streaming decode, trainer determinism, and a Llama-style file.

import { describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trainBPE, type TokenizerJSON } from "../lib/tokenizer/bpe-train.ts";
import { parseSpan, readSpan, sampleSpans } from "../lib/tokenizer/sample-text.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { CHAT_TOKENS, SPECIAL_TOKENS } from "../lib/format/tokens.ts";
import { TINY_TEXT, tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const SPECIALS = Object.values(SPECIAL_TOKENS).map((token, id) => [token, id] as const);

const ROUND_TRIP_TEXTS = [
  "The quick brown fox.",
  "café, naïve, résumé",
  "日本語のテキスト",
  "emoji 🎉 and a family 👩‍👩‍👧 and a flag 🇫🇷",
  "  leading spaces, trailing spaces  \n\n\ttabs\r\nand CRLF",
  "'s 're don't 12,345.67 x=y+1",
  "a <|end|> b <|user|><|assistant|>\n<|endoftext|><|pad|><|system|>",
];

/** Concatenate everything a stream emits for `ids`; also return the pieces. */
function streamAll(tok: Tokenizer, ids: number[]): { text: string; pieces: string[] } {
  const stream = tok.decodeStream();
  const pieces = ids.map((id) => stream.push(id));
  pieces.push(stream.flush());
  return { text: pieces.join(""), pieces };
}

/** A tiny Llama-2-style tokenizer.json: Metaspace via normalizers, BPE with byte_fallback. */
function llamaStyleJSON(): TokenizerJSON {
  const pieces = ["<unk>", "<s>", "</s>"];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  pieces.push("▁", "a", "b", "c", "▁a", "ab", "▁ab");
  const special = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special("<unk>", 0), special("<s>", 1), special("</s>", 2)],
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    // a BOS-adding template, as Llama ships: encode() must not apply it
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(pieces.map((p, i) => [p, i])),
      merges: ["▁ a", "a b", "▁a b"],
    },
  };
}

describe("tokenizer", () => {
  const tok = tinyTokenizer();

  test.each(SPECIALS)("%s is one token at fixed id %d", (token, id) => {
    expect(tok.tokenId(token)).toBe(id);
    expect(tok.hasToken(token)).toBe(true);
    expect(tok.idToToken(id)).toBe(token);
    expect(tok.decode([id])).toBe(token);
    expect(tok.decode([id], { skipSpecial: true })).toBe("");
  });

  test("specialIds are exactly 0..5 and bytes follow at 6..261", () => {
    expect([...tok.specialIds].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(tok.encode("A")).toEqual([6 + 65]);
    expect(tok.vocabSize).toBe(360);
  });

  test("special-token strings in text encode as ordinary text, never as special ids", () => {
    const ids = tok.encode("a <|end|> b");
    expect(ids.some((id) => tok.specialIds.has(id))).toBe(false);
    expect(tok.decode(ids)).toBe("a <|end|> b");
    for (const [token] of SPECIALS) expect(tok.encode(token).length).toBeGreaterThan(1);
  });

  test.each(ROUND_TRIP_TEXTS)("encode/decode round-trips %j", (text) => {
    const ids = tok.encode(text);
    expect(ids.some((id) => tok.specialIds.has(id))).toBe(false);
    expect(tok.decode(ids)).toBe(text);
  });

  test("empty text and empty ids", () => {
    expect(tok.encode("")).toEqual([]);
    expect(tok.decode([])).toBe("");
  });

  test("decode keeps special tokens between text, or drops them with skipSpecial", () => {
    const ids = [tok.tokenId("<|user|>"), ...tok.encode("\nhi\n"), tok.tokenId("<|end|>")];
    expect(tok.decode(ids)).toBe("<|user|>\nhi\n<|end|>");
    expect(tok.decode(ids, { skipSpecial: true })).toBe("\nhi\n");
  });

  test("decode rejects ids outside the vocabulary", () => {
    expect(() => tok.decode([1, 360])).toThrow("cannot decode id 360 at index 1");
    expect(() => tok.idToToken(-1)).toThrow(RangeError);
  });

  test("tokenId names the token, the file and the fix when the token is missing", () => {
    expect(() => tok.tokenId("<|im_end|>")).toThrow(/tinyTokenizer\(\) has no special token `<\|im_end\|>`.*withAddedTokens/);
    expect(tok.hasToken("<|im_end|>")).toBe(false);
  });

  test("save then load gives identical encodings and ids", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tok-"));
    try {
      const path = await tok.save(dir);
      expect(path).toBe(join(dir, "tokenizer.json"));
      for (const loaded of [await Tokenizer.load(dir), await Tokenizer.load(path)]) {
        expect(loaded.vocabSize).toBe(tok.vocabSize);
        for (const text of ROUND_TRIP_TEXTS) expect(loaded.encode(text)).toEqual(tok.encode(text));
        expect(loaded.tokenId(SPECIAL_TOKENS.end)).toBe(4);
      }
      await expect(Tokenizer.load(join(dir, "missing"))).rejects.toThrow("does not exist");
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  test("withAddedTokens appends missing tokens at vocabSize.. and leaves ordinary text alone", () => {
    // a base checkpoint that only knows <|endoftext|> (like GPT-2): drop the other specials
    const json = tok.toJSON();
    json.added_tokens = json.added_tokens.filter((t) => t.content === SPECIAL_TOKENS.doc);
    for (const t of CHAT_TOKENS) delete json.model.vocab[t];
    const base = Tokenizer.fromJSON(json, "base/tokenizer.json");
    expect(base.hasToken(SPECIAL_TOKENS.user)).toBe(false);

    const { tokenizer, added } = base.withAddedTokens([...CHAT_TOKENS, SPECIAL_TOKENS.doc]);
    expect(added).toEqual(CHAT_TOKENS);
    expect(CHAT_TOKENS.map((t) => tokenizer.tokenId(t))).toEqual([360, 361, 362, 363]);
    expect(tokenizer.vocabSize).toBe(364);
    expect(tokenizer.tokenId(SPECIAL_TOKENS.doc)).toBe(1);
    expect(tokenizer.decode([360, ...tokenizer.encode("hi"), 362])).toBe("<|user|>hi<|end|>");
    for (const text of ROUND_TRIP_TEXTS) expect(tokenizer.encode(text)).toEqual(base.encode(text));
    expect(base.hasToken(SPECIAL_TOKENS.user)).toBe(false); // the original is unchanged

    expect(tokenizer.withAddedTokens(CHAT_TOKENS).added).toEqual([]);
  });

  test.each(ROUND_TRIP_TEXTS)("decodeStream matches decode and never emits a partial character: %j", (text) => {
    const ids = [tok.tokenId("<|assistant|>"), ...tok.encode(text), tok.tokenId("<|end|>")];
    const { text: streamed, pieces } = streamAll(tok, ids);
    expect(streamed).toBe(tok.decode(ids));
    for (const piece of pieces) expect(piece).not.toContain("\uFFFD");
  });

  test("decodeStream holds back a character until its last byte arrives", () => {
    const ids = tok.encode("日"); // three byte tokens in the tiny vocabulary
    expect(ids).toHaveLength(3);
    const stream = tok.decodeStream();
    expect(ids.map((id) => stream.push(id))).toEqual(["", "", "日"]);
    expect(stream.flush()).toBe("");
  });

  test("decodeStream flush returns a dangling partial character as U+FFFD", () => {
    const stream = tok.decodeStream();
    expect(stream.push(tok.encode("日")[0]!)).toBe("");
    expect(stream.flush()).toBe("\uFFFD");
  });

  test("trainer is deterministic and independent of text order", () => {
    const lines = TINY_TEXT.split("\n").map((l) => `${l}\n`);
    const a = trainBPE(lines, { specialTokens: Object.values(SPECIAL_TOKENS), vocabSize: 330 });
    const b = trainBPE([...lines].reverse(), { specialTokens: Object.values(SPECIAL_TOKENS), vocabSize: 330 });
    expect(b.model.merges).toEqual(a.model.merges);
    expect(b.model.vocab).toEqual(a.model.vocab);
    expect(trainBPE([TINY_TEXT], { specialTokens: Object.values(SPECIAL_TOKENS), vocabSize: 360, minFrequency: 1 })).toEqual(tok.toJSON());
  });

  test("trainer writes the tokenizer.json layout Hugging Face loaders expect", () => {
    const json = tok.toJSON();
    expect(json.model.type).toBe("BPE");
    expect(json.pre_tokenizer).toMatchObject({ type: "ByteLevel", add_prefix_space: false, use_regex: true });
    expect(json.decoder).toMatchObject({ type: "ByteLevel" });
    expect(json.normalizer).toBeNull();
    expect(json.added_tokens.map((t) => [t.content, t.id, t.special])).toEqual(SPECIALS.map(([t, id]) => [t, id, true]));
    expect(json.model.merges[0]).toMatch(/^\S+ \S+$/);
    expect(() => trainBPE([TINY_TEXT], { specialTokens: Object.values(SPECIAL_TOKENS), vocabSize: 100 })).toThrow("vocabSize must be an integer in [262");
  });

  test.each([
    ["book.txt", { path: "book.txt", start: 0, end: Infinity }],
    ["book.txt:100-200", { path: "book.txt", start: 100, end: 200 }],
    ["book.txt:63944357-", { path: "book.txt", start: 63944357, end: Infinity }],
    ["C:/x.txt", { path: "C:/x.txt", start: 0, end: Infinity }],
  ])("parseSpan(%j)", (spec, span) => {
    expect(parseSpan(spec)).toEqual(span);
  });

  test("readSpan snaps byte ranges to whole lines; sampleSpans keeps to the budget", async () => {
    const dir = await mkdtemp(join(tmpdir(), "span-"));
    try {
      const path = join(dir, "c.txt");
      await Bun.write(path, "one\ntwo\nthree\nfour\n");
      expect(await readSpan({ path, start: 0, end: 4 })).toBe("one\n");
      // both ends snap forward to a line start, so adjacent ranges tile the file exactly
      expect(await readSpan({ path, start: 1, end: 9 })).toBe("two\nthree\n");
      expect(await readSpan({ path, start: 9, end: 15 })).toBe("four\n");
      expect(await readSpan({ path, start: 4, end: Infinity })).toBe("two\nthree\nfour\n");
      expect(await sampleSpans([{ path, start: 0, end: Infinity }], 1 << 20)).toEqual(["one\ntwo\nthree\nfour\n"]);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  describe("Llama-style tokenizer.json (Metaspace, byte_fallback)", () => {
    const llama = Tokenizer.fromJSON(llamaStyleJSON(), "llama/tokenizer.json");

    test("encodes without BOS, with byte fallback, and round-trips", () => {
      expect(llama.encode("ab abc")).toEqual([265, 265, 262]);
      expect(llama.encode("é")).toEqual([259, 3 + 0xc3, 3 + 0xa9]);
      for (const text of ["ab abc", "é 日本 🎉", "a </s> <s>b"]) {
        const ids = llama.encode(text);
        expect(ids.some((id) => llama.specialIds.has(id))).toBe(false);
        expect(llama.decode(ids)).toBe(text);
        expect(streamAll(llama, ids).text).toBe(text);
      }
    });

    test("withAddedTokens gives it the chat tokens at the end of the vocabulary", () => {
      expect(() => llama.tokenId(SPECIAL_TOKENS.end)).toThrow("llama/tokenizer.json has no special token `<|end|>`");
      const { tokenizer, added } = llama.withAddedTokens(CHAT_TOKENS);
      expect(added).toEqual(CHAT_TOKENS);
      expect(CHAT_TOKENS.map((t) => tokenizer.tokenId(t))).toEqual([266, 267, 268, 269]);
      expect(tokenizer.encode("ab <|end|>").some((id) => tokenizer.specialIds.has(id))).toBe(false);
      expect(tokenizer.decode([tokenizer.tokenId("<|user|>"), ...tokenizer.encode("ab")])).toBe("<|user|> ab");
    });
  });
});
