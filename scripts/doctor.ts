// bun scripts/doctor.ts [--model models/gutenberg-base] [--skip model,memory] [--quiet]
//
// Checks that this machine can train: Bun, MLX, device, which BLAS is mapped, matmul GFLOP/s,
// free memory, the base model. One line per check; every failure prints the command that fixes
// it, and the exit code is 1 if any check failed (warnings alone exit 0).

import { defineCommand } from "citty";
import { runStrict } from "../lib/util/cli.ts";
import { consola } from "consola";
import { DEFAULT_MODEL_DIR, runDoctor } from "../lib/mlx/doctor.ts";
import { prepareProcess } from "../lib/mlx/startup.ts";

const log = consola.withTag("doctor");
const CHECK_IDS = ["bun", "mlx", "device", "blas", "matmul", "memory", "model"];

const main = defineCommand({
  meta: { name: "doctor", description: "Check that this machine is ready to train" },
  args: {
    model: { type: "string", description: "base model directory to check (default: models/gutenberg-base)" },
    skip: { type: "string", description: `comma-separated checks to leave out (${CHECK_IDS.join(", ")})`, default: "" },
    quiet: { type: "boolean", description: "one line when nothing fails", default: false },
  },
  async run({ args }) {
    prepareProcess(); // the kernels and malloc the training scripts get (lib/mlx/startup.ts), so that it measures those
    const skip = args.skip.split(",").map((s) => s.trim()).filter(Boolean);
    const unknown = skip.filter((s) => !CHECK_IDS.includes(s));
    if (unknown.length) {
      log.error(`--skip: unknown check \`${unknown.join(", ")}\`; expected a comma-separated list of ${CHECK_IDS.join(", ")}`);
      process.exitCode = 2;
      return;
    }
    const report = await runDoctor({ quiet: args.quiet, modelDir: args.model ?? DEFAULT_MODEL_DIR, skip });
    process.exitCode = report.ok ? 0 : 1;
  },
});

runStrict(main);
