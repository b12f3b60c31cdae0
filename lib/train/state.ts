// The trainer's resumable state on disk: one folder holding the arrays (weights where training left
// off, Adam moments, best weights) and the JSON beside them (step, batch position, history, and the
// arrays file's size and sha256). The folder is written whole into a temporary sibling and swapped
// in, so a kill at any moment leaves either the previous state or the new one, never new arrays
// with old JSON; reading checks the JSON against its schema and the arrays against the recorded
// digest before anything is used.
import type { core as mx } from "@frost-beta/mlx";
import { join } from "node:path";
import { FileError, readJSON, recoverDir, writeDirWhole, writeFileChecked } from "../io/files.ts";
import { SafetensorsError, type FileDigest } from "../io/safetensors.ts";
import { loadArrays, saveArrays } from "../mlx/arrays-file.ts";
import { array, boolean, defaulted, finite, int, json, literal, measure, nullable, object, optional, string, type Schema } from "../util/schema.ts";

export const STATE_ARRAYS = "trainer-state.safetensors";
export const STATE_JSON = "trainer-state.json";

/** How a training ended; summary.json and the sweep use the same union. */
export const TRAIN_STATUSES = ["completed", "stopped-early", "interrupted", "failed"] as const;
export type TrainStatus = (typeof TRAIN_STATUSES)[number];

export interface StepMetrics {
  step: number; // optimizer steps taken so far (a skipped batch does not take one)
  loss: number; // mean CE over the conversations' supervised targets, nats/token (token-weighted over a window)
  proseLoss?: number; // mean CE over the replay rows' targets, nats/token (only with replay)
  lr: number;
  gradNorm: number; // global norm before clipping
  ntoks: number; // the conversations' supervised targets
  proseNtoks: number; // the replay rows' targets (0 without replay); they train alongside, token-weighted
  tokens: number; // positions in the batch, padding and replay rows included
  paddingFraction: number;
  tokensPerSec: number; // tokens (padding included) per second of stepping
  skipped: boolean; // the batch had no supervised targets and was not stepped on
}

export interface EvalRecord {
  step: number;
  evalLoss: number; // nats/token, token-weighted over the whole eval set
  ntoks: number;
}

export interface History {
  train: StepMetrics[]; // one per batch drawn, skipped ones included
  eval: EvalRecord[];
  bestStep: number; // step of the best evaluation; -1 before any
  bestEvalLoss: number; // Infinity before any evaluation
  status: TrainStatus;
  reason?: string;
  skippedBatches: number;
  droppedExamples: number;
  truncatedExamples: number; // cut to maxSeqLen (cfg.truncate), training and eval
}

/** trainer-state.json. */
export interface StateFile {
  step: number;
  batchesDrawn: number; // resume replays the deterministic batch order up to here
  evalsSinceBest: number;
  paths: string[]; // parameter paths, in the order of the arrays
  cfg: unknown; // the config the state was made with, for the reader (resume uses the run's config.json)
  history: Omit<History, "bestEvalLoss"> & { bestEvalLoss: number | null }; // JSON has no Infinity
  arrays: FileDigest; // of trainer-state.safetensors: a state is whole only if they match
}

const STEP_METRICS: Schema<StepMetrics> = object<StepMetrics>({
  step: int(0), loss: measure(), proseLoss: optional(measure()), lr: measure(), gradNorm: measure(), ntoks: int(0),
  proseNtoks: defaulted(int(0), 0), // absent in states written before replay existed
  tokens: int(0),
  paddingFraction: measure(), tokensPerSec: measure(), skipped: boolean(),
});
const EVAL_RECORD: Schema<EvalRecord> = object<EvalRecord>({ step: int(0), evalLoss: measure(), ntoks: int(0) });
export const FILE_DIGEST: Schema<FileDigest> = object<FileDigest>({ bytes: int(0), sha256: string() });
const STATE_FILE: Schema<StateFile> = object<StateFile>({
  step: int(0),
  batchesDrawn: int(0),
  evalsSinceBest: int(0),
  paths: array(string()),
  cfg: json(),
  history: object<StateFile["history"]>({
    train: array(STEP_METRICS), eval: array(EVAL_RECORD), bestStep: int(-1), bestEvalLoss: nullable(finite()),
    status: literal(...TRAIN_STATUSES), reason: optional(string()), skippedBatches: int(0), droppedExamples: int(0),
    truncatedExamples: defaulted(int(0), 0), // absent in states written before --truncate existed
  }),
  arrays: FILE_DIGEST,
});

/** Write a state folder `dir` as one unit (see the header); an earlier state there is replaced
 * only once the new one is complete on disk. */
export function writeState(dir: string, arrays: Record<string, mx.array>, state: Omit<StateFile, "arrays">): void {
  writeDirWhole(dir, "trainer state", (tmp) => {
    const digest = saveArrays(join(tmp, STATE_ARRAYS), arrays, { shown: join(dir, STATE_ARRAYS) });
    writeFileChecked(join(tmp, STATE_JSON), JSON.stringify({ ...state, arrays: digest }, null, 2) + "\n", join(dir, STATE_JSON));
  });
}

/** Read a state folder written by writeState: the JSON checked against its schema, the arrays
 * against their recorded digest, and every array the parameters need present with its shape. */
export function readState(dir: string, params: { paths: string[]; shapes: number[][] }): { state: StateFile; arrays: Record<string, mx.array> } {
  recoverDir(dir);
  const jsonPath = join(dir, STATE_JSON);
  const arraysPath = join(dir, STATE_ARRAYS);
  const fix = "this run cannot be resumed from it; start a new run (the run's checkpoint/ holds the weights saved with it)";
  let state: StateFile;
  try {
    state = readJSON(jsonPath, STATE_FILE);
  } catch (e) {
    if (e instanceof FileError) throw new FileError(jsonPath, `${e.message}: ${fix}`);
    throw e;
  }
  if (JSON.stringify(state.paths) !== JSON.stringify(params.paths)) {
    throw new FileError(jsonPath, `${jsonPath}: the saved parameters do not match this model's (${state.paths.length} vs ${params.paths.length}): resume with the same --base`);
  }
  let arrays: Record<string, mx.array>;
  try {
    arrays = loadArrays(arraysPath, state.arrays);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new FileError(arraysPath, `${arraysPath}: ${e.problem}: ${fix}`);
    throw e;
  }
  const prefixes = ["weights", "m", "v", ...(`best.${params.paths[0]}` in arrays ? ["best"] : [])];
  for (const prefix of prefixes) {
    params.paths.forEach((p, i) => {
      const a = arrays[`${prefix}.${p}`];
      if (!a || JSON.stringify(a.shape) !== JSON.stringify(params.shapes[i])) {
        throw new FileError(arraysPath, `${arraysPath}: \`${prefix}.${p}\` is ${a ? `of shape ${JSON.stringify(a.shape)}, not ${JSON.stringify(params.shapes[i])}` : "missing"}: ${fix}`);
      }
    });
  }
  return { state, arrays };
}
