// Probe a base model and its fine-tuned version side by side: generation probes (same prompts,
// seed and settings for both), held-out prose loss (forgetting), cloze retention (facts), and the
// verdict written from those numbers. The result is plain JSON for summary.json and the reports.
// One model at a time: every probe runs on the fine-tuned model, then on the base.

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
import { categoryMetrics, describeOutput, generationMetrics, type RawGeneration } from "./metrics.ts";
import { proseLoss, type ProseLoss } from "./prose.ts";
import { loadRetentionItems, retentionProbe } from "./retention.ts";
import { verdictText } from "./verdict.ts";
import { isMemorised, MEMORISED_RUN, TrainingAnswers } from "./memorisation.ts";
import type { ProbeReport, ProbeSample } from "./types.ts";
import { ChatFormat } from "../format/chat-format.ts";

export const DEFAULT_PROBE_TOKENS = 96; // reply budget: room for a paragraph, short enough to run 2 × ~50 prompts in minutes

/** A model to probe, or how to make it. probeRun asks for each side's model only when that side
 * runs and lets go of it before the other side starts, so a caller that passes makers (a load from
 * disk, a merge) holds one decodable model at a time: two float32 copies of a 0.6B base are 4.8 GB. */
export type ProbeModel = LlamaModel | (() => LlamaModel | Promise<LlamaModel>);

/** A ProbeModel that gives `model` to probeRun and keeps no reference to it: a model the caller has
 * already loaded (and so checked) can then be freed as soon as its side is done, provided the caller
 * holds no reference either. */
export function handOver(model: LlamaModel): () => LlamaModel {
  const held = [model];
  return () => {
    const m = held.pop();
    if (!m) throw new Error("handOver: this model was already handed over");
    return m;
  };
}

export interface ProbeRunOptions {
  base: ProbeModel;
  sft: ProbeModel; // probed first: a caller may hand over a model it has just loaded (and so checked)
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

/** What one model gave on every probe. */
interface SideResult {
  gens: RawGeneration[]; // one per prompt, in the prompts' order
  prose: ProseLoss;
  retention: Awaited<ReturnType<typeof retentionProbe>>;
}

/** Run every probe on `sft`, then on `base`, and assemble the report. Files are read (and checked)
 * before any model runs, so a bad path fails in milliseconds. Each reply is seeded on its own, so
 * running one side's prompts after the other's gives what alternating them gave. */
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
  const promptIdsOf = prompts.map((p) => promptIds(p, tokenizer, template));

  const probeSide = async (which: "base" | "sft", model: LlamaModel): Promise<SideResult> => {
    const gens: RawGeneration[] = [];
    for (const [i, prompt] of prompts.entries()) {
      onProgress(`${which}: generate ${i + 1}/${prompts.length}: ${prompt.id}`);
      gens.push(await generateReply(model, tokenizer, promptIdsOf[i]!, reply));
      await releaseMemory();
    }
    onProgress(`${which}: prose loss`);
    const prose = await proseLoss(model, tokenizer, proseText);
    onProgress(`${which}: retention, ${items.length} cloze items`);
    return { gens, prose, retention: await retentionProbe(model, tokenizer, items) };
  };
  const sides: Partial<Record<"base" | "sft", SideResult>> = {};
  for (const [which, source] of [["sft", sft], ["base", base]] as const) {
    sides[which] = await probeSide(which, typeof source === "function" ? await source() : source);
    // This side's model is unreferenced here now: free its arrays before the other side is made.
    await releaseMemory({ toSystem: true });
  }
  const { base: b, sft: s } = sides as Record<"base" | "sft", SideResult>;

  const samples: ProbeSample[] = prompts.map((prompt, i) => ({
    ...prompt,
    base: describe(b.gens[i]!, prompt.mode),
    sft: describe(s.gens[i]!, prompt.mode),
  }));
  const metricsOf = (which: "base" | "sft") => generationMetrics(samples.map((x) => ({ mode: x.mode, output: x[which] })), detectors);
  const [baseProse, sftProse, baseRetention, sftRetention] = [b.prose, s.prose, b.retention, s.retention];
  const delta = sftProse.loss - baseProse.loss;

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
