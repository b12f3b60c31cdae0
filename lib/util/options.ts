// Options declared once, as a table: each option's config key, its --flag, type, range or choices,
// default (with the reason as a trailing comment where the table is written) and help line. A
// config's defaults, its validation, the script's citty flags and the parsing of those flags are
// derived from the table, so adding an option is one entry. The tables of an SFT run are
// SFT_OPTIONS (lib/train/config.ts) and RUN_OPTIONS (lib/sft/run-config.ts).
import type { ArgsDef } from "citty";
import { describeNumberRule, meetsNumberRule, parseNumber, UsageError, type NumberRule } from "./cli.ts";

export interface OptionSpec<V = unknown> extends NumberRule {
  type: "int" | "number" | "bool" | "choice" | "string";
  default: V;
  help: string; // one line for --help; the default is appended
  flag?: string; // the --flag, when it is not the key in kebab-case (maskMode → --mask)
  choices?: readonly string[]; // choice
  pattern?: { re: RegExp; says: string }; // string: what a value must look like, and that in words
  shown?: string; // how --help shows the default, when not the value (a path relative to the project)
}

/** One spec per key of the config `T`, with a default of that key's type. */
export type OptionTable<T> = { [K in keyof T]-?: OptionSpec<T[K]> };

/** `--flag` name of a table entry. */
export function flagOf(key: string, spec: OptionSpec): string {
  return spec.flag ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Every default of the table, as a fresh config. */
export function defaultsOf<T>(table: OptionTable<T>): T {
  return Object.fromEntries(Object.entries<OptionSpec>(table).map(([k, s]) => [k, s.default])) as T;
}

const numberRule = (spec: OptionSpec): NumberRule => ({ integer: spec.type === "int", min: spec.min, max: spec.max, positive: spec.positive });

/** What a value of this option must be, in words: `an integer >= 1`, `"best" or "last"`. */
export function describeOption(spec: OptionSpec): string {
  switch (spec.type) {
    case "int":
    case "number":
      return describeNumberRule(numberRule(spec));
    case "bool":
      return "true or false";
    case "choice":
      return spec.choices!.map((c) => JSON.stringify(c)).join(" or ");
    case "string":
      return spec.pattern ? `a string of ${spec.pattern.says}` : "a non-empty string";
  }
}

/** Whether `value` (as a config file or a caller holds it: typed, not a flag's text) is valid. */
export function isValidOption(spec: OptionSpec, value: unknown): boolean {
  switch (spec.type) {
    case "int":
    case "number":
      return typeof value === "number" && meetsNumberRule(value, numberRule(spec));
    case "bool":
      return typeof value === "boolean";
    case "choice":
      return typeof value === "string" && spec.choices!.includes(value);
    case "string":
      return typeof value === "string" && value.length > 0 && (!spec.pattern || spec.pattern.re.test(value));
  }
}

/** A flag's value as citty gives it (a string, or a boolean for a switch) → the option's value;
 * throws a UsageError naming `--flag`, what it expected and what it got. */
export function parseOptionFlag(flag: string, spec: OptionSpec, raw: string | boolean): unknown {
  if (spec.type === "bool") return raw === true || raw === "true";
  if (spec.type === "int" || spec.type === "number") return parseNumber(flag, raw, numberRule(spec));
  const value = String(raw);
  if (spec.type === "choice" && !spec.choices!.includes(value)) throw new UsageError(`--${flag} expects ${spec.choices!.join(" or ")}, got \`${value}\``);
  if (spec.type === "string") {
    if (raw === "" || raw === true) throw new UsageError(`--${flag} expects a value`);
    if (spec.pattern && !spec.pattern.re.test(value)) throw new UsageError(`--${flag} \`${value}\` may only contain ${spec.pattern.says}`);
  }
  return value;
}

/** The citty args of a table: switches for booleans (`--no-x` where the default is on), strings
 * for the rest (numbers are parsed by parseOptionFlag, not citty); no citty defaults, so a flag
 * that was not given reads as undefined and the config file underneath can show through. */
export function cittyArgs(table: OptionTable<Record<string, unknown>>): ArgsDef {
  const args: ArgsDef = {};
  for (const [key, spec] of Object.entries(table)) {
    const shown = spec.shown ?? (spec.type === "bool" ? (spec.default ? "on" : "off") : String(spec.default));
    const description = `${spec.help} (default: ${shown})`;
    args[flagOf(key, spec)] = spec.type === "bool"
      ? { type: "boolean", description, ...(spec.default ? { negativeDescription: `turn off --${flagOf(key, spec)}` } : {}) }
      : { type: "string", description };
  }
  return args;
}

/** The flags citty parsed, as a partial config: each given flag parsed and checked, the rest
 * absent (so defaults and a config file underneath stay). */
export function optionsFromFlags<T>(table: OptionTable<T>, args: Record<string, unknown>): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries<OptionSpec>(table)) {
    const raw = args[flagOf(key, spec)];
    if (raw !== undefined) out[key] = parseOptionFlag(flagOf(key, spec), spec, raw as string | boolean);
  }
  return out as Partial<T>;
}

/** The table entry a config file's name refers to: its key (`evalEvery`) or its flag (`eval-every`). */
export function findOption<T>(table: OptionTable<T>, name: string): (keyof T & string) | undefined {
  const entries = Object.entries<OptionSpec>(table);
  return (entries.find(([k]) => k === name) ?? entries.find(([k, s]) => flagOf(k, s) === name))?.[0] as (keyof T & string) | undefined;
}
