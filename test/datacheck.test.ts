// The data check's detection functions on small hand-made sets.
//   bun test -t datacheck

import { describe, expect, test } from "bun:test";
import {
  countConversations, dataCheck, findDuplicates, findOverlap, formatDataCheck, formatHistogram, histogram, jaccard,
  paddingWaste, styleOutliers, wordShingles,
} from "../lib/data/datacheck.ts";
import type { Conversation, Message, SFTExample } from "../lib/format/types.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const u = (content: string): Message => ({ role: "user", content });
const a = (content: string): Message => ({ role: "assistant", content });
const qa = (q: string, ans: string): Conversation => [u(q), a(ans)];

const SET: Conversation[] = [
  qa("What is the capital of France?", "Paris."),
  qa("How many legs does a spider have?", "Eight."),
  [u("Name a sea."), a("The North Sea."), u("Another?"), a("The Baltic.")],
  qa("  what is the CAPITAL of france? ", "Paris."), // exact duplicate of 0 after normalizing
  qa("How many legs does a spider have?", "A spider has eight legs."), // same prompt as 1, other answer
  qa("Tell me, in one short sentence, what the capital of France is.", "Paris."),
  qa("Tell me, in one short sentence, what the capital of France is please.", "Paris is the capital."), // near 5
];

describe("datacheck", () => {
  test("counts conversations, turns and multi-turn ones", () => {
    expect(countConversations(SET)).toEqual({ conversations: 7, messages: 16, assistantTurns: 8, multiTurn: 1 });
  });

  test("histogram: integer-width bins from min to max, bars scaled to the largest", () => {
    const h = histogram([1, 2, 3, 10], 3);
    expect(h).toEqual({ edges: [1, 5, 9, 13], counts: [3, 0, 1] });
    expect(formatHistogram(h, 6)).toEqual([" 1- 4 | ██████ 3", " 5- 8 |  0", " 9-12 | ██ 1"]);
  });

  test("word 3-gram Jaccard", () => {
    expect([...wordShingles("What is the capital?")]).toEqual(["what is the", "is the capital"]);
    expect([...wordShingles("Hi there")]).toEqual(["hi there"]); // fewer than 3 words: the whole text
    const j = jaccard(wordShingles("What is the capital of France?"), wordShingles("What is the capital of Spain?"));
    expect(j).toBeCloseTo(3 / 5);
  });

  test("exact, conflicting and near duplicates", () => {
    const d = findDuplicates(SET);
    expect(d.exact.map((p) => [p.a, p.b])).toEqual([[0, 3]]);
    expect(d.conflicting.map((p) => [p.a, p.b])).toEqual([[1, 4]]);
    expect(d.near.map((p) => [p.a, p.b])).toEqual([[5, 6]]);
    expect(d.near[0]!.similarity).toBeGreaterThanOrEqual(0.8);
  });

  test("train/eval overlap: exact after normalizing, near by Jaccard, the rest clean", () => {
    const evalSet = [qa("WHAT is the capital of France?", "Paris"), qa("Tell me in one short sentence what the capital of France is!", "x"), qa("Who wrote Hamlet?", "Shakespeare.")];
    const o = findOverlap(SET, evalSet);
    expect(o.exact.map((p) => [p.a, p.b])).toEqual([[0, 0]]);
    expect(o.near.map((p) => [p.a, p.b])).toEqual([[5, 1]]);
  });

  test.each([
    ["Sure, the answer is 4.", ["opener"]],
    ["Certainly! It is Paris.", ["opener"]],
    ["Great question. It is Paris.", ["opener"]],
    ["As an AI, I think it is Paris.", ["opener"]],
    ["It is Paris! Lovely city! Go there!", ["exclamations"]],
    ["Of course! What a day!", ["opener", "exclamations"]],
    ["It is Paris. Hope this helps", ["filler"]],
    ["Surely you know it is Paris.", []],
    ["It is Paris.", []],
  ])("style: %j -> %j", (answer, kinds) => {
    const convs = [qa("Q?", answer)];
    expect(styleOutliers(convs, { detectors: ["\\bhope this helps\\b"] }).map((o) => o.kind as string)).toEqual(kinds);
  });

  test("style: an answer far longer than the rest is flagged by z-score", () => {
    const convs = [...Array.from({ length: 20 }, (_, k) => qa(`Q${k}?`, "A short direct answer here.")), qa("Long?", "word ".repeat(100))];
    expect(styleOutliers(convs).map((o) => [o.conversation, o.kind])).toEqual([[20, "long"]]);
  });

  test("padding waste: length-grouped batches of equal lengths waste nothing, shuffled ones do", () => {
    const ex = (n: number): SFTExample => ({ ids: new Array(n).fill(7), mask: new Array(n).fill(1) });
    const examples = [ex(3), ex(3), ex(3), ex(3), ex(33), ex(33), ex(33), ex(33)];
    const w = paddingWaste(examples, 4, 0);
    expect(w.grouped).toBe(0);
    expect(w.random).toBeGreaterThan(0);
  });

  test("dataCheck on a small set: report, self-check line, and the printed form", () => {
    const tok = tinyTokenizer();
    const r = dataCheck({ train: SET, eval: [qa("What is the capital of France?", "Paris.")], tokenizer: tok, batchSize: 2, maxSeqLen: 128 });
    expect(r.counts.train.conversations).toBe(7);
    expect(r.lengths.min).toBeLessThanOrEqual(r.lengths.median);
    expect(r.overlap?.exact).toHaveLength(1);
    expect(r.selfCheck).toEqual([expect.stringMatching(/^train: self-check passed: 7 conversations/), expect.stringMatching(/^eval: self-check passed/)]);
    const text = formatDataCheck(r, SET, [qa("What is the capital of France?", "Paris.")]).join("\n");
    expect(text).toContain("duplicates (train): 1 exact, 1 same prompt with different answers, 1 near");
    expect(text).toContain('exact: eval #0 "What is the capital of France?" = train #0');
  });
});
