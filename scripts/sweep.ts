// A series of SFT runs that differ in one setting, compared in one table and one set of plots.
//   bun scripts/sweep.ts --param lr                          (6 learning rates, train.ts defaults otherwise)
//   bun scripts/sweep.ts --param mask --steps 30 --eval-every 10 --base /tmp/devbase
//   bun scripts/sweep.ts --param data-size --values 10,50,all
//   bun scripts/sweep.ts --param lora-rank --values 1,8 --lr 1e-3   (LoRA runs: --lora is added)
//   bun scripts/sweep.ts --preset format-collapse            (the course's exercises: see README)
//   bun scripts/sweep.ts --resume runs/sweep-<time>-<param>  (skip finished runs, rerun the rest)
// train.ts's flags (--steps, --base, --seed, ...) are checked up front and passed to every
// `bun scripts/train.ts` run unchanged; any other flag is refused. Exits 1 when a run failed. Output: runs/sweep-<time>-<param>/ with one run folder per
// value, sweep.json (the plan), summary.md, summary.csv, report.html and the plots as SVG.
import { defineCommand, type ArgsDef } from "citty";
import { consola } from "consola";
import { relative, resolve } from "node:path";
import { flagKinds, parseNumber, runStrict, UsageError } from "../lib/util/cli.ts";
import { DataError } from "../lib/data/data.ts";
import { splitArgs } from "../lib/sweep/args.ts";
import { SFT_PRESETS } from "../lib/train/config.ts";
import { baseNumbers, markdownTable } from "../lib/sweep/aggregate.ts";
import { PARAM_NAMES, PARAMS, PRESETS, resolveParam } from "../lib/sweep/params.ts";
import { FINISHED } from "../lib/run/summary.ts";
import { buildPlan, commandLine, createSweepDir, DEFAULT_DATA_SEED, readPlan, RESERVED, runData, TRAIN_FLAGS, trainArgs, writePlan, writeRunData, type SweepPlan } from "../lib/sweep/plan.ts";
import { TRAIN_ARGS } from "../lib/sft/run-config.ts";
import { writeSweepReport } from "../lib/sweep/report.ts";
import { runSweep } from "../lib/sweep/run.ts";

const log = consola.withTag("sweep");

const args = {
  param: { type: "string", description: `what to vary: ${PARAM_NAMES.map((p) => `${p} (${PARAMS[p].defaults.join(",")})`).join("; ")}` },
  values: { type: "string", description: "comma-separated values, instead of the parameter's defaults" },
  preset: { type: "string", description: `a course exercise: ${Object.entries(PRESETS).map(([k, p]) => `${k} (= --param ${p.param})`).join(", ")}; or train.ts's ${Object.keys(SFT_PRESETS).join(", ")}, passed to every run` },
  resume: { type: "string", description: "continue runs/sweep-<time>-<param>: skip finished runs, rerun the rest" },
  out: { type: "string", default: "runs", description: "where the sweep folder goes" },
  name: { type: "string", description: "label of the sweep folder (default: the parameter or preset)" },
  "data-seed": { type: "string", default: String(DEFAULT_DATA_SEED), description: "seed of the data-size subsets and noise injection" },
  "dry-run": { type: "boolean", description: "print each run's train.ts command and stop" },
} as const;

const OWN = flagKinds(args);
/** train.ts's flags, passed to every run: listed by --help and the only others runStrict accepts. */
const PASSED: ArgsDef = Object.fromEntries(Object.entries(TRAIN_ARGS).filter(([k]) => !RESERVED.includes(k) && !(k in args))
  .map(([k, d]) => [k, { ...d, description: `train.ts: ${d.description}` }]));

const command = defineCommand({
  meta: { name: "sweep", description: "Run SFT runs that differ in one setting and compare them (train.ts's flags go to every run)" },
  args: { ...args, ...PASSED },
  async run({ rawArgs }) {
    try {
      const { own, passthrough } = splitArgs(rawArgs, OWN, TRAIN_FLAGS);
      const str = (k: string) => (typeof own[k] === "string" ? (own[k] as string) : undefined);
      let sweepDir: string;
      let plan: SweepPlan;
      if (str("resume")) {
        const extra = ["param", "values", "preset", "name", "data-seed"].filter((k) => own[k] !== undefined);
        if (extra.length || passthrough.length) {
          throw new UsageError(`--resume takes the plan from sweep.json: drop ${[...extra.map((k) => `--${k}`), ...passthrough.filter((a) => a.startsWith("--"))].join(", ")}`);
        }
        sweepDir = resolve(str("resume")!);
        plan = readPlan(sweepDir);
        log.info(`resuming \`${sweepDir}\`: ${plan.param} = ${plan.values.join(", ")}`);
      } else {
        // `--preset course` names train.ts's recipe, not a sweep exercise: every run gets it.
        const trainPreset = str("preset") !== undefined && SFT_PRESETS[str("preset")!] ? str("preset") : undefined;
        if (trainPreset) passthrough.push("--preset", trainPreset);
        const { param, values, preset } = resolveParam({ param: str("param"), preset: trainPreset ? undefined : str("preset"), values: str("values") });
        const dataSeed = parseNumber("data-seed", str("data-seed") ?? DEFAULT_DATA_SEED, { integer: true, min: 0 });
        plan = buildPlan({ param: param.name, values, passthrough, preset, dataSeed });
        const data = runData(plan); // read and checked before the sweep folder exists
        if (plan.sourceData) log.info(`data: \`${relative(process.cwd(), plan.sourceData)}\` (${plan.sourceSize} conversations), ${plan.param === "noise" ? "chat filler in a share of the answers" : "nested subsets"}, seed ${plan.dataSeed}`);
        if (own["dry-run"]) {
          for (const run of plan.runs) console.log(commandLine(trainArgs(plan, run, `${str("out") ?? "runs"}/sweep-TIME-${plan.param}`)));
          return;
        }
        sweepDir = createSweepDir(str("out") ?? "runs", str("name") ?? preset ?? param.name);
        writeRunData(sweepDir, data);
        writePlan(sweepDir, plan);
        log.info(`sweep folder: ${sweepDir}`);
      }

      // Ctrl-C reaches train.ts too (same process group): it stops cleanly, and the sweep stops after it.
      let stopping = false;
      process.on("SIGINT", () => {
        if (stopping) process.exit(130);
        stopping = true;
        log.warn("stopping after the current run (Ctrl-C again to quit now)");
      });
      const result = await runSweep(plan, sweepDir, {
        shouldStop: () => stopping,
        onRunDone: (p) => writeSweepReport(p, sweepDir),
        log: (m) => log.info(m),
      });
      const { rows } = writeSweepReport(plan, sweepDir);
      console.log("\n" + markdownTable(plan, rows, baseNumbers(plan, sweepDir)) + "\n");
      const shown = relative(process.cwd(), sweepDir) || ".";
      log.info(`${result.ran} ran, ${result.skipped} skipped, ${result.failed} failed · ${shown}/summary.md, ${shown}/report.html`);
      const unfinished = plan.runs.filter((r) => !(FINISHED as readonly string[]).includes(r.status));
      if (unfinished.length && !result.stopped) {
        log.error(`${unfinished.length} of ${plan.runs.length} runs did not finish: ${unfinished.map((r) => `${r.name} ${r.status}${r.reason ? ` (${r.reason})` : ""}`).join("; ")}`);
      }
      if (unfinished.length) log.info(`to rerun what did not finish: \`bun scripts/sweep.ts --resume ${shown}\``);
      if (result.stopped) process.exit(130);
      if (unfinished.length) process.exit(1);
    } catch (e) {
      if (e instanceof UsageError || e instanceof DataError) {
        log.error(e.message);
        process.exit(2);
      }
      throw e;
    }
  },
});

runStrict(command);
