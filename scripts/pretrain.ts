// Pretrain a small base model from plain text.
//   bun scripts/pretrain.ts --preset small --steps 1600
//   bun scripts/pretrain.ts --resume runs/<dir>            (continue an interrupted run)
// Defaults reproduce the bundled base model (models/gutenberg-base): Gutenberg books, the last
// eight held out (bytes 63944357- of gutenberg-english.txt), a 4096-token byte-level BPE.
import { prepareProcess } from "../lib/mlx/startup.ts";
import { defineCommand } from "citty";
import { consola } from "consola";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { PRESETS } from "../lib/pretrain/presets.ts";
import { preparePretrain, pretrain, type PretrainConfig } from "../lib/pretrain/pretrain.ts";
import { createRunDir, gitCommit, machineInfo } from "../lib/run/folder.ts";
import { readJSON, writeJSON } from "../lib/io/files.ts";
import { parseList, parseNumber, runStrict, UsageError } from "../lib/util/cli.ts";

const log = consola.withTag("pretrain");
const SHARED = resolve(import.meta.dir, "../../shared/corpus");
const HELD_OUT_START = 63944357; // byte where the last 8 Gutenberg books begin (see models/gutenberg-base/MODEL_CARD.md)

const command = defineCommand({
  meta: { name: "pretrain", description: "Pretrain a small Llama-family base model on plain text" },
  args: {
    preset: { type: "string", default: "small", description: `size preset: ${Object.keys(PRESETS).join(", ")}` },
    corpus: { type: "string", default: `${SHARED}/gutenberg-english.txt:0-${HELD_OUT_START}`, description: "training text: comma-separated files or byte ranges path:START-END" },
    "eval-corpus": { type: "string", default: `${SHARED}/gutenberg-english.txt:${HELD_OUT_START}-`, description: "held-out text (whole documents)" },
    tokenizer: { type: "string", default: "models/tokenizer-4096", description: "tokenizer.json or its directory (train one with scripts/train-tokenizer.ts)" },
    "max-mb": { type: "string", default: "80", description: "cap on training text read, MB" },
    steps: { type: "string", default: "1600", description: "optimizer steps (1600 made models/gutenberg-base)" },
    "batch-size": { type: "string", description: "sequences per step (default: the preset's)" },
    "seq-len": { type: "string", description: "context length (default: the preset's)" },
    lr: { type: "string", description: "peak learning rate (default: the preset's)" },
    warmup: { type: "string", default: "200", description: "warmup steps" },
    "min-lr-ratio": { type: "string", default: "0.1", description: "final lr as a fraction of the peak" },
    "eval-every": { type: "string", default: "200", description: "steps between held-out evaluations" },
    "eval-windows": { type: "string", default: "128", description: "held-out windows per evaluation" },
    "save-every": { type: "string", default: "200", description: "steps between resumable checkpoints" },
    "log-every": { type: "string", default: "10", description: "steps per report window" },
    seed: { type: "string", default: "1337", description: "random seed (init and data order)" },
    name: { type: "string", description: "run name (default: pretrain-<preset>)" },
    out: { type: "string", default: "runs", description: "where run folders go" },
    resume: { type: "string", description: "resume the run in this folder" },
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts
    try {
      if (args.resume) {
        const runDir = resolve(args.resume);
        if (!existsSync(join(runDir, "config.json"))) throw new UsageError(`--resume ${args.resume}: no config.json there`);
        const cfg = readJSON<PretrainConfig>(join(runDir, "config.json"));
        await pretrain(cfg, runDir, { resume: true });
        return;
      }
      const preset = PRESETS[args.preset];
      if (!preset) throw new UsageError(`--preset expects one of ${Object.keys(PRESETS).join(", ")}, got \`${args.preset}\``);
      const int = (flag: string, v: unknown) => parseNumber(flag, v, { integer: true, positive: true });
      const cfg: PretrainConfig = {
        preset: args.preset,
        modelConfig: preset.config,
        tokenizer: args.tokenizer,
        corpus: parseList(args.corpus),
        evalCorpus: parseList(args["eval-corpus"]),
        maxMB: parseNumber("max-mb", args["max-mb"], { positive: true }),
        steps: int("steps", args.steps),
        batchSize: int("batch-size", args["batch-size"] ?? preset.batchSize),
        seqLen: int("seq-len", args["seq-len"] ?? preset.seqLen),
        lr: parseNumber("lr", args.lr ?? preset.lr, { positive: true }),
        warmup: parseNumber("warmup", args.warmup, { integer: true, min: 0 }),
        minLrRatio: parseNumber("min-lr-ratio", args["min-lr-ratio"], { min: 0, max: 1 }),
        evalEvery: int("eval-every", args["eval-every"]),
        evalWindows: int("eval-windows", args["eval-windows"]),
        saveEvery: int("save-every", args["save-every"]),
        logEvery: int("log-every", args["log-every"]),
        seed: parseNumber("seed", args.seed, { integer: true, min: 0 }),
      };
      if (cfg.seqLen > (preset.config.max_position_embeddings as number)) {
        cfg.modelConfig = { ...preset.config, max_position_embeddings: cfg.seqLen };
      }
      for (const spec of [...cfg.corpus, ...cfg.evalCorpus]) {
        const path = spec.replace(/:\d*-\d*$/, "");
        if (!existsSync(path)) throw new UsageError(`corpus file \`${path}\` not found (from \`${spec}\`)`);
      }
      const data = await preparePretrain(cfg); // an empty or too short corpus is refused here, before the run folder
      const runDir = createRunDir(args.out, args.name ?? `pretrain-${args.preset}`);
      const { core: mx } = await import("@frost-beta/mlx");
      writeJSON(join(runDir, "config.json"), { ...cfg, command: process.argv.slice(1).join(" "), git: gitCommit(), machine: machineInfo(String(mx.defaultDevice())) });
      log.info(`run folder: ${runDir}`);
      await pretrain(cfg, runDir, { data });
    } catch (e) {
      if (e instanceof UsageError) {
        log.error(e.message);
        process.exit(2);
      }
      throw e;
    }
  },
});

runStrict(command);
