// The job an export hands to another engine: a run's config (from its folder, or from --config and
// flags), its starting checkpoint, and the exact rows and batch order the project trains on. Each
// format (lib/export/formats.ts) writes it in its engine's terms into a new folder that is built
// under a temporary name and renamed in: an existing folder is never written into.
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { swapDir, tempSibling, writeFileChecked } from "../io/files.ts";
import { UsageError } from "../util/cli.ts";
import { readRunConfigFile, resolveRunConfig, type RunConfig } from "../sft/run-config.ts";
import { loadRunInputs, type RunInputs } from "../sft/run.ts";
import { fitsLength, iterateBatches } from "../data/batch.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { stepsForEpochs } from "../train/config.ts";
import { gitCommit } from "../run/folder.ts";
import type { Conversation, SFTExample } from "../format/types.ts";

/** Where a job comes from: a run folder, or a config file and flags (the defaults otherwise). */
export interface ExportSource {
  run?: string; // runs/<dir>: its config.json (the resolved config of that run)
  config?: string; // a run config JSON, as `bun scripts/train.ts --config` takes
  data?: string;
  evalData?: string;
  base?: string;
}

/** The run config an export describes, and the run folder when there is one. No MLX here. */
export function resolveExportConfig(src: ExportSource): { cfg: RunConfig; runDir?: string } {
  const flags: Partial<RunConfig> = { data: src.data, evalData: src.evalData, base: src.base };
  if (src.run) {
    if (src.config) throw new UsageError("give either --run (that run's own config.json) or --config, not both");
    const runDir = resolve(src.run);
    const path = join(runDir, "config.json");
    if (!existsSync(path)) throw new UsageError(`--run ${src.run}: no config.json there; give a folder made by bun scripts/train.ts`);
    return { cfg: resolveRunConfig(readRunConfigFile(path), flags), runDir };
  }
  return { cfg: resolveRunConfig(src.config ? readRunConfigFile(src.config) : {}, flags) };
}

export interface ExportJob {
  cfg: RunConfig;
  runDir?: string;
  inputs: RunInputs;
  train: Conversation[]; // the rows the project trains on (over-length ones dropped when asked)
  eval: Conversation[];
  trainExamples: SFTExample[]; // the project's own render of `train`: ids and mask
  evalExamples: SFTExample[];
  dropped: { train: number; eval: number };
  batches: number[][]; // one per optimizer step: indices into `train`, in the project's order
}

/** Load and check the run's inputs as the project would before training, and draw its batches. */
export async function loadExportJob(cfg: RunConfig, runDir?: string): Promise<ExportJob> {
  const inputs = await loadRunInputs(cfg, { withReplay: false }); // a replay run is the format's to refuse (its mapping table)
  // The trainer's own drop rule (dropOverlength); without it loadRunInputs has refused long rows.
  const keep = (examples: SFTExample[]) => examples.map((ex, i) => (fitsLength(ex, cfg.maxSeqLen) ? i : -1)).filter((i) => i >= 0);
  const trainKept = keep(inputs.trainExamples);
  const evalKept = keep(inputs.evalExamples);
  const trainExamples = trainKept.map((i) => inputs.trainExamples[i]!);
  if (cfg.epochs > 0) cfg = { ...cfg, steps: stepsForEpochs(cfg.epochs, trainExamples.length, cfg.batchSize, cfg.gradAccum) }; // as the trainer derives them
  const evalExamples = evalKept.map((i) => inputs.evalExamples[i]!);
  return {
    cfg, runDir, inputs,
    train: trainKept.map((i) => inputs.trainConversations[i]!),
    eval: evalKept.map((i) => inputs.evalConversations[i]!),
    trainExamples, evalExamples,
    dropped: { train: inputs.trainExamples.length - trainKept.length, eval: inputs.evalExamples.length - evalKept.length },
    batches: projectBatches(trainExamples, cfg),
  };
}

/** The batches of the first `cfg.steps` optimizer steps, as the SFT trainer draws them (the same
 * iterateBatches call); a batch without supervised targets is skipped there, so here too. */
export function projectBatches(examples: SFTExample[], cfg: Pick<RunConfig, "steps" | "batchSize" | "seed" | "groupByLength">): number[][] {
  const supervised = (ex: SFTExample) => ex.mask.slice(1).some((m) => m > 0);
  if (!examples.some(supervised)) throw new UsageError("no training row has a supervised target: nothing to export");
  const batches: number[][] = [];
  for (const { indices, examples: rows } of iterateBatches(examples, { batchSize: cfg.batchSize, seed: cfg.seed, groupByLength: cfg.groupByLength })) {
    if (batches.length === cfg.steps) break;
    if (rows.some(supervised)) batches.push(indices);
  }
  return batches;
}

/** Supervised targets of rendered rows: mask[1:] (the first id is never a target). */
export const countTargets = (examples: SFTExample[]): number =>
  examples.reduce((n, ex) => n + ex.mask.slice(1).reduce((a, b) => a + b, 0), 0);

/** Conversations as chat JSONL: one `{"messages": [{"role", "content"}, ...]}` per line, the
 * format TRL, mlx-lm and this project all read. */
export function messagesJsonl(conversations: Conversation[]): string {
  return conversations.map((c) => JSON.stringify({ messages: c.map(({ role, content }) => ({ role, content })) }) + "\n").join("");
}

/** The starting checkpoint, as the project starts training from it: the base, grown by the chat
 * tokens when the run adds them, saved in the Hugging Face layout with the project's template
 * (whose {% generation %} markers carry the training mask). A copy: the base is only read. */
export function writeStartCheckpoint(dir: string, job: ExportJob): void {
  const { inputs, cfg, runDir } = job;
  saveCheckpoint(dir, inputs.model, inputs.tokenizer, {
    meta: { kind: "export-start", base: cfg.base, baseHash: inputs.baseHash, addedTokens: inputs.addedTokens, run: runDir ?? null },
  });
}

/** What every export records about its job in export.json. */
export function manifest(format: string, job: ExportJob, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    format,
    createdAt: new Date().toISOString(),
    git: gitCommit(),
    run: job.runDir ?? null,
    base: job.cfg.base,
    baseHash: job.inputs.baseHash,
    addedTokens: job.inputs.addedTokens,
    data: { train: job.cfg.data, eval: job.cfg.evalData, sha256: job.inputs.dataSha256 },
    rows: { train: job.train.length, eval: job.eval.length, droppedOverlength: job.dropped },
    supervisedTargets: { train: countTargets(job.trainExamples), eval: countTargets(job.evalExamples) },
    config: job.cfg,
    ...extra,
  };
}

/** Write a new folder `out` from `files` (relative path → contents) and `fill` (writes more into
 * the folder, e.g. a checkpoint): each file checked as written (a full disk says so), the folder
 * built under a temporary sibling name and swapped in at the end, never over an existing one. */
export function writeExportFolder(out: string, files: Record<string, string>, fill: (dir: string) => void = () => {}): string {
  out = resolve(out);
  if (existsSync(out)) throw new UsageError(`${out} already exists: exports are never overwritten; remove it or pass --out <new folder>`);
  mkdirSync(dirname(out), { recursive: true });
  const tmp = tempSibling(out);
  mkdirSync(tmp);
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(tmp, name)), { recursive: true });
      writeFileChecked(join(tmp, name), text, join(out, name));
    }
    fill(tmp);
    if (existsSync(out)) throw new UsageError(`${out} appeared while the export was written: it is left as it is; pass --out <new folder>`);
    swapDir(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return out;
}

/** A file of the project read as text (the generated script's static part lives beside this). */
export const readAsset = (name: string): string => readFileSync(join(import.meta.dir, name), "utf8");
