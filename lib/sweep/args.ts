// Pass-through flags: the sweep keeps its own flags and hands every other `--flag value` to each
// train.ts run unchanged. citty cannot do this (it parses an unknown `--steps 30` as a boolean
// flag plus a stray positional), so the raw argv is split here.

import { UsageError } from "../util/cli.ts";

/** The sweep's own flags: name → whether it takes a value. */
export type OwnFlags = Record<string, "string" | "boolean">;

export interface SplitArgs {
  own: Record<string, string | boolean>;
  passthrough: string[]; // normalised to `--flag value` / `--flag` tokens, in the order given
}

/**
 * Split `rawArgs` into the sweep's own flags and the rest. `--flag=value` and `--flag value` both
 * work; an unknown flag followed by another flag (or nothing) is passed on as a boolean.
 * Positional arguments are an error: every train.ts option is a flag.
 */
export function splitArgs(rawArgs: string[], ownFlags: OwnFlags): SplitArgs {
  const own: Record<string, string | boolean> = {};
  const passthrough: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (!arg.startsWith("--") || arg === "--") {
      throw new UsageError(`unexpected argument \`${arg}\`: every option is a --flag (e.g. --steps 30)`);
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    let value: string | undefined = eq > 0 ? arg.slice(eq + 1) : undefined;
    const next = rawArgs[i + 1];
    const kind = ownFlags[name];
    if (kind === "boolean") {
      own[name] = value === undefined ? true : value !== "false";
      continue;
    }
    if (value === undefined && next !== undefined && !next.startsWith("--")) {
      value = next;
      i++;
    }
    if (kind === "string") {
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      own[name] = value;
    } else {
      passthrough.push(`--${name}`, ...(value === undefined ? [] : [value]));
    }
  }
  return { own, passthrough };
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
