// The sweep's outputs in its folder: summary.csv, summary.md, one SVG per plot (held-out loss
// curves of every run overlaid; each metric against the parameter), and report.html with the table
// and the plots inline. Rewritten after every run, so a long sweep shows its partial results.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../io/files.ts";
import { barChart, escapeXml, lineChart } from "../report/svg.ts";
import { baseCells, baseNumbers, collectRows, tableCells, tableHeader, toCSV, toMarkdown, type ProbeNumbers, type SweepRow } from "./aggregate.ts";
import { PARAMS, PRESETS } from "./params.ts";
import type { SweepPlan } from "./plan.ts";

const CHART = { width: 560, height: 300 }; // px: two charts side by side in report.html
const BASE_COLOR = "#9a9a9a"; // the base model's reference line: grey, behind the runs

/** One metric plotted against the swept parameter. */
interface MetricPlot {
  key: keyof SweepRow & string;
  title: string;
  yLabel: string;
  base?: keyof ProbeNumbers; // the base model's value, drawn as a reference
}

const METRIC_PLOTS: MetricPlot[] = [
  { key: "bestEvalLoss", title: "Best held-out loss", yLabel: "loss, nats/token" },
  { key: "finalEvalLoss", title: "Final held-out loss", yLabel: "loss, nats/token" },
  { key: "stopRate", title: "Stop rate (replies ending with the end token)", yLabel: "share of chat probes", base: "stopRate" },
  { key: "roleLeakage", title: "Role leakage (a role marker inside a reply)", yLabel: "share of chat probes", base: "roleLeakage" },
  { key: "offPatternRate", title: "Off-pattern replies (chat filler)", yLabel: "share of chat probes", base: "offPatternRate" },
  { key: "memorised", title: "Memorised replies (a training answer repeated)", yLabel: "share of chat probes", base: "memorised" },
  { key: "proseAnswered", title: "Format collapse: prose openings answered", yLabel: "share of prose probes", base: "proseAnswered" },
  { key: "prefillCompleted", title: "Prefilled assistant turns continued and closed", yLabel: "share of prefill probes", base: "prefillCompleted" },
  { key: "proseLoss", title: "Held-out prose loss (base: before SFT)", yLabel: "loss, nats/token", base: "proseLoss" },
  { key: "proseLossDelta", title: "Prose loss change vs base", yLabel: "Δ loss, nats/token" },
  { key: "retention", title: "Retention (cloze accuracy)", yLabel: "accuracy", base: "retention" },
];

export interface Plot {
  file: string; // relative to the sweep folder
  title: string;
  svg: string;
}

/** The plots of a sweep; metrics no run has (e.g. probes not run) are left out. */
export function sweepPlots(plan: SweepPlan, rows: SweepRow[], base?: ProbeNumbers): Plot[] {
  const spec = PARAMS[plan.param];
  const plots: Plot[] = [{
    file: "loss-curves.svg",
    title: "Held-out loss during training",
    svg: lineChart({
      title: "Held-out loss during training",
      series: rows.filter((r) => r.evalCurve.length).map((r) => ({ name: `${plan.param}=${r.value}`, points: r.evalCurve })),
      xLabel: "step",
      yLabel: "held-out loss, nats/token",
      ...CHART,
    }),
  }];
  for (const m of METRIC_PLOTS) {
    const has = rows.filter((r) => typeof r[m.key] === "number");
    if (has.length === 0) continue;
    const ref = m.base !== undefined ? base?.[m.base] : undefined;
    const value = (r: SweepRow) => r[m.key] as number;
    let svg: string;
    if (spec.axis === "category") {
      svg = barChart({
        title: m.title,
        categories: rows.map((r) => r.value),
        series: [
          { name: "fine-tuned", values: rows.map((r) => (typeof r[m.key] === "number" ? value(r) : NaN)) },
          ...(ref !== undefined ? [{ name: "base", values: rows.map(() => ref), color: BASE_COLOR }] : []),
        ],
        yLabel: m.yLabel,
        format: (v) => +v.toFixed(3) + "",
        ...CHART,
      });
    } else {
      const xs = has.map((r) => r.x).filter(Number.isFinite);
      svg = lineChart({
        title: m.title,
        series: [
          { name: "fine-tuned", points: has.map((r) => [r.x, value(r)] as [number, number]) },
          ...(ref !== undefined && xs.length ? [{ name: "base", points: [[Math.min(...xs), ref], [Math.max(...xs), ref]] as [number, number][], color: BASE_COLOR }] : []),
        ],
        xLabel: spec.unit,
        yLabel: m.yLabel,
        logX: spec.axis === "log",
        ...CHART,
      });
    }
    plots.push({ file: `${m.key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}.svg`, title: m.title, svg });
  }
  return plots;
}

/** A self-contained HTML page: the markdown's content as a table, and the plots inline. */
export function reportHtml(plan: SweepPlan, rows: SweepRow[], base: ProbeNumbers | undefined, plots: Plot[]): string {
  const spec = PARAMS[plan.param];
  const lookAt = (plan.preset ? PRESETS[plan.preset]?.lookAt : undefined) ?? spec.lookAt;
  const tr = (cells: string[], tag = "td", cls = "") => `<tr${cls ? ` class="${cls}"` : ""}>${cells.map((s) => `<${tag}>${escapeXml(s)}</${tag}>`).join("")}</tr>`;
  const failures = rows.filter((r) => r.reason).map((r) => `<li><code>${escapeXml(`${plan.param}=${r.value}`)}</code> ${escapeXml(r.status)}: ${escapeXml(r.reason!)}</li>`);
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Sweep: ${escapeXml(plan.preset ?? plan.param)}</title>
<style>
body { font: 14px system-ui, -apple-system, Segoe UI, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
tr.ref td { color: #666; font-style: italic; }
.plots { display: grid; grid-template-columns: repeat(2, ${CHART.width}px); gap: 16px; }
figure { margin: 0; }
</style></head><body>
<h1>Sweep: ${escapeXml(plan.preset ? `${plan.preset} (${plan.param})` : plan.param)}</h1>
<p>${rows.length} runs · values ${escapeXml(plan.values.join(", "))} · started ${escapeXml(plan.createdAt)}${plan.passthrough.length ? ` · every run: <code>${escapeXml(plan.passthrough.join(" "))}</code>` : ""}</p>
<p><b>What to look at.</b> ${escapeXml(lookAt).replace(/`([^`]+)`/g, "<code>$1</code>")}</p>
<table>${tr(tableHeader(plan), "th")}${base ? tr(baseCells(base), "td", "ref") : ""}${rows.map((r) => tr(tableCells(r))).join("")}</table>
${failures.length ? `<ul>${failures.join("")}</ul>` : ""}
<div class="plots">${plots.map((p) => `<figure>${p.svg}</figure>`).join("\n")}</div>
</body></html>
`;
}

/** Write summary.csv, summary.md, the SVGs and report.html into the sweep folder. */
export function writeSweepReport(plan: SweepPlan, sweepDir: string): { rows: SweepRow[]; files: string[] } {
  const rows = collectRows(plan, sweepDir);
  const base = baseNumbers(plan, sweepDir);
  const plots = sweepPlots(plan, rows, base);
  for (const p of plots) writeFileSync(join(sweepDir, p.file), p.svg);
  writeFileAtomic(join(sweepDir, "summary.csv"), toCSV(plan, rows));
  writeFileAtomic(join(sweepDir, "summary.md"), toMarkdown(plan, rows, base, plots));
  writeFileAtomic(join(sweepDir, "report.html"), reportHtml(plan, rows, base, plots));
  return { rows, files: ["summary.md", "summary.csv", "report.html", ...plots.map((p) => p.file)] };
}
