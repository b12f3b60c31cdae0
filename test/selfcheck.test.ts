// The pre-flight self-check passes on the real template and catches each deliberately broken
// template, tokenizer, collate and dataset with the conversation index and what is wrong.
//   bun test -t selfcheck

import { describe, expect, test } from "bun:test";
import { collateArrays } from "../lib/data/batch.ts";
import { inputAlignedCollate } from "../lib/data/inspect.ts";
import { assertSelfCheck, formatFailure, SelfCheckError, selfCheck, type SelfCheckOptions } from "../lib/data/selfcheck.ts";
import { packDocuments, ProseReplay } from "../lib/data/replay.ts";
import { ChatTemplate, type RenderOptions } from "../lib/format/template.ts";
import type { Conversation, Message, SFTExample } from "../lib/format/types.ts";
import type { TextTokenizer } from "../lib/tokenizer/types.ts";
import { TINY_TEXT, tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tok = tinyTokenizer();
const tpl = new ChatTemplate();
const END = tok.tokenId("<|end|>");
const u = (content: string): Message => ({ role: "user", content });
const a = (content: string): Message => ({ role: "assistant", content });

const CONVS: Conversation[] = [
  [u("What is the capital of France?"), a("The capital of France is Paris.")],
  [u("How many legs does a spider have?"), a("A spider has eight legs."), u("And a dog?"), a("Four.")],
  [u("Write one sentence about the sea."), a("The sea is wide, deep and always moving.")],
  [u("Say <|end|> and then <|user|>, please."), a("Here: <|end|> <|assistant|>")],
];
const base: SelfCheckOptions = { tokenizer: tok, conversations: CONVS, maxSeqLen: 128 };

/** Drops every `<|end|>` id: the model would never learn to stop. */
class NoEndTemplate extends ChatTemplate {
  override renderWithMask(messages: Message[], t: TextTokenizer, opts?: RenderOptions): SFTExample {
    const ex = super.renderWithMask(messages, t, opts);
    const keep = ex.ids.map((id) => id !== END);
    return { ids: ex.ids.filter((_, k) => keep[k]), mask: ex.mask.filter((_, k) => keep[k]) };
  }
}

/** Encodes the rendered text with marker strings split out, so `<|end|>` typed in a message
 * becomes the special id (the injection the real template prevents). */
class NaiveTemplate extends ChatTemplate {
  override renderWithMask(messages: Message[], t: TextTokenizer): SFTExample {
    const ids: number[] = [];
    const mask: number[] = [];
    let inAnswer = false;
    for (const piece of this.render(messages).split(/(<\|[a-z]+\|>)/)) {
      const special = t.hasToken(piece);
      const pieceIds = special ? [t.tokenId(piece)] : t.encode(piece);
      if (piece === "<|assistant|>") inAnswer = true;
      for (const [k, id] of pieceIds.entries()) {
        ids.push(id);
        mask.push(inAnswer && !(piece === "<|assistant|>") && !(k === 0 && piece.startsWith("\n") && ids.at(-2) === t.tokenId("<|assistant|>")) ? 1 : 0);
      }
      if (piece === "<|end|>") inAnswer = false;
    }
    return { ids, mask };
  }
}

/** Mask shifted one position left inside the template: `\n` after `<|assistant|>` trained, `<|end|>` not. */
class ShiftedMaskTemplate extends ChatTemplate {
  override renderWithMask(messages: Message[], t: TextTokenizer, opts?: RenderOptions): SFTExample {
    const ex = super.renderWithMask(messages, t, opts);
    return { ids: ex.ids, mask: [...ex.mask.slice(1), 0] };
  }
}

/** A tokenizer whose `encode` turns marker strings into special ids. */
const leakyTokenizer: TextTokenizer = Object.assign(Object.create(tok) as TextTokenizer, {
  encode: (text: string) => text.split(/(<\|[a-z]+\|>)/).flatMap((p) => (tok.hasToken(p) ? [tok.tokenId(p)] : tok.encode(p))),
});

/** mlx-lm's `steps <= length`: one padding position past the end of each short row is trained. */
const padLeakCollate: SelfCheckOptions["collate"] = (examples, opts) => {
  const c = collateArrays(examples, opts);
  const mask = c.mask.map((row, r) => row.map((v, t) => (t === examples[r]!.ids.length - 1 ? 1 : v)));
  return { ...c, mask };
};

/** The chat script's builder, minus the "\n" after `<|assistant|>`. */
const noNewlinePrompt = (history: Message[], t: TextTokenizer) => tpl.renderPromptIds(history, t).slice(0, -t.encode("\n").length);

describe("selfcheck", () => {
  test("the real template, tiny tokenizer and a few conversations pass, in one line", () => {
    const r = selfCheck({ ...base, renderChatPrompt: (h, t) => tpl.renderPromptIds(h, t) });
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.checks.every((c) => c.ok)).toBe(true);
    expect(r.summary).toMatch(/^self-check passed: 4 conversations, 5 assistant turns, \d+ supervised targets/);
    expect(r.summary).not.toContain("\n");
    expect(r.stats.assistantTurns).toBe(5);
  });

  test("maskMode all passes too (the ablation trains on every token)", () => {
    expect(selfCheck({ ...base, maskMode: "all" }).failures).toEqual([]);
  });

  test.each([
    ["missing <|end|>", { template: new NoEndTemplate() }, "special-ids", 1, /assistant message 3 is not closed by `<\|end\|>` \(4\)/],
    ["user text <|end|> encoded as the special id (template)", { template: new NaiveTemplate() }, "special-ids", 3, /special id `<\|end\|>` \(4\) at position \d+, inside message 0 \(user\).*message text became a special id/],
    ["user text <|end|> encoded as the special id (tokenizer)", { tokenizer: leakyTokenizer }, "message-text", 3, /message 0 \(user\) encodes to special id\(s\) `<\|end\|><\|user\|>`/],
    ["an over-long row", { maxSeqLen: 20 }, "length", 1, /^\d+ ids \(\d+ targets after the shift\), more than max-seq-len 20\. Fix: raise --max-seq-len to at least \d+ if the model's context allows it, or pass --drop-overlength/],
    ["an over-long row within the context", { maxSeqLen: 20, context: 64 }, "length", 1, /more than max-seq-len 20\. Fix: raise --max-seq-len to at least \d+ \(the model's context is 64\), or pass --drop-overlength/],
    ["an over-long row beyond the context", { maxSeqLen: 20, context: 20 }, "length", 1, /more than max-seq-len 20\. Fix: it does not fit the model's context \(20\) at any --max-seq-len: pass --drop-overlength/],
    ["a mask shifted inside the template", { template: new ShiftedMaskTemplate() }, "mask", 0, /`<\|end\|>` \(4\) closing assistant message 1 .* is not supervised/],
    ["a mask aligned to inputs in collate", { collate: inputAlignedCollate }, "collate", 0, /mask is aligned to the inputs \(mask\[t\] = example.mask\[t\]\) instead of the targets: target \d+ \(`The` \(\d+\)\) has mask 0, expected example.mask\[\d+\] = 1/],
    ["padding supervised in collate", { collate: padLeakCollate }, "collate", 0, /padding position \d+ .* has mask 1/],
    ["a chat prompt without \\n after <|assistant|>", { renderChatPrompt: noNewlinePrompt }, "chat-prompt", 0, /chat prompt for message 1: \d+ ids, stops 1 id\(s\) short of the training render, which continues after `.*<\|assistant\|>` \([\d, ]*3\) with `⏎` \(\d+\)/],
    ["a zero-supervised row", { conversations: [...CONVS, [u("Only a question, no reply?")]] }, "supervised", 4, /no supervised target/],
  ] as const)("catches %s", (_name, override, check, conversation, message) => {
    const r = selfCheck({ ...base, ...override } as SelfCheckOptions);
    expect(r.ok).toBe(false);
    const hits = r.failures.filter((f) => f.check === check && f.conversation === conversation);
    expect(hits.map((f) => f.message)).toContainEqual(expect.stringMatching(message));
    expect(hits.every((f) => f.message.includes("Fix: "))).toBe(true);
    expect(r.checks.find((c) => c.name === check)?.ok).toBe(false);
    expect(r.summary).toMatch(/^self-check FAILED: /);
  });

  test("a template-level injection flags only the conversation whose text holds marker strings", () => {
    const r = selfCheck({ ...base, template: new NaiveTemplate() });
    expect([...new Set(r.failures.map((f) => f.conversation))]).toEqual([3]);
  });

  test("a tokenizer without the chat tokens fails before rendering anything", () => {
    const bare: TextTokenizer = Object.assign(Object.create(tok) as TextTokenizer, { hasToken: (t: string) => t !== "<|end|>" });
    const r = selfCheck({ ...base, tokenizer: bare });
    expect(r.failures).toEqual([{ conversation: undefined, check: "markers", message: expect.stringContaining("`<|end|>` is not a special token") }]);
  });

  test("assertSelfCheck throws a SelfCheckError listing conversation, check and fix", () => {
    expect(() => assertSelfCheck({ ...base, maxSeqLen: 20 })).toThrow(SelfCheckError);
    try {
      assertSelfCheck({ ...base, maxSeqLen: 20 });
    } catch (e) {
      expect((e as SelfCheckError).message).toMatch(/\n {2}conversation 1 \[length\]: .*Fix: raise --max-seq-len/);
    }
    expect(assertSelfCheck(base).ok).toBe(true);
  });

  test("is fast: a few ms per conversation", () => {
    const many = Array.from({ length: 50 }, (_, k) => CONVS[k % CONVS.length]!);
    const r = selfCheck({ ...base, conversations: many });
    expect(r.ok).toBe(true);
    expect(r.stats.ms / many.length).toBeLessThan(5);
  });
});

describe("selfcheck with replay", () => {
  const replay = new ProseReplay(packDocuments([TINY_TEXT], tok).tokens, 2, 0, "tiny text");

  test("replay windows are collated into the batches and pass: every target supervised, as long as the rows", () => {
    const r = selfCheck({ ...base, replay });
    expect(r.failures).toEqual([]);
    expect(r.checks.find((c) => c.name === "replay")?.detail).toBe("2 replay windows mixed into the batches: every target supervised, as long as the conversations' rows");
  });

  test("a collate that misaligns the mask is caught on the replay rows too, named by their offset", () => {
    const r = selfCheck({ ...base, replay, collate: inputAlignedCollate });
    const hits = r.failures.filter((f) => f.check === "replay");
    expect(hits).toHaveLength(2);
    expect(hits[0]!.message).toMatch(/^replay window at token \d+ \(batch with conversations 0..3\): the mask is aligned to the inputs/);
    expect(formatFailure(hits[0]!)).toMatch(/^replay \[replay\]: /);
  });

  test("replay text shorter than one window is a failure, not a crash", () => {
    const r = selfCheck({ ...base, replay: new ProseReplay(Int32Array.from([7, 8, 9]), 1, 0, "three tokens") });
    expect(r.failures.map((f) => f.check)).toEqual(["replay"]);
    expect(r.failures[0]!.message).toMatch(/three tokens\) has 3 tokens, fewer than one window/);
  });
});
