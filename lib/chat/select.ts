// Which checkpoint the chat opens: `--model <dir>`, `--run runs/<dir>`, `--base [dir]`, or by
// default the newest finished fine-tuning run under runs/.
//
// A run folder is `runs/<YYYYMMDD-HHMMSS>-<name>/` with `summary.json` ({"status": ...}) and the
// final model in `checkpoint/`, or for a LoRA run its adapter in `adapter/` (loaded onto its base). Runs whose checkpoint is a base model (pretraining writes the same
// layout, with sft-mlx.json {"kind": "base"}) are not chat models and are never picked.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { FileError } from "../io/files.ts";
import { FINISHED, readSummaryHead } from "../run/summary.ts";
import type { ChatMode } from "./session.ts";

const PARTIAL = ["interrupted"]; // usable when nothing finished exists: the checkpoint saved at the interrupt
const BASE_KINDS = ["base", "pretrain-checkpoint"]; // sft-mlx.json kinds written by pretraining

export interface RunInfo {
  runDir: string;
  name: string; // folder name
  status: string | null; // summary.json status; null while running, after a crash, or when it is damaged
  problem?: string; // why summary.json could not be read
  checkpoint: string | null; // runDir/checkpoint if it holds a model, or runDir/adapter (a LoRA run)
  kind: string | null; // checkpoint/sft-mlx.json "kind", if any
}

export class ChoiceError extends Error {
  override name = "ChoiceError";
}

/** The model the chat opens, and a sentence saying why. */
export interface ModelChoice {
  dir: string;
  mode: ChatMode;
  note: string; // e.g. "newest completed run runs/20261124-101500-sft (status completed)"
  meta?: RunInfo;
}

function readJSONOrNull(path: string): any {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}

const isModelDir = (dir: string) => existsSync(join(dir, "config.json")) && existsSync(join(dir, "model.safetensors"));
/** A LoRA adapter in PEFT's layout (lib/model/adapter.ts), chatted with on its base. */
const isAdapterDir = (dir: string) => existsSync(join(dir, "adapter_config.json")) && existsSync(join(dir, "adapter_model.safetensors"));

/** Read one run folder. */
export function readRun(runDir: string): RunInfo {
  const adapter = join(runDir, "adapter");
  const ckpt = isAdapterDir(adapter) && !isModelDir(join(runDir, "checkpoint")) ? adapter : join(runDir, "checkpoint");
  let status: string | null = null;
  let problem: string | undefined;
  try {
    status = readSummaryHead(runDir)?.status ?? null;
  } catch (e) {
    if (!(e instanceof FileError)) throw e;
    problem = e.message;
  }
  const meta = readJSONOrNull(join(ckpt, "sft-mlx.json"));
  return {
    runDir,
    name: basename(runDir),
    status,
    ...(problem ? { problem } : {}),
    checkpoint: isModelDir(ckpt) || isAdapterDir(ckpt) ? ckpt : null,
    kind: typeof meta?.kind === "string" ? meta.kind : null,
  };
}

/** Every run folder under `runsDir`, newest first (the folder name starts with its start time). */
export function listRuns(runsDir: string): RunInfo[] {
  if (!existsSync(runsDir)) return [];
  return readdirSync(runsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && /^\d{8}-\d{6}-/.test(d.name))
    .map((d) => d.name)
    .sort()
    .reverse()
    .map((name) => readRun(join(runsDir, name)));
}

const isChatRun = (r: RunInfo) => r.checkpoint !== null && !BASE_KINDS.includes(r.kind ?? "");

/** The newest finished chat run, else the newest interrupted one with a checkpoint. */
export function pickRun(runs: RunInfo[]): RunInfo | null {
  return runs.find((r) => isChatRun(r) && (FINISHED as readonly string[]).includes(r.status ?? ""))
    ?? runs.find((r) => isChatRun(r) && PARTIAL.includes(r.status ?? ""))
    ?? null;
}

export interface ChoiceFlags {
  model?: string;
  run?: string;
  base?: string; // "" = the default base
  runsDir: string;
  defaultBase: string;
}

const shown = (p: string) => (relative(process.cwd(), p).startsWith("..") ? p : relative(process.cwd(), p) || ".");

/** Resolve the flags to one checkpoint directory; throws ChoiceError with the fix. */
export function chooseModel({ model, run, base, runsDir, defaultBase }: ChoiceFlags): ModelChoice {
  const given = [model !== undefined && "--model", run !== undefined && "--run", base !== undefined && "--base"].filter(Boolean);
  if (given.length > 1) throw new ChoiceError(`${given.join(" and ")} both pick a model: use one`);
  if (base !== undefined) {
    const dir = resolve(base || defaultBase);
    if (!isModelDir(dir)) throw new ChoiceError(`--base: no model at \`${shown(dir)}\` (config.json and model.safetensors): pass a base checkpoint directory: --base <dir>`);
    return { dir, mode: "raw", note: `base model ${shown(dir)} (raw continuation, no chat template)` };
  }
  if (model !== undefined) {
    const dir = resolve(model);
    if (!isModelDir(dir) && !isAdapterDir(dir)) throw new ChoiceError(`--model: no model at \`${shown(dir)}\` (config.json and model.safetensors, or a LoRA adapter's adapter_config.json): pass a checkpoint directory such as runs/<run>/checkpoint, or runs/<run>/adapter`);
    return { dir, mode: "chat", note: `checkpoint ${shown(dir)}` };
  }
  if (run !== undefined) {
    const info = readRun(resolve(run));
    if (!existsSync(info.runDir)) throw new ChoiceError(`--run: \`${run}\` does not exist: pass a folder under runs/ (ls ${shown(runsDir)})`);
    if (!info.checkpoint) {
      throw new ChoiceError(`--run: \`${shown(info.runDir)}\` has no checkpoint/ or adapter/ (status ${info.status ?? "unknown: still running or crashed"}): pick a finished run, or --model <checkpoint dir>`);
    }
    return { dir: info.checkpoint, mode: "chat", note: `run ${shown(info.runDir)} (status ${info.status ?? "unknown"})`, meta: info };
  }
  const runs = listRuns(runsDir);
  const chosen = pickRun(runs);
  if (!chosen) {
    const seen = runs.length
      ? ` (found ${runs.length} run folder${runs.length > 1 ? "s" : ""}, none a finished fine-tuning run with a checkpoint/: ${runs.slice(0, 3).map((r) => `${r.name} [${r.kind === "base" ? "base model" : r.status ?? (r.problem ? "damaged summary.json" : "no summary.json")}]`).join(", ")})`
      : "";
    throw new ChoiceError(
      `no fine-tuned model yet in ${shown(runsDir)}${seen}: run \`bun scripts/train.ts\` first, ` +
      `or chat with a checkpoint: --model <dir>, or with the base model: --base`,
    );
  }
  const newer = runs.slice(0, runs.indexOf(chosen)).filter(isChatRun);
  const skipped = newer.length ? `; newer ${newer[0].name} is ${newer[0].status ?? "unfinished"} (--run to pick it)` : "";
  const how = (FINISHED as readonly string[]).includes(chosen.status!) ? "newest finished run" : "no finished run; newest interrupted run";
  return { dir: chosen.checkpoint!, mode: "chat", note: `${how} ${shown(chosen.runDir)} (status ${chosen.status})${skipped}`, meta: chosen };
}

/** `--base` may come without a value, which citty cannot express (it would take the next flag as
 * the value): rewrite a bare `--base` to `--base=`. */
export function optionalValue(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag && (i === argv.length - 1 || argv[i + 1].startsWith("-")) ? [`${flag}=`] : [a]));
}

/** The base model a fine-tuned checkpoint came from, for /compare: its sft-mlx.json `base`, else
 * the `base` in its run folder's config.json; undefined unless it names an existing directory. */
export function recordedBase(checkpointDir: string, meta: Record<string, any>): string | undefined {
  const runConfig = readJSONOrNull(join(dirname(checkpointDir), "config.json"));
  const candidates = [meta.base, meta.base?.dir, runConfig?.base];
  return candidates.find((c): c is string => typeof c === "string" && isModelDir(resolve(c)));
}
