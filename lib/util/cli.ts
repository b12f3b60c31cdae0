// Command-line helpers shared by the scripts: citty has no number type, so numbers are parsed in
// one place that names the flag and what it expected.

export class UsageError extends Error {
  override name = "UsageError";
}

export interface NumberRule {
  integer?: boolean;
  min?: number; // inclusive
  max?: number; // inclusive
  positive?: boolean; // > 0
}

/** Parse a numeric flag value; throws a UsageError naming `--flag` and what it expected. */
export function parseNumber(flag: string, value: unknown, rule: NumberRule = {}): number {
  const n = typeof value === "number" ? value : Number(String(value).trim());
  const want = [
    rule.integer ? "an integer" : "a number",
    rule.positive ? "> 0" : "",
    rule.min !== undefined ? `>= ${rule.min}` : "",
    rule.max !== undefined ? `<= ${rule.max}` : "",
  ].filter(Boolean).join(" ");
  const bad =
    value === undefined || value === "" || !Number.isFinite(n) ||
    (rule.integer && !Number.isInteger(n)) || (rule.positive && !(n > 0)) ||
    (rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max);
  if (bad) throw new UsageError(`--${flag} expects ${want}, got \`${value}\``);
  return n;
}

/** Split a comma-separated flag value into trimmed, non-empty items. */
export function parseList(value: unknown): string[] {
  return String(value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}
