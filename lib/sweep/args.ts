// Pass-through flags: the sweep keeps its own flags and hands train.ts's flags to each run. Only
// flags train.ts declares pass (its table of options, lib/sft/run-config.ts): anything else is
// refused here, before any run starts, rather than handed to twelve runs that would each refuse it.
// citty cannot split this (it parses an unknown `--steps 30` as a switch plus a stray word), so the
// raw argv is split here.

import { unknownFlag, UsageError, type FlagKinds } from "../util/cli.ts";

export interface SplitArgs {
  own: Record<string, string | boolean>;
  passthrough: string[]; // normalised to `--flag value` / `--switch` / `--no-switch` tokens, in the order given
}

/**
 * Split `rawArgs` into the sweep's own flags and train.ts's. `--flag=value` and `--flag value`
 * both work; a flag with a value always takes the next argument. An unknown flag, a missing
 * value or a positional argument is a UsageError (with the nearest known flag).
 */
export function splitArgs(rawArgs: string[], ownFlags: FlagKinds, trainFlags: FlagKinds): SplitArgs {
  const own: Record<string, string | boolean> = {};
  const passthrough: string[] = [];
  const known = [...new Set([...Object.keys(ownFlags), ...Object.keys(trainFlags)])];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (!arg.startsWith("--") || arg === "--") {
      throw new UsageError(`unexpected argument \`${arg}\`: every option is a --flag (e.g. --steps 30)`);
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    let value: string | undefined = eq > 0 ? arg.slice(eq + 1) : undefined;
    const negated = name.startsWith("no-") && value === undefined ? name.slice(3) : undefined;
    const kind = ownFlags[name] ?? trainFlags[name];
    if (kind === undefined && negated !== undefined && (ownFlags[negated] ?? trainFlags[negated]) === "boolean") {
      if (ownFlags[negated]) own[negated] = false;
      else passthrough.push(`--no-${negated}`);
      continue;
    }
    if (kind === undefined) throw unknownFlag(arg, name, known);
    if (kind === "boolean") {
      if (value !== undefined && value !== "true" && value !== "false") throw new UsageError(`--${name} is a switch: give it alone (or --no-${name}), not \`${arg}\``);
      const on = value !== "false";
      if (ownFlags[name]) own[name] = on;
      else passthrough.push(on ? `--${name}` : `--no-${name}`);
      continue;
    }
    if (value === undefined) {
      value = rawArgs[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      const next = value.startsWith("--") ? value.slice(2).split("=")[0]!.replace(/^no-/, "") : "";
      if (ownFlags[next] || trainFlags[next]) throw new UsageError(`--${name} needs a value, but the next argument is the flag \`${value}\``);
    }
    if (ownFlags[name]) own[name] = value;
    else passthrough.push(`--${name}`, value);
  }
  return { own, passthrough };
}

/** The pass-through flags as citty would have parsed them for train.ts: `{flag: value}`, a switch
 * true or false, the last one winning. */
export function flagRecord(passthrough: string[], trainFlags: FlagKinds): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < passthrough.length; i++) {
    const name = passthrough[i]!.slice(2);
    if (trainFlags[name] === "string") out[name] = passthrough[++i]!;
    else if (name.startsWith("no-") && trainFlags[name] === undefined) out[name.slice(3)] = false;
    else out[name] = true;
  }
  return out;
}

/** The value of `--name` in a normalised flag list (the last one wins, as in citty), or undefined. */
export function flagValue(args: string[], name: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) {
      const next = args[i + 1];
      found = next !== undefined && !next.startsWith("--") ? next : "";
    }
  }
  return found;
}

/** `args` without `--name` and its value. */
export function withoutFlag(args: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) {
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith("--")) i++;
      continue;
    }
    out.push(args[i]!);
  }
  return out;
}
