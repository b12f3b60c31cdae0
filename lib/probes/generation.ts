// Generation probes: the prompt list (probe file + held-out eval prompts), how each prompt is put
// to a model (chat template or raw text), and one reply with special tokens kept visible.
//
// Questions, instructions and eval prompts go through the chat template for BOTH models, so the
// base model's behaviour on the chat format is on record (it should not stop). Prose openings go in
// as raw text: a healthy model continues them; a format-collapsed one answers or stops.

import { readTextFile } from "../io/text.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { generate } from "../generate/generate.ts";
import { normalizeText } from "../tokenizer/normalize.ts";
import { ChatTemplate } from "../format/template.ts";
import { normalizePrompt } from "../data/data.ts";
import type { Conversation } from "../format/types.ts";
import type { RawGeneration } from "./metrics.ts";
import type { Probe, ProbePrompt } from "./types.ts";

const KINDS = ["question", "instruction", "prose", "prefill"] as const;

/** Read and check a probe file: a JSON array of `{id, kind, prompt}` with unique ids (a "prefill"
 * probe also has the start of the reply in "prefill"). */
export function loadProbes(path: string): Probe[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readTextFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read the probe file (${(e as Error).message}); pass a JSON array of {id, kind, prompt}`);
  }
  if (!Array.isArray(raw)) throw new Error(`${path}: expected a JSON array of {id, kind, prompt}, got ${typeof raw}`);
  const seen = new Set<string>();
  return raw.map((p, i) => {
    const where = `${path}: probe ${i}`;
    if (typeof p?.id !== "string" || !p.id) throw new Error(`${where} has no string "id"`);
    if (seen.has(p.id)) throw new Error(`${where} repeats the id \`${p.id}\`: probe ids must be unique`);
    seen.add(p.id);
    if (!KINDS.includes(p.kind)) throw new Error(`${where} (\`${p.id}\`) has kind \`${p.kind}\`, expected one of ${KINDS.join(", ")}`);
    if (typeof p.prompt !== "string" || !p.prompt.trim()) throw new Error(`${where} (\`${p.id}\`) has an empty or missing "prompt"`);
    if (p.kind !== "prefill") return { id: p.id, kind: p.kind, prompt: p.prompt };
    if (typeof p.prefill !== "string" || !p.prefill.trim()) throw new Error(`${where} (\`${p.id}\`) is a prefill probe without "prefill": add the start of the assistant's reply, e.g. "prefill": "The stars above shine bright at night,"`);
    return { id: p.id, kind: p.kind, prompt: p.prompt, prefill: p.prefill };
  });
}

const MODES: Record<Probe["kind"], ProbePrompt["mode"]> = { question: "chat", instruction: "chat", prose: "raw", prefill: "prefill" };

/** The prompts to run: every probe, then the first user message of each eval conversation
 * (`eval-<index>`, with its data "kind" from `evalKinds` as its category), skipping eval prompts
 * that repeat a probe prompt. */
export function probePrompts(probes: Probe[], evalConversations: Conversation[], evalKinds: (string | undefined)[] = []): ProbePrompt[] {
  const out: ProbePrompt[] = probes.map((p) => ({ ...p, mode: MODES[p.kind] }));
  const known = new Set(probes.filter((p) => p.kind !== "prefill").map((p) => normalizePrompt(p.prompt)));
  evalConversations.forEach((conv, i) => {
    const first = conv.find((m) => m.role === "user");
    if (!first || known.has(normalizePrompt(first.content))) return;
    known.add(normalizePrompt(first.content));
    const category = evalKinds[i];
    out.push({ id: `eval-${i}`, kind: "eval", prompt: first.content, mode: "chat", ...(category !== undefined ? { category } : {}) });
  });
  return out;
}

/** Prompt ids: the chat generation prompt (`<|user|>\n…\n<|assistant|>\n`), that prompt followed
 * by the start of the reply (prefill: the prompt ends inside the assistant turn, as the course's
 * `chat_prompt(user, assistant_prefix)` does), or the raw text with quotes normalised the way
 * pretraining saw them. */
export function promptIds(prompt: ProbePrompt, tokenizer: Tokenizer, template = new ChatTemplate()): number[] {
  if (prompt.mode === "raw") return tokenizer.encode(normalizeText(prompt.prompt));
  const ids = template.renderPromptIds([{ role: "user", content: prompt.prompt }], tokenizer);
  return prompt.mode === "prefill" ? [...ids, ...tokenizer.encode(prompt.prefill ?? "")] : ids;
}

export interface ReplyOptions {
  maxTokens: number;
  temperature: number;
  seed: number;
  stopIds: number[];
}

/** One reply. `text` is decoded with special tokens visible (so a leaked `<|user|>` shows) and
 * without the final stop id. */
export async function generateReply(model: LlamaModel, tokenizer: Tokenizer, ids: number[], { maxTokens, temperature, seed, stopIds }: ReplyOptions): Promise<RawGeneration> {
  const gen = await generate(model, tokenizer, ids, { maxTokens, temperature, seed, stopIds });
  const reply = gen.stopReason === "end-token" ? gen.ids.slice(0, -1) : gen.ids;
  // ids past the tokenizer are spare embedding rows: no text, as in generate() and transformers
  const text = tokenizer.decode(reply.filter((id) => id < tokenizer.vocabSize), { skipSpecial: false });
  return { ids: gen.ids, text, stopReason: gen.stopReason };
}
