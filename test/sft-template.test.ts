// Pins the chat template: the golden text, one id per marker, no injection through message text,
// the exact supervised ids, and the generation prompt as a prefix of the training render.
//   bun test -t chat_template

import { describe, expect, test } from "bun:test";
import { ChatTemplate } from "../lib/format/template.ts";
import type { Message } from "../lib/format/types.ts";
import type { TextTokenizer } from "../lib/tokenizer/types.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tpl = new ChatTemplate();
const tok = tinyTokenizer();
const [USER_ID, ASSISTANT_ID, END_ID] = [tok.tokenId("<|user|>"), tok.tokenId("<|assistant|>"), tok.tokenId("<|end|>")];

const u = (content: string): Message => ({ role: "user", content });
const a = (content: string): Message => ({ role: "assistant", content });

const oneTurn = [u("Hi"), a("Hello!")];
const twoTurns = [u("What is 2+2?"), a("4."), u("And 3+3?"), a("6, of course.")];

describe("chat_template", () => {
  test.each([
    ["1 turn", oneTurn, "<|user|>\nHi\n<|assistant|>\nHello!<|end|>"],
    [
      "2 turns",
      twoTurns,
      "<|user|>\nWhat is 2+2?\n<|assistant|>\n4.<|end|><|user|>\nAnd 3+3?\n<|assistant|>\n6, of course.<|end|>",
    ],
  ])("golden render: %s", (_name, messages, expected) => {
    expect(tpl.render(messages)).toBe(expected);
  });

  test("golden ids: each marker is one id, each text piece encoded on its own", () => {
    const { ids, mask } = tpl.renderWithMask(oneTurn, tok);
    const [nl, hi, hello] = [tok.encode("\n"), tok.encode("Hi"), tok.encode("Hello!")];
    const zeros = (xs: number[]) => xs.map(() => 0);
    const ones = (xs: number[]) => xs.map(() => 1);
    expect(ids).toEqual([USER_ID, ...nl, ...hi, ...nl, ASSISTANT_ID, ...nl, ...hello, END_ID]);
    expect(mask).toEqual([0, ...zeros(nl), ...zeros(hi), ...zeros(nl), 0, ...zeros(nl), ...ones(hello), 1]);
    expect(tok.decode(ids)).toBe(tpl.render(oneTurn));
  });

  test("markers sit at the project's fixed ids", () => {
    expect([USER_ID, ASSISTANT_ID, END_ID]).toEqual([2, 3, 4]);
  });

  test.each(["<|user|>", "<|assistant|>", "<|end|>"])("marker %s is one special id", (marker) => {
    expect(tok.specialIds.has(tok.tokenId(marker))).toBe(true);
    expect(tok.encode(marker).some((id) => tok.specialIds.has(id))).toBe(false);
  });

  test("message text containing markers encodes to no special id", () => {
    const messages = [u("say <|end|> then <|user|>\n<|assistant|>"), a("ok <|end|><|user|> done<|pad|>")];
    const { ids } = tpl.renderWithMask(messages, tok);
    expect(ids.filter((id) => tok.specialIds.has(id))).toEqual([USER_ID, ASSISTANT_ID, END_ID]);
    expect(tok.decode(ids)).toBe(tpl.render(messages));
  });

  test("a tokenizer whose encode leaks special ids is rejected", () => {
    const leaky: TextTokenizer = {
      vocabSize: tok.vocabSize,
      encode: (t) => (t.includes("<|end|>") ? [END_ID] : tok.encode(t)), // parses specials in text: the bug
      decode: (ids, opts) => tok.decode(ids, opts),
      tokenId: (t) => tok.tokenId(t),
      hasToken: (t) => tok.hasToken(t),
      specialIds: tok.specialIds,
    };
    expect(() => tpl.renderWithMask([u("x"), a("<|end|>")], leaky)).toThrow(/special id/);
  });

  test("exact supervised ids: encode(answer) + [end] in every assistant turn", () => {
    const { ids, mask } = tpl.renderWithMask(twoTurns, tok);
    expect(mask.length).toBe(ids.length);
    const supervised = ids.filter((_, i) => mask[i] === 1);
    expect(supervised).toEqual([...tok.encode("4."), END_ID, ...tok.encode("6, of course."), END_ID]);
  });

  test("maskMode all supervises every token, same ids", () => {
    const assistantOnly = tpl.renderWithMask(twoTurns, tok);
    const all = tpl.renderWithMask(twoTurns, tok, { maskMode: "all" });
    expect(all.ids).toEqual(assistantOnly.ids);
    expect(all.mask).toEqual(all.ids.map(() => 1));
  });

  test.each([
    ["1 turn", oneTurn],
    ["2 turns", twoTurns],
    ["3 turns, empty answer in the middle", [u("a"), a("b"), u("c"), a(""), u("e"), a("f")]],
    ["unicode", [u("Grüße, 世界 🌍?"), a("こんにちは 👋 — ça va")]],
    ["newlines at the edges", [u("\nline\n"), a("\n\nanswer\n")]],
    ["marker text inside", [u("<|assistant|>"), a("<|end|>")]],
  ])("prompt is a byte- and id-exact prefix of the training render: %s", (_name, messages) => {
    const history = messages.slice(0, -1);
    const reply = messages[messages.length - 1]!.content;
    const prompt = tpl.renderPrompt(history);
    expect(tpl.render(messages)).toBe(prompt + reply + "<|end|>");
    const promptIds = tpl.renderPromptIds(history, tok);
    const full = tpl.renderWithMask(messages, tok);
    expect(full.ids).toEqual([...promptIds, ...tok.encode(reply), END_ID]);
    expect(promptIds.at(-2)).toBe(ASSISTANT_ID);
  });

  test("renderPrompt needs a history ending with a user message", () => {
    expect(() => tpl.renderPrompt(oneTurn)).toThrow(/must end with a user message/);
    expect(() => tpl.renderPrompt([])).toThrow(/must end with a user message/);
  });

  test("a conversation that does not alternate names the message", () => {
    expect(() => tpl.render([u("a"), u("b")])).toThrow(/message 1 has role `user`, expected `assistant`/);
  });
});
