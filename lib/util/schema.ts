// Typed schemas for the JSON files the project writes and reads back (summary.json, metrics.jsonl,
// config.json, trainer-state.json): each file's TypeScript interface is its one definition, and a
// schema written against it (`object<Summary>({...})`: the compiler insists on every key, with a
// schema of the key's type) checks a parsed value before anyone uses it. A mismatch names the path
// inside the value (`probes.sft.stopRate: expected a number, got "x"`); readers add the file.
// Deliberately small: what these files need, no dependency.

/** A value that did not match its schema: where inside it, and what was expected. */
export class SchemaError extends Error {
  override name = "SchemaError";
  constructor(readonly at: string, readonly expected: string, readonly got: unknown) {
    super(`${at || "the top level"}: expected ${expected}, got ${shown(got)}`);
  }
}

export interface Schema<T> {
  /** The value, checked (objects are rebuilt with only the schema's keys); throws SchemaError. */
  parse(value: unknown, at?: string): T;
  readonly expected: string; // for messages: "a number", "one of `a`, `b`"
  readonly optional?: boolean; // an object key that may be absent
  /** Never set: makes Schema<T> invariant in T, so a schema must match its key's type exactly
   * (a key typed `number | null` needs `nullable(...)`, an optional one `optional(...)`). */
  readonly _type?: (t: T) => T;
}

function shown(v: unknown): string {
  if (v === undefined) return "nothing (the key is missing)";
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function leaf<T>(expected: string, ok: (v: unknown) => boolean, map: (v: any) => T = (v) => v): Schema<T> {
  return {
    expected,
    parse(v, at = "") {
      if (!ok(v)) throw new SchemaError(at, expected, v);
      return map(v);
    },
  };
}

const join = (at: string, key: string | number) => (typeof key === "number" ? `${at}[${key}]` : at ? `${at}.${key}` : key);

/** A finite number. */
export const finite = (): Schema<number> => leaf("a finite number", (v) => typeof v === "number" && Number.isFinite(v));
/** A measured number: JSON writes NaN and ±Infinity as null, so null reads back as NaN (readers
 * treat a non-finite measure as "n/a"). */
export const measure = (): Schema<number> => leaf("a number (or null)", (v) => v === null || typeof v === "number", (v) => (v === null ? NaN : v));
/** An integer, at least `min`. */
export const int = (min = -Infinity): Schema<number> => leaf(min > -Infinity ? `an integer >= ${min}` : "an integer", (v) => Number.isInteger(v) && (v as number) >= min);
export const string = (): Schema<string> => leaf("a string", (v) => typeof v === "string");
export const boolean = (): Schema<boolean> => leaf("true or false", (v) => typeof v === "boolean");
/** Anything JSON (a field whose contents this reader does not interpret). */
export const json = (): Schema<unknown> => leaf("any JSON value", () => true);

/** One of the given strings. */
export function literal<const L extends readonly string[]>(...values: L): Schema<L[number]> {
  return leaf(`one of ${values.map((v) => `\`${v}\``).join(", ")}`, (v) => values.includes(v as string));
}

export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  const expected = `${inner.expected} or null`;
  return {
    expected,
    parse(v, at = "") {
      if (v === null) return null;
      try {
        return inner.parse(v, at);
      } catch (e) {
        throw e instanceof SchemaError && e.at === at ? new SchemaError(at, expected, v) : e;
      }
    },
  };
}

/** An object key that may be absent (a field added later, or one only some writers set). */
export function optional<T>(inner: Schema<T>): Schema<T | undefined> {
  return { expected: inner.expected, optional: true, parse: (v, at = "") => (v === undefined ? undefined : inner.parse(v, at)) };
}

/** An object key added later: a file written before it existed reads as `fallback`. */
export function defaulted<T>(inner: Schema<T>, fallback: T): Schema<T> {
  return { expected: inner.expected, parse: (v, at = "") => (v === undefined ? fallback : inner.parse(v, at)) };
}

export function array<T>(inner: Schema<T>): Schema<T[]> {
  return {
    expected: `a list of ${inner.expected}`,
    parse(v, at = "") {
      if (!Array.isArray(v)) throw new SchemaError(at, this.expected, v);
      return v.map((x, i) => inner.parse(x, join(at, i)));
    },
  };
}

/** An object with string keys and values of one schema. */
export function record<T>(inner: Schema<T>): Schema<Record<string, T>> {
  return {
    expected: `an object of ${inner.expected}`,
    parse(v, at = "") {
      if (!isObject(v)) throw new SchemaError(at, this.expected, v);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, inner.parse(x, join(at, k))]));
    },
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** An object with exactly the keys of `T` (each with a schema of its type); keys the schema does
 * not name are dropped, so a reader never carries fields it has not checked. */
export function object<T>(shape: { [K in keyof T]-?: Schema<T[K]> }): Schema<T> {
  return {
    expected: "an object",
    parse(v, at = "") {
      if (!isObject(v)) throw new SchemaError(at, "an object", v);
      const out: Record<string, unknown> = {};
      for (const [key, schema] of Object.entries(shape) as [string, Schema<unknown>][]) {
        if (!(key in v) && schema.optional) continue;
        const parsed = schema.parse(v[key], join(at, key));
        if (parsed !== undefined) out[key] = parsed;
      }
      return out as T;
    },
  };
}

/** The type a schema checks. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

/** Objects told apart by the string at `key` (e.g. metrics rows by `type`): the union of the
 * variants' types. */
export function tagged<V extends Record<string, Schema<any>>>(key: string, variants: V): Schema<{ [K in keyof V]: Infer<V[K]> }[keyof V]> {
  const tags = Object.keys(variants);
  const names = tags.map((t) => `\`${t}\``).join(" or ");
  return {
    expected: `an object with ${key} ${names}`,
    parse(v, at = "") {
      if (!isObject(v)) throw new SchemaError(at, "an object", v);
      const tag = v[key];
      const variant = typeof tag === "string" ? variants[tag] : undefined;
      if (!variant) throw new SchemaError(join(at, key), names, tag);
      return variant.parse(v, at);
    },
  };
}
