// The probe report: what SFT did to a model, measured on the base and the fine-tuned model with the
// same prompts, seed and settings. Plain JSON all the way down: it is stored in summary.json, read
// by the sweep, and rendered by lib/report/ (samples.md, report.html).

import type { StopReason } from "../generate/generate.ts";
import { array, boolean, defaulted, int, literal, measure, nullable, object, optional, string, type Schema } from "../util/schema.ts";
import type { ClosestAnswer } from "./memorisation.ts";

/** A prompt from data/sft/probes.json. A "prefill" probe is a user prompt plus the start of the
 * assistant's reply (`prefill`): the prompt ends inside an assistant turn (the course's exercise 4). */
export interface Probe {
  id: string;
  kind: "question" | "instruction" | "prose" | "prefill";
  prompt: string;
  prefill?: string;
}

/** "chat": rendered with the chat template up to `<|assistant|>\n`; "raw": plain text, no template
 * (prose openings: the format-collapse probe); "prefill": the chat prompt followed by the start of
 * the reply, which the model should continue in the assistant's voice and close with `<|end|>`. */
export type ProbeMode = "chat" | "raw" | "prefill";

/** A prompt as it is run: probe-file prompts plus held-out eval prompts (kind "eval"). */
export interface ProbePrompt {
  id: string;
  kind: Probe["kind"] | "eval";
  prompt: string;
  prefill?: string;
  mode: ProbeMode;
  category?: string; // an eval prompt's "kind" in its data file (the course's categories), if any
}

/** What a prose opening led to: continued the passage, answered it (a chat marker early), or
 * neither (too few tokens, e.g. the context ran out). */
export type ProseOutcome = "continued" | "answered" | "short";

/** One model's reply to one prompt. */
export interface ProbeOutput {
  text: string; // decoded with special tokens visible (a leaked `<|user|>` shows), without the final stop id
  stopReason: StopReason;
  tokens: number; // generated tokens, the stop id included
  leaked: boolean; // the reply holds `<|user|>` or `<|assistant|>` (as ids or as literal text)
  repetition: number; // share of the reply's token 3-grams that repeat an earlier one
  offPattern: boolean; // matches a chat-filler detector (data/sft/noise.json)
  outcome?: ProseOutcome; // raw (prose) prompts only
  closest?: ClosestAnswer | null; // chat prompts only: the training answer nearest the reply (lib/probes/memorisation.ts)
  memorised?: boolean; // chat prompts only: the reply reproduces a training answer
}

/** A prompt with both models' replies. */
export interface ProbeSample extends ProbePrompt {
  base: ProbeOutput;
  sft: ProbeOutput;
}

/** Generation metrics of one model. Rates are shares in [0, 1]; the counts behind them travel with
 * them so a sentence can say "22 of 24". */
export interface GenerationMetrics {
  chatProbes: number; // chat-mode prompts (questions, instructions, eval prompts)
  stops: number; // chat replies that ended with `<|end|>` before the token limit
  stopRate: number;
  leaks: number; // chat replies holding a role marker
  roleLeakage: number;
  meanLength: number; // mean chat reply length, tokens
  repetition: number; // mean share of repeated token 3-grams per chat reply
  offPattern: number; // chat replies matching a chat-filler detector
  offPatternRate: number;
  memorised: number; // chat replies reproducing a training answer (lib/probes/memorisation.ts)
  memorisedRate: number;
  proseProbes: number; // raw prose openings
  continued: number;
  continuationRate: number;
  answered: number;
  answeredRate: number;
  prefillProbes: number; // prompts ending inside an assistant turn
  prefillCompleted: number; // of those, replies that went on (PREFILL_MIN_TOKENS+), held no role marker and closed with `<|end|>`
  prefillCompletedRate: number;
}

/** The chat metrics of the prompts of one category (the eval data's "kind"), for one model. */
export interface CategoryNumbers {
  stops: number;
  stopRate: number;
  leaks: number;
  roleLeakage: number;
  meanLength: number;
}

/** Both models on one category of held-out prompts. */
export interface CategoryMetrics {
  category: string;
  prompts: number;
  base: CategoryNumbers;
  sft: CategoryNumbers;
}

/** Plain-text loss on held-out prose (no template): the forgetting probe. */
export interface ProseLossReport {
  baseLoss: number; // nats/token, token-weighted over all windows
  sftLoss: number;
  delta: number; // sftLoss - baseLoss; > 0 means SFT made the model worse at plain prose
  relative: number; // delta / baseLoss
  ntoks: number; // scored tokens
  windows: number;
  windowLen: number; // tokens per window: the model's context length, at most MAX_PROSE_WINDOW (prose.ts)
}

/** Accuracy on cloze items scored by likelihood. */
export interface RetentionScore {
  correct: number;
  total: number;
  accuracy: number;
  meanMargin: number; // mean of log p(answer) - max log p(distractor), nats
}

/** One model's result on one cloze item. */
export interface RetentionPick {
  correct: boolean;
  margin: number; // log p(answer) - max log p(distractor), nats
  pick: string; // the candidate with the highest log-likelihood
}

export interface RetentionItemResult {
  id: string;
  source?: string;
  prompt: string;
  answer: string;
  base: RetentionPick;
  sft: RetentionPick;
}

export interface RetentionReport {
  base: RetentionScore;
  sft: RetentionScore;
  items: RetentionItemResult[];
}

/** How the probes were run, so two reports can be compared only when they are comparable. */
export interface ProbeSettings {
  maxTokens: number;
  temperature: number; // 0 = greedy
  seed: number;
  stopToken: string;
  probesPath: string;
  probePrompts: number; // from the probe file
  evalPrompts: number; // held-out eval conversations' first user prompts (duplicates of probes dropped)
  prosePath: string;
  retentionPath: string;
  noisePath: string;
  memorisedRun: number; // tokens of verbatim overlap with one training answer that count a reply as memorised
  trainingAnswers: number; // assistant turns of the training data the replies were compared with
}

/** Everything `probeRun` measured; stored in summary.json under `probes`. */
export interface ProbeReport {
  settings: ProbeSettings;
  base: GenerationMetrics;
  sft: GenerationMetrics;
  prose: ProseLossReport;
  retention: RetentionReport;
  samples: ProbeSample[];
  categories?: CategoryMetrics[]; // per "kind" of the eval data, when it has kinds
  verdict: string;
}

// ---- the schema of a ProbeReport as summary.json stores it (checked against the interfaces above
// by the compiler: a field added there must be added here) ----

const GENERATION_METRICS: Schema<GenerationMetrics> = object<GenerationMetrics>({
  chatProbes: int(0), stops: int(0), stopRate: measure(), leaks: int(0), roleLeakage: measure(), meanLength: measure(), repetition: measure(),
  offPattern: int(0), offPatternRate: measure(),
  // absent in reports written before the memorisation probe existed
  memorised: defaulted(int(0), 0), memorisedRate: defaulted(measure(), 0),
  proseProbes: int(0), continued: int(0), continuationRate: measure(), answered: int(0), answeredRate: measure(),
  // absent in reports written before the prefill probes existed
  prefillProbes: defaulted(int(0), 0), prefillCompleted: defaulted(int(0), 0), prefillCompletedRate: defaulted(measure(), 0),
});
const CATEGORY_NUMBERS: Schema<CategoryNumbers> = object<CategoryNumbers>({ stops: int(0), stopRate: measure(), leaks: int(0), roleLeakage: measure(), meanLength: measure() });
const PROBE_OUTPUT: Schema<ProbeOutput> = object<ProbeOutput>({
  text: string(), stopReason: literal("end-token", "max-tokens", "stop-string", "context", "interrupted"), tokens: int(0), leaked: boolean(),
  repetition: measure(), offPattern: boolean(), outcome: optional(literal("continued", "answered", "short")),
  closest: optional(nullable(object<ClosestAnswer>({ conversation: int(0), turn: int(0), answer: string(), run: int(0), runText: string(), coverage: measure() }))),
  memorised: optional(boolean()),
});
const RETENTION_SCORE: Schema<RetentionScore> = object<RetentionScore>({ correct: int(0), total: int(0), accuracy: measure(), meanMargin: measure() });
const RETENTION_PICK: Schema<RetentionPick> = object<RetentionPick>({ correct: boolean(), margin: measure(), pick: string() });

export const PROBE_REPORT: Schema<ProbeReport> = object<ProbeReport>({
  settings: object<ProbeSettings>({
    maxTokens: int(0), temperature: measure(), seed: int(), stopToken: string(), probesPath: string(), probePrompts: int(0), evalPrompts: int(0),
    prosePath: string(), retentionPath: string(), noisePath: string(),
    memorisedRun: defaulted(int(0), 0), trainingAnswers: defaulted(int(0), 0),
  }),
  base: GENERATION_METRICS,
  sft: GENERATION_METRICS,
  prose: object<ProseLossReport>({ baseLoss: measure(), sftLoss: measure(), delta: measure(), relative: measure(), ntoks: int(0), windows: int(0), windowLen: int(0) }),
  retention: object<RetentionReport>({
    base: RETENTION_SCORE,
    sft: RETENTION_SCORE,
    items: array(object<RetentionItemResult>({ id: string(), source: optional(string()), prompt: string(), answer: string(), base: RETENTION_PICK, sft: RETENTION_PICK })),
  }),
  samples: array(object<ProbeSample>({
    id: string(), kind: literal("question", "instruction", "prose", "prefill", "eval"), prompt: string(), prefill: optional(string()),
    mode: literal("chat", "raw", "prefill"), category: optional(string()), base: PROBE_OUTPUT, sft: PROBE_OUTPUT,
  })),
  categories: optional(array(object<CategoryMetrics>({ category: string(), prompts: int(0), base: CATEGORY_NUMBERS, sft: CATEGORY_NUMBERS }))),
  verdict: string(),
});
