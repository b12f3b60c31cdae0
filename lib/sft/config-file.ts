// A run folder's config.json: the resolved run config (train.ts's options, so `--config
// runs/<dir>/config.json` repeats the run) plus `provenance` (hashes of the base and data, commit,
// machine). One schema for the writer (executeRun) and the readers (--resume, the report); a
// damaged file is an error naming it.
import { join } from "node:path";
import { UsageError } from "../util/cli.ts";
import { array, json, literal, nullable, object, optional, record, string, type Schema } from "../util/schema.ts";
import { FileError, parseAs, readJSON, writeJSON } from "../io/files.ts";
import { readRunConfigFile, resolveRunConfig, type RunConfig } from "./run-config.ts";

export const CONFIG_FILE = "config.json";

/** Where a run came from: what --resume checks before it continues, and what a reader needs to
 * reproduce the run. */
export interface Provenance {
  baseHash: string; // hashCheckpoint of the base at the start
  addedTokens: string[]; // chat tokens added to the base's tokenizer (--add-chat-tokens)
  lora?: Record<string, unknown>; // --lora: trainable and total parameters, adapted modules, trainable token ids
  quantization?: Record<string, unknown> | null; // --quantize: what was quantized, what was kept and why
  dataSha256: { train: string; eval: string; prose?: string }; // prose: the replay text (--mix-prose), when used
  replay?: { source: string; note?: string }; // which text was replayed; note: the bundled sample stood in for the base's own
  evalMask: "assistant"; // held-out loss is on assistant tokens whatever maskMode is
  git: string | null;
  machine: Record<string, unknown>;
  command: string;
  runDir: string;
  createdAt: string;
}

export type ConfigFile = RunConfig & { provenance: Provenance };

const PROVENANCE: Schema<Provenance> = object<Provenance>({
  baseHash: string(),
  addedTokens: array(string()),
  lora: optional(record(json())),
  quantization: optional(nullable(record(json()))),
  dataSha256: object<Provenance["dataSha256"]>({ train: string(), eval: string(), prose: optional(string()) }),
  replay: optional(object<NonNullable<Provenance["replay"]>>({ source: string(), note: optional(string()) })),
  evalMask: literal("assistant"),
  git: nullable(string()),
  machine: record(json()),
  command: string(),
  runDir: string(),
  createdAt: string(),
});

export function writeConfigFile(runDir: string, cfg: RunConfig, provenance: Provenance): void {
  writeJSON(join(runDir, CONFIG_FILE), { ...cfg, provenance: PROVENANCE.parse(provenance) } satisfies ConfigFile);
}

/** Read a run's config.json back: its options checked as a `--config` file is, its provenance
 * against the schema. Throws a UsageError naming the file and the key. */
export function readConfigFile(runDir: string): ConfigFile {
  const path = join(runDir, CONFIG_FILE);
  const fix = "restore it, or start a new run (`bun scripts/train.ts --config <a config file>`)";
  try {
    const raw = readJSON(path);
    const { provenance } = parseAs(object<{ provenance: Provenance }>({ provenance: PROVENANCE }), raw, path);
    const cfg = resolveRunConfig(readRunConfigFile(path), {});
    return { ...cfg, provenance };
  } catch (e) {
    if (e instanceof FileError) throw new UsageError(`${e.message}: ${fix}`);
    if (e instanceof UsageError) throw new UsageError(`${path} is damaged: ${e.message.replace(/^--config \S+: /, "")}: ${fix}`);
    throw e;
  }
}
