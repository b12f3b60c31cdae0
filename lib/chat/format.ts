// Text the chat prints: the stats line after a reply, the mark on a reply that did not end on its
// own, /history, and /compare's two columns. Plain strings; the script adds colour.

import type { Generation } from "../generate/generate.ts";
import type { Message } from "../format/types.ts";

/** Reply tokens, not counting the stop token. */
export const replyTokens = (g: Pick<Generation, "ids" | "stopReason">) => g.ids.length - (g.stopReason === "end-token" ? 1 : 0);

/** `23 tokens · 41.2 tok/s · prompt 57 tokens · first token 12 ms` */
export function formatStats(g: Generation): string {
  return [
    `${replyTokens(g)} tokens`,
    `${g.tokensPerSec.toFixed(1)} tok/s`,
    `prompt ${g.promptTokens} tokens`,
    `first token ${Math.round(g.timeToFirstTokenMs)} ms`,
  ].join(" · ");
}

/** The mark for a reply that did not end with its stop token, or null if it did. */
export function stopMark(g: Pick<Generation, "ids" | "stopReason">, maxTokens: number): string | null {
  switch (g.stopReason) {
    case "max-tokens":
      return `[cut at ${maxTokens} tokens]`;
    case "context":
      return `[cut: the context is full after ${replyTokens(g)} tokens]`;
    case "interrupted":
      return `[interrupted after ${replyTokens(g)} tokens]`;
    default:
      return null;
  }
}

/** `/history`: every message, numbered by exchange; exchanges dropped from the context say so. */
export function historyText(messages: Message[], contextStart: number, assistantLabel = "sft"): string {
  if (messages.length === 0) return "(no messages yet)";
  const lines: string[] = [];
  messages.forEach((m, i) => {
    const n = Math.floor(i / 2) + 1;
    const head = m.role === "user" ? `${String(n).padStart(3)} you` : `    ${assistantLabel}`;
    const out = i < contextStart && m.role === "user" ? "  (dropped from the context)" : "";
    const [first, ...rest] = m.content.split("\n");
    lines.push(`${head}: ${first}${out}`, ...rest.map((l) => `${" ".repeat(head.length + 2)}${l}`));
  });
  return lines.join("\n");
}

/** Word-wrap `text` to `width` columns (paragraph breaks kept; words longer than a line are split). */
export function wrapText(text: string, width: number): string[] {
  const out: string[] = [];
  for (const para of text.split("\n")) {
    let line = "";
    for (let word of para.split(/\s+/).filter(Boolean)) {
      while (word.length > width) {
        if (line) out.push(line);
        out.push(word.slice(0, width));
        word = word.slice(width);
        line = "";
      }
      if (!line) line = word;
      else if (line.length + 1 + word.length <= width) line += " " + word;
      else {
        out.push(line);
        line = word;
      }
    }
    out.push(line);
  }
  return out;
}

export interface Column {
  title: string;
  text: string;
}

const MIN_SIDE_BY_SIDE = 60; // narrower terminals get the two texts one under the other

/** Two texts in two columns of a `width`-column terminal (stacked when it is too narrow). */
export function sideBySide(left: Column, right: Column, width: number): string {
  if (width < MIN_SIDE_BY_SIDE) {
    return [left, right].map((c) => `── ${c.title}\n${wrapText(c.text, width).join("\n")}`).join("\n");
  }
  const w = Math.floor((width - 3) / 2);
  const a = [left.title, "─".repeat(w), ...wrapText(left.text, w)];
  const b = [right.title, "─".repeat(w), ...wrapText(right.text, w)];
  const rows = Math.max(a.length, b.length);
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) lines.push(`${(a[i] ?? "").padEnd(w)} │ ${b[i] ?? ""}`.trimEnd());
  return lines.join("\n");
}
