// The course notebook's data, read the way the course writes it: `instructions.json` is a JSON array
// of {"kind", "user", "assistant"} (json.dumps(sft_pairs, indent=2)); its kinds are kept; and its
// 80/20 split (torch.randperm with DATA_SPLIT_SEED 13, val_count = max(1, n // 5)) is reproduced to
// the index. The expected permutations were printed by torch 2.13 (/tmp/tv):
//   torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
//   bun test test/course-data.test.ts
import { describe, expect, test } from "bun:test";
import { DataError, kindsOf, parseConversations, parseLabeled } from "../lib/data/data.ts";
import { COURSE_SPLIT_SEED, courseSplit } from "../lib/data/split.ts";
import { mt19937, torchRandperm } from "../lib/util/randperm.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

/** What the notebook's `json.dumps(sft_pairs, indent=2)` writes for three pairs. */
const COURSE_FILE = JSON.stringify([
  { kind: "grounded_qa", user: "Context: Ada wrote the report on Monday. Who wrote the report?", assistant: "Ada wrote the report." },
  { kind: "format", user: "Return exactly one color.", assistant: "Blue." },
  { kind: "grounded_qa", user: "Context: The meeting starts at 3 PM. When does the meeting start?", assistant: "It starts at 3 PM." },
], null, 2) + "\n";

describe("the course's data format", () => {
  test("{kind, user, assistant} records become one exchange each, kinds kept in order", () => {
    const labeled = parseLabeled(COURSE_FILE, "instructions.json");
    expect(labeled[1]).toEqual({ kind: "format", messages: [{ role: "user", content: "Return exactly one color." }, { role: "assistant", content: "Blue." }] });
    expect(labeled.map((c) => c.kind)).toEqual(["grounded_qa", "format", "grounded_qa"]);
    expect(kindsOf(labeled)).toEqual(["grounded_qa", "format"]);
    expect(parseConversations(COURSE_FILE, "instructions.json")).toEqual(labeled.map((c) => c.messages));
  });

  test("the notebook's earlier form without kind, and JSONL, read too; kind is optional on every form", () => {
    const text = [
      `{"user": "What is two plus two?", "assistant": "Four."}`,
      `{"kind": "alpaca", "instruction": "Name a colour.", "response": "Red."}`,
      `{"kind": "chat", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}`,
    ].join("\n");
    const labeled = parseLabeled(text, "d.jsonl");
    expect(labeled.map((c) => c.kind)).toEqual([undefined, "alpaca", "chat"]);
    expect(labeled[0]!.messages).toEqual([{ role: "user", content: "What is two plus two?" }, { role: "assistant", content: "Four." }]);
    expect(kindsOf(labeled)).toEqual(["alpaca", "chat"]);
  });

  test.each([
    ["no assistant", `{"kind": "format", "user": "Return one color."}`, /record 0 \(line 1\): has "user" but no "assistant": add "assistant"/],
    ["empty assistant", `{"user": "q", "assistant": "  "}`, /"assistant" is empty/],
    ["kind not a string", `{"kind": 3, "user": "q", "assistant": "a"}`, /"kind" \(the record's category\) must be a non-empty string, got number 3/],
    ["two forms", `{"user": "q", "assistant": "a", "instruction": "q"}`, /has both "instruction"\/"response" and "user"\/"assistant": keep one form per record/],
  ])("%s is refused, naming the record and the fix", (_name, line, message) => {
    expect(() => parseLabeled(line, "d.jsonl")).toThrow(DataError);
    expect(() => parseLabeled(line, "d.jsonl")).toThrow(message);
  });
});

describe("the course's split", () => {
  test("mt19937 matches the reference sequence (std::mt19937 seeded with 5489: 10000th output 4123659995)", () => {
    const next = mt19937(5489);
    let v = 0;
    for (let i = 0; i < 10000; i++) v = next();
    expect(v).toBe(4123659995);
  });

  test.each([
    [5, 13, [3, 1, 0, 2, 4]],
    [10, 0, [4, 1, 7, 5, 3, 9, 0, 8, 6, 2]],
    [24, 7, [15, 22, 3, 11, 7, 8, 23, 16, 20, 5, 9, 4, 10, 12, 2, 19, 18, 13, 21, 1, 17, 0, 6, 14]],
    [2, 13, [0, 1]],
    [1, 13, [0]],
  ])("torch.randperm(%i) with seed %i", (n, seed, expected) => {
    expect(torchRandperm(n, seed)).toEqual(expected);
  });

  test("132 conversations (the notebook's starter set) with seed 13: the held-out 26 are torch's", () => {
    const perm132 = [10, 115, 76, 20, 106, 11, 84, 86, 44, 12, 1, 83, 112, 73, 78, 99, 62, 61, 59, 5, 109, 63, 70, 95, 8, 91, 107, 39, 31, 37, 131, 116];
    expect(torchRandperm(132, 13).slice(0, perm132.length)).toEqual(perm132);
    const items = Array.from({ length: 132 }, (_, i) => i);
    const { train, eval: held } = courseSplit(items, COURSE_SPLIT_SEED);
    expect(held).toEqual(perm132.slice(0, 26).sort((a, b) => a - b)); // val_count = 132 // 5, in file order
    expect(train).toHaveLength(106);
    expect(train.every((i, k) => k === 0 || i > train[k - 1]!)).toBe(true); // file order kept
    expect(new Set([...train, ...held]).size).toBe(132);
  });

  test.each([
    [2, 1],
    [9, 1],
    [10, 2],
    [154, 30],
  ])("%i conversations: max(1, n // 5) = %i held out", (n, nEval) => {
    expect(courseSplit(Array.from({ length: n }, (_, i) => i)).eval).toHaveLength(nEval);
  });

  test("fewer than 2 conversations is refused", () => {
    expect(() => courseSplit([1])).toThrow(/needs at least 2 conversations/);
  });
});
