// The mask view marks supervised TARGETS; the classic input-aligned mask differs from the correct
// one exactly at the answer boundaries.
//   bun test -t inspect

import { describe, expect, test } from "bun:test";
import { diffMarks, formatMaskView, inputAlignedCollate, inputMarks, targetMarks, viewTrainingBatch } from "../lib/data/inspect.ts";
import { packDocuments, ProseReplay } from "../lib/data/replay.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import type { Message } from "../lib/format/types.ts";
import { TINY_TEXT, tinyTokenizer } from "./helpers/tiny.ts";
import { ChatFormat } from "../lib/format/chat-format.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tok = tinyTokenizer();
const u = (content: string): Message => ({ role: "user", content });
const a = (content: string): Message => ({ role: "assistant", content });
const ex = new ChatTemplate().renderWithMask([u("Hi"), a("The sea."), u("And?"), a("Paris.")], tok);
const pad = ChatFormat.of(tok).pad;
const view = (marks: (boolean | null)[]) => formatMaskView(tok, ex.ids, marks);

describe("inspect", () => {
  test("plain view of the correct mask: answers and their <|end|> bracketed, headers not", () => {
    expect(view(targetMarks(ex, pad))).toBe(
      ["<|user|>⏎", "Hi⏎", "<|assistant|>⏎", "[The sea.<|end|>]<|user|>⏎", "And?⏎", "<|assistant|>⏎", "[Paris.<|end|>]"].join("\n"),
    );
  });

  test("input-aligned mask (--shift-bug): the first answer token is dropped and the <|user|> after <|end|> is trained", () => {
    const correct = targetMarks(ex, pad);
    const shifted = targetMarks(ex, pad, inputAlignedCollate);
    // tiny tokenizer: "The" is one id, "Paris." is P|a|r|is|.
    expect(view(shifted)).toBe(["<|user|>⏎", "Hi⏎", "<|assistant|>⏎", "The[ sea.<|end|><|user|>]⏎", "And?⏎", "<|assistant|>⏎", "P[aris.<|end|>]"].join("\n"));
    const firstAnswer = ex.ids.indexOf(3) + 2; // after <|assistant|> and "\n" (one id in the tiny tokenizer)
    const secondAnswer = ex.ids.lastIndexOf(3) + 2;
    const afterEnd = ex.ids.indexOf(4) + 1;
    expect(diffMarks(tok, ex.ids, correct, shifted)).toEqual([
      { pos: firstAnswer, token: tok.decode([ex.ids[firstAnswer]!]), a: true, b: false },
      { pos: afterEnd, token: "<|user|>", a: false, b: true },
      { pos: secondAnswer, token: tok.decode([ex.ids[secondAnswer]!]), a: true, b: false },
    ]);
  });

  test("an input-position view of the correct mask shows <|end|> untrained and the \\n after <|assistant|> trained", () => {
    const lines = view(inputMarks(ex, pad)).split("\n");
    expect(lines[2]).toBe("<|assistant|>[⏎]");
    expect(lines[3]).toStartWith("[The sea.]<|end|><|user|>");
    const correct = view(targetMarks(ex, pad)).split("\n");
    expect(correct[3]).toStartWith("[The sea.<|end|>]");
  });

  test.each([
    ["ids table", { showIds: true }, /^ +0 +2 {2}- {2}"<\|user\|>"\n +1 +\d+ {2}· {2}"\\n"\n(.*\n){5} +7 +\d+ {2}✓ {2}"The"\n/],
    ["colour", { color: true }, /\x1b\[30;4\d?m/],
  ] as const)("%s form", (_name, opts, pattern) => {
    expect(formatMaskView(tok, ex.ids, targetMarks(ex, pad), opts)).toMatch(pattern);
  });
});

describe("inspect a training batch", () => {
  const convs = [[u("Hi"), a("The sea.")], [u("And?"), a("Paris.")], [u("Who?"), a("Alice was.")]];
  const replay = new ProseReplay(packDocuments([TINY_TEXT], tok).tokens, 2, 0, "tiny text");

  test("the conversations, then the replay windows as long as their rows, every window target bracketed", () => {
    const out = viewTrainingBatch(tok, convs, 0, { batchSize: 3, seed: 0, maxSeqLen: 64, replay });
    expect(out).toMatch(/^batch 0 \(epoch 0\): 3 conversations \+ 2 replay windows, 5 rows × \d+ positions/);
    const rows = out.split("\n── ").slice(1);
    expect(rows.map((r) => r.split(":")[0])).toEqual(["row 0", "row 1", "row 2", "row 3", "row 4"]);
    for (const r of rows.slice(3)) {
      const [, targets, supervised] = /, (\d+) targets, (\d+) supervised/.exec(r)!;
      expect(supervised).toBe(targets); // plain text: every target trained
      expect(r).toContain("replay window at token");
    }
    expect(rows[0]).toMatch(/conversation \d, \d+ targets/);
  });

  test("without replay: only the conversations", () => {
    expect(viewTrainingBatch(tok, convs, 1, { batchSize: 2, seed: 0, maxSeqLen: 64 })).toMatch(/^batch 1 \(epoch 0\): [12] conversations \+ 0 replay windows/);
  });
});
