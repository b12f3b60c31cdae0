// Hand a run to another engine, in a new self-contained folder (never overwriting one).
//   bun scripts/export.ts --format trl --run runs/<dir>            (-> runs/<dir>/export-trl/)
//   bun scripts/export.ts --format mlx-lm --run runs/<dir>
//   bun scripts/export.ts --format course --run runs/<dir> --out ../g2c/artifacts/models/BaseLM-SFT
//   bun scripts/export.ts --format trl --config my-run.json --out /tmp/job   (a job never run here)
//   bun scripts/export.ts --format trl --data my.jsonl --base models/gutenberg-base --out /tmp/job
// Formats: lib/export/formats.ts.
import { defineCommand } from "citty";
import { consola } from "consola";
import { runStrict, UsageError } from "../lib/util/cli.ts";
import { prepareProcess } from "../lib/mlx/startup.ts";

const log = consola.withTag("export");
const str = (description: string) => ({ type: "string", description }) as const;

const command = defineCommand({
  meta: { name: "export", description: "Write a run for another engine (TRL + Accelerate, mlx-lm) or the course's artifact layout into a new folder" },
  args: {
    format: str("trl, mlx-lm or course (lib/export/formats.ts)"),
    run: str("a run folder (runs/<dir>): its config.json, base and data"),
    config: str("without --run: a run config JSON, as bun scripts/train.ts --config takes (defaults otherwise)"),
    data: str("training conversations (overrides the run's or config's)"),
    "eval-data": str("held-out conversations (overrides the run's or config's)"),
    base: str("starting checkpoint (overrides the run's or config's)"),
    out: str("the new folder to write (default with --run: <run>/export-<format>/; course: <course repo>/artifacts/models/<name>)"),
    "base-artifact": str("course: the manifest's base_artifact (default: the base folder's name)"),
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts (the export renders and saves with MLX)
    const { findFormat } = await import("../lib/export/formats.ts");
    const format = findFormat(args.format);
    try {
      const out = await format.run({ run: args.run, config: args.config, data: args.data, evalData: args["eval-data"], base: args.base, out: args.out, baseArtifact: args["base-artifact"] }, args.format!);
      log.success(`wrote \`${out}\` (${args.format}); its README.md says how to run it`);
    } catch (e) {
      // A bad data file or base is the user's to fix, like a bad flag: the message, exit 2.
      if ((e as Error).name === "DataError" || (e as Error).name === "CheckpointError") throw new UsageError((e as Error).message);
      throw e;
    }
  },
});

runStrict(command);
