// The knowledge-retention probe: factual cloze items from the pretraining books, scored by
// likelihood in plain text (no template). An item is right when the model gives the true
// continuation a higher total log-likelihood than every distractor. Run on the base and on the
// fine-tuned model, it turns "SFT moves format, not facts" into a number.

import { readTextFile } from "../io/text.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { TextTokenizer } from "../tokenizer/types.ts";
import { normalizeText } from "../tokenizer/normalize.ts";
import { maskedCrossEntropySum } from "../train/loss.ts";
import { releaseMemory } from "../mlx/memory.ts";
import { padAndCollate } from "../data/batch.ts";
import type { RetentionPick, RetentionScore } from "./types.ts";

/** One cloze item of data/probes/retention.json. Candidates carry their leading space. */
export interface RetentionItem {
  id: string;
  prompt: string;
  answer: string;
  distractors: string[];
  source?: string;
}

/** Read and check a retention file: a JSON array of `{id, prompt, answer, distractors}`. */
export function loadRetentionItems(path: string): RetentionItem[] {
  const raw = JSON.parse(readTextFile(path)) as unknown;
  if (!Array.isArray(raw)) throw new Error(`${path}: expected a JSON array of {id, prompt, answer, distractors}`);
  return raw.map((it, i) => {
    const where = `${path}: item ${i}${typeof it?.id === "string" ? ` (\`${it.id}\`)` : ""}`;
    for (const key of ["id", "prompt", "answer"]) {
      if (typeof it?.[key] !== "string" || !it[key]) throw new Error(`${where} needs a non-empty string "${key}"`);
    }
    if (!Array.isArray(it.distractors) || it.distractors.length === 0 || !it.distractors.every((d: unknown) => typeof d === "string" && d)) {
      throw new Error(`${where} needs "distractors": a non-empty list of non-empty strings`);
    }
    return { id: it.id, prompt: it.prompt, answer: it.answer, distractors: it.distractors, source: it.source };
  });
}

/** Total log-likelihood (nats, ≤ 0) of `candidateIds` following `promptIds`: the sum over the
 * candidate tokens of log p(token | everything before it). */
export function candidateLogLikelihood(model: LlamaModel, promptIds: number[], candidateIds: number[]): number {
  if (promptIds.length === 0 || candidateIds.length === 0) throw new Error("candidateLogLikelihood needs a non-empty prompt and candidate");
  // Inputs are ids[0..n-2], so a row of context + 1 ids fits; drop the oldest prompt ids if needed.
  const keep = model.config.maxPositionEmbeddings + 1 - candidateIds.length;
  if (keep < 1) throw new Error(`candidate of ${candidateIds.length} tokens does not fit the context of ${model.config.maxPositionEmbeddings}`);
  const ids = [...promptIds.slice(-keep), ...candidateIds];
  const mask = ids.map((_, i) => (i >= ids.length - candidateIds.length ? 1 : 0)); // the candidate's tokens
  const batch = padAndCollate([{ ids, mask }], { maxSeqLen: model.config.maxPositionEmbeddings, padId: 0 }); // one row: no padding
  const logits = model.forward(batch.inputs); // [1, T, V]
  const [nll] = maskedCrossEntropySum(logits, batch.targets, batch.mask);
  return -(nll.item() as number);
}

/** Score one item: log-likelihood of each candidate, the best pick, and the answer's margin over
 * the strongest distractor. Text is normalised the way the pretraining corpus was. */
export function scoreItem(model: LlamaModel, tokenizer: TextTokenizer, item: RetentionItem): RetentionPick & { logLikelihoods: number[] } {
  const promptIds = tokenizer.encode(normalizeText(item.prompt));
  const candidates = [item.answer, ...item.distractors];
  const logLikelihoods = candidates.map((c) => candidateLogLikelihood(model, promptIds, tokenizer.encode(normalizeText(c))));
  const best = logLikelihoods.indexOf(Math.max(...logLikelihoods));
  const margin = logLikelihoods[0]! - Math.max(...logLikelihoods.slice(1));
  return { correct: margin > 0, margin, pick: candidates[best]!, logLikelihoods };
}

/** Accuracy and mean margin over `items`, with each item's pick. */
export async function retentionProbe(model: LlamaModel, tokenizer: TextTokenizer, items: RetentionItem[]): Promise<{ score: RetentionScore; picks: RetentionPick[] }> {
  const picks: RetentionPick[] = [];
  for (const item of items) {
    const { correct, margin, pick } = scoreItem(model, tokenizer, item);
    picks.push({ correct, margin, pick });
    await releaseMemory();
  }
  const correct = picks.filter((p) => p.correct).length;
  const total = picks.length;
  return {
    score: {
      correct,
      total,
      accuracy: total === 0 ? 0 : correct / total,
      meanMargin: total === 0 ? 0 : picks.reduce((s, p) => s + p.margin, 0) / total,
    },
    picks,
  };
}
