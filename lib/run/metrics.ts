// metrics.jsonl: one JSON line per report window ({"type": "train"}) and per evaluation
// ({"type": "eval"}), appended while a run trains (SFT and pretraining alike). One schema for the
// writer and every reader (the report, the sweep, export-base). The file is append-safe: a line is
// appended whole or not at all (lib/io/files.ts appendLine), a torn last line left by a crash or a
// full disk is ignored with a warning, a damaged line before the last is an error naming the file
// and the line, and a resumed run first drops the rows past the step it resumes from.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { consola } from "consola";
import { appendLine, FileError, writeFileAtomic } from "../io/files.ts";
import { boolean, finite, int, literal, measure, object, optional, SchemaError, tagged, type Schema } from "../util/schema.ts";

export const METRICS_FILE = "metrics.jsonl";

/** One report window of training (the window's averages). */
export interface TrainRow {
  type: "train";
  step: number;
  loss: number; // nats/token over supervised targets (SFT: the conversations') or every target (pretraining)
  proseLoss?: number; // SFT with replay (--mix-prose): nats/token over the replayed plain-text rows
  proseNtoks?: number; // SFT with replay: their targets in the window
  lr: number;
  gradNorm?: number;
  tokensPerSec?: number;
  ntoks?: number; // SFT: supervised targets in the window
  tokens?: number; // SFT: positions, padding included
  paddingFraction?: number; // SFT
  tokensSeen?: number; // pretraining: tokens trained on so far
  rssMB?: number;
}

/** One held-out evaluation. */
export interface EvalRow {
  type: "eval";
  step: number;
  evalLoss: number; // nats/token, token-weighted
  ntoks?: number; // SFT: supervised targets evaluated
  best?: boolean; // SFT: the best so far (what --keep best keeps)
  bitsPerByte?: number; // pretraining
}

export type MetricsRow = TrainRow | EvalRow;

const TRAIN_ROW: Schema<TrainRow> = object<TrainRow>({
  type: literal("train"), step: int(0), loss: measure(), proseLoss: optional(measure()), proseNtoks: optional(int(0)), lr: finite(), gradNorm: optional(measure()), tokensPerSec: optional(measure()),
  ntoks: optional(int(0)), tokens: optional(int(0)), paddingFraction: optional(measure()), tokensSeen: optional(int(0)), rssMB: optional(measure()),
});
const EVAL_ROW: Schema<EvalRow> = object<EvalRow>({
  type: literal("eval"), step: int(0), evalLoss: measure(), ntoks: optional(int(0)), best: optional(boolean()), bitsPerByte: optional(measure()),
});
export const METRICS_ROW: Schema<MetricsRow> = tagged("type", { train: TRAIN_ROW, eval: EVAL_ROW });

/** Append one row to `runDir/metrics.jsonl` (whole, or not at all). */
export function appendMetrics(runDir: string, row: MetricsRow): void {
  appendLine(join(runDir, METRICS_FILE), JSON.stringify(row));
}

export interface ReadOptions {
  /** Told about a torn last line that was skipped (default: a console warning). */
  warn?: (message: string) => void;
}

/** Every row of a run's metrics.jsonl ([] when there is none). A torn last line is skipped with
 * a warning; any other bad line throws a FileError naming the file and the line. */
export function readMetrics(runDir: string, { warn = (m) => consola.warn(m) }: ReadOptions = {}): MetricsRow[] {
  const path = join(runDir, METRICS_FILE);
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  const rows: MetricsRow[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const last = i === lines.length - 1; // no newline after it: the write may have been cut
    try {
      rows.push(METRICS_ROW.parse(JSON.parse(line)));
    } catch (e) {
      if (last) {
        warn(`${path}: ignoring a torn last line (line ${i + 1}, ${line.length} characters, written when the run was killed or the disk was full)`);
        return;
      }
      const why = e instanceof SchemaError ? e.message : `not valid JSON (${(e as Error).message})`;
      throw new FileError(path, `${path}: line ${i + 1} is damaged: ${why}. Only a last line may be cut short; remove or fix this line (the rows are one JSON object per line)`);
    }
  });
  return rows;
}

/** Drop the rows past `step` (a resumed run continues from there and writes them again), and a
 * torn last line; rewritten atomically. Returns how many rows were dropped. */
export function truncateMetrics(runDir: string, step: number): number {
  const path = join(runDir, METRICS_FILE);
  if (!existsSync(path)) return 0;
  const rows = readMetrics(runDir, { warn: () => {} });
  const kept = rows.filter((r) => r.step <= step);
  const text = readFileSync(path, "utf8");
  if (kept.length === rows.length && (text === "" || text.endsWith("\n"))) return 0;
  writeFileAtomic(path, kept.map((r) => JSON.stringify(r) + "\n").join(""));
  return rows.length - kept.length;
}
