// Fine-tune (SFT) a base model on conversations; everything lands in runs/<YYYYMMDD-HHMMSS>-<name>/.
//   bun scripts/train.ts                                   (the bundled base, the bundled data)
//   bun scripts/train.ts --base /tmp/devbase --steps 30 --eval-every 10 --name try
//   bun scripts/train.ts --config my-run.json --lr 1e-4     (flags > config file > defaults)
//   bun scripts/train.ts --data instructions.json --course-split   (the course notebook's data and split)
//   bun scripts/train.ts --resume runs/<dir>                (continue an interrupted run)
//   bun scripts/train.ts --preset course                    (the course's recipe: 500 steps, lr 3e-4, no replay, no noise)
//   bun scripts/train.ts --lora                             (a LoRA adapter at lr 3e-3 for 20 epochs: runs/<dir>/adapter/, PEFT's layout)
//   bun scripts/train.ts --lora --quantize 4 --base <dir>   (QLoRA: the base's weights in 4 bits in memory)
// Nothing is written until the flags, base, tokenizer and data have all been checked.
import { prepareProcess } from "../lib/mlx/startup.ts";
import { defineCommand } from "citty";
import { consola } from "consola";
import { createRunDir } from "../lib/run/folder.ts";
import { runStrict, UsageError } from "../lib/util/cli.ts";
import { runDoctor } from "../lib/mlx/doctor.ts";
import { parseTrainFlags, readRunConfigFile, resolveRunConfig, TRAIN_ARGS } from "../lib/sft/run-config.ts";

const log = consola.withTag("train");

const command = defineCommand({
  meta: { name: "train", description: "Supervised fine-tuning of a Llama-family base model on chat conversations" },
  args: TRAIN_ARGS, // one table of options: lib/train/config.ts and lib/sft/run-config.ts
  async run({ args }) {
    try {
      const flags = parseTrainFlags(args); // options first: a bad value costs nothing
      if (args.resume && (Object.values(flags).some((v) => v !== undefined) || args.preset !== undefined)) {
        throw new UsageError("--resume continues a run with its own config.json: drop the other options (start a new run to change them)");
      }
      const file = args.config ? readRunConfigFile(args.config) : {};
      const cfg = args.resume ? null : resolveRunConfig(file, flags, args.preset);
      prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts
      const doctor = await runDoctor({ quiet: true, skip: ["model"] }); // the base is checked by prepareRun, with a clearer message
      if (!doctor.ok) throw new UsageError("the environment is not ready: run the fix lines above (or `bun scripts/doctor.ts`)");
      const { executeRun, prepareRun } = await import("../lib/sft/run.ts"); // MLX loads here, after the doctor
      const { resumeRun } = await import("../lib/sft/resume.ts");
      if (args.resume) {
        process.exitCode = await resumeRun(args.resume);
        return;
      }
      const prepared = await prepareRun(cfg!);
      const runDir = createRunDir(cfg!.out, cfg!.name); // only now: every check above has passed
      process.exitCode = await executeRun(prepared, runDir);
    } catch (e) {
      const err = e as Error;
      if (err instanceof UsageError || ["DataError", "SelfCheckError", "CheckpointError", "SFTConfigError", "AdapterError", "PrecisionError"].includes(err.name)) {
        log.error(err.message);
        process.exit(2);
      }
      if (["FileError", "SafetensorsError"].includes(err.name)) {
        log.error(err.message); // a file that could not be written or read: its message says which and why
        process.exit(1);
      }
      throw e;
    }
  },
});

runStrict(command);
