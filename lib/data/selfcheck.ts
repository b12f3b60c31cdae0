// Pre-flight self-check: before any compute is spent, check on the actual tokenizer and data that
// the training format, the loss mask and the inference prompt agree.
//   bun scripts/selfcheck.ts --tokenizer models/tokenizer-4096
//
// Every check reads what the template and collate actually produced (ids, mask, collated rows)
// and compares it with the layout `<|user|>\n{user}\n<|assistant|>\n{assistant}<|end|>`, so a
// broken template, tokenizer or collate passed in is caught, not trusted. Failures name the
// conversation (counted from 0), what is wrong, and the fix. Train and sweep runs call
// `assertSelfCheck` first; a pass is one summary line.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../util/cli.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { type TextTokenizer } from "../tokenizer/types.ts";
import { SPECIAL_TOKENS } from "../format/tokens.ts";
import { collateArrays, overLengthFix, type CollatedArrays, type CollateOptions } from "./batch.ts";
import { mixRows, type ProseReplay } from "./replay.ts";
import { ChatTemplate, type MaskMode } from "../format/template.ts";
import type { Conversation, Message, SFTExample } from "../format/types.ts";

/** What the self-check needs from a template (a `ChatTemplate`, or a deliberately broken variant). */
export interface TemplateLike {
  renderWithMask(messages: Message[], tokenizer: TextTokenizer, opts?: { maskMode?: MaskMode }): SFTExample;
  renderPromptIds(messages: Message[], tokenizer: TextTokenizer): number[];
}

export type CollateFn = (examples: SFTExample[], opts: CollateOptions) => CollatedArrays;

export interface SelfCheckOptions {
  tokenizer: TextTokenizer;
  conversations: Conversation[];
  template?: TemplateLike; // default: new ChatTemplate()
  maxSeqLen: number; // targets per row after the shift, as the trainer uses it
  context?: number; // the model's context, the most --max-seq-len can be (named in the length fix)
  maskMode?: MaskMode; // default "assistant"
  /** The chat script's prompt builder; default: `template.renderPromptIds`. */
  renderChatPrompt?: (history: Message[], tokenizer: TextTokenizer) => number[];
  collate?: CollateFn; // default: collateArrays from lib/data/batch.ts
  replay?: ProseReplay | null; // pretraining replay: its windows are collated into the batches as the trainer mixes them
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SelfCheckFailure {
  conversation?: number; // 0-based index into `conversations`; absent for tokenizer-wide checks
  check: string;
  message: string; // what is wrong, where, and the fix
}

export interface SelfCheckResult {
  ok: boolean;
  checks: CheckResult[];
  failures: SelfCheckFailure[];
  summary: string; // one line
  stats: { conversations: number; assistantTurns: number; supervised: number; longest: number; ms: number };
}

const COLLATE_BATCH = 8; // rows per collated batch: rows of different lengths, so padding is exercised
const MAX_LISTED = 12; // failures spelled out in a SelfCheckError; the rest are counted

/** The checks, in the order they are reported, with the fix each failure points to. */
const CHECKS = {
  markers: "use a tokenizer whose chat tokens are special added tokens (scripts/train-tokenizer.ts, or `tokenizer.withAddedTokens(CHAT_TOKENS)`)",
  "message-text": "tokenizer.encode must encode special-token strings in text as plain characters (lib/tokenizer/tokenizer.ts)",
  render: "fix the conversation or the template so `renderWithMask` succeeds",
  "special-ids": "marker ids must come only from `tokenizer.tokenId`, message text only from `tokenizer.encode`, and every assistant turn must end with `<|end|>` (lib/format/template.ts)",
  "prompt-prefix": "the generation prompt must be the training render up to the first answer token, ending with `<|assistant|>\\n` (ChatTemplate.renderPromptIds)",
  "chat-prompt": "build the chat prompt with ChatTemplate.renderPromptIds so inference sees exactly the ids training saw",
  mask: "mask 1 exactly on assistant content and its `<|end|>`, 0 on markers, user text and `\\n` (lib/format/template.ts)",
  collate: "shift the mask with the ids, `mask[t] = example.mask[t + 1]`, and give padding mask 0 by position (lib/data/batch.ts collateArrays)",
  supervised: "a row with nothing to learn: give the conversation an assistant reply, or drop it",
  length: "a longer --max-seq-len (never above the model's context), --drop-overlength, or a shorter conversation (each row's own fix: overLengthFix)",
  replay: "a replay window is plain text trained on every token: mask 1 on every id after the first, shifted and padded like any row (lib/data/replay.ts proseExample, mixRows)",
} as const;
type CheckName = keyof typeof CHECKS;

/** Run every check; never throws on bad input (a thrown render becomes a failure). */
export function selfCheck(opts: SelfCheckOptions): SelfCheckResult {
  const t0 = performance.now();
  const { tokenizer: tok, conversations, maxSeqLen, context, maskMode = "assistant", collate = collateArrays } = opts;
  const template = opts.template ?? new ChatTemplate();
  const failures: SelfCheckFailure[] = [];
  const fail = (check: CheckName, conversation: number | undefined, message: string, fix: string = CHECKS[check]) =>
    failures.push({ conversation, check, message: `${message}. Fix: ${fix}` });
  const show = (ids: number[]) => showIds(tok, ids);

  const markers = checkMarkers(tok, (m) => fail("markers", undefined, m));
  const stats = { conversations: conversations.length, assistantTurns: 0, supervised: 0, longest: 0, ms: 0 };
  if (!markers) return finish(failures, stats, {}, t0);
  const { user: U, assistant: A, end: E, pad: padId } = markers;
  const nl = tok.encode("\n");

  const examples: { index: number; ex: SFTExample }[] = [];
  let minSupervised = Infinity;
  conversations.forEach((conv, i) => {
    conv.forEach((m, j) => {
      const leaked = tok.encode(m.content).filter((id) => tok.specialIds.has(id));
      if (leaked.length > 0) fail("message-text", i, `message ${j} (${m.role}) encodes to special id(s) ${show(leaked)}`);
    });

    let ex: SFTExample;
    try {
      ex = template.renderWithMask(conv, tok, { maskMode });
    } catch (e) {
      return fail("render", i, `renderWithMask threw: ${(e as Error).message}`);
    }
    const { ids, mask } = ex;
    if (ids.length !== mask.length) return fail("render", i, `${ids.length} ids but ${mask.length} mask values`);
    stats.longest = Math.max(stats.longest, ids.length);
    const nSupervised = mask.slice(1).reduce((a, b) => a + b, 0); // ids[0] is never a target
    stats.supervised += nSupervised;
    minSupervised = Math.min(minSupervised, nSupervised);
    if (nSupervised === 0) fail("supervised", i, `no supervised target in ${ids.length} ids`);
    if (ids.length - 1 > maxSeqLen) {
      fail("length", i, `${ids.length} ids (${ids.length - 1} targets after the shift), more than max-seq-len ${maxSeqLen}`, overLengthFix(ids.length - 1, context));
    } else if (ids.length >= 2) {
      examples.push({ index: i, ex });
    }

    // Where the markers are: the template's specials, in order, and nothing else special.
    const expected = conv.flatMap((m, j) => (m.role === "user" ? [{ id: U, j }] : [{ id: A, j }, { id: E, j }]));
    const { at, extras } = matchMarkers(ids, expected.map((x) => x.id), tok.specialIds, E);
    for (const p of extras) {
      const k = expected.findLastIndex((_, q) => at[q]! >= 0 && at[q]! < p); // the last marker before it
      const where = k < 0 ? "before the first marker" : `inside message ${expected[k]!.j} (${conv[expected[k]!.j]!.role})`;
      fail("special-ids", i, `special id ${show([ids[p]!])} at position ${p}, ${where}, that no marker accounts for: message text became a special id`);
    }
    expected.forEach((x, q) => {
      if (at[q]! >= 0) return;
      const what = x.id === E ? `assistant message ${x.j} is not closed by ${show([E])}` : `message ${x.j} (${conv[x.j]!.role}) has no ${show([x.id])} marker`;
      fail("special-ids", i, what);
    });
    if (extras.length > 0 || at.some((p) => p < 0)) return; // spans cannot be located reliably

    // Assistant spans: content starts after `<|assistant|>\n` and runs to its `<|end|>` inclusive.
    const spans: Span[] = [];
    expected.forEach((x, q) => {
      if (x.id !== A) return;
      const a = at[q]!;
      const start = a + 1 + nl.length;
      if (!same(ids.slice(a + 1, start), nl)) fail("special-ids", i, `${show([A])} at position ${a} is followed by ${show(ids.slice(a + 1, start))}, not ${show(nl)}`);
      spans.push({ j: x.j, header: a, start, end: at[q + 1]! });
    });
    stats.assistantTurns += spans.length;

    for (const { j, start } of spans) {
      const history = conv.slice(0, j);
      const trainer = ids.slice(0, start);
      const prompt = attempt(() => template.renderPromptIds(history, tok));
      const promptProblem = typeof prompt === "string" ? `threw: ${prompt}` : diffIds(tok, prompt, trainer);
      if (promptProblem) fail("prompt-prefix", i, `generation prompt for message ${j}: ${promptProblem}`);
      if (opts.renderChatPrompt) {
        const chat = attempt(() => opts.renderChatPrompt!(history, tok));
        const chatProblem = typeof chat === "string" ? `threw: ${chat}` : diffIds(tok, chat, trainer);
        if (chatProblem) fail("chat-prompt", i, `chat prompt for message ${j}: ${chatProblem}`);
      }
    }
    checkMask(ids, mask, spans, maskMode, (m) => fail("mask", i, m), show);
  });

  // Collate as the trainer does (replay windows after the conversations, cut to their padded
  // length), and check the shift and the padding row by row.
  let windows = 0;
  for (let b = 0; b < examples.length; b += COLLATE_BATCH) {
    const batch = examples.slice(b, b + COLLATE_BATCH);
    const mixed = attempt(() => mixRows(batch.map((x) => x.ex), opts.replay ?? null, b / COLLATE_BATCH, { maxSeqLen }));
    if (typeof mixed === "string") {
      fail("replay", undefined, `drawing replay windows for conversations ${batch.map((x) => x.index).join(", ")} threw: ${mixed}`);
      continue;
    }
    const c = attempt(() => collate(mixed.examples, { maxSeqLen, padId }));
    if (typeof c === "string") {
      fail("collate", batch[0]!.index, `collating conversations ${batch.map((x) => x.index).join(", ")}${mixed.starts.length ? " with replay windows" : ""} threw: ${c}`);
      continue;
    }
    batch.forEach(({ index, ex }, r) => {
      const problem = checkRow(ex, c.inputs[r], c.targets[r], c.mask[r], maxSeqLen, show);
      if (problem) fail("collate", index, problem);
    });
    mixed.starts.forEach((start, k) => {
      const ex = mixed.examples[batch.length + k]!;
      const r = batch.length + k;
      const unsupervised = ex.mask.findIndex((v, t) => v !== (t === 0 ? 0 : 1));
      const problem = unsupervised >= 0
        ? `mask ${ex.mask[unsupervised]} at position ${unsupervised}: ${unsupervised === 0 ? "the first id is never a target" : "every later id is a target"}`
        : c.inputs[r]!.length !== ex.ids.length - 1 ? `${ex.ids.length - 1} targets in a batch of length ${c.inputs[r]!.length}: the window should fill the conversations' length exactly`
        : checkRow(ex, c.inputs[r], c.targets[r], c.mask[r], maxSeqLen, show);
      if (problem) fail("replay", undefined, `replay window at token ${start} (batch with conversations ${batch[0]!.index}..${batch.at(-1)!.index}): ${problem}`);
      windows++;
    });
  }
  const messages = conversations.reduce((n, c) => n + c.length, 0);
  const passed: Partial<Record<CheckName, string>> = {
    markers: `${show([U])}, ${show([A])}, ${show([E])}, ${show([padId])}: one special id each, never produced by encode`,
    "message-text": `${messages} messages encode to ordinary ids only`,
    render: `${conversations.length} conversations rendered`,
    "special-ids": "special ids are exactly the markers, in order",
    "prompt-prefix": `${stats.assistantTurns} generation prompts end exactly where their answer starts`,
    "chat-prompt": opts.renderChatPrompt ? `${stats.assistantTurns} chat prompts equal the trainer's` : "no chat prompt builder given: the template's prompt (prompt-prefix) is the chat prompt",
    mask: maskMode === "all" ? "every token supervised (maskMode all)" : "exactly answers and their <|end|> supervised",
    collate: `${examples.length} rows in batches of ${COLLATE_BATCH}: mask[t] = example.mask[t+1], padding unsupervised`,
    supervised: `at least ${minSupervised === Infinity ? 0 : minSupervised} supervised targets per row`,
    length: `longest row ${stats.longest} ids = ${stats.longest - 1} targets <= max-seq-len ${maxSeqLen}`,
    replay: opts.replay ? `${windows} replay windows mixed into the batches: every target supervised, as long as the conversations' rows` : "no replay (--mix-prose 0)",
  };
  return finish(failures, stats, passed, t0, maxSeqLen);
}

/** `selfCheck`, throwing a SelfCheckError that lists the failures when any check fails. */
export function assertSelfCheck(opts: SelfCheckOptions): SelfCheckResult {
  const result = selfCheck(opts);
  if (!result.ok) throw new SelfCheckError(result);
  return result;
}

/** The self-check failed: `failures` hold the conversation index, what is wrong and the fix. */
export class SelfCheckError extends Error {
  override readonly name = "SelfCheckError";
  readonly failures: SelfCheckFailure[];
  constructor(result: SelfCheckResult) {
    const lines = result.failures.slice(0, MAX_LISTED).map(formatFailure);
    const more = result.failures.length - lines.length;
    super([result.summary, ...lines.map((l) => `  ${l}`), ...(more > 0 ? [`  ... and ${more} more`] : []),
      "Training on this would not learn what the template promises: fix these before spending compute."].join("\n"));
    this.failures = result.failures;
  }
}

/** One failure as a line: `conversation 4 [mask]: ...`. */
export function formatFailure(f: SelfCheckFailure): string {
  const where = f.conversation !== undefined ? `conversation ${f.conversation}` : f.check === "replay" ? "replay" : "tokenizer";
  return `${where} [${f.check}]: ${f.message}`;
}

export const DEFAULT_MAX_SEQ_LEN = 256; // the bundled base model's context, when the base has no config.json

/** The citty arguments the inspection scripts share (selfcheck, inspect, data-check). */
export const TOKENIZER_ARGS = {
  base: { type: "string", description: "checkpoint directory whose tokenizer.json (and context) to use (default: models/gutenberg-base)" },
  tokenizer: { type: "string", description: "tokenizer.json or its directory, instead of --base (e.g. models/tokenizer-4096)" },
  "max-seq-len": { type: "string", description: `targets per row (default: the base's context, else ${DEFAULT_MAX_SEQ_LEN})` },
} as const;

/** Load the tokenizer the scripts check with: `--tokenizer` (a file or directory) wins over `--base`;
 * the default base must exist. `maxSeqLen` is the base's context when it has a config.json. */
export async function loadCheckTokenizer(tokenizerPath: string | undefined, base: string): Promise<{ tokenizer: TextTokenizer; source: string; context?: number }> {
  const load = (path: string, flag: string) =>
    Tokenizer.load(path).catch((e: Error) => {
      throw new UsageError(`${flag} ${path}: ${e.message}`);
    });
  if (tokenizerPath) return { tokenizer: await load(tokenizerPath, "--tokenizer"), source: tokenizerPath };
  if (!existsSync(base)) {
    throw new UsageError(
      `no base model at \`${base}\` (models/gutenberg-base is committed when pretraining finishes): ` +
        "pass --tokenizer models/tokenizer-4096, or --base <checkpoint dir> (e.g. a copy of runs/*-pretrain-gutenberg-base/checkpoints/step-*)",
    );
  }
  const configPath = join(base, "config.json");
  const context = existsSync(configPath) ? ((await Bun.file(configPath).json()) as { max_position_embeddings?: number }).max_position_embeddings : undefined;
  return { tokenizer: await load(base, "--base"), source: base, context };
}

/** Marker ids, or null after reporting why the tokenizer cannot carry the template. */
function checkMarkers(tok: TextTokenizer, fail: (message: string) => void) {
  const names = { user: SPECIAL_TOKENS.user, assistant: SPECIAL_TOKENS.assistant, end: SPECIAL_TOKENS.end, pad: SPECIAL_TOKENS.pad };
  const ids: Partial<Record<keyof typeof names, number>> = {};
  for (const [key, marker] of Object.entries(names) as [keyof typeof names, string][]) {
    if (!tok.hasToken(marker)) {
      fail(`\`${marker}\` is not a special token of this tokenizer`);
      continue;
    }
    const id = tok.tokenId(marker);
    if (!tok.specialIds.has(id)) fail(`\`${marker}\` maps to id ${id}, which is not in specialIds`);
    const asText = tok.encode(marker);
    if (asText.length === 1 && asText[0] === id) fail(`encode("${marker}") gives the special id ${id}: marker strings in message text would inject it`);
    else if (asText.some((t) => tok.specialIds.has(t))) fail(`encode("${marker}") gives special ids ${JSON.stringify(asText)}: text must encode to ordinary ids`);
    ids[key] = id;
  }
  const seen = Object.values(ids);
  if (new Set(seen).size !== seen.length) fail(`two chat tokens share an id: ${JSON.stringify(ids)}`);
  const { user, assistant, end, pad } = ids;
  if (user === undefined || assistant === undefined || end === undefined || pad === undefined) return null;
  return { user, assistant, end, pad };
}

/** One assistant turn in the ids: `<|assistant|>` at `header`, answer from `start` to its `<|end|>` at `end`. */
interface Span {
  j: number; // message index
  header: number;
  start: number;
  end: number;
}

/** Greedy in-order match of the expected marker ids against the special ids in `ids`. `at[q]` is
 * the position of expected marker q (-1 if missing); `extras` are special positions left over.
 * `<|end|>` closes text, so a run of them matches its last one (an `<|end|>` inside the answer is
 * the extra); opening markers match their first. */
function matchMarkers(ids: number[], expected: number[], specials: ReadonlySet<number>, endId: number): { at: number[]; extras: number[] } {
  const positions = ids.flatMap((id, p) => (specials.has(id) ? [p] : []));
  const used = new Set<number>();
  const at: number[] = [];
  let from = 0;
  for (const id of expected) {
    let k = from;
    while (k < positions.length && ids[positions[k]!] !== id) k++;
    if (k === positions.length) {
      at.push(-1); // missing: leave `from` so later markers still match
      continue;
    }
    if (id === endId) while (k + 1 < positions.length && ids[positions[k + 1]!] === id) k++;
    at.push(positions[k]!);
    used.add(positions[k]!);
    from = k + 1;
  }
  return { at, extras: positions.filter((p) => !used.has(p)) };
}

/** Assistant mode: 1 exactly on [start, end] of each span. All mode: 1 everywhere. One message
 * per kind of problem, at its first position. */
function checkMask(ids: number[], mask: number[], spans: Span[], maskMode: MaskMode, fail: (m: string) => void, show: (ids: number[]) => string) {
  if (maskMode === "all") {
    const p = mask.findIndex((v) => v !== 1);
    if (p >= 0) fail(`maskMode "all" but position ${p} (${show([ids[p]!])}) has mask ${mask[p]}`);
    return;
  }
  for (const { j, start, end } of spans) {
    if (mask[end] !== 1) fail(`the ${show([ids[end]!])} closing assistant message ${j} (position ${end}) is not supervised: the model would never learn to stop`);
    if (start < end && mask[start] !== 1) fail(`the first answer token of message ${j}, ${show([ids[start]!])} at position ${start} right after \`<|assistant|>\\n\`, is not supervised`);
    const gap = mask.slice(start, end).findIndex((v) => v !== 1);
    if (gap > 0) fail(`answer token ${show([ids[start + gap]!])} of message ${j} at position ${start + gap} is not supervised`);
  }
  const inSpan = (p: number) => spans.some((s) => p >= s.start && p <= s.end);
  const p = mask.findIndex((v, q) => v !== 0 && !inSpan(q));
  if (p >= 0) {
    const what = spans.some((s) => p >= s.header && p < s.start) ? "the assistant header `<|assistant|>\\n`" : "a user turn or marker";
    fail(`position ${p} (${show([ids[p]!])}), part of ${what}, is supervised: only answers and their \`<|end|>\` may be`);
  }
}

/** Check one collated row against its example; returns the first problem or null. */
function checkRow(ex: SFTExample, inputs: number[] | undefined, targets: number[] | undefined, mask: number[] | undefined, maxSeqLen: number, show: (ids: number[]) => string): string | null {
  if (!inputs || !targets || !mask) return "missing from the collated batch";
  const n = ex.ids.length - 1; // real positions
  const T = mask.length;
  if (inputs.length !== T || targets.length !== T) return `row lengths differ: inputs ${inputs.length}, targets ${targets.length}, mask ${T}`;
  if (T < n || T > maxSeqLen) return `row has ${T} positions for ${n} targets with max-seq-len ${maxSeqLen}`;
  const p = [...Array(n).keys()].find((t) => inputs[t] !== ex.ids[t] || targets[t] !== ex.ids[t + 1]);
  if (p !== undefined) return `position ${p}: input ${show([inputs[p]!])}, target ${show([targets[p]!])}; expected ids[${p}] ${show([ex.ids[p]!])} and ids[${p + 1}] ${show([ex.ids[p + 1]!])}`;
  const bad = [...Array(n).keys()].find((t) => mask[t] !== ex.mask[t + 1]);
  if (bad !== undefined) {
    const inputAligned = [...Array(n).keys()].every((t) => mask[t] === ex.mask[t]);
    const why = inputAligned ? "the mask is aligned to the inputs (mask[t] = example.mask[t]) instead of the targets" : "the mask is not the example mask shifted by one";
    return `${why}: target ${bad} (${show([targets[bad]!])}) has mask ${mask[bad]}, expected example.mask[${bad + 1}] = ${ex.mask[bad + 1]}`;
  }
  const pad = mask.findIndex((v, t) => t >= n && v !== 0);
  if (pad >= 0) return `padding position ${pad} (after ${n} real targets) has mask ${mask[pad]}: the row would be trained to predict padding`;
  return null;
}

function finish(failures: SelfCheckFailure[], stats: SelfCheckResult["stats"], passed: Partial<Record<CheckName, string>>, t0: number, maxSeqLen?: number): SelfCheckResult {
  stats.ms = performance.now() - t0;
  const { conversations, assistantTurns, supervised, longest, ms } = stats;
  const checks = (Object.keys(CHECKS) as CheckName[]).map((name) => {
    const mine = failures.filter((f) => f.check === name);
    const where = new Set(mine.map((f) => f.conversation ?? "tokenizer"));
    return { name, ok: mine.length === 0, detail: mine.length === 0 ? (passed[name] ?? "not run") : `${mine.length} failure(s) in ${[...where].slice(0, 8).join(", ")}${where.size > 8 ? ", ..." : ""}` };
  });
  const ok = failures.length === 0;
  const convs = new Set(failures.flatMap((f) => (f.conversation === undefined ? [] : [f.conversation])));
  const summary = ok
    ? `self-check passed: ${conversations} conversations, ${assistantTurns} assistant turns, ${supervised} supervised targets, longest row ${longest} ids (max-seq-len ${maxSeqLen}), ${checks.length} checks in ${ms.toFixed(0)} ms`
    : `self-check FAILED: ${failures.length} problem(s) in ${convs.size} conversation(s)${failures.some((f) => f.conversation === undefined) ? " and the tokenizer" : ""} (checks: ${checks.filter((c) => !c.ok).map((c) => c.name).join(", ")}); first: ${formatFailure(failures[0]!)}`;
  return { ok, checks, failures, summary, stats };
}

/** How `got` differs from the trainer's prompt ids, or null if identical. */
function diffIds(tok: TextTokenizer, got: number[], want: number[]): string | null {
  if (same(got, want)) return null;
  const p = got.findIndex((id, k) => id !== want[k]);
  const at = p < 0 ? Math.min(got.length, want.length) : p;
  const ctx = showIds(tok, want.slice(Math.max(0, at - 3), at));
  if (p < 0 && got.length < want.length) return `${got.length} ids, stops ${want.length - got.length} id(s) short of the training render, which continues after ${ctx} with ${showIds(tok, want.slice(at))}`;
  if (p < 0) return `${got.length} ids, runs ${got.length - want.length} id(s) past where the answer starts in the training render: extra ${showIds(tok, got.slice(at))}`;
  return `differs from the training render at position ${p} (after ${ctx}): prompt has ${showIds(tok, got.slice(p, p + 3))}, training render has ${showIds(tok, want.slice(p, p + 3))}`;
}

/** Ids with their text, e.g. "`<|end|>` (4)" or "`Hello⏎` (57, 12)". */
function showIds(tok: TextTokenizer, ids: number[]): string {
  if (ids.length === 0) return "nothing";
  return `\`${tok.decode(ids).replace(/\n/g, "⏎")}\` (${ids.join(", ")})`;
}

function same(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}

function attempt<T>(fn: () => T): T | string {
  try {
    return fn();
  } catch (e) {
    return (e as Error).message;
  }
}
