// Command-line helpers shared by the scripts. citty has no number type and silently accepts any
// flag, so two things live here: numbers parsed in one place (decimal only) that names the flag and
// what it expected, and `runStrict`, which checks the raw command line against the declared flags
// before a script does anything and refuses an unknown flag with the nearest known one.
import { runMain, type ArgsDef, type CommandDef } from "citty";
import { consola } from "consola";

export class UsageError extends Error {
  override name = "UsageError";
}

export interface NumberRule {
  integer?: boolean;
  min?: number; // inclusive
  max?: number; // inclusive
  positive?: boolean; // > 0
}

// Plain decimal only: `Number()` also reads `0x10`, `0b1`, ` 12 ` and `Infinity`, so `--steps 0x10`
// would quietly train 16 steps; an integer is digits only (`1e2` is refused for a step count).
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const INTEGER = /^[+-]?\d+$/;

/** What a rule asks for, e.g. "an integer >= 1" or "a number > 0 <= 1". */
export function describeNumberRule(rule: NumberRule): string {
  return [
    rule.integer ? "an integer" : "a number",
    rule.positive ? "> 0" : "",
    rule.min !== undefined ? `>= ${rule.min}` : "",
    rule.max !== undefined ? `<= ${rule.max}` : "",
  ].filter(Boolean).join(" ");
}

/** Whether `n` (already a number) satisfies `rule`. */
export function meetsNumberRule(n: number, rule: NumberRule): boolean {
  return Number.isFinite(n) && !(rule.integer && !Number.isInteger(n)) && !(rule.positive && !(n > 0)) &&
    !(rule.min !== undefined && n < rule.min) && !(rule.max !== undefined && n > rule.max);
}

/** Parse a numeric flag value written in plain decimal (a number from a JSON file is taken as is);
 * throws a UsageError naming `--flag`, what it expected and, for `0x10` or ` 12 `, the decimal form. */
export function parseNumber(flag: string, value: unknown, rule: NumberRule = {}): number {
  let n = NaN;
  let hint = "";
  if (typeof value === "number") n = value;
  else if (typeof value === "string") {
    if ((rule.integer ? INTEGER : DECIMAL).test(value)) n = Number(value);
    else if (value.trim() !== "" && Number.isFinite(Number(value))) hint = `; write it in plain decimal, e.g. \`${Number(value)}\``;
  }
  if (!meetsNumberRule(n, rule)) throw new UsageError(`--${flag} expects ${describeNumberRule(rule)}, got \`${value}\`${hint}`);
  return n;
}

/** Split a comma-separated flag value into trimmed, non-empty items. */
export function parseList(value: unknown): string[] {
  return String(value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** Edit distance between two strings (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** The known name closest to `name` (a typo, a prefix, camelCase for kebab-case), or undefined. */
export function suggest(name: string, known: string[]): string | undefined {
  const kebab = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, "-");
  if (known.includes(kebab)) return kebab;
  const scored = known.map((k) => ({ k, d: k.startsWith(name) || name.startsWith(k) ? 1 : distance(name, k) })).sort((a, b) => a.d - b.d);
  const best = scored[0];
  return best && best.d <= Math.max(2, Math.floor(name.length / 3)) ? best.k : undefined;
}

/** "unknown flag `--step`: did you mean `--steps`?" with what lists the rest. */
export function unknownFlag(arg: string, name: string, known: string[]): UsageError {
  const near = suggest(name, known);
  return new UsageError(`unknown flag \`${arg}\`${near ? `: did you mean \`--${near}\`?` : ""} (--help lists every flag)`);
}

export type FlagKinds = Record<string, "string" | "boolean">;

/** The declared flags of a citty args definition: name → whether it takes a value. */
export function flagKinds(args: ArgsDef): FlagKinds {
  return Object.fromEntries(Object.entries(args).filter(([, d]) => d.type !== "positional").map(([k, d]) => [k, d.type === "boolean" ? "boolean" : "string"]));
}

const HELP = ["--help", "-h"];

/**
 * Check a raw command line against declared flags, the way citty will read it: `--flag value` and
 * `--flag=value` for a flag with a value (the next argument is taken whatever it looks like, so a
 * flag there is an error, as is a missing value), `--switch`, `--switch=true|false` and
 * `--no-switch` for a boolean, and words only where positional arguments are declared. Anything
 * else is a UsageError naming the argument, with the nearest declared flag.
 */
export function checkArgs(rawArgs: string[], args: ArgsDef): void {
  if (rawArgs.some((a) => HELP.includes(a))) return; // citty prints the usage and exits
  const kinds = flagKinds(args);
  const known = Object.keys(kinds);
  let positionals = Object.values(args).filter((d) => d.type === "positional").length;
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (!arg.startsWith("-") || arg === "-" || /^-\d/.test(arg)) {
      if (positionals-- > 0) continue;
      throw new UsageError(`unexpected argument \`${arg}\`: every option is a --flag (--help lists them)`);
    }
    if (arg === "--") throw new UsageError("`--` is not used: give every option as a --flag");
    const eq = arg.indexOf("=");
    const name = (eq > 0 ? arg.slice(0, eq) : arg).replace(/^--?/, "");
    const value = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (!arg.startsWith("--")) throw unknownFlag(arg, name, known);
    const kind = kinds[name];
    if (kind === "boolean") {
      if (value !== undefined && value !== "true" && value !== "false") throw new UsageError(`--${name} is a switch: give it alone (or --no-${name}), not \`${arg}\``);
      continue;
    }
    if (kind === "string") {
      if (value !== undefined) continue;
      const next = rawArgs[i + 1];
      if (next === undefined) throw new UsageError(`--${name} expects a value`);
      const nextName = next.startsWith("--") ? next.slice(2).split("=")[0]! : undefined;
      if (nextName !== undefined && (kinds[nextName] || kinds[nextName.replace(/^no-/, "")])) {
        throw new UsageError(`--${name} expects a value, but the next argument is the flag \`${next}\``);
      }
      i++;
      continue;
    }
    const negated = name.startsWith("no-") ? name.slice(3) : undefined;
    if (negated !== undefined && value === undefined && kinds[negated] === "boolean") continue;
    if (negated !== undefined && kinds[negated] === "string") throw new UsageError(`\`${arg}\`: --${negated} is not a switch; give it a value (--${negated} <value>) or leave it out`);
    throw unknownFlag(arg, name, known);
  }
}

/**
 * citty's runMain, strict: the command line is checked against the command's declared flags
 * before anything runs (no environment set-up, no model load), and a UsageError, from that check
 * or thrown by the command, is printed as one line and exits with code 2.
 */
export async function runStrict(command: CommandDef<any>, rawArgs: string[] = process.argv.slice(2)): Promise<void> {
  const meta = (typeof command.meta === "function" ? await command.meta() : await command.meta) ?? {};
  const log = consola.withTag(meta.name ?? "cli");
  const fail = (e: unknown) => {
    if (!(e instanceof UsageError)) throw e;
    log.error(e.message);
    process.exit(2);
  };
  try {
    checkArgs(rawArgs, (typeof command.args === "function" ? await command.args() : await command.args) ?? {});
  } catch (e) {
    fail(e);
  }
  const run = command.run;
  await runMain({ ...command, run: run && (async (ctx) => { try { return await run(ctx); } catch (e) { fail(e); } }) }, { rawArgs });
}
