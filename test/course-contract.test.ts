// The course's contract (g2c tests/test_sft.py and the docstrings of g2c/sft/*.py), checked against
// this project: each test quotes the course's statement it pins. Where the project deliberately
// differs (one id per marker, refusing over-long rows by default, an lr schedule counted in
// updates), the test pins the mapping the README's "Following the course" section states.
//   bun test test/course-contract.test.ts
import { describe, expect, test } from "bun:test";
import { collateArrays } from "../lib/data/batch.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import type { Message, SFTExample } from "../lib/format/types.ts";
import { learningRate } from "../lib/train/schedule.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tok = tinyTokenizer();
const u = (content: string): Message => ({ role: "user", content });
const a = (content: string): Message => ({ role: "assistant", content });

describe("ChatTemplate", () => {
  test("'The role markers are class-level constants accessible without instantiation'", () => {
    expect(ChatTemplate.USER).toBe("<|user|>");
    expect(ChatTemplate.ASSISTANT).toBe("<|assistant|>");
    expect(ChatTemplate.END).toBe("<|end|>");
  });

  test("'Construction is parameter-free' and the instance carries the same markers", () => {
    const t = new ChatTemplate();
    expect([t.USER, t.ASSISTANT, t.END]).toEqual([ChatTemplate.USER, ChatTemplate.ASSISTANT, ChatTemplate.END]);
  });

  test.each([
    ["single pair", [u("Hi"), a("Hello")], "<|user|>\nHi\n<|assistant|>\nHello<|end|>"],
    ["user only ends with newline", [u("Hi")], "<|user|>\nHi\n"],
    ["multi turn", [u("A"), a("B"), u("C"), a("D")], "<|user|>\nA\n<|assistant|>\nB<|end|><|user|>\nC\n<|assistant|>\nD<|end|>"],
  ])("render: %s, byte for byte", (_name, messages, expected) => {
    expect(new ChatTemplate().render(messages)).toBe(expected);
  });

  test("'An empty message list is a programming error — raises rather than silently returning empty string'", () => {
    const t = new ChatTemplate();
    expect(() => t.render([])).toThrow(/no messages to render/);
    expect(() => t.renderWithMask([], tok)).toThrow(/no messages to render/);
  });

  test("'An unknown role is a programming error'", () => {
    expect(() => new ChatTemplate().render([{ role: "system" as Message["role"], content: "..." }])).toThrow(/role `system`/);
  });

  test("render_with_mask: same length, decodes to render(), user and <|assistant|>\\n get 0, content and <|end|> get 1", () => {
    const t = new ChatTemplate();
    const messages = [u("A"), a("B"), u("C"), a("D")];
    const ex = t.renderWithMask(messages, tok);
    expect(ex.ids.length).toBe(ex.mask.length);
    expect(tok.decode(ex.ids)).toBe(t.render(messages));
    // one id per marker here, so "every byte of <|end|>" is its one id
    const supervised = ex.ids.filter((_, i) => ex.mask[i] === 1);
    expect(supervised).toEqual([...tok.encode("B"), tok.tokenId("<|end|>"), ...tok.encode("D"), tok.tokenId("<|end|>")]);
  });
});

describe("pad_and_collate's fixed length (fixedLength + truncate)", () => {
  // The course's max_seq_len counts ids before the shift; maxSeqLen here counts targets after it.
  const course = (examples: SFTExample[], { max_seq_len, pad_id }: { max_seq_len: number; pad_id: number }) =>
    collateArrays(examples, { maxSeqLen: max_seq_len - 1, padId: pad_id, fixedLength: true, truncate: true });

  test("'Output shape is (B, max_seq_len - 1) for all three tensors'", () => {
    const c = course([{ ids: [1, 2, 3, 4, 5], mask: [0, 0, 1, 1, 1] }, { ids: [6, 7, 8], mask: [0, 1, 1] }], { max_seq_len: 5, pad_id: 0 });
    for (const m of [c.inputs, c.targets, c.mask]) expect([m.length, m[0]!.length, m[1]!.length]).toEqual([2, 4, 4]);
  });

  test("'y[b, t] should equal ids[b, t+1]'; 'loss_mask is the INPUT mask shifted by one'", () => {
    const c = course([{ ids: [10, 11, 12, 13, 14], mask: [0, 0, 1, 1, 1] }], { max_seq_len: 5, pad_id: 0 });
    expect(c.inputs[0]).toEqual([10, 11, 12, 13]);
    expect(c.targets[0]).toEqual([11, 12, 13, 14]);
    expect(c.mask[0]).toEqual([0, 1, 1, 1]);
  });

  test("'Short examples are padded with pad_id; padded mask positions are 0'", () => {
    const c = course([{ ids: [10, 11, 12], mask: [0, 1, 1] }], { max_seq_len: 5, pad_id: 99 });
    expect(c.targets[0]).toEqual([11, 12, 99, 99]);
    expect(c.mask[0]).toEqual([1, 1, 0, 0]);
    // the course pads before it shifts: the last real id is an input whose target is padding
    expect(c.inputs[0]).toEqual([10, 11, 12, 99]);
    const six = course([{ ids: [1, 2, 3], mask: [0, 1, 1] }], { max_seq_len: 6, pad_id: 0 });
    expect(six.mask[0]!.slice(2)).toEqual([0, 0, 0]);
  });

  test("'Examples longer than max_seq_len are truncated (head-truncation — keep the start, drop the tail)'", () => {
    const ids = Array.from({ length: 20 }, (_, i) => i);
    const c = course([{ ids, mask: [...Array(5).fill(0), ...Array(15).fill(1)] }], { max_seq_len: 6, pad_id: 0 });
    expect(c.inputs[0]).toEqual([0, 1, 2, 3, 4]);
    expect(c.targets[0]).toEqual([1, 2, 3, 4, 5]);
    expect(c.mask[0]).toEqual([0, 0, 0, 0, 1]);
  });

  test("'Mixed-length examples in one batch all get padded to max_seq_len'", () => {
    const c = course([{ ids: [1, 2, 3], mask: [0, 1, 1] }, { ids: [4, 5, 6, 7, 8], mask: [0, 0, 1, 1, 1] }], { max_seq_len: 5, pad_id: 0 });
    expect(c.inputs[1]).toEqual([4, 5, 6, 7]);
    expect(c.inputs[0]!.length).toBe(4);
  });

  test("the project's default stays: pad to the batch's longest row, refuse an over-long one", () => {
    const short = collateArrays([{ ids: [1, 2, 3], mask: [0, 1, 1] }], { maxSeqLen: 8, padId: 0 });
    expect(short.inputs[0]).toEqual([1, 2]);
    expect(() => collateArrays([{ ids: Array(12).fill(1), mask: Array(12).fill(1) }], { maxSeqLen: 8, padId: 0 })).toThrow(/more than max-seq-len 8/);
  });
});

describe("the lr schedule: the course's cosine_with_warmup(step) counts from 0", () => {
  // The course's recipe, as its docstring states it (g2c/training/schedule.py).
  const courseLr = (step: number, { warmup_steps, max_steps, max_lr, min_lr }: { warmup_steps: number; max_steps: number; max_lr: number; min_lr: number }) => {
    if (warmup_steps > 0 && step < warmup_steps) return (max_lr * (step + 1)) / warmup_steps;
    if (step >= max_steps) return min_lr;
    return min_lr + 0.5 * (1 + Math.cos((Math.PI * (step - warmup_steps)) / (max_steps - warmup_steps))) * (max_lr - min_lr);
  };
  const course = { warmup_steps: 10, max_steps: 110, max_lr: 1e-3, min_lr: 0 };
  const ours = { lr: 1e-3, warmup: 10, steps: 110, minLrRatio: 0 }; // min_lr = minLrRatio * lr

  test("the course's sanity values", () => {
    expect([0, 9, 10, 60, 110, 999].map((s) => +courseLr(s, course).toExponential(6))).toEqual([1e-4, 1e-3, 1e-3, 5e-4, 0, 0]);
  });

  test("every update: the k-th (1-based) has the course's lr(k - 1); the peak holds for two updates", () => {
    for (let k = 1; k <= 110; k++) expect(learningRate(ours, k)).toBeCloseTo(courseLr(k - 1, course), 12);
    expect([learningRate(ours, 10), learningRate(ours, 11)]).toEqual([1e-3, 1e-3]);
    expect(learningRate(ours, 110)).toBeGreaterThan(0); // the course's last update is one short of min_lr
  });

  test("the issue's case: warmup 10, 100 steps, max 1e-3, 0-based step 50 (update 51) at 5.868e-4", () => {
    const cfg = { lr: 1e-3, warmup: 10, steps: 100, minLrRatio: 0 };
    expect(+learningRate(cfg, 51).toExponential(3)).toBe(5.868e-4);
    expect(+courseLr(50, { warmup_steps: 10, max_steps: 100, max_lr: 1e-3, min_lr: 0 }).toExponential(3)).toBe(5.868e-4);
    expect(courseLr(109, course)).toBeGreaterThan(0); // the course's 110th update
  });
});
