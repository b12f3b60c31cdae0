// Run a sweep's plan: one `bun scripts/train.ts` subprocess per value, one after another (a
// subprocess isolates each run's memory and crashes). Runs already finished are skipped and an
// interrupted one is continued, so the same loop serves a fresh sweep and `--resume`. A failed run
// is recorded and the sweep goes on.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../util/paths.ts";
import { FileError } from "../io/files.ts";
import { FINISHED, probeStatusOf, readSummary, type RunSummary } from "../run/summary.ts";
import { commandLine, trainArgs, writePlan, type SweepPlan, type SweepRun } from "./plan.ts";

/** Starts train.ts with these arguments and resolves to its exit code. Swapped out in tests. */
export type Spawner = (args: string[]) => Promise<number>;

/** The real spawner: `bun scripts/train.ts ...` in the current directory, sharing the terminal. */
export const spawnTrain: Spawner = async (args) => {
  const proc = Bun.spawn([process.execPath, join(PROJECT_ROOT, "scripts/train.ts"), ...args], { stdio: ["inherit", "inherit", "inherit"] });
  return await proc.exited;
};

export interface SweepOptions {
  spawn?: Spawner;
  shouldStop?: () => boolean; // checked before each run and after an interrupted one (Ctrl-C)
  onRunDone?: (plan: SweepPlan) => void; // e.g. rewrite the summary, so partial results are visible
  log?: (message: string) => void;
}

export interface SweepResult {
  ran: number;
  skipped: number;
  failed: number;
  stopped: boolean; // stopped before the end (Ctrl-C)
}

/** Run every unfinished run of `plan` in order, updating `sweep.json` before and after each. */
export async function runSweep(plan: SweepPlan, sweepDir: string, { spawn = spawnTrain, shouldStop = () => false, onRunDone = () => {}, log = () => {} }: SweepOptions = {}): Promise<SweepResult> {
  const result: SweepResult = { ran: 0, skipped: 0, failed: 0, stopped: false };
  for (const [i, run] of plan.runs.entries()) {
    const label = `run ${i + 1}/${plan.runs.length} ${plan.param}=${run.value}`;
    run.dir ??= latestRunDir(sweepDir, run.name); // a sweep killed mid-run never recorded the folder
    if (isFinished(sweepDir, run)) {
      run.status = runSummary(sweepDir, run).summary!.status;
      log(`${label}: already ${run.status} in \`${run.dir}\`, skipped`);
      result.skipped++;
      continue;
    }
    if (shouldStop()) {
      result.stopped = true;
      break;
    }
    // An interrupted run (in training, or in its probes) continues in its own folder (train.ts
    // --resume); anything else starts anew.
    const resumable = run.status === "interrupted" && canResume(runSummary(sweepDir, run).summary);
    const args = resumable ? ["--resume", join(sweepDir, run.dir!)] : trainArgs(plan, run, sweepDir);
    const before = new Set(runDirs(sweepDir, run.name));
    Object.assign(run, { status: "running", attempts: run.attempts + 1, command: commandLine(args) });
    delete run.exitCode;
    delete run.reason;
    writePlan(sweepDir, plan);
    log(`${label}: ${run.command}`);

    const exitCode = await spawn(args);
    const dir = resumable ? run.dir : runDirs(sweepDir, run.name).filter((d) => !before.has(d)).at(-1);
    if (dir) run.dir = dir;
    else delete run.dir; // an earlier attempt's folder is not this attempt's result
    Object.assign(run, { exitCode, ...settle(sweepDir, run, exitCode) });
    writePlan(sweepDir, plan);
    result.ran++;
    if (run.status === "failed") result.failed++;
    log(`${label}: ${run.status}${run.reason ? ` (${run.reason})` : ""}${run.dir ? ` in \`${run.dir}\`` : ""}`);
    onRunDone(plan);
    if (run.status === "interrupted" && shouldStop()) {
      result.stopped = true;
      break;
    }
  }
  return result;
}

/** A run's status and failure reason from its summary.json and train.ts's exit code. */
export function settle(sweepDir: string, run: SweepRun, exitCode: number): { status: SweepRun["status"]; reason?: string } {
  if (!run.dir) return { status: "failed", reason: `train.ts exited with code ${exitCode} before making a run folder: see its error above` };
  const { summary, problem } = runSummary(sweepDir, run);
  if (problem) return { status: "failed", reason: problem };
  if (!summary) return { status: "failed", reason: `train.ts exited with code ${exitCode} and left no summary.json` };
  const status = summary.status;
  // Ctrl-C during the probes (exit 130): the training finished, the probes are pending; --resume runs them
  if (exitCode === 130 && canResume(summary)) return { status: "interrupted", reason: summary.status === "interrupted" ? summary.reason : "interrupted during the probes" };
  if (exitCode !== 0 && FINISHED.includes(status)) return { status: "failed", reason: `train.ts exited with code ${exitCode} after writing status \`${status}\`` };
  return summary.reason && status !== "completed" ? { status, reason: summary.reason } : { status };
}

/** Whether a run's folder holds a summary.json with a finished status and its probes done or
 * skipped, and the sweep did not record the run as failed (e.g. a crash after the summary was
 * written): what `--resume` skips. */
export function isFinished(sweepDir: string, run: SweepRun): boolean {
  if (run.status === "failed") return false;
  const { summary } = runSummary(sweepDir, run);
  return summary !== null && FINISHED.includes(summary.status) && probeStatusOf(summary) !== "pending";
}

/** Whether `train.ts --resume` has something to continue: training, or the probes. */
function canResume(summary: RunSummary | null): boolean {
  return summary !== null && (summary.status === "interrupted" || probeStatusOf(summary) === "pending");
}

/** A run's summary.json: null when there is none (yet), or the problem when it cannot be read
 * (damaged: the error names the file). */
export function runSummary(sweepDir: string, run: SweepRun): { summary: RunSummary | null; problem?: string } {
  if (!run.dir) return { summary: null };
  try {
    return { summary: readSummary(join(sweepDir, run.dir)) };
  } catch (e) {
    if (e instanceof FileError) return { summary: null, problem: e.message };
    throw e;
  }
}

/** Run folders train.ts made for `name` in the sweep folder (`<YYYYMMDD-HHMMSS>-<name>[-k]`), oldest first. */
export function runDirs(sweepDir: string, name: string): string[] {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(`^(\\d{8}-\\d{6})-${escaped}(?:-(\\d+))?$`);
  const key = (d: string) => {
    const m = re.exec(d)!;
    return `${m[1]}-${(m[2] ?? "1").padStart(6, "0")}`;
  };
  if (!existsSync(sweepDir)) return [];
  return readdirSync(sweepDir)
    .filter((d) => re.test(d) && statSync(join(sweepDir, d)).isDirectory())
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function latestRunDir(sweepDir: string, name: string): string | undefined {
  return runDirs(sweepDir, name).at(-1);
}
