// The sweep plan: which runs, with which train.ts flags, and where each one stands. It is written
// to `sweep.json` in the sweep folder before the first run and after every run, and it is what
// `--resume` reads back.

import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { flagKinds, UsageError } from "../util/cli.ts";
import { DEFAULT_NOISE, DEFAULT_TRAIN_DATA } from "../util/paths.ts";
import { claimDir, timestamp } from "../run/folder.ts";
import { FileError, readJSON, writeJSON } from "../io/files.ts";
import type { TrainStatus } from "../train/state.ts";
import { parseTrainFlags, readRunConfigFile, resolveRunConfig, TRAIN_ARGS } from "../sft/run-config.ts";
import { injectNoise, loadConversations, loadNoiseTemplates } from "../data/data.ts";
import { subsetConversations } from "../data/split.ts";
import type { Conversation } from "../format/types.ts";
import { flagRecord, flagValue, withoutFlag } from "./args.ts";
import { PARAMS, PRESETS, type ParamName } from "./params.ts";

export const PLAN_FILE = "sweep.json";
export const PLAN_VERSION = 1;
export const DEFAULT_DATA_SEED = 0; // fixed, so every data-size / noise sweep draws the same subsets

/** Where a run stands. "pending": not started; the rest are train.ts's statuses (summary.json). */
export type RunStatus = "pending" | "running" | TrainStatus;

export interface SweepRun {
  value: string;
  name: string; // train.ts --name: `<param>-<value>`
  data?: string; // the data file written for this run, relative to the sweep folder
  dir?: string; // the run folder train.ts made, relative to the sweep folder
  status: RunStatus;
  exitCode?: number;
  reason?: string; // why it failed
  attempts: number; // times train.ts was started for this value
  command?: string; // the last command line, for the reader (not read back)
}

export interface SweepPlan {
  version: number;
  param: ParamName;
  preset?: string;
  values: string[];
  passthrough: string[]; // train.ts flags given to every run
  dataSeed: number;
  sourceData?: string; // data-size / noise: the conversations the data files were made from
  sourceSize?: number; // their count (the x of data-size `all`)
  noisePath?: string;
  createdAt: string;
  runs: SweepRun[];
}

/** Flags the sweep sets on every run itself. */
export const RESERVED = ["name", "out", "resume"];

/** The flags train.ts declares (its table of options, plus --config and --resume): the only ones
 * the sweep passes on. */
export const TRAIN_FLAGS = flagKinds(TRAIN_ARGS);

/** Build the plan (no files written). Throws a UsageError for a flag value train.ts would refuse
 * and for flags that would fight the sweep: all before the first run. */
export function buildPlan(
  { param, values, passthrough, preset, dataSeed = DEFAULT_DATA_SEED }: { param: ParamName; values: string[]; passthrough: string[]; preset?: string; dataSeed?: number },
): SweepPlan {
  checkTrainFlags(passthrough);
  for (const flag of RESERVED) {
    if (flagValue(passthrough, flag) !== undefined) {
      throw new UsageError(`--${flag} is set by the sweep for every run (each run is <sweep folder>/<time>-<param>-<value>): drop it from the train.ts flags`);
    }
  }
  const spec = PARAMS[param];
  if (spec.trainFlag && flagValue(passthrough, spec.trainFlag) !== undefined) {
    throw new UsageError(`--${spec.trainFlag} is what this sweep varies: drop it and list the values with --values`);
  }
  const implied = { ...spec.implied, ...(preset !== undefined ? PRESETS[preset]?.implied : {}) };
  for (const [flag, value] of Object.entries(implied)) {
    if (flagValue(passthrough, flag) === undefined && configValue(passthrough, flag) === undefined) passthrough = [...passthrough, `--${flag}`, ...(value === "" ? [] : [value])]; // "": a switch given alone (`--lora`)
  }
  const plan: SweepPlan = {
    version: PLAN_VERSION,
    param,
    ...(preset !== undefined ? { preset } : {}),
    values,
    passthrough,
    dataSeed,
    createdAt: new Date().toISOString(),
    runs: values.map((value) => ({ value, name: `${param}-${value}`, status: "pending", attempts: 0 })),
  };
  if (param === "data-size" || param === "noise") {
    if (flagValue(passthrough, "course-split") !== undefined || configValue(passthrough, "course-split") === true) {
      throw new UsageError(`--course-split holds out part of each run's --data, and a ${param} sweep gives every run different data: the held-out set would change from run to run. Give one held-out file with --eval-data instead`);
    }
    const fromConfig = configValue(passthrough, "data");
    plan.sourceData = resolve(flagValue(passthrough, "data") || (typeof fromConfig === "string" ? fromConfig : "") || DEFAULT_TRAIN_DATA);
    plan.passthrough = withoutFlag(passthrough, "data");
    if (param === "noise") plan.noisePath = DEFAULT_NOISE;
    for (const run of plan.runs) run.data = join("data", `${run.name}.json`);
  }
  return plan;
}

/** Check the pass-through flags (and the `--config` file among them) as train.ts will, so that
 * `--steps abc` stops the sweep now instead of failing every run. */
function checkTrainFlags(passthrough: string[]): void {
  const flags = flagRecord(passthrough, TRAIN_FLAGS);
  const file = typeof flags.config === "string" ? readRunConfigFile(flags.config) : {};
  resolveRunConfig(file, parseTrainFlags(flags));
}

/** What the `--config` file among the flags (if any) sets `flag` to, read by train.ts's own reader
 * (which checks the file and resolves its paths): flags override it, so the sweep must look. */
function configValue(passthrough: string[], flag: string): unknown {
  const path = flagValue(passthrough, "config");
  if (!path) return undefined;
  const config = readRunConfigFile(path) as Record<string, unknown>;
  return config[flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())];
}

/**
 * Each run's training conversations (data-size: nested seeded subsets; noise: copies with chat
 * filler in `value`% of the answers), checked against the source before anything is written.
 * Records the source's size in the plan. Empty for parameters that are a train.ts flag.
 */
export function runData(plan: SweepPlan): { file: string; convs: Conversation[] }[] {
  if (!plan.sourceData) return [];
  const convs = loadConversations(plan.sourceData);
  plan.sourceSize = convs.length;
  const noise = plan.param === "noise" ? loadNoiseTemplates(plan.noisePath ?? DEFAULT_NOISE) : undefined;
  return plan.runs.map((run) => {
    if (plan.param === "data-size" && run.value !== "all" && Number(run.value) > convs.length) {
      throw new UsageError(`--values for data-size: \`${run.value}\` is more than the ${convs.length} conversations in ${plan.sourceData}: use at most ${convs.length} (or \`all\`)`);
    }
    const picked = plan.param === "data-size"
      ? subsetConversations(convs, run.value === "all" ? convs.length : Number(run.value), plan.dataSeed)
      : injectNoise(convs, Number(run.value) / 100, plan.dataSeed, noise!);
    return { file: run.data!, convs: picked };
  });
}

/** Write the data files of `runData` into the sweep folder, in the {"messages": [...]} form. */
export function writeRunData(sweepDir: string, files: { file: string; convs: Conversation[] }[]): void {
  for (const { file, convs } of files) {
    mkdirSync(dirname(join(sweepDir, file)), { recursive: true });
    writeJSON(join(sweepDir, file), convs.map((messages) => ({ messages })));
  }
}

/** The train.ts arguments of one run (after `scripts/train.ts`). */
export function trainArgs(plan: SweepPlan, run: SweepRun, sweepDir: string): string[] {
  const spec = PARAMS[plan.param];
  const varied = spec.trainFlag ? [`--${spec.trainFlag}`, run.value] : ["--data", join(sweepDir, run.data!)];
  return [...plan.passthrough, ...varied, "--out", sweepDir, "--name", run.name];
}

/** The one-line command for a run, with paths relative to the project root when they are inside it. */
export function commandLine(args: string[], cwd = process.cwd()): string {
  const show = (a: string) => (a.startsWith("/") && !relative(cwd, a).startsWith("..") ? relative(cwd, a) || "." : a);
  return ["bun", "scripts/train.ts", ...args.map(show)].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
}

/** Claim a fresh `sweep-<YYYYMMDD-HHMMSS>-<label>` folder under `root` (never reused). */
export function createSweepDir(root: string, label: string): string {
  return claimDir(root, `sweep-${timestamp()}-${label}`);
}

export function writePlan(sweepDir: string, plan: SweepPlan): void {
  writeJSON(join(sweepDir, PLAN_FILE), plan);
}

/** Read `sweep.json` back for `--resume`. */
export function readPlan(sweepDir: string): SweepPlan {
  const path = join(sweepDir, PLAN_FILE);
  if (!existsSync(path)) throw new UsageError(`--resume ${sweepDir}: no ${PLAN_FILE} there; give a folder made by scripts/sweep.ts (runs/sweep-<time>-<param>)`);
  let plan: SweepPlan;
  try {
    plan = readJSON<SweepPlan>(path);
  } catch (e) {
    if (e instanceof FileError) throw new UsageError(`--resume ${sweepDir}: ${e.message}: restore it, or start the sweep again (its finished runs stay in their folders)`);
    throw e;
  }
  if (typeof plan !== "object" || plan === null || plan.version !== PLAN_VERSION || !PARAMS[plan.param] || !Array.isArray(plan.runs)) {
    throw new UsageError(`${path}: not a sweep plan this version reads (version \`${plan?.version}\`, param \`${plan?.param}\`)`);
  }
  return plan;
}
