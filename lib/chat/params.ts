// Sampling parameters for the chat REPL: defaults, the flag/command names, validation, and the
// per-reply options handed to lib/generate/generate.ts. One table drives the flags, `/params` and its help.

import { parseNumber, type NumberRule } from "../util/cli.ts";
import type { SampleOptions } from "../generate/generate.ts";

export interface ChatParams {
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  maxTokens: number;
  seed: number;
}

/** Defaults for talking to a small fine-tuned model (5.8M parameters, 256-token context). */
export function defaultChatParams(): ChatParams {
  return {
    temperature: 0.7, // some variety between tries without the drift a small model shows near 1.0; 0 = greedy
    topK: 0, // off: top-p already adapts the cut to how peaked the distribution is
    topP: 0.9, // drops the long tail of unlikely ids that sends a small model off topic
    repetitionPenalty: 1, // off: it also penalizes <|end|> and the template's newlines, which recur in every history
    maxTokens: 128, // ~2x the longest training reply (69 tokens), and leaves half of a 256-token context for history
    seed: 0, // reply n uses seed + n: a session replays exactly; change it for different samples
  };
}

/** One sampling parameter: its key in ChatParams, its `--flag`, its `/params` name and its rule. */
export interface ParamSpec {
  key: keyof ChatParams;
  flag: string;
  name: string;
  rule: NumberRule;
  description: string;
}

export const PARAM_SPECS: ParamSpec[] = [
  { key: "temperature", flag: "temperature", name: "temperature", rule: { min: 0, max: 5 }, description: "sampling temperature; 0 = greedy" },
  { key: "topK", flag: "top-k", name: "top_k", rule: { integer: true, min: 0 }, description: "keep the k most likely ids; 0 = off" },
  { key: "topP", flag: "top-p", name: "top_p", rule: { positive: true, max: 1 }, description: "nucleus sampling mass; 1 = off" },
  { key: "repetitionPenalty", flag: "repetition-penalty", name: "repetition_penalty", rule: { positive: true, max: 10 }, description: "> 1 discourages ids already seen; 1 = off" },
  { key: "maxTokens", flag: "max-tokens", name: "max_tokens", rule: { integer: true, positive: true }, description: "longest reply, in tokens" },
  { key: "seed", flag: "seed", name: "seed", rule: { integer: true, min: 0 }, description: "sampling seed (reply n uses seed + n)" },
];

/** Validate flag values (strings from citty, undefined = default) into ChatParams. */
export function resolveChatParams(flags: Partial<Record<string, unknown>>, base: ChatParams = defaultChatParams()): ChatParams {
  const out = { ...base };
  for (const spec of PARAM_SPECS) {
    const value = flags[spec.flag];
    if (value !== undefined) out[spec.key] = parseNumber(spec.flag, value, spec.rule);
  }
  return out;
}

/** Apply `/params name=value ...` assignments (names as shown by `/params`; `-` and `_` both
 * work, flag spellings too). Throws a UsageError naming the bad assignment. */
export function applyParamAssignments(current: ChatParams, text: string): ChatParams {
  const out = { ...current };
  for (const item of text.trim().split(/\s+/).filter(Boolean)) {
    const eq = item.indexOf("=");
    const name = (eq < 0 ? item : item.slice(0, eq)).toLowerCase().replace(/-/g, "_");
    const spec = PARAM_SPECS.find((s) => s.name === name || s.key.toLowerCase() === name.replace(/_/g, ""));
    if (!spec) {
      throw new ParamError(`unknown parameter \`${name}\`: expected one of ${PARAM_SPECS.map((s) => s.name).join(", ")} (e.g. /params temperature=0.2)`);
    }
    if (eq < 0) throw new ParamError(`\`${item}\` has no value: write ${spec.name}=<value>`);
    try {
      out[spec.key] = parseNumber(spec.name, item.slice(eq + 1), spec.rule);
    } catch (e) {
      throw new ParamError((e as Error).message.replace(/^--/, ""));
    }
  }
  return out;
}

export class ParamError extends Error {
  override name = "ParamError";
}

/** `temperature=0.7 top_k=0 top_p=0.9 ...`: the form `/params` accepts back. */
export function formatParams(p: ChatParams): string {
  return PARAM_SPECS.map((s) => `${s.name}=${p[s.key]}`).join(" ");
}

/** The generate() options for reply number `turn` (0-based) of a session. */
export function sampleOptions(p: ChatParams, turn: number): SampleOptions {
  return {
    temperature: p.temperature,
    topK: p.topK,
    topP: p.topP,
    repetitionPenalty: p.repetitionPenalty,
    maxTokens: p.maxTokens,
    seed: p.seed + turn,
  };
}
