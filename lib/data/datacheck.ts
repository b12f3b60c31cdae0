// Data check: what is in an SFT data set before training on it — counts, token lengths, padding
// waste, duplicates, train/eval overlap, style outliers, and the self-check line.
//   bun scripts/data-check.ts --tokenizer models/tokenizer-4096
//
// The detection functions are pure and work on conversations; `dataCheck` runs them all and
// `formatDataCheck` prints the report. Findings are for a person to read: nothing here changes data.

import type { TextTokenizer } from "../tokenizer/types.ts";
import { collateArrays, iterateBatches } from "./batch.ts";
import { normalizePrompt } from "./data.ts";
import { selfCheck, type TemplateLike } from "./selfcheck.ts";
import { ChatTemplate } from "../format/template.ts";
import type { Conversation, SFTExample } from "../format/types.ts";

export const NEAR_DUPLICATE_JACCARD = 0.8; // word 3-gram overlap at which two prompts count as near-duplicates
export const LONG_ANSWER_Z = 3; // answers this many standard deviations above the mean word count are outliers
export const EXCLAMATION_HEAVY = 2; // exclamation marks in one answer that make it stand out in a direct register
const PADDING_EPOCHS = 5; // random-order padding is averaged over this many shuffles: one is noisy
const BAR_WIDTH = 40; // characters of the longest histogram bar

/** Openers of a chatty register, as (label, pattern) pairs matched at the start of an answer. */
export const CHATTY_OPENERS: [string, RegExp][] = [
  ["Sure", /^\s*sure\b/i],
  ["Certainly", /^\s*certainly\b/i],
  ["Of course", /^\s*of course\b/i],
  ["Absolutely", /^\s*absolutely\b/i],
  ["Great question", /^\s*(great|good|excellent|what a (great|good|wonderful)) question\b/i],
  ["As an AI", /^\s*as an ai\b/i],
];

export interface DataCounts {
  conversations: number;
  messages: number;
  assistantTurns: number;
  multiTurn: number; // conversations with more than one assistant turn
}

export function countConversations(convs: Conversation[]): DataCounts {
  const assistant = convs.map((c) => c.filter((m) => m.role === "assistant").length);
  return {
    conversations: convs.length,
    messages: convs.reduce((n, c) => n + c.length, 0),
    assistantTurns: assistant.reduce((a, b) => a + b, 0),
    multiTurn: assistant.filter((n) => n > 1).length,
  };
}

export interface Histogram {
  edges: number[]; // bins + 1 ascending edges; bin k holds values in [edges[k], edges[k+1]) (the last is closed)
  counts: number[];
}

/** Equal-width histogram of `values` over [min, max]. */
export function histogram(values: number[], bins = 10): Histogram {
  if (values.length === 0) return { edges: [0, 0], counts: [0] };
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const width = Math.max(1, Math.ceil((hi - lo + 1) / bins)); // integer widths: lengths are whole tokens
  const n = Math.ceil((hi - lo + 1) / width);
  const counts = new Array<number>(n).fill(0);
  for (const v of values) counts[Math.min(n - 1, Math.floor((v - lo) / width))]!++;
  return { edges: Array.from({ length: n + 1 }, (_, k) => lo + k * width), counts };
}

/** Text bars, one line per bin: `  64-  79 | ██████ 12`. */
export function formatHistogram({ edges, counts }: Histogram, barWidth = BAR_WIDTH): string[] {
  const most = Math.max(1, ...counts);
  const w = String(edges[edges.length - 1]).length;
  return counts.map((c, k) => {
    const bar = "█".repeat(Math.round((c / most) * barWidth)) || (c > 0 ? "▏" : "");
    return `${String(edges[k]).padStart(w)}-${String(edges[k + 1]! - 1).padStart(w)} | ${bar} ${c}`;
  });
}

export interface PaddingWaste {
  batchSize: number;
  random: number; // padded share of positions with shuffled batches (mean over PADDING_EPOCHS)
  grouped: number; // the same with length-grouped batches
}

/** Padded positions / all positions when batching `examples` as the trainer does (lib/data/batch.ts). */
export function paddingWaste(examples: SFTExample[], batchSize: number, seed = 0): PaddingWaste {
  const waste = (grouped: boolean) => {
    let padded = 0;
    let total = 0;
    const maxSeqLen = Math.max(...examples.map((ex) => ex.ids.length - 1));
    for (const b of iterateBatches(examples, { batchSize, seed, groupByLength: grouped, epochs: grouped ? 1 : PADDING_EPOCHS })) {
      const c = collateArrays(b.examples, { maxSeqLen, padId: 0 });
      const positions = c.mask.length * c.mask[0]!.length;
      padded += c.paddingFraction * positions;
      total += positions;
    }
    return padded / total;
  };
  return { batchSize, random: waste(false), grouped: waste(true) };
}

/** Lower-case word n-grams (n = 3, or the whole text when it has fewer words). */
export function wordShingles(text: string, n = 3): Set<string> {
  const words = normalizePrompt(text).match(/[\p{L}\p{N}']+/gu) ?? [];
  const k = Math.min(n, words.length);
  const out = new Set<string>();
  for (let i = 0; i + k <= words.length && k > 0; i++) out.add(words.slice(i, i + k).join(" "));
  return out;
}

export function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let common = 0;
  for (const x of a) if (b.has(x)) common++;
  return common / (a.size + b.size - common);
}

/** The prompt side of a conversation: its user turns, joined. */
export function promptOf(conv: Conversation): string {
  return conv.filter((m) => m.role === "user").map((m) => m.content).join("\n");
}

export interface Pair {
  a: number; // conversation index (in train for overlaps)
  b: number; // conversation index (in eval for overlaps)
  similarity: number; // Jaccard of word 3-grams of the prompts; 1 for exact
}

export interface Duplicates {
  exact: Pair[]; // same prompt and same answers
  conflicting: Pair[]; // same prompt, different answers
  near: Pair[]; // prompts with Jaccard >= threshold, not exact
  closest?: Pair; // the most similar non-identical pair, to show how far the rest are from the threshold
}

/** Exact and near-duplicate conversations within one set, compared on normalized prompts. */
export function findDuplicates(convs: Conversation[], threshold = NEAR_DUPLICATE_JACCARD): Duplicates {
  const out: Duplicates = { exact: [], conflicting: [], near: [] };
  const prompts = convs.map((c) => normalizePrompt(promptOf(c)));
  const answers = convs.map((c) => c.filter((m) => m.role === "assistant").map((m) => normalizePrompt(m.content)).join("\n"));
  const shingles = convs.map((c) => wordShingles(promptOf(c)));
  for (let i = 0; i < convs.length; i++) {
    for (let j = i + 1; j < convs.length; j++) {
      if (prompts[i] === prompts[j]) (answers[i] === answers[j] ? out.exact : out.conflicting).push({ a: i, b: j, similarity: 1 });
      else {
        const s = jaccard(shingles[i]!, shingles[j]!);
        if (s >= threshold) out.near.push({ a: i, b: j, similarity: s });
        if (s > (out.closest?.similarity ?? -1)) out.closest = { a: i, b: j, similarity: s };
      }
    }
  }
  return out;
}

export interface Overlap {
  exact: Pair[]; // a = train index, b = eval index
  near: Pair[];
  closest?: Pair; // the most similar non-identical eval/train pair
}

/** Eval conversations whose prompt is also in train: exact after normalizePrompt, or near. */
export function findOverlap(train: Conversation[], evalSet: Conversation[], threshold = NEAR_DUPLICATE_JACCARD): Overlap {
  const trainPrompts = new Map<string, number>(); // normalized prompt -> first train index
  train.forEach((c, i) => {
    const key = normalizePrompt(promptOf(c));
    if (!trainPrompts.has(key)) trainPrompts.set(key, i);
  });
  const trainShingles = train.map((c) => wordShingles(promptOf(c)));
  const exact: Pair[] = [];
  const near: Pair[] = [];
  let closest: Pair | undefined;
  evalSet.forEach((c, j) => {
    const i = trainPrompts.get(normalizePrompt(promptOf(c)));
    if (i !== undefined) return exact.push({ a: i, b: j, similarity: 1 });
    const mine = wordShingles(promptOf(c));
    let best = { a: -1, b: j, similarity: 0 };
    trainShingles.forEach((s, k) => {
      const sim = jaccard(s, mine);
      if (sim > best.similarity) best = { a: k, b: j, similarity: sim };
    });
    if (best.similarity >= threshold) near.push(best);
    if (best.similarity > (closest?.similarity ?? -1)) closest = best;
  });
  return { exact, near, closest };
}

export interface StyleOutlier {
  conversation: number;
  message: number;
  kind: "opener" | "filler" | "exclamations" | "long";
  detail: string;
}

export interface StyleOptions {
  detectors?: string[]; // extra regex sources (case-insensitive) for chat filler anywhere in an answer
  zThreshold?: number; // default LONG_ANSWER_Z
}

/** Answers whose register stands out from a direct data set: chatty openers, filler, several
 * exclamation marks, or a word count far above the rest (z-score). */
export function styleOutliers(convs: Conversation[], { detectors = [], zThreshold = LONG_ANSWER_Z }: StyleOptions = {}): StyleOutlier[] {
  const answers = convs.flatMap((c, conversation) => c.flatMap((m, message) => (m.role === "assistant" ? [{ conversation, message, text: m.content }] : [])));
  const fillers = detectors.map((d) => new RegExp(d, "i"));
  const words = answers.map((x) => x.text.split(/\s+/).filter(Boolean).length);
  const mean = words.reduce((a, b) => a + b, 0) / Math.max(1, words.length);
  const sd = Math.sqrt(words.reduce((a, w) => a + (w - mean) ** 2, 0) / Math.max(1, words.length));
  const out: StyleOutlier[] = [];
  answers.forEach(({ conversation, message, text }, k) => {
    const at = { conversation, message };
    const opener = CHATTY_OPENERS.find(([, re]) => re.test(text));
    if (opener) out.push({ ...at, kind: "opener", detail: `opens like "${opener[0]}"` });
    const fill = opener ? null : fillers.map((re) => text.match(re)).find(Boolean);
    if (fill) out.push({ ...at, kind: "filler", detail: `chat filler ${quote(fill[0])}` });
    const bangs = (text.match(/!/g) ?? []).length;
    if (bangs >= EXCLAMATION_HEAVY) out.push({ ...at, kind: "exclamations", detail: `${bangs} exclamation marks` });
    const z = sd > 0 ? (words[k]! - mean) / sd : 0;
    if (z >= zThreshold) out.push({ ...at, kind: "long", detail: `${words[k]} words, z = ${z.toFixed(1)} (mean ${mean.toFixed(0)} ± ${sd.toFixed(0)})` });
  });
  return out;
}

export interface DataCheckOptions {
  train: Conversation[];
  eval?: Conversation[];
  tokenizer: TextTokenizer;
  template?: TemplateLike;
  batchSize: number;
  maxSeqLen: number;
  context?: number; // the model's context, for the self-check's length fix
  detectors?: string[]; // chat-filler regexes (e.g. data/sft/noise.json detectors)
  seed?: number;
}

export interface DataCheckReport {
  counts: { train: DataCounts; eval?: DataCounts };
  lengths: { min: number; median: number; p95: number; max: number; histogram: Histogram }; // train ids per conversation
  supervisedShare: number; // supervised targets / all targets in train
  padding: PaddingWaste;
  duplicates: Duplicates;
  overlap?: Overlap;
  style: StyleOutlier[];
  selfCheck: string[]; // the self-check summary line for train (and for eval), indices per file
}

/** Run every check on a data set (and its eval split). */
export function dataCheck(opts: DataCheckOptions): DataCheckReport {
  const { train, eval: evalSet, tokenizer, batchSize, maxSeqLen, context, seed = 0 } = opts;
  const template = opts.template ?? new ChatTemplate();
  const examples = train.flatMap((c) => {
    try {
      return [template.renderWithMask(c, tokenizer)];
    } catch {
      return []; // the self-check below names the conversation and the reason
    }
  });
  const lengths = examples.map((ex) => ex.ids.length).sort((a, b) => a - b);
  const at = (q: number) => lengths[Math.min(lengths.length - 1, Math.floor(q * lengths.length))]!;
  const supervised = examples.reduce((n, ex) => n + ex.mask.slice(1).reduce((a, b) => a + b, 0), 0);
  const check = (name: string, conversations: Conversation[]) => `${name}: ${selfCheck({ tokenizer, conversations, template, maxSeqLen, context }).summary}`;
  return {
    counts: { train: countConversations(train), eval: evalSet && countConversations(evalSet) },
    lengths: { min: lengths[0]!, median: at(0.5), p95: at(0.95), max: lengths[lengths.length - 1]!, histogram: histogram(lengths) },
    supervisedShare: supervised / examples.reduce((n, ex) => n + ex.ids.length - 1, 0),
    padding: paddingWaste(examples, batchSize, seed),
    duplicates: findDuplicates(train),
    overlap: evalSet && findOverlap(train, evalSet),
    style: styleOutliers(train, { detectors: opts.detectors }),
    selfCheck: [check("train", train), ...(evalSet ? [check("eval", evalSet)] : [])],
  };
}

/** The report as text lines, quoting prompts from the sets the report was made from. */
export function formatDataCheck(r: DataCheckReport, train: Conversation[], evalSet?: Conversation[]): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const p = (set: Conversation[], i: number) => `#${i} ${quote(promptOf(set[i]!))}`;
  const c = r.counts.train;
  const lines = [
    `train: ${c.conversations} conversations, ${c.assistantTurns} assistant turns, ${c.multiTurn} multi-turn` +
      (r.counts.eval ? ` | eval: ${r.counts.eval.conversations} conversations, ${r.counts.eval.multiTurn} multi-turn` : ""),
    "",
    `tokens per conversation (train): min ${r.lengths.min}, median ${r.lengths.median}, p95 ${r.lengths.p95}, max ${r.lengths.max}; ${pct(r.supervisedShare)} of targets supervised`,
    ...formatHistogram(r.lengths.histogram).map((l) => `  ${l}`),
    "",
    `padding at batch size ${r.padding.batchSize}: ${pct(r.padding.random)} of positions with shuffled batches, ${pct(r.padding.grouped)} grouped by length`,
    "",
    `duplicates (train): ${r.duplicates.exact.length} exact, ${r.duplicates.conflicting.length} same prompt with different answers, ${r.duplicates.near.length} near (word 3-gram Jaccard >= ${NEAR_DUPLICATE_JACCARD})`,
    ...r.duplicates.exact.map((d) => `  exact: ${p(train, d.a)} = #${d.b}`),
    ...r.duplicates.conflicting.map((d) => `  conflicting answers: ${p(train, d.a)} and #${d.b}`),
    ...r.duplicates.near.map((d) => `  near ${d.similarity.toFixed(2)}: ${p(train, d.a)} ~ ${p(train, d.b)}`),
  ];
  // the closest pair below the threshold shows how far the data is from a flag
  const below = (pair?: Pair) => (pair && pair.similarity < NEAR_DUPLICATE_JACCARD ? pair : undefined);
  const d = below(r.duplicates.closest);
  if (d) lines.push(`  closest other pair ${d.similarity.toFixed(2)}: ${p(train, d.a)} ~ ${p(train, d.b)}`);
  if (r.overlap && evalSet) {
    lines.push("", `train/eval overlap: ${r.overlap.exact.length} exact, ${r.overlap.near.length} near (eval prompts also in train inflate eval scores)`);
    lines.push(...r.overlap.exact.map((o) => `  exact: eval ${p(evalSet, o.b)} = train #${o.a}`));
    lines.push(...r.overlap.near.map((o) => `  near ${o.similarity.toFixed(2)}: eval ${p(evalSet, o.b)} ~ train ${p(train, o.a)}`));
    const o = below(r.overlap.closest);
    if (o) lines.push(`  closest other pair ${o.similarity.toFixed(2)}: eval ${p(evalSet, o.b)} ~ train ${p(train, o.a)}`);
  }
  // one line per answer, with every reason it stands out
  const byAnswer = new Map<string, StyleOutlier[]>();
  for (const o of r.style) byAnswer.set(`${o.conversation}:${o.message}`, [...(byAnswer.get(`${o.conversation}:${o.message}`) ?? []), o]);
  lines.push("", `style outliers (train): ${byAnswer.size} of ${c.assistantTurns} answers` + (byAnswer.size > 0 ? " (a direct register trains a direct model: rewrite or drop them)" : ""));
  for (const os of byAnswer.values()) {
    const { conversation, message } = os[0]!;
    const text = train[conversation]![message]!.content;
    lines.push(`  #${conversation} message ${message} [${os.map((o) => o.kind).join(", ")}] ${os.map((o) => o.detail).join("; ")}: ${quote(text)}`);
  }
  lines.push("", ...r.selfCheck);
  return lines;
}

function quote(text: string, max = 70): string {
  const one = text.replace(/\s+/g, " ").trim();
  return JSON.stringify(one.length > max ? `${one.slice(0, max - 1)}…` : one);
}
