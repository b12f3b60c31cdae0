// The probe metric table, base vs SFT, as formatted rows: one definition shared by samples.md and
// report.html so both show the same numbers with the same wording.

import { LOOPING } from "../probes/metrics.ts";
import type { CategoryMetrics, GenerationMetrics, ProbeMode, ProbeOutput, ProbeReport } from "../probes/types.ts";
import type { ClosestAnswer } from "../probes/memorisation.ts";

export interface MetricRow {
  metric: string;
  base: string;
  sft: string;
  note: string; // what the metric means or the change, in a few words
}

const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const ratio = (k: number, n: number) => (n === 0 ? "–" : `${k}/${n} (${pct(k / n)})`);
const signed = (x: number, digits: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(digits)}`;

/** The metric rows of a report, formatted for people. */
export function metricRows(r: ProbeReport): MetricRow[] {
  const g = (label: string, cell: (m: GenerationMetrics) => string, note: string): MetricRow => ({ metric: label, base: cell(r.base), sft: cell(r.sft), note });
  const { prose, retention } = r;
  return [
    g("stop rate", (m) => ratio(m.stops, m.chatProbes), "chat replies ending with <|end|> before the token limit"),
    g("role leakage", (m) => ratio(m.leaks, m.chatProbes), "chat replies holding <|user|> or <|assistant|>"),
    g("mean reply length", (m) => `${m.meanLength.toFixed(1)} tokens`, `limit ${r.settings.maxTokens}`),
    g("repetition", (m) => `${(100 * m.repetition).toFixed(1)}%`, "repeated token 3-grams per reply, mean"),
    g("off-pattern", (m) => ratio(m.offPattern, m.chatProbes), "chat replies with chat filler (noise detectors)"),
    g("memorised", (m) => ratio(m.memorised, m.chatProbes), `chat replies repeating ${r.settings.memorisedRun}+ tokens of one training answer verbatim`),
    g("prose continued", (m) => ratio(m.continued, m.proseProbes), "raw prose openings continued for 16+ tokens"),
    g("prose answered", (m) => ratio(m.answered, m.proseProbes), "raw prose openings met with <|end|> or a role marker"),
    g("prefilled reply completed", (m) => ratio(m.prefillCompleted, m.prefillProbes), "replies begun in the prompt, continued and closed with <|end|>"),
    {
      metric: "held-out prose loss",
      base: `${prose.baseLoss.toFixed(3)} nats/token`,
      sft: `${prose.sftLoss.toFixed(3)} nats/token`,
      note: `${signed(prose.delta, 3)} (${signed(100 * prose.relative, 1)}%) over ${prose.ntoks} tokens`,
    },
    {
      metric: "knowledge retention",
      base: ratio(retention.base.correct, retention.base.total),
      sft: ratio(retention.sft.correct, retention.sft.total),
      note: `cloze by likelihood; mean margin ${retention.base.meanMargin.toFixed(2)} → ${retention.sft.meanMargin.toFixed(2)} nats`,
    },
  ];
}

/** "end-token, 12 tokens, role marker" — how a reply ended and what is wrong with it. */
export function outputNote(o: ProbeOutput): string {
  const parts = [o.stopReason, `${o.tokens} token${o.tokens === 1 ? "" : "s"}`];
  if (o.outcome) parts.push(o.outcome);
  if (o.leaked) parts.push("role marker");
  if (o.offPattern) parts.push("chat filler");
  if (o.memorised) parts.push(`memorised (${o.closest!.run}-token run)`);
  if (o.repetition >= LOOPING) parts.push(`${pct(o.repetition)} repeated 3-grams`);
  return parts.join(", ");
}

/** "training answer 12 (message 1), 9-token run, 40% of the reply" — the closest training answer. */
export function closestNote(c: ClosestAnswer): string {
  return `training conversation ${c.conversation} (message ${c.turn}): ${c.run}-token run, ${pct(c.coverage)} of the reply`;
}

/** One line on how the probes were run. */
export function settingsLine(r: ProbeReport): string {
  const s = r.settings;
  const sampling = s.temperature > 0 ? `temperature ${s.temperature}` : "greedy";
  return `${sampling}, at most ${s.maxTokens} tokens, seed ${s.seed}, stop ${s.stopToken}; ${s.probePrompts} probe prompts (${s.probesPath}) + ${s.evalPrompts} held-out eval prompts`;
}

/** How a prompt was put to the models, in a few words. */
export function modeLabel(mode: ProbeMode): string {
  return mode === "chat" ? "chat template" : mode === "raw" ? "raw text" : "chat template + prefilled reply";
}

/** The per-category table (the eval data's "kind"): header and formatted rows, shared by samples.md
 * and report.html. `evalLossByKind` is summary.json's held-out loss per kind, when present. */
export function categoryRows(categories: CategoryMetrics[], evalLossByKind?: Record<string, { loss: number }>): { header: string[]; rows: string[][] } {
  const header = ["kind", "prompts", "stop rate (base → SFT)", "role leakage (base → SFT)", "mean length (base → SFT)", "held-out loss"];
  const rows = categories.map((c) => [
    c.category,
    String(c.prompts),
    `${pct(c.base.stopRate)} → ${pct(c.sft.stopRate)}`,
    `${pct(c.base.roleLeakage)} → ${pct(c.sft.roleLeakage)}`,
    `${c.base.meanLength.toFixed(1)} → ${c.sft.meanLength.toFixed(1)}`,
    evalLossByKind?.[c.category] ? evalLossByKind[c.category]!.loss.toFixed(3) : "n/a",
  ]);
  return { header, rows };
}
