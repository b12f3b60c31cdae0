// Fine-tune (SFT) a base model on conversations; everything lands in runs/<YYYYMMDD-HHMMSS>-<name>/.
//   bun scripts/train.ts                                   (the bundled base, the bundled data)
//   bun scripts/train.ts --base /tmp/devbase --steps 30 --eval-every 10 --name try
//   bun scripts/train.ts --config my-run.json --lr 1e-4     (flags > config file > defaults)
//   bun scripts/train.ts --resume runs/<dir>                (continue an interrupted run)
// Nothing is written until the flags, base, tokenizer and data have all been checked.
import { prepareProcess } from "../lib/mlx/startup.ts";
import { defineCommand, runMain } from "citty";
import { consola } from "consola";
import { createRunDir } from "../lib/run/folder.ts";
import { parseNumber, UsageError } from "../lib/util/cli.ts";
import { runDoctor } from "../lib/mlx/doctor.ts";
import { defaultRunSettings, readRunConfigFile, resolveRunConfig, type RunConfig } from "../lib/sft/run-config.ts";
import { defaultSFTConfig } from "../lib/train/config.ts";

const log = consola.withTag("train");
const d = { ...defaultSFTConfig(), ...defaultRunSettings() };
const str = (description: string) => ({ type: "string", description }) as const;

const command = defineCommand({
  meta: { name: "train", description: "Supervised fine-tuning of a Llama-family base model on chat conversations" },
  args: {
    base: str(`base checkpoint folder (HF layout) (default: models/gutenberg-base)`),
    data: str(`training conversations, .json or .jsonl (default: data/sft/instructions.json)`),
    "eval-data": str(`held-out conversations for eval loss, early stopping and probes (default: data/sft/eval.json)`),
    steps: str(`optimizer steps (default: ${d.steps})`),
    lr: str(`peak learning rate (default: ${d.lr}, ~0.1x the base's pretraining lr)`),
    "batch-size": str(`conversations per step (default: ${d.batchSize})`),
    "max-seq-len": str(`max targets per conversation; longer ones are refused, never cut (default: ${d.maxSeqLen})`),
    warmup: str(`linear warmup steps (default: ${d.warmup})`),
    "min-lr-ratio": str(`final lr as a fraction of the peak (default: ${d.minLrRatio})`),
    "eval-every": str(`steps between held-out evaluations (default: ${d.evalEvery})`),
    patience: str(`evaluations without improvement before stopping early; 0 = off (default: ${d.patience})`),
    "weight-decay": str(`AdamW decoupled weight decay (default: ${d.weightDecay})`),
    "grad-clip": str(`max global gradient norm; 0 = off (default: ${d.gradClip})`),
    "log-every": str(`steps per report line (default: ${d.logEvery})`),
    seed: str(`batch order and probe sampling seed (default: ${d.seed})`),
    keep: str(`weights to keep and probe: best (lowest held-out loss) or last (the final step) (default: ${d.keep})`),
    mask: str(`loss mask: assistant (replies and their <|end|>) or all (every non-padding token) (default: ${d.maskMode})`),
    "drop-overlength": { type: "boolean", description: "drop conversations longer than --max-seq-len (counted) instead of refusing the data" },
    "add-chat-tokens": { type: "boolean", description: "if the base's tokenizer lacks <|user|> <|assistant|> <|end|> <|pad|>, add them and grow the embedding" },
    probes: str(`probe prompts file (default: data/sft/probes.json)`),
    "probe-tokens": str(`reply budget per probe prompt; 0 skips probes, samples.md and report.html (default: ${d.probeTokens})`),
    name: str(`run name: runs/<time>-<name>/ (default: ${d.name})`),
    out: str(`folder for run folders (default: runs)`),
    config: str("JSON file of these options (flag names or config keys, e.g. {\"lr\": 1e-4, \"eval-every\": 25})"),
    resume: str("continue the interrupted run in this folder, with its own config.json"),
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts
    try {
      const flags = parseFlags(args);
      if (args.resume && Object.values(flags).some((v) => v !== undefined)) {
        throw new UsageError("--resume continues a run with its own config.json: drop the other options (start a new run to change them)");
      }
      const file = args.config ? readRunConfigFile(args.config) : {};
      const cfg = args.resume ? null : resolveRunConfig(file, flags);
      const doctor = await runDoctor({ quiet: true, skip: ["model"] }); // the base is checked by prepareRun, with a clearer message
      if (!doctor.ok) throw new UsageError("the environment is not ready: run the fix lines above (or `bun scripts/doctor.ts`)");
      const { executeRun, prepareRun, resumeRun } = await import("../lib/sft/run.ts"); // MLX loads here, after the doctor
      if (args.resume) {
        process.exitCode = await resumeRun(args.resume);
        return;
      }
      const prepared = await prepareRun(cfg!);
      const runDir = createRunDir(cfg!.out, cfg!.name); // only now: every check above has passed
      process.exitCode = await executeRun(prepared, runDir);
    } catch (e) {
      const err = e as Error;
      if (err instanceof UsageError || ["DataError", "SelfCheckError", "CheckpointError", "SFTConfigError"].includes(err.name)) {
        log.error(err.message);
        process.exit(2);
      }
      throw e;
    }
  },
});

/** The flags as a partial run config: numbers checked here, naming the flag; undefined = not given. */
function parseFlags(args: Record<string, any>): Partial<RunConfig> {
  const int = (flag: string, min = 1) => (args[flag] === undefined ? undefined : parseNumber(flag, args[flag], { integer: true, min }));
  const num = (flag: string, rule: Parameters<typeof parseNumber>[2]) => (args[flag] === undefined ? undefined : parseNumber(flag, args[flag], rule));
  const keep = args.keep;
  if (keep !== undefined && keep !== "best" && keep !== "last") throw new UsageError(`--keep expects best or last, got \`${keep}\``);
  const mask = args.mask;
  if (mask !== undefined && mask !== "assistant" && mask !== "all") throw new UsageError(`--mask expects assistant or all, got \`${mask}\``);
  for (const flag of ["base", "data", "eval-data", "probes", "name", "out"]) {
    if (args[flag] === "" || args[flag] === true) throw new UsageError(`--${flag} expects a value`);
  }
  return {
    base: args.base,
    data: args.data,
    evalData: args["eval-data"],
    steps: int("steps"),
    lr: num("lr", { positive: true }),
    batchSize: int("batch-size"),
    maxSeqLen: int("max-seq-len", 2),
    warmup: int("warmup", 0),
    minLrRatio: num("min-lr-ratio", { min: 0, max: 1 }),
    evalEvery: int("eval-every"),
    patience: int("patience", 0),
    weightDecay: num("weight-decay", { min: 0 }),
    gradClip: num("grad-clip", { min: 0 }),
    logEvery: int("log-every"),
    seed: int("seed", 0),
    maskMode: mask,
    keep,
    dropOverlength: args["drop-overlength"],
    addChatTokens: args["add-chat-tokens"],
    probes: args.probes,
    probeTokens: int("probe-tokens", 0),
    name: args.name,
    out: args.out,
  };
}

runMain(command);
