// Generation metrics: pure functions from generated ids and text to the numbers the probe report
// shows (stop rate, role leakage, reply length, repetition, off-pattern rate, prose continuation).
// No model here, so every definition is pinned by a test on hand-made outputs.

import type { StopReason } from "../generate/generate.ts";
import { offPatternRate } from "../data/data.ts";
import { SPECIAL_TOKENS } from "../format/tokens.ts";
import type { CategoryMetrics, CategoryNumbers, GenerationMetrics, ProbeMode, ProbeOutput, ProbeSample, ProseOutcome } from "./types.ts";
import type { ChatFormat } from "../format/chat-format.ts";

export const REPETITION_N = 3; // n-gram order for repetition: 3 tokens is a phrase, not a common pair
export const CONTINUATION_TOKENS = 16; // a prose opening counts as continued after this many marker-free tokens
export const LOOPING = 0.25; // share of repeated 3-grams from which a reply loops on a phrase (reports flag it)
export const PREFILL_MIN_TOKENS = 2; // a prefilled reply closed sooner did not continue it: it stopped too quickly

/** The ids that mark chat structure in a reply. */
/** The marker ids the metrics look for (a ChatFormat has them). */
export type ChatIds = Pick<ChatFormat, "end" | "user" | "assistant">;

/** A raw generation: what lib/generate/generate.ts returns, with `text` decoded keeping special tokens. */
export interface RawGeneration {
  ids: number[]; // generated ids, the stop id included when one was emitted
  text: string;
  stopReason: StopReason;
}

const ROLE_STRINGS = [SPECIAL_TOKENS.user, SPECIAL_TOKENS.assistant];

/** Share of the `n`-grams of `ids` that repeat an earlier n-gram of the same sequence (0 when
 * there are fewer than `n` ids). "a b c a b c" with n = 3 has 4 trigrams, 1 repeated: 0.25. */
export function repeatedNgramShare(ids: number[], n = REPETITION_N): number {
  const count = ids.length - n + 1;
  if (count <= 0) return 0;
  const seen = new Set<string>();
  let repeated = 0;
  for (let i = 0; i < count; i++) {
    const key = ids.slice(i, i + n).join(",");
    if (seen.has(key)) repeated++;
    else seen.add(key);
  }
  return repeated / count;
}

/** Whether a reply holds a role marker: the `<|user|>` / `<|assistant|>` id, or the literal string
 * spelled with ordinary tokens. */
export function hasRoleMarker(ids: number[], text: string, chat: ChatIds): boolean {
  return ids.some((id) => id === chat.user || id === chat.assistant) || ROLE_STRINGS.some((s) => text.includes(s));
}

/** What a prose opening led to: "answered" if `<|end|>` or a role id is among the first
 * `CONTINUATION_TOKENS` ids, "continued" if there are at least that many ids without one, else "short". */
export function proseOutcome(ids: number[], chat: ChatIds, minTokens = CONTINUATION_TOKENS): ProseOutcome {
  const head = ids.slice(0, minTokens);
  if (head.some((id) => id === chat.end || id === chat.user || id === chat.assistant)) return "answered";
  return ids.length >= minTokens ? "continued" : "short";
}

/** Measure one reply. `tokens` and repetition count the reply itself, without the final stop id. */
export function describeOutput(gen: RawGeneration, mode: ProbeMode, chat: ChatIds, detectors: string[]): ProbeOutput {
  const reply = gen.stopReason === "end-token" ? gen.ids.slice(0, -1) : gen.ids;
  const out: ProbeOutput = {
    text: gen.text,
    stopReason: gen.stopReason,
    tokens: reply.length,
    leaked: hasRoleMarker(reply, gen.text, chat),
    repetition: repeatedNgramShare(reply),
    offPattern: offPatternRate([gen.text], detectors) === 1,
  };
  if (mode === "raw") out.outcome = proseOutcome(gen.ids, chat);
  return out;
}

const share = (k: number, n: number) => (n === 0 ? 0 : k / n);
const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Whether a reply to a prefilled assistant turn went on in the assistant's voice and stopped: at
 * least PREFILL_MIN_TOKENS tokens, no role marker, closed with `<|end|>`. */
export function prefillCompleted(o: ProbeOutput): boolean {
  return o.stopReason === "end-token" && o.tokens >= PREFILL_MIN_TOKENS && !o.leaked;
}

/** Aggregate one model's replies. Chat metrics come from chat-mode replies, continuation from raw
 * (prose) replies, the prefill numbers from prefilled replies; the off-pattern rate is
 * lib/data/data.ts `offPatternRate` over chat replies. */
export function generationMetrics(replies: { mode: ProbeMode; output: ProbeOutput }[], detectors: string[]): GenerationMetrics {
  const chat = replies.filter((r) => r.mode === "chat").map((r) => r.output);
  const prose = replies.filter((r) => r.mode === "raw").map((r) => r.output);
  const prefill = replies.filter((r) => r.mode === "prefill").map((r) => r.output);
  const completed = prefill.filter(prefillCompleted).length;
  const stops = chat.filter((o) => o.stopReason === "end-token").length;
  const leaks = chat.filter((o) => o.leaked).length;
  const offPatternShare = offPatternRate(chat.map((o) => o.text), detectors);
  const continued = prose.filter((o) => o.outcome === "continued").length;
  const answered = prose.filter((o) => o.outcome === "answered").length;
  const memorised = chat.filter((o) => o.memorised).length;
  return {
    chatProbes: chat.length,
    stops,
    stopRate: share(stops, chat.length),
    leaks,
    roleLeakage: share(leaks, chat.length),
    meanLength: mean(chat.map((o) => o.tokens)),
    repetition: mean(chat.map((o) => o.repetition)),
    offPattern: Math.round(offPatternShare * chat.length),
    offPatternRate: offPatternShare,
    memorised,
    memorisedRate: share(memorised, chat.length),
    proseProbes: prose.length,
    continued,
    continuationRate: share(continued, prose.length),
    answered,
    answeredRate: share(answered, prose.length),
    prefillProbes: prefill.length,
    prefillCompleted: completed,
    prefillCompletedRate: share(completed, prefill.length),
  };
}

function categoryNumbers(outputs: ProbeOutput[]): CategoryNumbers {
  const stops = outputs.filter((o) => o.stopReason === "end-token").length;
  const leaks = outputs.filter((o) => o.leaked).length;
  return { stops, stopRate: share(stops, outputs.length), leaks, roleLeakage: share(leaks, outputs.length), meanLength: mean(outputs.map((o) => o.tokens)) };
}

/** Stop rate, role leakage and reply length per category of the held-out prompts (the eval data's
 * "kind"), in first-seen order; empty when no prompt has a category. */
export function categoryMetrics(samples: ProbeSample[]): CategoryMetrics[] {
  const groups = new Map<string, ProbeSample[]>();
  for (const s of samples) if (s.category !== undefined && s.mode === "chat") groups.set(s.category, [...(groups.get(s.category) ?? []), s]);
  return [...groups].map(([category, group]) => ({
    category,
    prompts: group.length,
    base: categoryNumbers(group.map((s) => s.base)),
    sft: categoryNumbers(group.map((s) => s.sft)),
  }));
}
