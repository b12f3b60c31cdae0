// Mask view: a conversation token by token, marked by whether each token is a SUPERVISED TARGET,
// i.e. what the model is trained to predict at the position before it.
//   bun scripts/inspect.ts --data data/sft/instructions.json --index 3 --tokenizer models/tokenizer-4096
//
// The marks come from the collated, target-aligned mask (`mask_t[t]` weights `targets[t] =
// ids[t+1]`), drawn on the target token. Viewers that colour *input* positions with that mask show
// the `\n` after `<|assistant|>` as trained and `<|end|>` as not, which hides an off-by-one
// instead of exposing it; `inputMarks` reproduces that view for comparison.

import { type TextTokenizer } from "../tokenizer/types.ts";
import { collateArrays, iterateBatches, type CollatedArrays, type CollateOptions } from "./batch.ts";
import { mixRows, type ProseReplay } from "./replay.ts";
import type { CollateFn, TemplateLike } from "./selfcheck.ts";
import { ChatTemplate, type MaskMode } from "../format/template.ts";
import type { Conversation, SFTExample } from "../format/types.ts";
import { ChatFormat } from "../format/chat-format.ts";

/** Per id position: true/false = supervised or not, null = this position has no mark (ids[0] is
 * never a target; in the input view the last id is never an input). */
export type Marks = (boolean | null)[];

export interface ViewOptions {
  color?: boolean; // ANSI colours (a terminal) instead of [brackets] (files, pipes, tests)
  showIds?: boolean; // one token per line with its position and id
}

const ANSI = {
  reset: "\x1b[0m",
  dim: "\x1b[2m",
  special: "\x1b[1;35m", // bold magenta: markers stay visible on any background
  supervised: ["\x1b[30;42m", "\x1b[30;102m"], // black on green / bright green, alternating per token
};

/**
 * The classic off-by-one, for demonstration: a collate that weights `targets[t]` by
 * `example.mask[t]` (the mask aligned to the inputs) instead of `example.mask[t + 1]`. Under it
 * the first answer token is never trained and the token after each `<|end|>` is.
 */
export function inputAlignedCollate(examples: SFTExample[], opts: CollateOptions): CollatedArrays {
  const c = collateArrays(examples, opts);
  const mask = examples.map((ex, r) => c.mask[r]!.map((_, t) => (t < ex.ids.length - 1 ? ex.mask[t]! : 0)));
  return { ...c, mask, ntoks: mask.flat().reduce((a, b) => a + b, 0) };
}

/** The target-aligned mask of one example after collate (`collateArrays` unless given), drawn on
 * target tokens: `marks[j]` says whether `ids[j]` is trained, as the target at position j-1. */
export function targetMarks(example: SFTExample, padId: number, collate: CollateFn = collateArrays): Marks {
  const row = collate([example], { maxSeqLen: example.ids.length - 1, padId }).mask[0]!;
  return example.ids.map((_, j) => (j === 0 ? null : row[j - 1] === 1));
}

/** How input-position viewers draw the same mask: `marks[j] = mask_t[j]` on input token j. */
export function inputMarks(example: SFTExample, padId: number, collate: CollateFn = collateArrays): Marks {
  const row = collate([example], { maxSeqLen: example.ids.length - 1, padId }).mask[0]!;
  return example.ids.map((_, j) => (j < row.length ? row[j] === 1 : null));
}

/** How a token reads in the view: newlines as ⏎, tabs as ⇥, special tokens as their strings. */
export function tokenText(tokenizer: TextTokenizer, id: number): string {
  return tokenizer.decode([id]).replace(/\n/g, "⏎").replace(/\t/g, "⇥");
}

/**
 * Render `ids` with `marks`. Inline form: the text with each ⏎ followed by a line break; plain
 * supervised runs wrapped in `[` `]`, coloured ones on a green background. With `showIds`: a
 * table of position, id, mark (✓ supervised, · not, - no mark) and the token as a JSON string
 * (so leading spaces and newlines show).
 */
export function formatMaskView(tokenizer: TextTokenizer, ids: number[], marks: Marks, { color = false, showIds = false }: ViewOptions = {}): string {
  if (marks.length !== ids.length) throw new Error(`${marks.length} marks for ${ids.length} ids: they must be aligned`);
  const texts = ids.map((id) => tokenText(tokenizer, id));
  const special = ids.map((id) => tokenizer.specialIds.has(id));
  const paint = (j: number, s: string) => {
    if (!color) return s;
    const bg = marks[j] ? ANSI.supervised[j % 2]! : ANSI.dim;
    return `${bg}${special[j] ? ANSI.special : ""}${s}${ANSI.reset}`;
  };
  if (showIds) {
    const width = String(Math.max(...ids, 0)).length;
    return ids.map((id, j) => {
      const mark = marks[j] === null ? "-" : marks[j] ? "✓" : "·";
      return `${String(j).padStart(4)}  ${String(id).padStart(width)}  ${mark}  ${paint(j, JSON.stringify(tokenizer.decode([id])))}`;
    }).join("\n");
  }
  const lines: number[][] = [[]]; // token positions per displayed line; a line ends after a ⏎
  ids.forEach((_, j) => {
    lines[lines.length - 1]!.push(j);
    if (texts[j]!.endsWith("⏎")) lines.push([]);
  });
  return lines.filter((line) => line.length > 0).map((line) => {
    if (color) return line.map((j) => paint(j, texts[j]!)).join("");
    let out = "";
    let open = false; // inside a [supervised] run; runs are closed at each line end
    for (const j of line) {
      if (!!marks[j] !== open) out += (open = !open) ? "[" : "]";
      out += texts[j];
    }
    return open ? `${out}]` : out;
  }).join("\n");
}

/** A legend for the view, saying what a mark means. */
export function maskLegend({ color = false, showIds = false }: ViewOptions = {}): string {
  const sample = showIds ? "✓" : color ? `${ANSI.supervised[0]}green${ANSI.reset}` : "[bracketed]";
  return `${sample} tokens are supervised targets: the model is trained to predict them from the tokens before them`;
}

/** Positions where two mark rows disagree, with the token and which row marks it. */
export function diffMarks(tokenizer: TextTokenizer, ids: number[], a: Marks, b: Marks): { pos: number; token: string; a: boolean; b: boolean }[] {
  return ids.flatMap((id, pos) => (!!a[pos] === !!b[pos] ? [] : [{ pos, token: tokenText(tokenizer, id), a: !!a[pos], b: !!b[pos] }]));
}


export interface ConversationViewOptions extends ViewOptions {
  template?: TemplateLike; // default: new ChatTemplate()
  maskMode?: MaskMode;
  shiftBug?: boolean; // also show the input-aligned mask (the classic off-by-one) and where it differs
  inputView?: boolean; // also show the correct mask drawn on input positions, as other viewers do
}

/** The full mask view of one conversation: a header, the target view, a legend, and on request
 * the broken variants with the positions where they differ. */
export function viewConversation(tokenizer: TextTokenizer, conv: Conversation, label: string, opts: ConversationViewOptions = {}): string {
  const { template = new ChatTemplate(), maskMode = "assistant", ...view } = opts;
  const ex = template.renderWithMask(conv, tokenizer, { maskMode });
  const pad = ChatFormat.of(tokenizer).pad; // as the trainer collates
  const correct = targetMarks(ex, pad);
  const turns = conv.filter((m) => m.role === "assistant").length;
  const out = [
    `${label}: ${turns} assistant turn(s), ${ex.ids.length} ids, ${correct.filter(Boolean).length} supervised targets of ${ex.ids.length - 1}`,
    maskLegend(view),
    "",
    formatMaskView(tokenizer, ex.ids, correct, view),
  ];
  const variant = (title: string, marks: Marks, differs: string) => {
    const diff = diffMarks(tokenizer, ex.ids, correct, marks);
    out.push("", title, "", formatMaskView(tokenizer, ex.ids, marks, view), "");
    out.push(`${diff.length} position(s) differ from the correct view (${differs}): ` +
      diff.map((d) => `${JSON.stringify(d.token)} @${d.pos} ${d.a ? "trained only in the correct view" : "trained only here"}`).join("; "));
  };
  if (opts.shiftBug) {
    variant(
      "--shift-bug: the same row with the mask aligned to the inputs (weight of targets[t] = example.mask[t], not example.mask[t+1])",
      targetMarks(ex, pad, inputAlignedCollate),
      "the first answer token is never trained; the token after each <|end|> is",
    );
  }
  if (opts.inputView) {
    variant(
      "--input-view: the correct mask drawn on input positions, as viewers that colour inputs show it",
      inputMarks(ex, pad),
      "this drawing makes the \\n after <|assistant|> look trained and <|end|> look untrained",
    );
  }
  return out.join("\n");
}

export interface BatchViewOptions extends ViewOptions {
  batchSize: number;
  seed: number;
  maxSeqLen: number;
  padMultiple?: number;
  maskMode?: MaskMode;
  replay?: ProseReplay | null; // the run's replay: its windows follow the conversations, as in training
}

/** Training batch `index` (from 0) as the trainer draws it: its conversations in the seeded,
 * length-grouped order, then its replay windows cut to their padded length; every row drawn with
 * its target marks, replay rows marked on every token after the first. */
export function viewTrainingBatch(tokenizer: TextTokenizer, convs: Conversation[], index: number, opts: BatchViewOptions): string {
  const { batchSize, seed, maxSeqLen, padMultiple = 1, maskMode = "assistant", replay = null, ...view } = opts;
  const template = new ChatTemplate();
  const examples = convs.map((c) => template.renderWithMask(c, tokenizer, { maskMode }));
  const batches = iterateBatches(examples, { batchSize, seed, groupByLength: true });
  let drawn = batches.next().value!;
  for (let i = 0; i < index; i++) drawn = batches.next().value!;
  const { examples: rows, starts } = mixRows(drawn.examples, replay, index, { maxSeqLen, padMultiple });
  const pad = ChatFormat.of(tokenizer).pad;
  const c = collateArrays(rows, { maxSeqLen, padId: pad, padMultiple });
  const T = c.inputs[0]!.length;
  const out = [`batch ${index} (epoch ${drawn.epoch}): ${drawn.indices.length} conversations + ${starts.length} replay windows, ${rows.length} rows × ${T} positions, ` +
    `${c.ntoks} supervised targets (${(100 * c.paddingFraction).toFixed(0)}% padding)`, maskLegend(view)];
  rows.forEach((ex, r) => {
    const label = r < drawn.indices.length ? `conversation ${drawn.indices[r]}` : `replay window at token ${starts[r - drawn.indices.length]} of ${replay!.source}`;
    const marks = targetMarks(ex, pad);
    out.push("", `── row ${r}: ${label}, ${ex.ids.length - 1} targets, ${marks.filter(Boolean).length} supervised`, formatMaskView(tokenizer, ex.ids, marks, view));
  });
  return out.join("\n");
}

/** The citty flags that draw a mask view (scripts/inspect.ts, scripts/data-check.ts). */
export const VIEW_ARGS = {
  ids: { type: "boolean", default: false, description: "one token per line with position and id" },
  plain: { type: "boolean", default: false, description: "[brackets] instead of colour (automatic when stdout is not a terminal)" },
  "shift-bug": { type: "boolean", default: false, description: "also show the row under the classic input-aligned (off-by-one) mask" },
  "input-view": { type: "boolean", default: false, description: "also show the correct mask drawn on input positions" },
} as const;

/** View options from parsed VIEW_ARGS: colour only on a terminal and without --plain. */
export function viewOptionsFromArgs(args: { ids: boolean; plain: boolean; "shift-bug": boolean; "input-view": boolean }): ConversationViewOptions {
  return { color: !args.plain && process.stdout.isTTY === true, showIds: args.ids, shiftBug: args["shift-bug"], inputView: args["input-view"] };
}
