// The README's plots of the measured defaults ("Teaching the format without memorising the data"),
// drawn from the run folders the measurement left under runs/replay-sweeps/ (not committed) with the
// project's own SVG charts. Numbers come only from each run's config.json, summary.json and
// metrics.jsonl.
//   bun docs/defaults/make-plots.ts [runs/replay-sweeps]
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readJSON } from "../../lib/io/files.ts";
import { readMetrics } from "../../lib/run/metrics.ts";
import { lineChart, scatter } from "../../lib/report/svg.ts";

const root = process.argv[2] ?? "runs/replay-sweeps";
const out = import.meta.dir;
const runDirs = readdirSync(root).flatMap((d) => (existsSync(join(root, d, "sweep.json")) || d === "final" ? readdirSync(join(root, d)).map((r) => join(root, d, r)) : []))
  .filter((d) => existsSync(join(d, "summary.json")));
const runs = runDirs.map((dir) => {
  const c = readJSON(join(dir, "config.json"));
  const s = readJSON(join(dir, "summary.json"));
  return { dir, c, s, epochs: Math.round(s.epochs), stop: 100 * s.probes.sft.stopRate, memorised: 100 * s.probes.sft.memorisedRate };
});
const pct = (xs: typeof runs) => xs.map((r) => [r.memorised, r.stop] as [number, number]);
const is = (r: (typeof runs)[number], mix: number, lr?: number) => r.c.mixProse === mix && (lr === undefined || r.c.lr === lr) && r.c.neftuneAlpha === 0;

writeFileSync(join(out, "frontier.svg"), scatter({
  title: "Stop rate against memorised replies (every measured run)",
  xLabel: "memorised chat replies, %", yLabel: "stop rate, %", width: 620, height: 360,
  series: [
    { name: "no replay, 25 epochs", points: pct(runs.filter((r) => is(r, 0))) },
    { name: "replay 0.25, 25 epochs, lr 1e-4..3e-4", points: pct(runs.filter((r) => is(r, 0.25) && r.epochs === 25)) },
    { name: "replay 0.25, lr 3e-4, 6-10 epochs", points: pct(runs.filter((r) => is(r, 0.25, 3e-4) && r.epochs < 25)) },
    { name: "replay 0.1 or 0.5", points: pct(runs.filter((r) => (is(r, 0.1) || is(r, 0.5)))) },
    { name: "NEFTune α 5", points: pct(runs.filter((r) => r.c.neftuneAlpha > 0)) },
  ],
}));

const knee = (seed: number, key: "stop" | "memorised") => {
  const byEpochs = new Map<number, number>();
  for (const r of runs.filter((r) => is(r, 0.25, 3e-4) && r.c.seed === seed)) byEpochs.set(r.epochs, r[key]);
  return [...byEpochs].sort((a, b) => a[0] - b[0]) as [number, number][];
};
writeFileSync(join(out, "epochs.svg"), lineChart({
  title: "Replay 0.25, lr 3e-4: stop rate and memorised replies against epochs",
  xLabel: "epochs (passes over the 154 conversations)", yLabel: "% of 40 chat probes", width: 620, height: 360,
  series: [
    { name: "stop rate, seed 0", points: knee(0, "stop") },
    { name: "stop rate, seed 1", points: knee(1, "stop") },
    { name: "memorised, seed 0", points: knee(0, "memorised") },
    { name: "memorised, seed 1", points: knee(1, "memorised") },
  ],
}));

const curve = (name: string) => {
  const r = runs.find((x) => x.dir.endsWith(name))!;
  return readMetrics(r.dir).flatMap((m) => (m.type === "eval" ? [[m.step, m.evalLoss] as [number, number]] : []));
};
const sweepRun = (sweep: string, run: string) => runDirs.find((d) => d.includes(sweep) && d.endsWith(run))!.split("/").slice(-2).join("/");
writeFileSync(join(out, "held-out-loss.svg"), lineChart({
  title: "Held-out loss: the course's recipe, replay alone, and the defaults",
  xLabel: "step", yLabel: "held-out loss, nats/token", width: 620, height: 360,
  series: [
    { name: "--preset course (500 steps, no replay)", points: curve("-course") },
    { name: "500 steps, replay 0.25", points: curve(sweepRun("A-mix", "mix-prose-0.25")) },
    { name: "defaults (10 epochs = 200 steps, replay 0.25), seed 0", points: curve("defaults-seed0") },
    { name: "defaults, seed 1", points: curve("defaults-seed1") },
  ],
}));
console.log(`${runs.length} runs → ${out}/frontier.svg, epochs.svg, held-out-loss.svg`);
