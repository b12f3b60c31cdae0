// Pins the data loader's validation (every error names its record, line and fix), the JSONL and
// shorthand forms, seeded splits and nested subsets, noise injection, and the shipped data files.
//   bun test test/data.test.ts

import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import {
  DataError,
  injectNoise,
  loadConversations,
  loadNoiseTemplates,
  normalizePrompt,
  offPatternRate,
  parseConversations,
} from "../lib/data/data.ts";
import { splitConversations, subsetConversations } from "../lib/data/split.ts";
import type { Conversation } from "../lib/format/types.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const u = (content: unknown) => ({ role: "user", content });
const a = (content: unknown) => ({ role: "assistant", content });
const rec = (...messages: unknown[]) => JSON.stringify({ messages });
const GOOD = rec(u("What is a noun?"), a("A naming word."));

/** A .json array with one record per line, so record k (0-based) starts on line k + 2. */
const jsonFile = (...records: string[]) => `[\n${records.join(",\n")}\n]\n`;

function dataError(text: string, file: string): DataError {
  try {
    parseConversations(text, file);
  } catch (e) {
    if (e instanceof DataError) return e;
    throw e;
  }
  throw new Error("expected a DataError");
}

describe("invalid data", () => {
  test.each([
    // [case, file, text, index, line, what the message must say (including the fix)]
    ["bad JSON in a record", "d.json", jsonFile(GOOD, `{"messages": [{"role": "user", "content": "hi",}]}`), 1, 3, /not valid JSON.*fix the syntax of the record starting on this line/],
    ["bad JSON on a JSONL line", "d.jsonl", `${GOOD}\n\n{"messages": [`, 1, 3, /not valid JSON.*each line must hold one complete record/],
    ["trailing comma in the array", "d.json", `[\n${GOOD},\n]`, undefined, 3, /a comma before \] has no record after it/],
    ["unclosed array", "d.json", `[\n${GOOD}\n`, undefined, 3, /unexpected end of file: a closing \] or \}/],
    ["JSONL content in a .json file", "d.json", `${GOOD}\n${GOOD}\n`, undefined, 1, /name the file \.jsonl/],
    ["not an array", "d.json", GOOD, undefined, undefined, /expected a JSON array of records.*got object: wrap the records in \[ \]/],
    ["no records", "d.json", "[]", undefined, undefined, /holds no records/],
    ["neither form", "d.json", jsonFile(GOOD, `{"prompt": "a", "completion": "b"}`), 1, 3, /neither "messages" nor "instruction"\/"response" nor "user"\/"assistant" \(keys: "prompt", "completion"\): write \{"messages"/],
    ["record not an object", "d.jsonl", `${GOOD}\n"just text"`, 1, 2, /expected an object with "messages"/],
    ["missing role", "d.json", jsonFile(GOOD, GOOD, JSON.stringify({ messages: [u("q"), { content: "x" }] })), 2, 4, /messages\[1\] has no "role": add "role": "assistant"/],
    ["unknown role", "d.json", jsonFile(rec(u("q"), { role: "bot", content: "x" })), 0, 2, /messages\[1\] has role "bot": the role must be "user" or "assistant"; rename it to "assistant"/],
    ["system role", "d.jsonl", rec({ role: "system", content: "Be brief." }, u("q"), a("x")), 0, 1, /role "system", which is not supported yet: fold the system text into the first user message/],
    ["two user messages in a row", "d.json", jsonFile(rec(u("q"), u("q2"), a("x"))), 0, 2, /messages\[1\] is "user" but should be "assistant".*merge consecutive user messages/],
    ["starts with the assistant", "d.json", jsonFile(rec(a("x"), u("q"))), 0, 2, /messages\[0\] is "assistant" but should be "user"/],
    ["ends with a user message", "d.json", jsonFile(rec(u("q"), a("x"), u("q2"))), 0, 2, /ends with a user message: add the assistant reply/],
    ["empty content", "d.json", jsonFile(GOOD, rec(u("q"), a(""))), 1, 3, /messages\[1\] content is empty: write the text or remove the message/],
    ["whitespace-only content", "d.jsonl", `${GOOD}\n${rec(u(" \n\t"), a("x"))}`, 1, 2, /messages\[0\] content is empty/],
    ["content not a string", "d.json", jsonFile(rec(u([{ type: "text", text: "q" }]), a("x"))), 0, 2, /messages\[0\] content must be a string, got an array: join the text into one string/],
    ["missing content", "d.json", jsonFile(rec({ role: "user" }, a("x"))), 0, 2, /messages\[0\] has no "content": add "content"/],
    ["empty messages", "d.json", jsonFile(JSON.stringify({ messages: [] })), 0, 2, /"messages" is empty/],
    ["shorthand without response", "d.jsonl", `{"instruction": "Name a colour."}`, 0, 1, /has "instruction" but no "response": add "response"/],
    ["shorthand with empty instruction", "d.json", jsonFile(`{"instruction": " ", "response": "Red."}`), 0, 2, /"instruction" is empty/],
    ["both forms in one record", "d.json", jsonFile(`{"instruction": "q", "response": "x", "messages": []}`), 0, 2, /both "messages" and "instruction"\/"response": keep one form/],
    ["unknown extension", "d.txt", GOOD, undefined, undefined, /unknown extension `\.txt`: name the file \.json .* or \.jsonl/],
  ])("%s", (_name, file, text, index, line, message) => {
    const e = dataError(text, file);
    expect(e.file).toBe(file);
    expect(e.index).toBe(index);
    expect(e.line).toBe(line);
    expect(e.message).toMatch(message);
    expect(e.message.startsWith(`${file}: `)).toBe(true);
    if (index !== undefined) expect(e.message).toContain(`record ${index}`);
    if (line !== undefined) expect(e.message).toContain(`line ${line}`);
  });

  test("every problem in a file is reported together, in one error", () => {
    const text = jsonFile(GOOD, rec(u("q"), a(" ")), GOOD, rec({ role: "system", content: "s" }, u("q"), a("x")), `{"input": "x"}`);
    const e = dataError(text, "d.json");
    expect(e.problems.map((p) => [p.index, p.line])).toEqual([[1, 3], [3, 5], [4, 6]]);
    expect(e.message).toMatch(/^d\.json: 3 problems/);
    expect([e.index, e.line]).toEqual([1, 3]); // the first problem
  });

  test("problems past the cap are counted, not listed", () => {
    const e = dataError(Array.from({ length: 30 }, () => rec(u("q"))).join("\n"), "d.jsonl");
    expect(e.problems).toHaveLength(20);
    expect(e.message).toMatch(/^d\.jsonl: 30 problems/);
    expect(e.message).toContain("... and 10 more not shown");
  });

  test("a missing file names the path", () => {
    expect(() => loadConversations("/nonexistent/train.jsonl")).toThrow(/\/nonexistent\/train\.jsonl: cannot read the file/);
  });
});

describe("valid data", () => {
  const expected: Conversation[] = [
    [{ role: "user", content: "What is a noun?" }, { role: "assistant", content: "A naming word." }],
    [{ role: "user", content: "Q1" }, { role: "assistant", content: "A1" }, { role: "user", content: "Q2" }, { role: "assistant", content: "A2" }],
  ];
  const twoTurn = rec(u("Q1"), a("A1"), u("Q2"), a("A2"));

  test.each([
    ["JSON array", "d.json", jsonFile(GOOD, twoTurn)],
    ["JSONL with blank lines and CRLF", "d.jsonl", `\n${GOOD}\r\n\r\n${twoTurn}\n\n`],
    ["JSON with a byte-order mark", "d.json", `\uFEFF${jsonFile(GOOD, twoTurn)}`],
  ])("%s", (_name, file, text) => {
    expect(parseConversations(text, file)).toEqual(expected);
  });

  test("shorthand: instruction, response, and an Alpaca input after a blank line", () => {
    const text = [
      `{"instruction": "Summarise this.", "input": "The fox ran.", "response": "A fox ran."}`,
      `{"instruction": "Name a colour.", "input": "", "response": "Red."}`,
    ].join("\n");
    expect(parseConversations(text, "d.jsonl")).toEqual([
      [{ role: "user", content: "Summarise this.\n\nThe fox ran." }, { role: "assistant", content: "A fox ran." }],
      [{ role: "user", content: "Name a colour." }, { role: "assistant", content: "Red." }],
    ]);
  });

  test("extra keys on messages are dropped", () => {
    const text = jsonFile(JSON.stringify({ messages: [{ role: "user", content: "q", name: "x" }, a("y")] }));
    expect(parseConversations(text, "d.json")).toEqual([[{ role: "user", content: "q" }, { role: "assistant", content: "y" }]]);
  });
});

const convs: Conversation[] = Array.from({ length: 100 }, (_, i) => [
  { role: "user", content: `question ${i}` },
  { role: "assistant", content: `Answer ${i}.` },
]);
const ids = (cs: Conversation[]) => cs.map((c) => c[0]!.content);

describe("split and subsets", () => {
  test("split is seeded, disjoint and complete", () => {
    const { train, eval: held } = splitConversations(convs, { evalFraction: 0.2, seed: 7 });
    expect(held).toHaveLength(20);
    expect(train).toHaveLength(80);
    expect(new Set([...ids(train), ...ids(held)]).size).toBe(100);
    expect(ids(splitConversations(convs, { evalFraction: 0.2, seed: 7 }).eval)).toEqual(ids(held));
    expect(ids(splitConversations(convs, { evalFraction: 0.2, seed: 8 }).eval)).not.toEqual(ids(held));
  });

  test.each([
    [0, 0],
    [0.001, 1], // rounds to 0 but a requested eval split is never empty
  ])("evalFraction %p holds out %p", (evalFraction, n) => {
    expect(splitConversations(convs, { evalFraction, seed: 1 }).eval).toHaveLength(n);
  });

  test.each([[-0.1], [1], [Number.NaN]])("evalFraction %p is rejected", (evalFraction) => {
    expect(() => splitConversations(convs, { evalFraction, seed: 1 })).toThrow(/evalFraction must be in \[0, 1\)/);
  });

  test("subsets of one seed are nested: 10 ⊂ 25 ⊂ 50 ⊂ 100", () => {
    const sizes = [10, 25, 50, 100];
    const subsets = sizes.map((n) => ids(subsetConversations(convs, n, 3)));
    subsets.forEach((s, i) => expect(s).toHaveLength(sizes[i]!));
    for (let i = 1; i < subsets.length; i++) expect(subsets[i]!.slice(0, sizes[i - 1])).toEqual(subsets[i - 1]!);
    expect(ids(subsetConversations(convs, 10, 4))).not.toEqual(subsets[0]);
  });

  test.each([[101], [-1], [2.5]])("subset size %p is rejected", (n) => {
    expect(() => subsetConversations(convs, n, 0)).toThrow(/subset size must be an integer in \[0, 100\]/);
  });
});

describe("noise injection", () => {
  const noise = loadNoiseTemplates("data/sft/noise.json");
  const answers = (cs: Conversation[]) => cs.flatMap((c) => c.filter((m) => m.role === "assistant").map((m) => m.content));

  test("every opener and closer is caught by a detector; clean answers are not", () => {
    for (const o of noise.openers) expect(offPatternRate([`${o}Rome.`], noise.detectors)).toBe(1);
    for (const c of noise.closers) expect(offPatternRate([`Rome.${c}`], noise.detectors)).toBe(1);
    const clean = [...loadConversations("data/sft/instructions.json"), ...loadConversations("data/sft/eval.json")];
    expect(offPatternRate(answers(clean), noise.detectors)).toBe(0);
  });

  test.each([[0], [0.1], [0.5], [1]])("fraction %p makes exactly that share off-pattern, on copies", (fraction) => {
    const before = JSON.stringify(convs);
    const noisy = injectNoise(convs, fraction, 11, noise);
    expect(JSON.stringify(convs)).toBe(before);
    const changed = answers(noisy).filter((x, i) => x !== answers(convs)[i]);
    expect(changed).toHaveLength(Math.round(fraction * 100));
    expect(offPatternRate(answers(noisy), noise.detectors)).toBe(Math.round(fraction * 100) / 100);
    changed.forEach((x) => expect(x).toMatch(/Answer \d+\./)); // the original answer is still inside
    expect(injectNoise(convs, fraction, 11, noise)).toEqual(noisy);
  });

  test("offPatternRate of no replies is 0", () => {
    expect(offPatternRate([], noise.detectors)).toBe(0);
  });
});

describe("shipped data files", () => {
  const train = loadConversations("data/sft/instructions.json");
  const held = loadConversations("data/sft/eval.json");
  const probes = JSON.parse(readFileSync("data/sft/probes.json", "utf8")) as { id: string; kind: string; prompt: string; prefill?: string }[];
  const userPrompts = (cs: Conversation[]) => cs.flatMap((c) => c.filter((m) => m.role === "user").map((m) => normalizePrompt(m.content)));
  const trainPrompts = new Set(userPrompts(train));

  test("sizes: at least 120 training conversations (about 10 two-turn), 24 eval", () => {
    expect(train.length).toBeGreaterThanOrEqual(120);
    expect(train.filter((c) => c.length === 4).length).toBeGreaterThanOrEqual(8);
    expect(held).toHaveLength(24);
  });

  test("eval and probe prompts do not appear in training (case and whitespace ignored)", () => {
    expect(userPrompts(held).filter((p) => trainPrompts.has(p))).toEqual([]);
    const heldPrompts = new Set(userPrompts(held));
    expect(probes.filter((p) => trainPrompts.has(normalizePrompt(p.prompt)) || heldPrompts.has(normalizePrompt(p.prompt)))).toEqual([]);
    expect(new Set(userPrompts(train)).size).toBe(userPrompts(train).length); // no duplicate questions
  });

  test("probes: unique ids, four kinds, the France question, the course's prefilled poem", () => {
    expect(new Set(probes.map((p) => p.id)).size).toBe(probes.length);
    for (const p of probes) expect(["question", "instruction", "prose", "prefill"]).toContain(p.kind);
    expect(probes.find((p) => p.id === "q-capital-france")?.prompt).toBe("What is the capital of France?");
    expect(probes.find((p) => p.id === "f-stars-poem")).toEqual({ id: "f-stars-poem", kind: "prefill", prompt: "Continue this poem:", prefill: "The stars above shine bright at night," });
  });

  const retention = JSON.parse(readFileSync("data/probes/retention.json", "utf8")) as {
    id: string; prompt: string; answer: string; distractors: string[]; source: string;
  }[];

  test("retention items: 30, unique ids, three distinct distractors each", () => {
    expect(retention).toHaveLength(30);
    expect(new Set(retention.map((r) => r.id)).size).toBe(30);
    for (const r of retention) {
      expect(r.distractors).toHaveLength(3);
      expect(new Set([r.answer, ...r.distractors]).size).toBe(4);
    }
  });

  const CORPUS = "/work/shared/corpus"; // outside the repo: checked only where it is mounted
  test.skipIf(!existsSync(`${CORPUS}/gutenberg-english.txt`))("retention answers occur in the corpus and distractors do not", () => {
    const files: Record<string, string> = { sotu: "sotu.txt", brown: "brown.txt" };
    const texts = new Map<string, Buffer>(); // bytes: Buffer.includes is much faster than on a 67M-char string
    for (const r of retention) {
      const name = files[r.source] ?? "gutenberg-english.txt";
      if (!texts.has(name)) texts.set(name, readFileSync(`${CORPUS}/${name}`));
      const text = texts.get(name)!;
      expect({ id: r.id, found: text.includes(r.prompt + r.answer) }).toEqual({ id: r.id, found: true });
      for (const d of r.distractors) expect({ id: r.id, d, found: text.includes(r.prompt + d) }).toEqual({ id: r.id, d, found: false });
    }
  });
});
