// Hand a run to something else, in a new folder (never overwriting one).
//   bun scripts/export.ts --format course --run runs/<dir> --out ../g2c/artifacts/models/BaseLM-SFT
// Formats: lib/export/formats.ts.
import { defineCommand } from "citty";
import { consola } from "consola";
import { relative } from "node:path";
import { runStrict, UsageError } from "../lib/util/cli.ts";
import { prepareProcess } from "../lib/mlx/startup.ts";

const log = consola.withTag("export");
const str = (description: string) => ({ type: "string", description }) as const;

const command = defineCommand({
  meta: { name: "export", description: "Write a run into a new folder in another tool's layout" },
  args: {
    format: str("course (the course's artifact layout; lib/export/formats.ts)"),
    run: str("a finished run folder (runs/<dir>)"),
    out: str("the new folder to write (course: <course repo>/artifacts/models/<name>)"),
    "base-artifact": str("course: the manifest's base_artifact (default: the base folder's name)"),
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts
    try {
      const { findFormat } = await import("../lib/export/formats.ts"); // MLX loads here
      const out = await findFormat(args.format).run({ run: args.run, out: args.out, baseArtifact: args["base-artifact"] }, args.format!);
      log.success(`wrote \`${relative(process.cwd(), out) || out}\` (${args.format})`);
    } catch (e) {
      if (e instanceof UsageError || ["DataError", "CheckpointError"].includes((e as Error).name)) {
        log.error((e as Error).message);
        process.exit(2);
      }
      throw e;
    }
  },
});

runStrict(command);
