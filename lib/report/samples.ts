// samples.md: every probe prompt with the base and the SFT reply under each other (same seed and
// settings), how each ended, then the metric table and the verdict. Replies go in fenced blocks so
// `<|end|>` and markdown-looking text show as written.

import type { ProbeOutput, ProbeReport } from "../probes/types.ts";
import { categoryRows, closestNote, metricRows, modeLabel, outputNote, settingsLine } from "./rows.ts";

/** A fenced block that no backtick run inside `text` can close early. */
function fenced(text: string): string {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = "`".repeat(longest + 1);
  return `${fence}text\n${text}\n${fence}`;
}

/** Chat markers as inline code, so no markdown renderer takes `<|end|>` for HTML. */
const markers = (s: string) => s.replace(/<\|[a-z]+\|>/g, (m) => `\`${m}\``);

/** Markdown table cell: no pipe or newline may break the row (GFM wants `\|` even inside code). */
const cell = (s: string) => markers(s.replace(/\r?\n/g, " ")).replace(/\|/g, "\\|");

function reply(label: string, o: ProbeOutput): string {
  const body = o.text.length === 0 ? "*(empty reply)*" : fenced(o.text);
  return `**${label}** — ${outputNote(o)}\n\n${body}`;
}

/** The training answer closest to a reply (the memorisation probe), with the repeated run. */
function closest(label: string, o: ProbeOutput): string {
  const c = o.closest!;
  return `*Closest training answer to the ${label} reply* — ${closestNote(c)}; repeated: ${cell(JSON.stringify(c.runText))}\n\n${fenced(c.answer)}`;
}

/** The samples.md of a probe report (`evalLossByKind`: summary.json's held-out loss per kind). */
export function samplesMarkdown(report: ProbeReport, evalLossByKind?: Record<string, { loss: number }>): string {
  const out: string[] = [];
  out.push("# Probe samples: base vs SFT", "");
  out.push(`Same prompts, seed and settings for both models: ${settingsLine(report)}.`);
  out.push("Chat prompts are rendered with the chat template up to `<|assistant|>\\n`; prose openings are given as raw text (a healthy model continues them).", "");
  out.push("## Verdict", "", markers(report.verdict), "");
  out.push("## Samples", "");
  for (const s of report.samples) {
    out.push(`### \`${s.id}\` · ${s.kind}${s.category ? ` (${s.category})` : ""} · ${modeLabel(s.mode)}`, "");
    out.push(fenced(s.prompt), "");
    if (s.prefill !== undefined) out.push("Prefilled start of the reply:", "", fenced(s.prefill), "");
    out.push(reply("Base", s.base), "");
    out.push(reply("SFT", s.sft), "");
    // The SFT reply's nearest training answer always; the base's only when it counts (a false positive).
    if (s.sft.closest) out.push(closest("SFT", s.sft), "");
    if (s.base.memorised && s.base.closest) out.push(closest("base", s.base), "");
  }
  out.push("## Metrics", "");
  out.push("| metric | base | SFT | note |", "| --- | --- | --- | --- |");
  for (const r of metricRows(report)) out.push(`| ${cell(r.metric)} | ${cell(r.base)} | ${cell(r.sft)} | ${cell(r.note)} |`);
  out.push("");
  if (report.categories?.length) {
    const { header, rows } = categoryRows(report.categories, evalLossByKind);
    out.push("## By kind", "", "Held-out prompts grouped by their data file's `kind`.", "");
    out.push(`| ${header.map(cell).join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`);
    for (const r of rows) out.push(`| ${r.map(cell).join(" | ")} |`);
    out.push("");
  }
  out.push("## Knowledge retention items", "");
  out.push("| item | answer | base pick (margin) | SFT pick (margin) |", "| --- | --- | --- | --- |");
  const pick = (p: { correct: boolean; pick: string; margin: number }) => `${p.correct ? "✓" : "✗"} ${cell(JSON.stringify(p.pick))} (${p.margin.toFixed(2)})`;
  for (const it of report.retention.items) {
    out.push(`| \`${it.id}\` | ${cell(JSON.stringify(it.answer))} | ${pick(it.base)} | ${pick(it.sft)} |`);
  }
  out.push("");
  return out.join("\n");
}
