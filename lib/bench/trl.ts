// The TRL peer of the course's SFT job: `bun scripts/train.ts --preset course` (the defaults until
// replay, which TRL's job does not do) against Hugging Face TRL's
// SFTTrainer on the same base, data, supervised span and hyperparameters
// (../shared/bench/trl/trl_sft.py, which matches the project's lr at every step), in interleaved
// pairs (ours, TRL, ours, TRL, ...) as the PyTorch peer (lib/bench/peer.ts), because a shared
// machine's speed drifts over minutes.
//
// The figure compared is training tokens/s: the non-padding positions that predict a target, per
// second of the training phase (optimizer steps and the held-out evaluations, not start-up, model
// loading or the probes). The two stacks pad differently (HF groups mega-batches of 32 by length,
// the project the whole set), so padded positions would favour whichever pads more.
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DEFAULT_BASE, DEFAULT_EVAL_DATA, DEFAULT_TRAIN_DATA, PROJECT_ROOT } from "../util/paths.ts";
import { writeFileAtomic } from "../io/files.ts";
import { readSummary, type RunSummary } from "../run/summary.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { ChatTemplate } from "../format/template.ts";
import { loadConversations } from "../data/data.ts";
import { interleavedRatio, PeerError } from "./peer.ts";

export const TRL_SCRIPT = resolve(PROJECT_ROOT, "../shared/bench/trl/trl_sft.py");
const TRL_MODULES = ["torch", "transformers", "trl", "datasets", "accelerate"]; // what trl_sft.py imports, directly or through SFTTrainer
const TRL_SETUP = "python3 -m venv ~/trl-peer && ~/trl-peer/bin/pip install torch transformers trl datasets accelerate";

/** One run of one stack on the default SFT job. */
export interface JobRun {
  stack: "sft-mlx" | "trl";
  tokensPerSec: number; // non-padding positions / trainSec: the figure compared
  trainSec: number; // training phase: optimizer steps + held-out evaluations
  stepSec: number; // optimizer steps only
  processSec: number; // the whole command, start-up to exit (ours includes the probes)
  realPositions: number; // non-padding positions that predict a target
  paddedPositions: number;
  finalEvalLoss: number | null; // held-out loss of the last weights, token-weighted
  peakRssMB: number | null;
}

/** Fail early, before the long runs, when TRL cannot run: its script is missing or `python` lacks a module. */
export function checkTrl(python: string): void {
  if (!existsSync(TRL_SCRIPT)) throw new PeerError(null, `${TRL_SCRIPT}: not found (the TRL peer ships in ../shared beside this clone)`);
  if (!Bun.which(python)) throw new PeerError(null, `--python ${python}: no such program; make a Python with the peer's modules (\`${TRL_SETUP}\`) and pass --python ~/trl-peer/bin/python`);
  const proc = Bun.spawnSync([python, "-c", `import ${TRL_MODULES.join(", ")}`], { env: process.env, stdout: "pipe", stderr: "pipe" });
  if (proc.exitCode !== 0) {
    const why = proc.stderr.toString().trim().split("\n").pop() ?? `exit ${proc.exitCode}`;
    throw new PeerError(proc.exitCode, `--python ${python}: cannot import ${TRL_MODULES.join(", ")} (${why}); install them apart from the project (\`${TRL_SETUP}\`) and pass --python ~/trl-peer/bin/python`);
  }
}

/** The project's own render of every conversation of `dataFile` as [{ids, mask}], the format
 * trl_sft.py --project-rows checks TRL's ids and supervised targets against, row by row. */
export async function writeProjectRows(dataFile: string, outFile: string, baseDir = DEFAULT_BASE): Promise<{ rows: number; supervisedTargets: number }> {
  const tokenizer = await Tokenizer.load(baseDir);
  const template = new ChatTemplate();
  const rows = loadConversations(dataFile).map((c) => {
    const { ids, mask } = template.renderWithMask(c, tokenizer, { maskMode: "assistant" });
    return { ids, mask };
  });
  writeFileAtomic(outFile, JSON.stringify(rows));
  // supervised targets: mask[1:], the first id is never a target
  return { rows: rows.length, supervisedTargets: rows.reduce((n, r) => n + r.mask.slice(1).reduce((a, b) => a + b, 0), 0) };
}

/** Our run's figures from its summary.json (lib/run/summary.ts); only a completed run compares. */
export function ourJobRun(summary: RunSummary, processSec: number): JobRun {
  if (summary.status !== "completed" || summary.paddingFraction === null) {
    throw new Error(`bun scripts/train.ts ended ${summary.status}${summary.reason ? ` (${summary.reason})` : ""}: no figures to compare`);
  }
  const trainSec = summary.wallSec - (summary.probeSec ?? 0); // wallSec includes the probes once they ran
  const realPositions = Math.round(summary.tokens * (1 - summary.paddingFraction));
  return {
    stack: "sft-mlx",
    tokensPerSec: realPositions / trainSec,
    trainSec,
    stepSec: summary.stepSec,
    processSec,
    realPositions,
    paddedPositions: summary.tokens,
    finalEvalLoss: summary.finalEvalLoss,
    peakRssMB: summary.trainPeakMemMB,
  };
}

/** TRL's figures from trl_sft.py's last stdout line; refuses a run whose rows differ from ours. */
export function trlJobRun(stdout: string, processSec: number): JobRun {
  const line = stdout.trim().split("\n").pop() ?? "";
  let r: Record<string, any>;
  try {
    r = JSON.parse(line);
  } catch {
    throw new Error(`trl_sft.py: expected a JSON line last on stdout, got \`${line.slice(0, 200)}\``);
  }
  for (const part of ["train", "eval"] as const) {
    const span = r.supervised_span?.[part];
    if (span?.rows_differing_from_project === undefined) throw new Error(`trl_sft.py: no row check for ${part} (was it given --project-rows and --project-eval-rows?)`);
    if (span.rows_differing_from_project !== 0) {
      throw new Error(`trl_sft.py: ${span.rows_differing_from_project} ${part} rows of TRL's render differ from the project's (ids or supervised targets): not the same job, so no comparison`);
    }
  }
  return {
    stack: "trl",
    tokensPerSec: r.real_positions / r.train_wall_s,
    trainSec: r.train_wall_s,
    stepSec: r.step_s,
    processSec,
    realPositions: r.real_positions,
    paddedPositions: r.tokens_fed,
    finalEvalLoss: r.heldout_loss ?? null,
    peakRssMB: r.peak_rss_mb ?? null,
  };
}

/** `pairs` pairs run one after the other: ours, then the peer, then ours again, ... */
export async function interleave<T>(pairs: number, ours: (i: number) => T | Promise<T>, peer: (i: number) => T | Promise<T>): Promise<{ ours: T[]; peer: T[] }> {
  const out = { ours: [] as T[], peer: [] as T[] };
  for (let i = 0; i < pairs; i++) {
    out.ours.push(await ours(i));
    out.peer.push(await peer(i));
  }
  return out;
}

/** Our training tokens/s against TRL's over interleaved pairs (pairRatio is the figure to quote),
 * and the training phase's wall time as a ratio (TRL's seconds over ours: above 1 when we are faster). */
export function compareWithTrl(ours: JobRun[], trl: JobRun[]) {
  const r = interleavedRatio(ours.map((x) => x.tokensPerSec), trl.map((x) => x.tokensPerSec));
  return { ...r, trainSecRatios: ours.map((x, i) => trl[i]!.trainSec / x.trainSec) };
}

/** The course's SFT job of ours (`bun scripts/train.ts --preset course`: 500 steps, no replay, the job
 * trl_sft.py reproduces; the defaults since replay would not be the same job), in
 * a run folder under a temporary --out that is removed afterwards (the figures come from its summary.json). */
export function runOurJob(): JobRun {
  const out = mkdtempSync(join(tmpdir(), "bench-trl-ours-"));
  try {
    const t = performance.now();
    const proc = Bun.spawnSync([process.execPath, "scripts/train.ts", "--preset", "course", "--name", "bench-trl", "--out", out], { cwd: PROJECT_ROOT, env: process.env, stdout: "pipe", stderr: "pipe" });
    const processSec = (performance.now() - t) / 1000;
    const summary = readdirSync(out).map((d) => readSummary(join(out, d))).find((x) => x !== null);
    if (proc.exitCode !== 0 || !summary) throw new Error(`bun scripts/train.ts exited with ${proc.exitCode}: ${proc.stderr.toString().slice(-400)}`);
    return ourJobRun(summary, processSec);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Project rows for the TRL side's check, written once per bench (temporary files). */
export async function projectRowsForTrl(dir: string): Promise<{ train: string; eval: string }> {
  const files = { train: join(dir, "train_rows.json"), eval: join(dir, "eval_rows.json") };
  await writeProjectRows(DEFAULT_TRAIN_DATA, files.train);
  await writeProjectRows(DEFAULT_EVAL_DATA, files.eval);
  return files;
}

/** One TRL SFTTrainer run of the same job; its output folder (checkpoint, metrics) is removed afterwards. */
export function runTrlJob(python: string, rows: { train: string; eval: string }): JobRun {
  const out = mkdtempSync(join(tmpdir(), "bench-trl-peer-"));
  try {
    const t = performance.now();
    const args = [TRL_SCRIPT, "--project", PROJECT_ROOT, "--out", out, "--project-rows", rows.train, "--project-eval-rows", rows.eval];
    const proc = Bun.spawnSync([python, ...args], { cwd: PROJECT_ROOT, env: process.env, stdout: "pipe", stderr: "pipe" });
    const processSec = (performance.now() - t) / 1000;
    if (proc.exitCode !== 0) throw new PeerError(proc.exitCode, `${python} ${TRL_SCRIPT} exited with ${proc.exitCode}: ${proc.stderr.toString().slice(-400)}`);
    return trlJobRun(proc.stdout.toString(), processSec);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
