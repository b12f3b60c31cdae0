// The configuration of one SFT run: the trainer's SFTConfig plus where the base, data and outputs
// are, each option one entry of a table (SFT_OPTIONS, RUN_OPTIONS) from which train.ts's flags,
// the config file's checks and the sweep's checks follow. Layered as flags > `--config file.json`
// > defaults; the resolved config is what config.json holds, so `--config runs/<dir>/config.json`
// repeats a run.
import { existsSync, readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import type { ArgsDef } from "citty";
import { UsageError } from "../util/cli.ts";
import { cittyArgs, defaultsOf, describeOption, findOption, isValidOption, optionsFromFlags, type OptionSpec, type OptionTable } from "../util/options.ts";
import { DEFAULT_BASE, DEFAULT_EVAL_DATA, DEFAULT_PROBES, DEFAULT_TRAIN_DATA, PROJECT_ROOT, RUNS_DIR } from "../util/paths.ts";
import { resolveSFTConfig, SFT_OPTIONS, SFT_PRESETS, SFTConfigError, type SFTConfig } from "../train/config.ts";
import { parseSpan } from "../tokenizer/sample-text.ts";
import { COURSE_SPLIT_SEED } from "../data/split.ts";

export interface RunSettings {
  base: string;
  data: string;
  evalData: string;
  probes: string;
  probeTokens: number;
  name: string;
  out: string;
  addChatTokens: boolean;
  courseSplit: boolean;
  splitSeed: number;
  proseData: string;
}

export type RunConfig = SFTConfig & RunSettings;

/** `--prose-data`'s default: the base's own pretraining text (resolved in lib/sft/prose-source.ts). */
export const PROSE_DATA_AUTO = "auto";

/** A replay span with its path made absolute and its byte range kept ("file:START-END"). */
export function absoluteSpan(spec: string): string {
  const span = parseSpan(spec);
  return resolve(span.path) + spec.slice(span.path.length);
}

const path = (p: string) => relative(PROJECT_ROOT, p); // --help shows bundled paths as the README does

export const RUN_OPTIONS: OptionTable<RunSettings> = {
  base: {
    type: "string", help: "base checkpoint folder (HF layout)", shown: path(DEFAULT_BASE),
    default: DEFAULT_BASE, // the bundled 5.8M-parameter Gutenberg base
  },
  data: {
    type: "string", help: "training conversations, .json or .jsonl", shown: path(DEFAULT_TRAIN_DATA),
    default: DEFAULT_TRAIN_DATA, // 154 hand-written conversations
  },
  evalData: {
    type: "string", help: "held-out conversations for eval loss, early stopping and probes", shown: path(DEFAULT_EVAL_DATA),
    default: DEFAULT_EVAL_DATA, // 24 held-out conversations
  },
  probes: {
    type: "string", help: "probe prompts file", shown: path(DEFAULT_PROBES),
    default: DEFAULT_PROBES, // prompts that are not in the training data
  },
  probeTokens: {
    type: "int", min: 0, help: "reply budget per probe prompt, tokens; 0 skips probes, samples.md and report.html",
    default: 96, // longer than any bundled reply, short enough to keep the probes under a minute
  },
  name: {
    type: "string", pattern: { re: /^[\w.-]+$/, says: "letters, digits, '.', '_' and '-' (it becomes part of a folder name)" }, help: "run name: runs/<time>-<name>/",
    default: "sft",
  },
  out: {
    type: "string", help: "folder for run folders", shown: path(RUNS_DIR),
    default: RUNS_DIR,
  },
  addChatTokens: {
    type: "bool", help: "if the base's tokenizer lacks <|user|> <|assistant|> <|end|> <|pad|>, add the course's special tokens (those, <|endoftext|> <|system|> <|tool_call|> <|tool_result|>) and grow the embedding if their ids do not fit",
    default: false, // a base without chat tokens is refused unless asked to grow its vocabulary
  },
  courseSplit: {
    type: "bool", help: "hold out the course notebook's split of --data (20%, torch.randperm with --split-seed) instead of reading --eval-data",
    default: false, // the bundled data comes with its own held-out file
  },
  splitSeed: {
    type: "int", min: 0, max: 0xffffffff, help: "seed of --course-split",
    default: COURSE_SPLIT_SEED, // the notebook's DATA_SPLIT_SEED
  },
  proseData: {
    type: "string", help: `replay text for --mix-prose: plain-text files or file:START-END byte ranges, comma-separated; ${PROSE_DATA_AUTO} = the base's own (data/prose/ for the bundled base, else the corpus its sft-mlx.json records)`,
    default: PROSE_DATA_AUTO, // the base's own pretraining text: lib/sft/prose-source.ts
  },
};

/** Every option of train.ts, in --help order: where things are, then the trainer's settings. */
export const TRAIN_OPTIONS: OptionTable<RunConfig> = { ...RUN_OPTIONS, ...SFT_OPTIONS };

/** train.ts's citty args: the table's flags plus the two that are not options of a run. */
export const TRAIN_ARGS: ArgsDef = {
  ...cittyArgs(TRAIN_OPTIONS as OptionTable<Record<string, unknown>>),
  config: { type: "string", description: "JSON file of these options (flag names or config keys, e.g. {\"lr\": 1e-4, \"eval-every\": 25})" },
  resume: { type: "string", description: "continue the interrupted run in this folder, with its own config.json" },
  preset: { type: "string", description: `a named recipe under the config file and flags: ${Object.entries(SFT_PRESETS).map(([k, v]) => `${k} (${Object.entries(v).map(([o, x]) => `${o} ${x}`).join(", ")})`).join("; ")}` },
};

export function defaultRunSettings(): RunSettings {
  return defaultsOf(RUN_OPTIONS);
}

/** train.ts's flags as citty parsed them → a partial run config; each given flag parsed and checked
 * (UsageError naming the flag), the rest undefined. */
export function parseTrainFlags(args: Record<string, unknown>): Partial<RunConfig> {
  return optionsFromFlags(TRAIN_OPTIONS, args);
}

const SETTING_KEYS = Object.keys(RUN_OPTIONS) as (keyof RunSettings)[];
const SFT_KEYS = Object.keys(SFT_OPTIONS) as (keyof SFTConfig)[];
/** Keys of a run's config.json that record provenance, not settings: ignored when it is reused. */
const IGNORED_KEYS = new Set(["provenance"]);

/** Read a `--config` JSON file of run options (flag names or config keys), checking every key
 * and value; errors name the file, the key and the value. */
export function readRunConfigFile(file: string): Partial<RunConfig> {
  if (!existsSync(file)) throw new UsageError(`--config ${file}: no such file`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`--config ${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) throw new UsageError(`--config ${file}: expected a JSON object of options, e.g. {"lr": 3e-4, "steps": 500}`);
  const out: Record<string, unknown> = {};
  for (const [raw, value] of Object.entries(json)) {
    if (IGNORED_KEYS.has(raw)) continue;
    const key = findOption(TRAIN_OPTIONS, raw);
    if (!key) throw new UsageError(`--config ${file}: unknown option \`${raw}\`; known: ${Object.keys(TRAIN_OPTIONS).join(", ")}`);
    const spec = TRAIN_OPTIONS[key] as OptionSpec;
    if (!isValidOption(spec, value)) throw new UsageError(`--config ${file}: ${key} must be ${describeOption(spec)}, got \`${JSON.stringify(value)}\``);
    out[key] = value;
  }
  return out as Partial<RunConfig>;
}

/** Defaults, then a preset (`--preset course`), then the config file, then flags (undefined = not
 * given). `steps` and `epochs` are one choice: the highest layer that sets either decides (flags may
 * not set both; a config.json records both, the steps derived from its epochs). Paths are made
 * absolute so config.json (and `--resume`) does not depend on the working directory. */
export function resolveRunConfig(file: Partial<RunConfig>, flags: Partial<RunConfig>, preset?: string): RunConfig {
  const defined = (o: object) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<RunConfig>;
  if (preset !== undefined && !SFT_PRESETS[preset]) throw new UsageError(`--preset expects one of ${Object.keys(SFT_PRESETS).join(", ")}, got \`${preset}\``);
  if (flags.steps !== undefined && flags.epochs !== undefined) throw new UsageError(`--steps ${flags.steps} and --epochs ${flags.epochs} both set the training length: give one`);
  const given: Partial<RunConfig> = {};
  for (const layer of [preset ? SFT_PRESETS[preset]! : {}, defined(file), defined(flags)]) {
    if (layer.steps !== undefined && layer.epochs === undefined) given.epochs = 0; // steps chosen here: a lower layer's epochs no longer apply
    Object.assign(given, layer);
  }
  const settings = { ...defaultRunSettings(), ...pick(given, SETTING_KEYS) } as RunSettings;
  for (const key of SETTING_KEYS) {
    const spec = RUN_OPTIONS[key] as OptionSpec;
    if (!isValidOption(spec, settings[key])) throw new UsageError(`${key} must be ${describeOption(spec)}, got \`${JSON.stringify(settings[key])}\``);
  }
  let sft: SFTConfig;
  try {
    sft = resolveSFTConfig(pick(given, SFT_KEYS));
  } catch (e) {
    if (e instanceof SFTConfigError) throw new UsageError(e.message);
    throw e;
  }
  for (const key of ["base", "data", "evalData", "probes", "out"] as const) settings[key] = resolve(settings[key]);
  if (settings.proseData !== PROSE_DATA_AUTO) settings.proseData = settings.proseData.split(",").map((s) => s.trim()).filter(Boolean).map(absoluteSpan).join(",");
  return { ...sft, ...settings };
}

/** The SFTConfig part of a run config (what the trainer gets). */
export function sftPart(cfg: RunConfig): SFTConfig {
  return pick(cfg as unknown as Record<string, unknown>, SFT_KEYS) as SFTConfig;
}

function pick(obj: Record<string, unknown>, keys: readonly string[]): Record<string, any> {
  return Object.fromEntries(keys.filter((k) => k in obj).map((k) => [k, obj[k]]));
}
