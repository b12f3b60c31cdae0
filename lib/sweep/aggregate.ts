// One row per run, read only from each run's summary.json and metrics.jsonl (never from logs), through
// their typed schemas (lib/run/), and the sweep's summary.csv and summary.md built from those rows.
// A number a run does not have (a failed run, a probe that did not run) is "n/a"; a file that cannot
// be read is named in the run's reason; neither stops the table.

import { join } from "node:path";
import { consola } from "consola";
import { FileError } from "../io/files.ts";
import type { ProbeReport } from "../probes/types.ts";
import { formatDuration } from "../run/folder.ts";
import { readMetrics } from "../run/metrics.ts";
import { FINISHED } from "../run/summary.ts";
import { PARAMS, PRESETS, xOf } from "./params.ts";
import { commandLine, type SweepPlan } from "./plan.ts";
import { runSummary } from "./run.ts";

/** Probe numbers of one model (the fine-tuned one of a run, or the base as reference). */
export interface ProbeNumbers {
  stopRate?: number;
  roleLeakage?: number;
  offPatternRate?: number;
  memorised?: number; // share of chat replies reproducing a training answer (lib/probes/memorisation.ts)
  proseContinued?: number; // share of raw prose openings continued (the format-collapse probe)
  proseAnswered?: number; // share answered instead
  prefillCompleted?: number; // share of prefilled assistant turns continued and closed with <|end|>
  proseLoss?: number; // held-out plain-prose loss, nats/token: the base's is "before SFT", a run's "after"
  retention?: number; // cloze accuracy on corpus facts
}

export interface SweepRow extends ProbeNumbers {
  value: string;
  x: number; // position on the parameter axis (see xOf)
  status: string;
  reason?: string;
  bestEvalLoss?: number;
  finalEvalLoss?: number;
  bestStep?: number;
  proseLossDelta?: number; // held-out prose loss, SFT minus base, nats/token
  proseLossRelative?: number; // delta / base loss
  wallSec?: number;
  dir?: string; // relative to the sweep folder
  evalCurve: [number, number][]; // [step, held-out loss] from metrics.jsonl
}

/** A number for the table: NaN (a measure JSON stored as null) and absent values are "n/a". */
const num = (v: number | null | undefined): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

function probeNumbers(probes: ProbeReport, who: "base" | "sft"): ProbeNumbers {
  const m = probes[who];
  return {
    stopRate: num(m.stopRate),
    roleLeakage: num(m.roleLeakage),
    offPatternRate: num(m.offPatternRate),
    memorised: probes.settings.trainingAnswers > 0 && m.chatProbes > 0 ? num(m.memorisedRate) : undefined, // before the probe existed, or no chat replies: n/a
    proseContinued: num(m.continuationRate),
    proseAnswered: num(m.answeredRate),
    prefillCompleted: m.prefillProbes > 0 ? num(m.prefillCompletedRate) : undefined, // no prefill probes (an older run): n/a
    proseLoss: num(who === "base" ? probes.prose.baseLoss : probes.prose.sftLoss),
    retention: num(probes.retention[who].accuracy),
  };
}

const warned = new Set<string>(); // the table is rebuilt after every run: say each torn line once
const warnOnce = (message: string) => {
  if (!warned.has(message)) consola.warn(message);
  warned.add(message);
};

/** A run's held-out curve from metrics.jsonl, or the problem that kept it from being read. */
function evalCurveOf(runDir: string): { curve: [number, number][]; problem?: string } {
  try {
    const curve = readMetrics(runDir, { warn: warnOnce }).flatMap((m): [number, number][] => (m.type === "eval" && Number.isFinite(m.evalLoss) ? [[m.step, m.evalLoss]] : []));
    return { curve };
  } catch (e) {
    if (e instanceof FileError) return { curve: [], problem: e.message };
    throw e;
  }
}

/** The rows of a sweep, in plan order. A run whose files cannot be read gets the reason in its row;
 * the table is still written. */
export function collectRows(plan: SweepPlan, sweepDir: string): SweepRow[] {
  const spec = PARAMS[plan.param];
  return plan.runs.map((run, i) => {
    const { summary, problem } = runSummary(sweepDir, run);
    const { curve: evalCurve, problem: metricsProblem } = run.dir ? evalCurveOf(join(sweepDir, run.dir)) : { curve: [] };
    const losses = evalCurve.map((p) => p[1]);
    const best = losses.length ? evalCurve[losses.indexOf(Math.min(...losses))]! : undefined;
    const status = run.status === "failed" || !summary ? run.status : summary.status;
    const reason = [status === "failed" || status === "interrupted" ? run.reason ?? summary?.reason : undefined, problem, metricsProblem].filter(Boolean);
    return {
      value: run.value,
      x: xOf(spec, run.value, i, plan.sourceSize),
      status,
      ...(reason.length ? { reason: [...new Set(reason)].join("; ") } : {}),
      // summary.json first (it knows about the best checkpoint), metrics.jsonl when it has no answer
      bestEvalLoss: num(summary?.bestEvalLoss) ?? best?.[1],
      finalEvalLoss: num(summary?.finalEvalLoss) ?? evalCurve.at(-1)?.[1],
      bestStep: summary && summary.bestStep >= 0 ? summary.bestStep : best?.[0],
      ...(summary?.probes ? probeNumbers(summary.probes, "sft") : {}),
      proseLossDelta: num(summary?.probes?.prose.delta),
      proseLossRelative: num(summary?.probes?.prose.relative),
      wallSec: num(summary?.wallSec),
      dir: run.dir,
      evalCurve,
    };
  });
}

/** The base model's probe numbers, from the first run that has them (every run probes the same base). */
export function baseNumbers(plan: SweepPlan, sweepDir: string): ProbeNumbers | undefined {
  for (const run of plan.runs) {
    const probes = runSummary(sweepDir, run).summary?.probes;
    if (probes) return probeNumbers(probes, "base");
  }
  return undefined;
}

type Column = { csv: string; md: string; get: (r: SweepRow) => number | string | undefined; csvDigits?: number; show?: (v: any, r: SweepRow) => string };

const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
const signed = (v: number, digits: number) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}`;

/** The table's columns, shared by the CSV and the markdown so the two never disagree. */
export const COLUMNS: Column[] = [
  { csv: "value", md: "value", get: (r) => r.value },
  { csv: "status", md: "status", get: (r) => r.status },
  { csv: "best_eval_loss", md: "best held-out loss", get: (r) => r.bestEvalLoss, csvDigits: 4, show: (v, r) => `${v.toFixed(3)}${r.bestStep !== undefined ? ` @${r.bestStep}` : ""}` },
  { csv: "final_eval_loss", md: "final held-out loss", get: (r) => r.finalEvalLoss, csvDigits: 4, show: (v) => v.toFixed(3) },
  { csv: "best_step", md: "", get: (r) => r.bestStep },
  { csv: "stop_rate", md: "stop rate", get: (r) => r.stopRate, csvDigits: 4, show: pct },
  { csv: "role_leakage", md: "role leakage", get: (r) => r.roleLeakage, csvDigits: 4, show: pct },
  { csv: "off_pattern_rate", md: "off-pattern", get: (r) => r.offPatternRate, csvDigits: 4, show: pct },
  { csv: "memorised", md: "memorised", get: (r) => r.memorised, csvDigits: 4, show: pct },
  { csv: "prose_continued", md: "prose continued", get: (r) => r.proseContinued, csvDigits: 4, show: pct },
  { csv: "prose_answered", md: "prose answered", get: (r) => r.proseAnswered, csvDigits: 4, show: pct },
  { csv: "prefill_completed", md: "prefill completed", get: (r) => r.prefillCompleted, csvDigits: 4, show: pct },
  { csv: "prose_loss", md: "prose loss", get: (r) => r.proseLoss, csvDigits: 4, show: (v) => v.toFixed(3) },
  { csv: "prose_loss_delta", md: "prose loss vs base", get: (r) => r.proseLossDelta, csvDigits: 4, show: (v, r) => `${signed(v, 3)}${r.proseLossRelative !== undefined ? ` (${signed(100 * r.proseLossRelative, 1)}%)` : ""}` },
  { csv: "prose_loss_relative", md: "", get: (r) => r.proseLossRelative, csvDigits: 4 },
  { csv: "retention", md: "retention", get: (r) => r.retention, csvDigits: 4, show: pct },
  { csv: "wall_sec", md: "wall", get: (r) => r.wallSec, csvDigits: 1, show: (v) => formatDuration(v) },
  { csv: "dir", md: "", get: (r) => r.dir },
];

const csvCell = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** summary.csv: a header and one row per run; a missing number is an empty cell. */
export function toCSV(plan: SweepPlan, rows: SweepRow[]): string {
  const header = COLUMNS.map((c) => (c.csv === "value" ? plan.param : c.csv));
  const lines = rows.map((r) =>
    COLUMNS.map((c) => {
      const v = c.get(r);
      if (v === undefined) return "";
      return csvCell(typeof v === "number" && c.csvDigits !== undefined ? String(+v.toFixed(c.csvDigits)) : String(v));
    }).join(","),
  );
  return [header.join(","), ...lines].join("\n") + "\n";
}

const TABLE = COLUMNS.filter((c) => c.md);
const NOT_FOR_BASE = ["best held-out loss", "final held-out loss", "prose loss vs base", "wall"]; // the base model was not trained

/** The human table's header: the columns of summary.md and report.html. */
export function tableHeader(plan: SweepPlan): string[] {
  return TABLE.map((c) => (c.md === "value" ? plan.param : c.md));
}

/** One row of the human table, formatted ("n/a" for anything missing). */
export function tableCells(r: SweepRow): string[] {
  return TABLE.map((c) => {
    const v = c.get(r);
    if (v === undefined) return "n/a";
    return c.show ? c.show(v, r) : String(v);
  });
}

/** The base model's reference row of the human table. */
export function baseCells(base: ProbeNumbers): string[] {
  const cells = tableCells({ value: "base model", x: NaN, status: "reference", evalCurve: [], ...base });
  return cells.map((s, i) => (NOT_FOR_BASE.includes(TABLE[i]!.md) ? "" : s));
}

/** The markdown table (header first); `base` adds a reference row for the base model. */
export function markdownTable(plan: SweepPlan, rows: SweepRow[], base?: ProbeNumbers): string {
  const line = (cells: string[]) => `| ${cells.map((s) => s.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [
    line(tableHeader(plan)),
    line(TABLE.map(() => "---")),
    ...(base ? [line(baseCells(base))] : []),
    ...rows.map((r) => line(tableCells(r))),
  ].join("\n");
}

/** summary.md: what was run, what to look at, the table, failures, and the plots. */
export function toMarkdown(plan: SweepPlan, rows: SweepRow[], base: ProbeNumbers | undefined, plots: { file: string; title: string }[]): string {
  const spec = PARAMS[plan.param];
  const preset = plan.preset ? PRESETS[plan.preset] : undefined;
  const done = rows.filter((r) => (FINISHED as readonly string[]).includes(r.status)).length;
  const out = [
    `# Sweep: ${plan.preset ? `${plan.preset} (${plan.param})` : plan.param}`,
    "",
    `${rows.length} runs, ${done} finished · started ${plan.createdAt} · values ${plan.values.map((v) => `\`${v}\``).join(", ")}`,
    "",
    `Each run: \`${commandLine(plan.passthrough)} ${spec.trainFlag ? `--${spec.trainFlag} <value>` : `--data data/${plan.param}-<value>.json`} --out <sweep folder> --name ${plan.param}-<value>\``,
  ];
  if (plan.sourceData) {
    out.push("", plan.param === "data-size"
      ? `Data: nested subsets of \`${plan.sourceData}\` (${plan.sourceSize ?? "?"} conversations), seed ${plan.dataSeed}: each subset contains the smaller ones.`
      : `Data: \`${plan.sourceData}\` with chat filler from \`${plan.noisePath}\` in the given percent of the answers, seed ${plan.dataSeed}.`);
  }
  out.push("", `**What to look at.** ${preset ? `Read \`${preset.headline}\` first. ` : ""}${preset?.lookAt ?? spec.lookAt}`, "", markdownTable(plan, rows, base), "");
  out.push("Probe metrics are measured on each run's checkpoint (train.ts keeps the last step's weights unless a run says `--keep best`; the `@step` is where the held-out loss was lowest), on the probe prompts (summary.json `probes`); the first row is the base model on the same prompts. `prose loss` is held-out plain-prose loss in nats/token (the base row: before SFT) and `prose loss vs base` the change, SFT minus base; `prefill completed` is the share of prompts ending inside an assistant turn that the model continued and closed with `<|end|>`; retention is cloze accuracy on corpus facts.");
  const problems = rows.filter((r) => r.reason);
  if (problems.length) out.push("", ...problems.map((r) => `- \`${plan.param}=${r.value}\` ${r.status}: ${r.reason}`));
  if (plots.length) out.push("", "## Plots", "", ...plots.map((p) => `![${p.title}](${p.file})`));
  return out.join("\n") + "\n";
}
