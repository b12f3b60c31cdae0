// A run's config keys, mapped one to one onto another engine's settings: one table per engine,
// every key of RunConfig in it (TypeScript checks that through `satisfies`, and `mapSettings`
// refuses at run time any key without a row), each row a setting with its value and the reason,
// or the reason the key is not part of that engine's job. To map a new config key (LoRA, say):
// add a row to each table, e.g. `lora: setting("PEFT_CONFIG", (c) => ..., "...")` for TRL.
import { UsageError } from "../util/cli.ts";
import type { RunConfig } from "../sft/run-config.ts";

/** A value a generated file can hold: Python literals and YAML scalars are built from these. */
export type Value = string | number | boolean | null | Value[] | { [key: string]: Value };

export interface Setting {
  name: string; // the engine's name for it (a Python constant, a YAML key)
  value: Value;
  why: string; // one line: what it is, or why it is set this way
}

export type Mapping =
  | { settings: (cfg: RunConfig) => Setting[]; outsideWhenUnset?: string }
  | { outside: string }; // not part of the job this engine runs: why, and where it went

export type MappingTable = Record<keyof RunConfig, Mapping>;

/** A row that maps one key to one setting. */
export const setting = (name: string, value: (cfg: RunConfig) => Value, why: string | ((cfg: RunConfig) => string)): Mapping => ({
  settings: (cfg) => [{ name, value: value(cfg), why: typeof why === "string" ? why : why(cfg) }],
});

/** A key the engine's job cannot reproduce when `when(cfg)` holds: the export is refused with
 * `why`; otherwise the key is outside the job (`otherwise`). */
export const refusedWhen = (when: (cfg: RunConfig) => boolean, why: string, otherwise: string): Mapping => ({
  settings: (cfg) => {
    if (when(cfg)) throw new UsageError(why);
    return [];
  },
  outsideWhenUnset: otherwise,
});

/** Every setting of `cfg` under `table`, in the config's key order; a key without a row is an
 * error naming the key and the table's file, never dropped. */
export function mapSettings(cfg: RunConfig, table: MappingTable, engine: string): { settings: Setting[]; outside: [string, string][] } {
  const unknown = Object.keys(cfg).filter((k) => !(k in table));
  if (unknown.length) {
    throw new UsageError(
      `config key(s) ${unknown.map((k) => `\`${k}\``).join(", ")} have no ${engine} mapping, so the export would drop them: ` +
        `add a row for each to the ${engine} table in lib/export/ (mapping.ts says how)`,
    );
  }
  const settings: Setting[] = [];
  const outside: [string, string][] = [];
  for (const key of Object.keys(cfg) as (keyof RunConfig)[]) {
    const row = table[key];
    if ("outside" in row) outside.push([key, row.outside]);
    else {
      const mapped = row.settings(cfg);
      if (mapped.length === 0 && row.outsideWhenUnset) outside.push([key, row.outsideWhenUnset]);
      settings.push(...mapped);
    }
  }
  return { settings, outside };
}

/** A Python literal for `v` (JSON's strings are valid Python strings). */
export function pyLiteral(v: Value): string {
  if (v === null) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`cannot write ${v} as a Python literal`);
    return String(v);
  }
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(pyLiteral).join(", ")}]`;
  return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyLiteral(x)}`).join(", ")}}`;
}

/** A YAML scalar or flow sequence for `v`; floats always carry a '.', which YAML 1.1 readers
 * (PyYAML) need to read `1e-8` as a number. */
export function yamlLiteral(v: Value): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return String(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`cannot write ${v} as a YAML number`);
    const s = String(v);
    return /e/i.test(s) && !s.includes(".") ? s.replace(/e/i, ".0e") : s;
  }
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(yamlLiteral).join(", ")}]`;
  throw new Error("nested mappings are written by the caller, one key per line");
}

/** A Markdown table of a mapping: key, setting, value, why (the README's one-to-one list). */
export function mappingTableMarkdown(cfg: RunConfig, table: MappingTable, engine: string, literal: (v: Value) => string): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [`| config key | value | ${engine} | why |`, "| --- | --- | --- | --- |"];
  for (const key of Object.keys(cfg) as (keyof RunConfig)[]) {
    const row = table[key];
    const shown = esc(JSON.stringify(cfg[key]));
    if ("outside" in row) lines.push(`| \`${key}\` | ${shown} | (not part of this job) | ${esc(row.outside)} |`);
    else {
      const mapped = row.settings(cfg);
      if (mapped.length === 0 && row.outsideWhenUnset) lines.push(`| \`${key}\` | ${shown} | (not part of this job) | ${esc(row.outsideWhenUnset)} |`);
      for (const s of mapped) lines.push(`| \`${key}\` | ${shown} | \`${s.name} = ${esc(literal(s.value))}\` | ${esc(s.why)} |`);
    }
  }
  return lines.join("\n");
}
