// The mask view marks supervised TARGETS; the classic input-aligned mask differs from the correct
// one exactly at the answer boundaries.
//   bun test -t inspect

import { describe, expect, test } from "bun:test";
import { diffMarks, formatMaskView, inputAlignedCollate, inputMarks, targetMarks } from "../lib/data/inspect.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import type { Message } from "../lib/format/types.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { ChatFormat } from "../lib/format/chat-format.ts";

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
