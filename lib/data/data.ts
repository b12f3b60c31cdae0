// SFT data: JSON / JSONL records -> validated conversations (splits are in ./split.ts), and the
// noise-injection ablation (chatty filler spliced into a fraction of answers).
//
// A record is {"messages": [{"role": "user", "content": ...}, ...]} (mlx-lm / TRL), the Alpaca-style
// shorthand {"instruction": ..., "input"?: ..., "response": ...}, or the course notebook's pair
// {"kind"?: ..., "user": ..., "assistant": ...} (what it writes to instructions.json). Any record may
// carry a "kind" (a category): it is kept, and the probes and summary report per kind. Every problem
// in a file is collected (up to MAX_PROBLEMS) and thrown as one DataError, so a user fixes a file in
// one pass instead of one error per run.

import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { shuffled, seededRandom } from "../util/random.ts";
import { readTextFile, UTF8_FIX, utf8Problem } from "../io/text.ts";
import type { Conversation, Message, Role } from "../format/types.ts";

const MAX_PROBLEMS = 20; // listed in one DataError; the rest are only counted

/** One thing wrong with a data file. `index` is the 0-based record, `line` the 1-based line. */
export interface DataProblem {
  index?: number;
  line?: number;
  message: string;
}

/** Everything wrong with one data file. `index` and `line` are those of the first problem. */
export class DataError extends Error {
  override readonly name = "DataError";
  readonly file: string;
  readonly index?: number;
  readonly line?: number;
  readonly problems: DataProblem[];

  constructor(file: string, problems: DataProblem[], total = problems.length) {
    const where = (p: DataProblem) =>
      p.index === undefined ? (p.line === undefined ? "" : `line ${p.line}: `)
      : `record ${p.index}${p.line === undefined ? "" : ` (line ${p.line})`}: `;
    const lines = problems.map((p) => where(p) + p.message);
    const more = total > problems.length ? [`... and ${total - problems.length} more not shown`] : [];
    super(total === 1
      ? `${file}: ${lines[0]}`
      : [`${file}: ${total} problems (records counted from 0):`, ...[...lines, ...more].map((l) => `  ${l}`)].join("\n"));
    this.file = file;
    this.index = problems[0]?.index;
    this.line = problems[0]?.line;
    this.problems = problems;
  }
}

/** Collects problems up to the cap; `throwIfAny` raises them together. */
class Problems {
  readonly list: DataProblem[] = [];
  total = 0;
  constructor(readonly file: string) {}
  add(problem: DataProblem) {
    this.total++;
    if (this.list.length < MAX_PROBLEMS) this.list.push(problem);
  }
  throwIfAny() {
    if (this.total > 0) throw new DataError(this.file, this.list, this.total);
  }
}

/** A conversation and the category its record gave it (the course's `kind`), if any. */
export interface LabeledConversation {
  messages: Conversation;
  kind?: string;
}

/** Read a .json (array of records) or .jsonl (one record per line) file of conversations. */
export function loadConversations(path: string): Conversation[] {
  return loadLabeled(path).map((c) => c.messages);
}

/** `loadConversations`, keeping each record's "kind". */
export function loadLabeled(path: string): LabeledConversation[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new DataError(path, [{ message: `cannot read the file (${(e as Error).message}): check the path` }]);
  }
  // Not decoded with replacement characters: a record would silently train on U+FFFD.
  const bad = utf8Problem(bytes);
  if (bad) throw new DataError(path, [{ line: bad.line, message: `not valid UTF-8 at byte ${bad.offset} (bytes ${bad.hex}): ${UTF8_FIX}` }]);
  return parseLabeled(new TextDecoder().decode(bytes), path);
}

/** Parse conversations from `text`; the format is chosen by the extension of `file` (which also
 * names the file in errors). Throws one DataError listing every problem found. */
export function parseConversations(text: string, file: string): Conversation[] {
  return parseLabeled(text, file).map((c) => c.messages);
}

/** `parseConversations`, keeping each record's "kind". */
export function parseLabeled(text: string, file: string): LabeledConversation[] {
  const ext = extname(file).toLowerCase();
  text = text.replace(/^\uFEFF/, ""); // a byte-order mark (some Windows editors add one) is not JSON
  if (ext === ".jsonl") return parseJsonl(text, file);
  if (ext === ".json") return parseJsonArray(text, file);
  throw new DataError(file, [{ message: `unknown extension \`${ext || "(none)"}\`: name the file .json (an array of records) or .jsonl (one record per line)` }]);
}

/** The kinds present, in first-seen order (empty when no record has one). */
export function kindsOf(convs: LabeledConversation[]): string[] {
  return [...new Set(convs.flatMap((c) => (c.kind === undefined ? [] : [c.kind])))];
}

function parseJsonl(text: string, file: string): LabeledConversation[] {
  const problems = new Problems(file);
  const convs: LabeledConversation[] = [];
  let index = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === "") return; // blank lines are allowed and are not records
    const line = i + 1;
    let record: unknown;
    try {
      record = JSON.parse(raw);
    } catch (e) {
      problems.add({ index, line, message: `not valid JSON (${jsonReason(e)}): each line must hold one complete record; a record spread over several lines belongs in a .json array` });
      index++;
      return;
    }
    const conv = toConversation(record, (message) => problems.add({ index, line, message }));
    if (conv) convs.push(conv);
    index++;
  });
  if (index === 0) problems.add({ message: "the file holds no records: add one conversation per line" });
  problems.throwIfAny();
  return convs;
}

function parseJsonArray(text: string, file: string): LabeledConversation[] {
  let records: unknown;
  try {
    records = JSON.parse(text);
  } catch (e) {
    throw new DataError(file, [locateJsonError(text, jsonReason(e))]);
  }
  if (!Array.isArray(records)) {
    const got = records === null ? "null" : typeof records;
    throw new DataError(file, [{ message: `expected a JSON array of records ([{"messages": [...]}, ...]), got ${got}: wrap the records in [ ], or put one record per line in a .jsonl file` }]);
  }
  if (records.length === 0) throw new DataError(file, [{ message: "the array holds no records: add conversations to it" }]);
  const problems = new Problems(file);
  const lines = linesAt(text, scanArray(text).starts);
  const convs: LabeledConversation[] = [];
  records.forEach((record, index) => {
    const conv = toConversation(record, (message) => problems.add({ index, line: lines[index], message }));
    if (conv) convs.push(conv);
  });
  problems.throwIfAny();
  return convs;
}

const jsonReason = (e: unknown) => String((e as Error).message ?? e).replace(/^JSON Parse error: /, "");

/** Offsets of a top-level JSON array's elements (`starts[k]` to `ends[k]`, exclusive), or where
 * its structure breaks. Tracks only strings and bracket depth: each element is checked by JSON.parse. */
function scanArray(text: string): { starts: number[]; ends: number[]; broken?: { at: number; message: string } } {
  const starts: number[] = [];
  const ends: number[] = [];
  let depth = 0;
  let opened = false; // the top-level "[" has been seen
  let inString = false;
  let expectElement = false; // just after "[" or a top-level ","
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === " " || c === "\n" || c === "\r" || c === "\t") continue;
    if (depth === 0) {
      if (opened) return { starts, ends, broken: { at: i, message: "unexpected text after the closing ]" } };
      if (c !== "[") return { starts, ends, broken: { at: i, message: "the file must start with [" } };
      opened = true;
      depth = 1;
      expectElement = true;
      continue;
    }
    if (depth === 1 && expectElement) {
      if (c === "]" && starts.length === 0) {
        depth = 0; // the empty array []
        continue;
      }
      if (c === "]" || c === ",") return { starts, ends, broken: { at: i, message: c === "]" ? "a comma before ] has no record after it" : "two commas with no record between them" } };
      starts.push(i);
      expectElement = false;
    }
    if (c === '"') inString = true;
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") {
      if (--depth === 0) ends.push(i);
    } else if (c === "," && depth === 1) {
      ends.push(i);
      expectElement = true;
    }
  }
  if (depth > 0 || inString) return { starts, ends, broken: { at: text.length, message: "unexpected end of file: a closing ] or } (or a \") is missing" } };
  return { starts, ends };
}

/** The 1-based line of each of the ascending `offsets`, in one pass over the text. */
function linesAt(text: string, offsets: number[]): number[] {
  let line = 1;
  let from = 0;
  return offsets.map((offset) => {
    for (; from < offset; from++) if (text.charCodeAt(from) === 10) line++;
    return line;
  });
}

/** JSON.parse in Bun gives no position, so find the first record that fails on its own. */
function locateJsonError(text: string, reason: string): DataProblem {
  const { starts, ends, broken } = scanArray(text);
  for (let k = 0; k < starts.length; k++) {
    try {
      JSON.parse(text.slice(starts[k], ends[k] ?? text.length));
    } catch (e) {
      return { index: k, line: linesAt(text, [starts[k]!])[0], message: `not valid JSON (${jsonReason(e)}): fix the syntax of the record starting on this line` };
    }
  }
  if (broken) {
    const hint = /^\s*\{/.test(text) ? "; for one record per line, name the file .jsonl" : "";
    return { line: linesAt(text, [broken.at])[0], message: `not valid JSON (${reason}): ${broken.message}${hint}` };
  }
  return { message: `not valid JSON (${reason})` };
}

const ROLE_HINTS: Record<string, Role> = { human: "user", gpt: "assistant", bot: "assistant", model: "assistant" };

/** Validate one record; report each problem through `report` and return null if there were any. */
function toConversation(record: unknown, report: (message: string) => void): LabeledConversation | null {
  if (typeof record !== "object" || record === null || Array.isArray(record)) {
    report(`expected an object with "messages", with "instruction" and "response", or with "user" and "assistant", got ${Array.isArray(record) ? "an array" : JSON.stringify(record)}`);
    return null;
  }
  const r = record as Record<string, unknown>;
  const forms = [
    "messages" in r ? `"messages"` : null,
    "instruction" in r || "response" in r ? `"instruction"/"response"` : null,
    "user" in r || "assistant" in r ? `"user"/"assistant"` : null,
  ].filter((f) => f !== null);
  if (forms.length > 1) {
    report(`has both ${forms.join(" and ")}: keep one form per record`);
    return null;
  }
  let kind: string | undefined;
  if ("kind" in r) {
    if (typeof r.kind === "string" && r.kind.trim() !== "") kind = r.kind;
    else {
      report(`"kind" (the record's category) must be a non-empty string, got ${describe(r.kind)}: fix it or remove the key`);
      return null;
    }
  }
  let messages: Conversation | null;
  if ("messages" in r) messages = messagesRecord(r.messages, report);
  else if ("instruction" in r || "response" in r) messages = pairRecord(r, "instruction", "response", report);
  else if ("user" in r || "assistant" in r) messages = pairRecord(r, "user", "assistant", report);
  else {
    const keys = Object.keys(r).map((k) => `"${k}"`).join(", ") || "none";
    report(`has neither "messages" nor "instruction"/"response" nor "user"/"assistant" (keys: ${keys}): write {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}, {"instruction": ..., "response": ...} or {"user": ..., "assistant": ...}`);
    return null;
  }
  if (!messages) return null;
  return kind === undefined ? { messages } : { messages, kind };
}

/** A one-exchange record: Alpaca's {"instruction", "input"?, "response"} or the course's
 * {"user", "assistant"}. */
function pairRecord(r: Record<string, unknown>, userKey: "instruction" | "user", replyKey: "response" | "assistant", report: (message: string) => void): Conversation | null {
  let ok = true;
  for (const key of [userKey, replyKey]) {
    const v = r[key];
    if (v === undefined) report(`has "${key === userKey ? replyKey : userKey}" but no "${key}": add "${key}": "..."`);
    else if (typeof v !== "string") report(`"${key}" must be a string, got ${describe(v)}`);
    else if (v.trim() === "") report(`"${key}" is empty: write the text or remove the record`);
    else continue;
    ok = false;
  }
  const input = userKey === "instruction" ? r.input : undefined;
  if (input !== undefined && typeof input !== "string") {
    report(`"input" must be a string, got ${describe(input)}`);
    ok = false;
  }
  if (!ok) return null;
  // Alpaca style: a non-empty input is appended to the instruction after a blank line
  const user = typeof input === "string" && input.trim() !== "" ? `${r[userKey]}\n\n${input}` : (r[userKey] as string);
  return [{ role: "user", content: user }, { role: "assistant", content: r[replyKey] as string }];
}

function messagesRecord(messages: unknown, report: (message: string) => void): Conversation | null {
  if (!Array.isArray(messages)) {
    report(`"messages" must be a list of {"role", "content"} objects, got ${describe(messages)}`);
    return null;
  }
  if (messages.length === 0) {
    report(`"messages" is empty: add a user message and the assistant reply, or remove the record`);
    return null;
  }
  let ok = true;
  let orderReported = false; // one misplaced message shifts every later one: report only the first
  let turn = 0; // position among non-system messages, so a system message is reported once, alone
  const fail = (message: string) => {
    report(message);
    ok = false;
  };
  messages.forEach((m: unknown, i) => {
    const at = `messages[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) return fail(`${at} must be an object {"role", "content"}, got ${describe(m)}`);
    const { role, content } = m as Record<string, unknown>;
    const expected: Role = turn % 2 === 0 ? "user" : "assistant";
    if (role !== "system") turn++;
    if (role === undefined) fail(`${at} has no "role": add "role": "${expected}"`);
    else if (role === "system") fail(`${at} has role "system", which is not supported yet: fold the system text into the first user message`);
    else if (role !== "user" && role !== "assistant") {
      const hint = typeof role === "string" && ROLE_HINTS[role.toLowerCase()] ? `; rename it to "${ROLE_HINTS[role.toLowerCase()]}"` : "";
      fail(`${at} has role ${JSON.stringify(role)}: the role must be "user" or "assistant"${hint}`);
    } else if (role !== expected && !orderReported) {
      orderReported = true;
      fail(`${at} is "${role}" but should be "${expected}": roles alternate user, assistant, ... starting with user; merge consecutive ${role} messages or add the missing ${expected} one`);
    }
    if (content === undefined) fail(`${at} has no "content": add "content": "..."`);
    else if (typeof content !== "string") fail(`${at} content must be a string, got ${describe(content)}: join the text into one string`);
    else if (content.trim() === "") fail(`${at} content is empty: write the text or remove the message`);
  });
  const last = messages[messages.length - 1] as { role?: unknown } | null;
  if (ok && last?.role !== "assistant") fail(`ends with a user message: add the assistant reply (the last message must be "assistant")`);
  if (!ok) return null;
  return messages.map(({ role, content }: Message) => ({ role, content }));
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  return typeof v === "string" ? `the string ${JSON.stringify(v.slice(0, 40))}` : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

/** Case- and whitespace-insensitive form of a prompt, for overlap checks between data sets. */
export function normalizePrompt(text: string): string {
  return text.toLowerCase().replace(/\s+/g, " ").trim();
}

/** Chat filler for the noise ablation (data/sft/noise.json). Detectors are regex sources, matched
 * case-insensitively. */
export interface NoiseTemplates {
  openers: string[];
  closers: string[];
  detectors: string[];
}

/** Read and check a noise templates file. */
export function loadNoiseTemplates(path: string): NoiseTemplates {
  const raw = JSON.parse(readTextFile(path)) as Record<string, unknown>;
  const list = (key: string): string[] => {
    const v = raw[key];
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) throw new Error(`${path}: "${key}" must be a list of strings`);
    return v;
  };
  const noise = { openers: list("openers"), closers: list("closers"), detectors: list("detectors") };
  compileDetectors(noise.detectors);
  return noise;
}

/**
 * Copies of `convs` in which `round(fraction * assistantMessages)` assistant answers, chosen by
 * `seed`, get a chat opener, a closer, or both. The input is not modified.
 */
export function injectNoise(convs: Conversation[], fraction: number, seed: number, noise: NoiseTemplates): Conversation[] {
  if (!(fraction >= 0 && fraction <= 1)) throw new Error(`noise fraction must be in [0, 1], got \`${fraction}\``);
  const out = convs.map((c) => c.map((m) => ({ ...m })));
  const answers = out.flatMap((c) => c.filter((m) => m.role === "assistant"));
  const k = Math.round(fraction * answers.length);
  if (k > 0 && (noise.openers.length === 0 || noise.closers.length === 0)) {
    throw new Error(`noise templates need at least one opener and one closer (got ${noise.openers.length} and ${noise.closers.length})`);
  }
  const rand = seededRandom(seed ^ 0x5bd1e995); // a stream distinct from shuffled(…, seed) below
  const pick = (xs: string[]) => xs[Math.floor(rand() * xs.length)]!;
  for (const m of shuffled(answers, seed).slice(0, k)) {
    const style = Math.floor(rand() * 3); // 0: opener, 1: closer, 2: both
    if (style !== 1) m.content = pick(noise.openers) + m.content;
    if (style !== 0) m.content = m.content + pick(noise.closers);
  }
  return out;
}

function compileDetectors(detectors: string[]): RegExp[] {
  return detectors.map((d) => {
    try {
      return new RegExp(d, "i");
    } catch (e) {
      throw new Error(`bad detector regex \`${d}\`: ${(e as Error).message}`);
    }
  });
}

/** Share of `replies` that match any detector (0 for no replies). */
export function offPatternRate(replies: string[], detectors: string[]): number {
  if (replies.length === 0) return 0;
  const res = compileDetectors(detectors);
  return replies.filter((r) => res.some((re) => re.test(r))).length / replies.length;
}
