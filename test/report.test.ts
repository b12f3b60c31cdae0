// Pins the reports: samples.md holds every probe id and both replies; report.html escapes model
// text (chat markers, script tags), carries its charts inline and loads nothing; the SVG helpers
// give distinct colours, nice ticks and survive empty or non-finite data.
//   bun test test/report.test.ts

import { describe, expect, test } from "bun:test";
import type { GenerationMetrics, ProbeOutput, ProbeReport } from "../lib/probes/types.ts";
import { samplesMarkdown } from "../lib/report/samples.ts";
import { reportHtml } from "../lib/report/html.ts";
import type { MetricsRow } from "../lib/run/metrics.ts";
import type { RunSummary } from "../lib/run/summary.ts";
import { barChart, escapeXml, formatTick, lineChart, niceTicks, scatter, seriesColor } from "../lib/report/svg.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const gm = (p: Partial<GenerationMetrics> = {}): GenerationMetrics => ({
  chatProbes: 3, stops: 0, stopRate: 0, leaks: 0, roleLeakage: 0, meanLength: 96, repetition: 0.1, offPattern: 0, offPatternRate: 0,
  memorised: 0, memorisedRate: 0, proseProbes: 1, continued: 1, continuationRate: 1, answered: 0, answeredRate: 0, prefillProbes: 0, prefillCompleted: 0, prefillCompletedRate: 0, ...p,
});
const out = (p: Partial<ProbeOutput> = {}): ProbeOutput => ({ text: "and so on", stopReason: "max-tokens", tokens: 96, leaked: false, repetition: 0, offPattern: false, ...p });

const EVIL = `<script>alert("x")</script> & it said <|user|>`;

/** A hand-made report whose replies hold chat markers, a script tag and backticks. */
function report(): ProbeReport {
  return {
    settings: { maxTokens: 96, temperature: 0, seed: 0, stopToken: "<|end|>", probesPath: "data/sft/probes.json", probePrompts: 3, evalPrompts: 1, prosePath: "p.txt", retentionPath: "r.json", noisePath: "n.json", memorisedRun: 8, trainingAnswers: 154 },
    base: gm(),
    sft: gm({ stops: 2, stopRate: 2 / 3, leaks: 1, roleLeakage: 1 / 3, meanLength: 12 }),
    prose: { baseLoss: 3, sftLoss: 3.1, delta: 0.1, relative: 0.1 / 3, ntoks: 500, windows: 2, windowLen: 256 },
    retention: {
      base: { correct: 1, total: 2, accuracy: 0.5, meanMargin: 0.2 },
      sft: { correct: 1, total: 2, accuracy: 0.5, meanMargin: 0.1 },
      items: [{ id: "alice-sister", prompt: "sitting by her", answer: " sister", base: { correct: true, margin: 0.4, pick: " sister" }, sft: { correct: false, margin: -0.1, pick: " mother" } }],
    },
    samples: [
      { id: "q-capital", kind: "question", prompt: "What is the capital of France?", mode: "chat", base: out({ text: "What is the capital of Spain? <|user|>", leaked: true }), sft: out({ text: "Paris.", stopReason: "end-token", tokens: 2 }) },
      { id: "i-code", kind: "instruction", prompt: "Show ```code```", mode: "chat", base: out(), sft: out({ text: EVIL, leaked: true }) },
      { id: "p-once", kind: "prose", prompt: "Once upon a time", mode: "raw", base: out({ outcome: "continued" }), sft: out({ text: "", tokens: 0, stopReason: "end-token", outcome: "answered" }) },
      { id: "eval-0", kind: "eval", prompt: "Name a colour.", mode: "chat", base: out(),
        sft: out({ text: "Yes. It can be divided by 2 with nothing left over.", stopReason: "end-token", tokens: 14, memorised: true,
          closest: { conversation: 7, turn: 1, answer: "Yes. It can be divided by 2 with nothing left over.", run: 14, runText: "It can be divided by 2", coverage: 1 } }) },
    ],
    verdict: "The fine-tuned model stops with <|end|> on 2 of 3 chat prompts (base: 0).",
  };
}

const metrics: MetricsRow[] = [
  { type: "train", step: 10, loss: 2.5, lr: 1e-4 },
  { type: "train", step: 20, loss: 1.9, lr: 1e-4 },
  { type: "eval", step: 20, evalLoss: 2.1 },
  { type: "train", step: 30, loss: Number.NaN, lr: 1e-4 },
];

describe("samples.md", () => {
  const md = samplesMarkdown(report());

  test("every probe id, both replies, stop reasons and token counts", () => {
    for (const s of report().samples) expect(md).toContain(`\`${s.id}\``);
    expect(md).toContain("**Base** — max-tokens, 96 tokens, role marker");
    expect(md).toContain("**SFT** — end-token, 2 tokens");
    expect(md).toContain("**SFT** — end-token, 0 tokens, answered\n\n*(empty reply)*");
    expect(md).toContain("| stop rate | 0/3 (0%) | 2/3 (67%) |");
  });

  test("the closest training answer beside a chat sample, the memorised reply flagged", () => {
    expect(md).toContain("**SFT** — end-token, 14 tokens, memorised (14-token run)");
    expect(md).toContain("*Closest training answer to the SFT reply* — training conversation 7 (message 1): 14-token run, 100% of the reply");
    expect(md).toContain("| memorised | 0/3 (0%) | 0/3 (0%) |");
  });

  test("a prompt with a ``` run gets a longer fence", () => {
    expect(md).toContain("````text\nShow ```code```\n````");
  });

  test("chat markers outside code are inline code; pipes in table cells are escaped", () => {
    expect(md).toContain("stops with `<|end|>` on 2 of 3");
    expect(md).toMatch(/\| stop rate \|[^\n]*`<\\\|end\\\|>`/);
  });
});

/** A summary.json as a run writes it, with `over` on top (probes: anything, to see it is not shown raw). */
const summary = (over: Record<string, unknown>) => ({
  status: "completed", step: 30, steps: 30, wallSec: 190, wallTime: "0:03:10", bestStep: 20, bestEvalLoss: 2.1, finalEvalLoss: 2.2, initialEvalLoss: 3,
  finalTrainLoss: 2, evals: 3, tokens: 1000, supervisedTokens: 600, paddingFraction: 0.1, tokensPerSec: 900, stepSec: 1.1, skippedBatches: 0,
  droppedExamples: 0, peakMemMB: 500, trainPeakMemMB: 480, base: { path: "models/gutenberg-base", hashBefore: "ab", hashAfter: "ab", unchanged: true },
  checkpoint: "checkpoint", probes: null, ...over,
}) as unknown as RunSummary;

describe("report.html", () => {
  const html = reportHtml({ runDir: "runs/20250101-000000-demo/", config: { base: "models/gutenberg-base", lr: 3e-4, note: "</pre><script>" }, summary: summary({ wallTime: "0:03:10", bestEvalLoss: 2.1, probes: { big: true } }), metrics, probes: report() });

  test("escapes model text: no raw chat markers or script tags", () => {
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<|end|>");
    expect(html).not.toContain("<|user|>");
    expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; it said <mark>&lt;|user|&gt;</mark>");
    expect(html).toContain("&lt;/pre&gt;&lt;script&gt;");
  });

  test("the closest training answer beside the sample, its repeated run marked", () => {
    expect(html).toContain("closest training answer to the SFT reply");
    expect(html).toContain("Yes. <mark>It can be divided by 2</mark> with nothing left over.");
  });

  test("self-contained: inline SVG charts, no external assets or scripts", () => {
    expect(html).toContain("<svg");
    expect(html.match(/<svg/g)!.length).toBe(2); // loss, probes
    expect(html).not.toMatch(/<(link|img|iframe|script)\b|src=|href="http/);
  });

  test("header, key numbers, every sample, config and summary", () => {
    expect(html).toContain("<h1>20250101-000000-demo <span class=\"status completed\">completed</span></h1>");
    expect(html).toContain("models/gutenberg-base");
    expect(html).toContain("best held-out loss (step 20)");
    for (const s of report().samples) expect(html).toContain(`id="${s.id}"`);
    expect(html).toContain("bestEvalLoss");
    expect(html).not.toContain("big"); // the probe report is shown as such, not as raw JSON
  });
});

describe("the course's kinds and the prefilled turn", () => {
  const withKinds = (): ProbeReport => {
    const r = report();
    r.samples.push({ id: "f-stars", kind: "prefill", prompt: "Continue this poem:", prefill: "The stars above shine bright at night,", mode: "prefill", base: out(), sft: out({ text: " the moon is bright.", stopReason: "end-token", tokens: 5 }) });
    r.samples[3]!.category = "format";
    r.sft.prefillProbes = r.base.prefillProbes = 1;
    r.sft.prefillCompleted = 1;
    r.sft.prefillCompletedRate = 1;
    const n = (stopRate: number) => ({ stops: stopRate, stopRate, leaks: 0, roleLeakage: 0, meanLength: 2 });
    r.categories = [{ category: "format", prompts: 1, base: n(0), sft: n(1) }];
    return r;
  };
  const byKind = { format: { loss: 1.234, ntoks: 9, conversations: 1 } };

  test("samples.md: the prefilled start, the category, a by-kind table with the held-out loss, the prefill row", () => {
    const md = samplesMarkdown(withKinds(), byKind);
    expect(md).toContain("### `f-stars` · prefill · chat template + prefilled reply");
    expect(md).toContain("Prefilled start of the reply:\n\n```text\nThe stars above shine bright at night,\n```");
    expect(md).toContain("### `eval-0` · eval (format) · chat template");
    expect(md).toContain("| format | 1 | 0% → 100% | 0% → 0% | 2.0 → 2.0 | 1.234 |");
    expect(md).toContain("| prefilled reply completed | 0/1 (0%) | 1/1 (100%) |");
  });

  test("report.html: the same by-kind table, escaped", () => {
    const html = reportHtml({ runDir: "runs/x", config: {}, summary: summary({ evalLossByKind: byKind }), metrics, probes: withKinds() });
    expect(html).toContain("<h2>By kind</h2>");
    expect(html).toContain('<td>format</td><td class="num">1</td><td class="num">0% → 100%</td>');
    expect(html).toContain('<td class="num">1.234</td>');
    expect(html).toContain("prefilled start of the reply");
  });

  test("no kinds, no table", () => {
    expect(samplesMarkdown(report())).not.toContain("## By kind");
  });
});

describe("svg charts", () => {
  test("lineChart: one polyline per series, distinct colours, legend names escaped", () => {
    const series = Array.from({ length: 12 }, (_, i) => ({ name: `run <${i}>`, points: [[0, i], [1, i + 1], [2, Number.NaN]] as [number, number][] }));
    const svg = lineChart({ series, xLabel: "step", yLabel: "loss", width: 600, height: 300 });
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.match(/<polyline/g)!.length).toBe(12);
    const colours = series.map((_, i) => seriesColor(i));
    expect(new Set(colours).size).toBe(12);
    for (const c of colours) expect(svg).toContain(`stroke="${c}"`);
    expect(svg).toContain("run &lt;11&gt;");
    expect(svg).not.toContain("NaN");
  });

  test("empty data draws a frame that says so", () => {
    expect(lineChart({ series: [{ name: "loss", points: [] }], xLabel: "x", yLabel: "y" })).toContain("no data");
    expect(barChart({ categories: [], series: [], yLabel: "y" })).toContain("no data");
  });

  test("log axes drop non-positive points and label in one style", () => {
    const svg = scatter({ series: [{ name: "lr", points: [[3e-5, 2], [1e-4, 1.5], [1e-3, 1.2], [0, 9]] }], xLabel: "lr", yLabel: "loss", logX: true, connect: true });
    expect(svg).toContain(">1e-4<");
    expect(svg).toContain(">1e-3<");
    expect(svg.match(/<circle/g)!.length).toBe(3);
  });

  test("barChart: one bar per finite value, labels formatted", () => {
    const svg = barChart({ categories: ["stop", "leak"], series: [{ name: "base", values: [0, 50] }, { name: "SFT", values: [92, Number.NaN] }], yLabel: "%", format: (v) => `${v}%` });
    expect(svg.match(/<rect [^>]*><title>/g)!.length).toBe(3); // bars carry a tooltip; frame and legend rects do not
    expect(svg).toContain(">92%<");
  });

  test.each([
    [0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]],
    [1.3, 2.9, [1.5, 2, 2.5]],
    [-3, 7, [-2, 0, 2, 4, 6]],
  ])("niceTicks(%p, %p)", (lo, hi, expected) => {
    expect(niceTicks(lo, hi).map((v) => +v.toFixed(10))).toEqual(expected);
  });

  test.each([
    [0, "0"],
    [2.5, "2.5"],
    [1234, "1.2k"],
    [3e-4, "3e-4"],
    [0.15, "0.15"],
    [2e6, "2e6"],
  ])("formatTick(%p) = %p", (v, expected) => {
    expect(formatTick(v)).toBe(expected);
  });

  test("escapeXml", () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  });
});
