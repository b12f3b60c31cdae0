// Probe a base model and its fine-tuned version side by side: generation probes (same prompts,
// seed and settings for both), held-out prose loss (forgetting), cloze retention (facts), and the
// verdict written from those numbers. The result is plain JSON for summary.json and the reports.

import { readTextFile } from "../io/text.ts";
import { isAbsolute, relative } from "node:path";
import type { LlamaModel } from "../model/llama.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { SPECIAL_TOKENS } from "../format/tokens.ts";
import { loadNoiseTemplates } from "../data/data.ts";
import { ChatTemplate } from "../format/template.ts";
import type { Conversation } from "../format/types.ts";
import { DEFAULT_NOISE, HELDOUT_PROSE, PROJECT_ROOT, RETENTION_ITEMS } from "../util/paths.ts";
import { releaseMemory } from "../mlx/memory.ts";
import { generateReply, loadProbes, probePrompts, promptIds } from "./generation.ts";
import { categoryMetrics, describeOutput, generationMetrics } from "./metrics.ts";
import { proseLoss } from "./prose.ts";
import { loadRetentionItems, retentionProbe } from "./retention.ts";
import { verdictText } from "./verdict.ts";
import { isMemorised, MEMORISED_RUN, TrainingAnswers } from "./memorisation.ts";
import type { ProbeReport, ProbeSample } from "./types.ts";
import { ChatFormat } from "../format/chat-format.ts";

export const DEFAULT_PROBE_TOKENS = 96; // reply budget: room for a paragraph, short enough to run 2 × ~50 prompts in minutes

export interface ProbeRunOptions {
  base: LlamaModel;
  sft: LlamaModel;
  tokenizer: Tokenizer; // shared by both models
  probesPath: string; // data/sft/probes.json layout
  evalConversations: Conversation[]; // their first user prompts join the chat probes
  evalKinds?: (string | undefined)[]; // each eval conversation's data "kind": reported per category
  trainConversations: Conversation[]; // the memorisation probe compares chat replies with their answers
  seed: number;
  maxTokens?: number;
  temperature?: number; // 0 = greedy, the default: differences come from the weights, not the dice
  prosePath?: string; // held-out plain prose for the forgetting probe
  retentionPath?: string; // cloze items
  noisePath?: string; // chat-filler detectors for the off-pattern rate
  onProgress?: (msg: string) => void;
}

/** Run every probe on `base` and `sft` and assemble the report. Files are read (and checked)
 * before any model runs, so a bad path fails in milliseconds. */
export async function probeRun({
  base,
  sft,
  tokenizer,
  probesPath,
  evalConversations,
  evalKinds = [],
  trainConversations,
  seed,
  maxTokens = DEFAULT_PROBE_TOKENS,
  temperature = 0,
  prosePath = HELDOUT_PROSE,
  retentionPath = RETENTION_ITEMS,
  noisePath = DEFAULT_NOISE,
  onProgress = () => {},
}: ProbeRunOptions): Promise<ProbeReport> {
  const prompts = probePrompts(loadProbes(probesPath), evalConversations, evalKinds);
  const { detectors } = loadNoiseTemplates(noisePath);
  const items = loadRetentionItems(retentionPath);
  const proseText = readTextFile(prosePath);
  const chat = ChatFormat.of(tokenizer);
  const reply = { maxTokens, temperature, seed, stopIds: chat.trainedStopIds };
  const template = new ChatTemplate();
  const answers = new TrainingAnswers(trainConversations, tokenizer);
  const describe = (gen: Parameters<typeof describeOutput>[0], mode: ProbeSample["mode"]) => {
    const out = describeOutput(gen, mode, chat, detectors);
    if (mode !== "chat") return out;
    const closest = answers.closest(out.text);
    return { ...out, closest, memorised: isMemorised(closest) };
  };

  const samples: ProbeSample[] = [];
  for (const [i, prompt] of prompts.entries()) {
    onProgress(`generate ${i + 1}/${prompts.length}: ${prompt.id}`);
    const ids = promptIds(prompt, tokenizer, template);
    const baseGen = await generateReply(base, tokenizer, ids, reply);
    const sftGen = await generateReply(sft, tokenizer, ids, reply);
    samples.push({
      ...prompt,
      base: describe(baseGen, prompt.mode),
      sft: describe(sftGen, prompt.mode),
    });
    await releaseMemory();
  }
  const metricsOf = (which: "base" | "sft") => generationMetrics(samples.map((s) => ({ mode: s.mode, output: s[which] })), detectors);

  onProgress("prose loss: base");
  const baseProse = await proseLoss(base, tokenizer, proseText);
  onProgress("prose loss: sft");
  const sftProse = await proseLoss(sft, tokenizer, proseText);
  const delta = sftProse.loss - baseProse.loss;

  onProgress(`retention: ${items.length} cloze items, base`);
  const baseRetention = await retentionProbe(base, tokenizer, items);
  onProgress(`retention: ${items.length} cloze items, sft`);
  const sftRetention = await retentionProbe(sft, tokenizer, items);

  const report: Omit<ProbeReport, "verdict"> = {
    settings: {
      maxTokens,
      temperature,
      seed,
      stopToken: SPECIAL_TOKENS.end,
      probesPath: shown(probesPath),
      probePrompts: prompts.filter((p) => p.kind !== "eval").length,
      evalPrompts: prompts.filter((p) => p.kind === "eval").length,
      prosePath: shown(prosePath),
      retentionPath: shown(retentionPath),
      noisePath: shown(noisePath),
      memorisedRun: MEMORISED_RUN,
      trainingAnswers: answers.size,
    },
    base: metricsOf("base"),
    sft: metricsOf("sft"),
    prose: {
      baseLoss: baseProse.loss,
      sftLoss: sftProse.loss,
      delta,
      relative: delta / baseProse.loss,
      ntoks: baseProse.ntoks,
      windows: baseProse.windows,
      windowLen: baseProse.windowLen,
    },
    retention: {
      base: baseRetention.score,
      sft: sftRetention.score,
      items: items.map((it, k) => ({
        id: it.id,
        source: it.source,
        prompt: it.prompt,
        answer: it.answer,
        base: baseRetention.picks[k]!,
        sft: sftRetention.picks[k]!,
      })),
    },
    samples,
  };
  const categories = categoryMetrics(samples);
  if (categories.length) report.categories = categories;
  return { ...report, verdict: verdictText(report) };
}

/** A path as stored in the report: relative to the project when inside it, so reports from two
 * clones compare equal. */
function shown(path: string): string {
  const rel = relative(PROJECT_ROOT, path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}
