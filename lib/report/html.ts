// report.html: one self-contained page per run (inline CSS and SVG, no scripts, no external
// assets): header and key numbers, the loss curves, the probe table and chart, the verdict, the
// samples side by side, the retention items, the summary and the config. All text is escaped.

import { basename } from "node:path";
import type { ProbeOutput, ProbeReport, ProbeSample } from "../probes/types.ts";
import type { EvalRow, MetricsRow, TrainRow } from "../run/metrics.ts";
import type { RunSummary } from "../run/summary.ts";
import { categoryRows, closestNote, metricRows, modeLabel, outputNote, settingsLine } from "./rows.ts";
import { barChart, escapeXml as esc, lineChart } from "./svg.ts";

export interface ReportInput {
  runDir: string;
  config: Record<string, unknown>;
  summary: RunSummary;
  metrics: MetricsRow[];
  probes: ProbeReport;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;background:#f4f4f2;margin:0}
main{max-width:1120px;margin:0 auto;padding:20px 24px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;font-size:13px}.muted{color:#888}
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#ddd;vertical-align:middle}
.status.completed{background:#d6f0d6;color:#1d5e1d}.status.failed{background:#f7d4d4;color:#8a1c1c}.status.interrupted,.status.stopped-early{background:#f6e7c6;color:#7a5200}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:18px}.card span{font-size:12px;color:#666}
.panel{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:12px;overflow-x:auto}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border:1px solid #e2e2e2;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0ee;font-weight:600}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.verdict{background:#fff;border-left:4px solid #4e79a7;padding:10px 14px;border-radius:0 8px 8px 0}
.sample{background:#fff;border:1px solid #e2e2e2;border-radius:8px;margin:10px 0;padding:8px 12px}
.sample h3{font-size:14px;margin:0 0 6px}.tag{font-size:11px;color:#555;background:#eee;border-radius:4px;padding:0 5px;margin-left:6px;font-weight:400}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f7f7f5;border:1px solid #eee;border-radius:6px;padding:6px 8px}
pre.prompt{background:#eef3f9}
.who{font-size:12px;font-weight:600}.note{font-size:11.5px;color:#666;font-weight:400}
mark{background:#ffd9a8;border-radius:3px;padding:0 2px}.stop{color:#1d5e1d;font-size:11.5px}
.good{color:#1d5e1d}.bad{color:#8a1c1c}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
`;

/** Chat markers highlighted inside already-escaped text. */
const markMarkers = (escaped: string) => escaped.replace(/&lt;\|[a-z]+\|&gt;/g, (m) => `<mark>${m}</mark>`);

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** The first string (or `.path` of an object) under any of `keys`. */
function firstString(obj: Record<string, unknown>, keys: string[]): string | undefined {
  for (const k of keys) {
    const v = obj[k];
    if (typeof v === "string" && v) return v;
    if (v && typeof v === "object" && typeof (v as { path?: unknown }).path === "string") return (v as { path: string }).path;
  }
  return undefined;
}

function card(value: string, label: string, cls = ""): string {
  return `<div class="card"><b class="${cls}">${esc(value)}</b><span>${esc(label)}</span></div>`;
}

function keyNumbers({ summary, metrics, probes }: ReportInput): string {
  const train = metrics.filter((m): m is TrainRow => m.type === "train" && num(m.loss) !== undefined);
  const evals = metrics.filter((m): m is EvalRow => m.type === "eval" && num(m.evalLoss) !== undefined);
  const cards: string[] = [];
  cards.push(card(String(summary.step), "steps"));
  if (summary.epochs !== undefined) cards.push(card(summary.epochs.toFixed(Number.isInteger(summary.epochs) ? 0 : 1), "epochs (passes over the training data)"));
  if (train.length) cards.push(card(train.at(-1)!.loss.toFixed(3), "final train loss"));
  if (evals.length) {
    const best = evals.reduce((a, b) => (b.evalLoss < a.evalLoss ? b : a));
    cards.push(card(best.evalLoss.toFixed(3), `best held-out loss (step ${best.step})`));
    if (evals.length > 1) cards.push(card(evals.at(-1)!.evalLoss.toFixed(3), "final held-out loss"));
  }
  const { base, sft, prose, retention } = probes;
  cards.push(card(`${base.stops} → ${sft.stops} / ${sft.chatProbes}`, "stops with <|end|> (base → SFT)", sft.stopRate > base.stopRate ? "good" : ""));
  cards.push(card(`${sft.leaks} / ${sft.chatProbes}`, "SFT replies with a role marker", sft.leaks > 0 ? "bad" : "good"));
  cards.push(card(`${sft.continued} / ${sft.proseProbes}`, "prose openings continued (SFT)"));
  cards.push(card(`${base.memorised} → ${sft.memorised} / ${sft.chatProbes}`, "replies reproducing a training answer (base → SFT)", sft.memorisedRate > 0.1 ? "bad" : ""));
  cards.push(card(`${prose.relative >= 0 ? "+" : "−"}${Math.abs(100 * prose.relative).toFixed(1)}%`, "held-out prose loss vs base", prose.relative > 0.02 ? "bad" : ""));
  cards.push(card(`${retention.base.correct} → ${retention.sft.correct} / ${retention.sft.total}`, "cloze facts right (base → SFT)"));
  cards.push(card(summary.wallTime, "wall time"));
  return `<div class="cards">${cards.join("")}</div>`;
}

function lossChart(metrics: MetricsRow[]): string {
  const points = (values: [number, number | undefined][]) => values.filter((p): p is [number, number] => num(p[1]) !== undefined);
  const prose = points(metrics.map((m) => [m.step, m.type === "train" ? m.proseLoss : undefined])); // replay rows, when the run mixed them in
  return lineChart({
    series: [
      { name: "train loss (supervised tokens)", points: points(metrics.map((m) => [m.step, m.type === "train" ? m.loss : undefined])) },
      { name: "held-out loss", points: points(metrics.map((m) => [m.step, m.type === "eval" ? m.evalLoss : undefined])) },
      ...(prose.length ? [{ name: "train loss on replayed prose", points: prose }] : []),
    ],
    xLabel: "step",
    yLabel: "loss (nats/token)",
    title: "Loss",
    width: 580,
    height: 320,
  });
}

function probeChart({ base, sft, retention }: ProbeReport): string {
  const rates = (m: typeof base, r: typeof retention.base) => [m.stopRate, m.roleLeakage, m.offPatternRate, m.memorisedRate, m.continuationRate, m.answeredRate, r.accuracy].map((x) => 100 * x);
  return barChart({
    categories: ["stop", "role\nleakage", "off-pattern", "memorised", "prose\ncontinued", "prose\nanswered", "retention"],
    series: [
      { name: "base", values: rates(base, retention.base) },
      { name: "SFT", values: rates(sft, retention.sft) },
    ],
    yLabel: "% of probes",
    title: "Probes: base vs SFT",
    width: 430,
    height: 320,
    format: (v) => v.toFixed(0),
  });
}

function metricTable(probes: ProbeReport): string {
  const rows = metricRows(probes).map((r) => `<tr><td>${esc(r.metric)}</td><td class="num">${esc(r.base)}</td><td class="num">${esc(r.sft)}</td><td class="muted">${esc(r.note)}</td></tr>`);
  return `<table><thead><tr><th>metric</th><th>base</th><th>SFT</th><th>note</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function replyBlock(who: string, o: ProbeOutput): string {
  const body = o.text.length ? markMarkers(esc(o.text)) : `<span class="muted">(empty reply)</span>`;
  const stop = o.stopReason === "end-token" ? `<span class="stop"> ⏎ ${esc("<|end|>")}</span>` : "";
  return `<div><div class="who">${esc(who)} <span class="note">${esc(outputNote(o))}</span></div><pre>${body}${stop}</pre></div>`;
}

/** The training answer nearest a reply (the memorisation probe), the repeated run marked. */
function closestBlock(who: string, o: ProbeOutput): string {
  const c = o.closest;
  if (!c) return "<div></div>";
  const at = c.run > 0 ? c.answer.indexOf(c.runText) : -1; // the run as text; absent when tokenization differs
  const body = at < 0 ? esc(c.answer) : `${esc(c.answer.slice(0, at))}<mark>${esc(c.runText)}</mark>${esc(c.answer.slice(at + c.runText.length))}`;
  return `<div><div class="who">closest training answer to the ${esc(who)} reply <span class="note${o.memorised ? " bad" : ""}">${esc(closestNote(c))}${o.memorised ? " — memorised" : ""}</span></div><pre>${body}</pre></div>`;
}

function sampleCard(s: ProbeSample): string {
  const closest = s.mode === "chat" ? `<div class="pair">${closestBlock("base", s.base)}${closestBlock("SFT", s.sft)}</div>` : "";
  const category = s.category ? `<span class="tag">${esc(s.category)}</span>` : "";
  const prefill = s.prefill !== undefined ? `<div class="who">prefilled start of the reply</div><pre class="prompt">${esc(s.prefill)}</pre>` : "";
  return `<div class="sample" id="${esc(s.id)}"><h3>${esc(s.id)}<span class="tag">${esc(s.kind)}</span>${category}<span class="tag">${esc(modeLabel(s.mode))}</span></h3>` +
    `<pre class="prompt">${esc(s.prompt)}</pre>${prefill}<div class="pair">${replyBlock("Base", s.base)}${replyBlock("SFT", s.sft)}</div>${closest}</div>`;
}

/** Held-out prompts by their data "kind" (only when the eval data has kinds). */
function categoryTable(probes: ProbeReport, summary: RunSummary): string {
  if (!probes.categories?.length) return "";
  const { header, rows } = categoryRows(probes.categories, summary.evalLossByKind);
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td${i > 0 ? ' class="num"' : ""}>${esc(c)}</td>`).join("")}</tr>`).join("");
  return `<h2>By kind</h2><table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${body}</tbody></table>`;
}

function retentionTable({ retention }: ProbeReport): string {
  const pick = (p: { correct: boolean; pick: string; margin: number }) =>
    `<td class="num ${p.correct ? "good" : "bad"}">${p.correct ? "✓" : "✗"} ${esc(JSON.stringify(p.pick))} (${p.margin.toFixed(2)})</td>`;
  const rows = retention.items.map((it) => `<tr><td>${esc(it.id)}</td><td>${esc(it.prompt)} <b>${esc(it.answer)}</b></td>${pick(it.base)}${pick(it.sft)}</tr>`);
  return `<table><thead><tr><th>item</th><th>prompt and answer</th><th>base pick (margin, nats)</th><th>SFT pick</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/** Scalars as a two-column table; nested values (other than the probe report) as JSON. */
function summaryTable(summary: RunSummary): string {
  const rows = Object.entries(summary)
    .filter(([k]) => k !== "probes")
    .map(([k, v]) => {
      const shown = v !== null && typeof v === "object" ? `<pre>${esc(JSON.stringify(v, null, 2))}</pre>` : esc(typeof v === "number" && !Number.isInteger(v) ? String(+v.toPrecision(6)) : String(v));
      return `<tr><td>${esc(k)}</td><td>${shown}</td></tr>`;
    });
  return rows.length ? `<table><tbody>${rows.join("")}</tbody></table>` : `<p class="muted">no summary</p>`;
}

/** The run's report page. */
export function reportHtml(input: ReportInput): string {
  const { runDir, config, summary, probes } = input;
  const name = basename(runDir.replace(/\/+$/, ""));
  const status = summary.status;
  const baseModel = firstString(config, ["base", "basePath", "baseDir", "baseCheckpoint"]) ?? "?";
  const reason = summary.reason ? ` — ${summary.reason}` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(name)} — sft-mlx run report</title><style>${CSS}</style></head>
<body><main>
<h1>${esc(name)} <span class="status ${esc(status)}">${esc(status)}</span></h1>
<div class="sub">base: <code>${esc(baseModel)}</code>${esc(reason)} · ${esc(runDir)}</div>
${keyNumbers(input)}
<h2>What SFT did</h2>
<div class="verdict">${markMarkers(esc(probes.verdict))}</div>
<h2>Loss and probes</h2>
<div class="charts"><div class="panel">${lossChart(input.metrics)}</div><div class="panel">${probeChart(probes)}</div></div>
<h2>Probe metrics</h2>
${metricTable(probes)}
<p class="sub">${markMarkers(esc(settingsLine(probes)))}</p>
${categoryTable(probes, summary)}
<h2>Samples: base vs SFT</h2>
${probes.samples.map(sampleCard).join("\n")}
<h2>Knowledge retention</h2>
<details><summary>${probes.retention.items.length} cloze items, scored by likelihood (plain text)</summary>${retentionTable(probes)}</details>
<h2>Summary</h2>
${summaryTable(summary)}
<h2>Config</h2>
<details open><summary>config.json</summary><pre>${esc(JSON.stringify(config, null, 2))}</pre></details>
</main></body></html>
`;
}
