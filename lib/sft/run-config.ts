// The configuration of one SFT run: the trainer's SFTConfig plus where the base, data and outputs
// are. Layered as flags > `--config file.json` > defaults; the resolved config is what config.json
// holds, so `--config runs/<dir>/config.json` repeats a run.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { UsageError } from "../util/cli.ts";
import { DEFAULT_BASE, DEFAULT_EVAL_DATA, DEFAULT_PROBES, DEFAULT_TRAIN_DATA, RUNS_DIR } from "../util/paths.ts";
import { defaultSFTConfig, resolveSFTConfig, SFTConfigError, type SFTConfig } from "../train/config.ts";

export interface RunSettings {
  base: string;
  data: string;
  evalData: string;
  probes: string;
  probeTokens: number;
  name: string;
  out: string;
  addChatTokens: boolean;
}

export type RunConfig = SFTConfig & RunSettings;

export function defaultRunSettings(): RunSettings {
  return {
    base: DEFAULT_BASE, // the bundled 5.8M-parameter Gutenberg base
    data: DEFAULT_TRAIN_DATA, // 154 hand-written conversations
    evalData: DEFAULT_EVAL_DATA, // 24 held-out conversations: eval loss, early stopping, probe prompts
    probes: DEFAULT_PROBES, // probe prompts that are not in the training data
    probeTokens: 96, // reply budget per probe prompt, tokens; 0 skips the probes (and samples.md, report.html)
    name: "sft", // runs/<YYYYMMDD-HHMMSS>-<name>/
    out: RUNS_DIR, // where run folders go
    addChatTokens: false, // a base without chat tokens is refused unless asked to grow its vocabulary
  };
}

const SETTING_KEYS = Object.keys(defaultRunSettings()) as (keyof RunSettings)[];
const SFT_KEYS = Object.keys(defaultSFTConfig()) as (keyof SFTConfig)[];
const ALIASES: Record<string, string> = { mask: "maskMode" }; // the flag's name for the key
/** Keys of a run's config.json that record provenance, not settings: ignored when it is reused. */
const IGNORED_KEYS = new Set(["provenance"]);

/** kebab-case flag names (`eval-data`) to config keys (`evalData`). */
const camel = (key: string) => ALIASES[key] ?? key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Read a `--config` JSON file of run options (flag names or config keys), checking every key
 * and value; errors name the file, the key and the value. */
export function readRunConfigFile(path: string): Partial<RunConfig> {
  if (!existsSync(path)) throw new UsageError(`--config ${path}: no such file`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`--config ${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) throw new UsageError(`--config ${path}: expected a JSON object of options, e.g. {"lr": 3e-4, "steps": 500}`);
  const out: Record<string, unknown> = {};
  for (const [raw, value] of Object.entries(json)) {
    if (IGNORED_KEYS.has(raw)) continue;
    const key = camel(raw);
    if (![...SFT_KEYS, ...SETTING_KEYS].includes(key as keyof RunConfig)) {
      throw new UsageError(`--config ${path}: unknown option \`${raw}\`; known: ${[...SFT_KEYS, ...SETTING_KEYS].join(", ")}`);
    }
    out[key] = value;
  }
  const sft = Object.fromEntries(Object.entries(out).filter(([k]) => SFT_KEYS.includes(k as keyof SFTConfig)));
  try {
    resolveSFTConfig(sft);
  } catch (e) {
    if (e instanceof SFTConfigError) throw new UsageError(`--config ${path}: ${e.message}`);
    throw e;
  }
  for (const key of SETTING_KEYS) {
    if (!(key in out)) continue;
    const v = out[key];
    const want = key === "addChatTokens" ? "boolean" : key === "probeTokens" ? "number" : "string";
    const ok = want === "number" ? Number.isInteger(v) && (v as number) >= 0 : typeof v === want && (want !== "string" || (v as string).length > 0);
    if (!ok) throw new UsageError(`--config ${path}: ${key} must be ${want === "number" ? "an integer >= 0" : `a ${want}`}, got \`${JSON.stringify(v)}\``);
  }
  return out as Partial<RunConfig>;
}

/** Defaults, then the config file, then flags (undefined = not given). Paths are made absolute so
 * config.json (and `--resume`) does not depend on the working directory. */
export function resolveRunConfig(file: Partial<RunConfig>, flags: Partial<RunConfig>): RunConfig {
  const defined = (o: object) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const given = { ...defined(file), ...defined(flags) };
  const settings = { ...defaultRunSettings(), ...pick(given, SETTING_KEYS) } as RunSettings;
  let sft: SFTConfig;
  try {
    sft = resolveSFTConfig(pick(given, SFT_KEYS));
  } catch (e) {
    if (e instanceof SFTConfigError) throw new UsageError(e.message);
    throw e;
  }
  if (!/^[\w.-]+$/.test(settings.name)) throw new UsageError(`--name \`${settings.name}\` may only contain letters, digits, '.', '_' and '-' (it becomes part of a folder name)`);
  for (const key of ["base", "data", "evalData", "probes", "out"] as const) settings[key] = resolve(settings[key]);
  return { ...sft, ...settings };
}

/** The SFTConfig part of a run config (what the trainer gets). */
export function sftPart(cfg: RunConfig): SFTConfig {
  return pick(cfg as unknown as Record<string, unknown>, SFT_KEYS) as SFTConfig;
}

function pick(obj: Record<string, unknown>, keys: readonly string[]): Record<string, any> {
  return Object.fromEntries(keys.filter((k) => k in obj).map((k) => [k, obj[k]]));
}
