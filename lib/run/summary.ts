// summary.json: how a run ended and what it measured. One schema for the writer (lib/sft/run.ts;
// pretraining writes the same head) and every reader (the sweep's table, chat's run picker,
// --resume, the report): a reader gets typed fields or an error naming the damaged file, never a
// string path into an untyped object.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readJSON, writeJSON } from "../io/files.ts";
import { PROBE_REPORT, type ProbeReport } from "../probes/types.ts";
import { TRAIN_STATUSES, type TrainStatus } from "../train/state.ts";
import { boolean, defaulted, finite, int, literal, measure, nullable, object, optional, record, string, type Schema } from "../util/schema.ts";

export const SUMMARY_FILE = "summary.json";

/** Statuses whose run is finished: its checkpoint is the run's result, and a sweep skips it. */
export const FINISHED: readonly TrainStatus[] = ["completed", "stopped-early"];

/** What every run's summary.json holds (SFT and pretraining): how it ended. */
export interface SummaryHead {
  status: TrainStatus;
  reason?: string; // why it failed, stopped early or was interrupted
}

/** Where the probes stand: "pending" until they have run (an interrupted run, or Ctrl-C during the
 * probes: `train.ts --resume` runs them), "skipped" when they will not (--probe-tokens 0, a crash). */
export type ProbeStatus = "done" | "pending" | "skipped";

/** Held-out loss of one data "kind": token-weighted over its conversations. */
export interface KindLoss {
  loss: number; // nats/token
  ntoks: number;
  conversations: number;
}

/** An SFT run's summary.json. */
/** What a run replayed (--mix-prose): the text, its size, the rows per batch, the last window's prose loss. */
export interface ReplaySummary {
  source: string;
  tokens: number;
  rowsPerBatch: number;
  finalTrainProseLoss: number | null;
}

export interface RunSummary extends SummaryHead {
  step: number; // optimizer steps taken
  steps: number; // planned
  wallSec: number; // wall time of the run so far, resumed parts included
  wallTime: string; // the same as h:mm:ss
  bestStep: number; // -1 before any evaluation
  bestEvalLoss: number | null; // nats/token; null without an evaluation
  finalEvalLoss: number | null;
  initialEvalLoss: number | null; // at step 0: the base's held-out loss
  finalTrainLoss: number | null;
  evals: number;
  tokens: number; // positions stepped on, padding included
  supervisedTokens: number;
  paddingFraction: number | null;
  tokensPerSec: number | null;
  stepSec: number; // seconds spent in optimizer steps (evaluations excluded)
  skippedBatches: number;
  droppedExamples: number;
  truncatedExamples: number; // over-long rows cut (--truncate)
  epochs?: number; // passes over the training conversations (absent in summaries written before --epochs)
  replay?: ReplaySummary; // the run mixed pretraining replay rows (--mix-prose)
  evalLossByKind?: Record<string, KindLoss>; // when the eval data has kinds
  peakMemMB: number; // the whole run's peak resident memory (probes included once they ran)
  trainPeakMemMB: number;
  base: { path: string; hashBefore: string; hashAfter: string; unchanged: boolean };
  checkpoint: string; // the folder of the kept weights, relative to the run folder
  probes: ProbeReport | null;
  probeStatus?: ProbeStatus; // absent in summaries written before it existed
  probeSec?: number;
}

const HEAD = { status: literal(...TRAIN_STATUSES), reason: optional(string()) };
export const SUMMARY_HEAD: Schema<SummaryHead> = object<SummaryHead>(HEAD);
export const RUN_SUMMARY: Schema<RunSummary> = object<RunSummary>({
  ...HEAD,
  step: int(0),
  steps: int(0),
  wallSec: finite(),
  wallTime: string(),
  bestStep: int(-1),
  bestEvalLoss: nullable(finite()),
  finalEvalLoss: nullable(finite()),
  initialEvalLoss: nullable(finite()),
  finalTrainLoss: nullable(finite()),
  evals: int(0),
  tokens: int(0),
  supervisedTokens: int(0),
  paddingFraction: nullable(finite()),
  tokensPerSec: nullable(finite()),
  stepSec: measure(),
  skippedBatches: int(0),
  droppedExamples: int(0),
  truncatedExamples: defaulted(int(0), 0), // absent in summaries written before --truncate existed
  epochs: optional(measure()),
  replay: optional(object<ReplaySummary>({ source: string(), tokens: int(0), rowsPerBatch: int(1), finalTrainProseLoss: nullable(finite()) })),
  evalLossByKind: optional(record(object<KindLoss>({ loss: measure(), ntoks: int(0), conversations: int(0) }))),
  peakMemMB: measure(),
  trainPeakMemMB: measure(),
  base: object<RunSummary["base"]>({ path: string(), hashBefore: string(), hashAfter: string(), unchanged: boolean() }),
  checkpoint: string(),
  probes: nullable(PROBE_REPORT),
  probeStatus: optional(literal("done", "pending", "skipped")),
  probeSec: optional(measure()),
});

export function writeSummary(runDir: string, summary: RunSummary): void {
  writeJSON(join(runDir, SUMMARY_FILE), RUN_SUMMARY.parse(summary)); // checked on the way out too: a reader never meets what the writer got wrong
}

/** A run's summary.json; null when there is none. Throws a FileError naming the file if it is
 * damaged or not an SFT run's summary. */
export function readSummary(runDir: string): RunSummary | null {
  const path = join(runDir, SUMMARY_FILE);
  return existsSync(path) ? readJSON(path, RUN_SUMMARY) : null;
}

/** The head of any run's summary.json (SFT or pretraining); null when there is none. */
export function readSummaryHead(runDir: string): SummaryHead | null {
  const path = join(runDir, SUMMARY_FILE);
  return existsSync(path) ? readJSON(path, SUMMARY_HEAD) : null;
}

/** Where a summary's probes stand, also for summaries written before probeStatus existed. */
export function probeStatusOf(s: RunSummary): ProbeStatus {
  return s.probeStatus ?? (s.probes ? "done" : "skipped");
}
