// `bun scripts/train.ts --resume runs/<dir>`: continue what a run left undone, from what is on disk
// and checked. A run interrupted during training continues from its trainer-state/ (the same
// batches, the same result as a run never interrupted); a run whose probes did not run (Ctrl-C
// during them, or while saving) gets its probes. Nothing in the folder is trusted blindly: symbolic
// links are refused, config.json, summary.json, metrics.jsonl and the state are checked, and what a
// crash mid-save can leave (a folder set aside, a temporary folder) is put right first.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { consola } from "consola";
import { UsageError } from "../util/cli.ts";
import { FileError, recoverDir, refuseSymlinks } from "../io/files.ts";
import { CheckpointError, hashCheckpoint } from "../model/checkpoint.ts";
import { AdapterError, loadForDecoding } from "../model/adapter.ts";
import { truncateMetrics } from "../run/metrics.ts";
import { probeStatusOf, readSummary, type RunSummary } from "../run/summary.ts";
import { readConfigFile } from "./config-file.ts";
import { handOver, type ProbeModel } from "../probes/compare.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { executeRun, loadRunData, prepareRun, probe, shown, STATE_DIR } from "./run.ts";

const log = consola.withTag("train");

/** Continue the run in `runDir` with its own config.json. Returns the process exit code. */
export async function resumeRun(runDir: string): Promise<number> {
  if (!existsSync(join(runDir, "config.json"))) throw new UsageError(`--resume ${shown(runDir)}: no config.json there; give a folder made by scripts/train.ts`);
  const stateDir = join(runDir, STATE_DIR);
  let prior: RunSummary | null;
  try {
    refuseSymlinks(runDir);
    recoverDir(stateDir);
    recoverDir(join(runDir, "checkpoint"));
    recoverDir(join(runDir, "adapter")); // a LoRA run's
    prior = readSummary(runDir);
  } catch (e) {
    if (e instanceof FileError) throw new UsageError(`--resume ${shown(runDir)}: ${e.message}`);
    throw e;
  }
  const { provenance: recorded, ...cfg } = readConfigFile(runDir);

  if (!existsSync(join(stateDir, "trainer-state.json"))) {
    if (prior && probeStatusOf(prior) === "pending" && prior.status !== "interrupted") return probesOnly(runDir, cfg, recorded.baseHash, recorded.addedTokens, prior);
    throw new UsageError(`--resume ${shown(runDir)}: nothing to resume (status \`${prior?.status ?? "unknown"}\`, no ${STATE_DIR}/${prior && probeStatusOf(prior) === "done" ? ", probes done" : ""}); only an interrupted run, or one whose probes did not run, can be resumed`);
  }
  const p = await prepareRun(cfg);
  if (p.baseHash !== recorded.baseHash) throw new UsageError(`--resume: the base ${shown(p.cfg.base)} is not the one this run started from (hash ${p.baseHash.slice(0, 12)}, recorded ${recorded.baseHash.slice(0, 12)})`);
  for (const k of ["train", "eval", "prose"] as const) {
    if (p.dataSha256[k] !== recorded.dataSha256[k]) throw new UsageError(`--resume: the ${k === "prose" ? "replay text" : `${k} data file`} changed since this run started: resuming would train on different data; start a new run instead`);
  }
  try {
    p.trainer.loadState(stateDir);
    // Rows a later, killed attempt wrote past this state are written again from here: drop them.
    const dropped = truncateMetrics(runDir, p.trainer.step);
    if (dropped) log.info(`metrics.jsonl: dropped ${dropped} row(s) past step ${p.trainer.step}, written by an attempt that ended without saving`);
  } catch (e) {
    if (e instanceof FileError) throw new UsageError(`--resume ${shown(runDir)}: ${e.message}`);
    throw e;
  }
  log.info(`resuming ${shown(runDir)} at step ${p.trainer.step} of ${p.cfg.steps}`);
  return executeRun(p, runDir, { resumed: true, priorSec: prior?.wallSec ?? 0 });
}

/** Run the probes of a finished run from its checkpoint, or its adapter on the base (they were
 * interrupted, or never started). */
async function probesOnly(runDir: string, cfg: Parameters<typeof prepareRun>[0], baseHash: string, addedTokens: string[], summary: RunSummary): Promise<number> {
  if (hashCheckpoint(cfg.base) !== baseHash) throw new UsageError(`--resume: the base ${shown(cfg.base)} is not the one this run started from: its probes would compare against another model`);
  const { sft, tokenizer } = await loadRunModel(runDir, cfg.base, summary.checkpoint);
  log.info(`${shown(runDir)}: ${summary.status} at step ${summary.step}; running the probes it has not run`);
  const t0 = performance.now();
  const data = loadRunData(cfg); // --course-split: the same held-out set as the run's
  const held = data.eval;
  return probe({ cfg, sft, tokenizer, addedTokens, trainConversations: data.train.map((c) => c.messages), evalConversations: held.map((c) => c.messages), evalKinds: held.map((c) => c.kind) }, runDir, summary, t0, summary.wallSec);
}

/** The run's fine-tuned model (adapter/: merged onto the base), loaded now so that a broken folder
 * fails before any probe, and handed over: nothing here keeps it once the probes' side for it is done,
 * and the base is loaded only then. */
async function loadRunModel(runDir: string, base: string, weightsDir: string): Promise<{ sft: ProbeModel; tokenizer: Tokenizer }> {
  try {
    const { model, tokenizer } = await loadForDecoding(join(runDir, weightsDir), { base });
    return { sft: handOver(model), tokenizer };
  } catch (e) {
    if (e instanceof CheckpointError || e instanceof AdapterError) throw new UsageError(`--resume ${shown(runDir)}: the run's checkpoint cannot be loaded: ${e.message}`);
    throw e;
  }
}
