// `--format trl`: the run as a Hugging Face TRL SFTTrainer job under Accelerate. The folder holds
// the starting checkpoint, the data as chat JSONL, the project's batch order, the project's own
// render of every row (for scripts/trl-parity.py), a generated train_trl.py whose settings come from
// TRL_TABLE, an Accelerate config and a README with the launch commands.
import { join } from "node:path";
import type { RunConfig } from "../sft/run-config.ts";
import { defaultOptimizerConfig } from "../train/step.ts";
import { CHAT_TOKENS, SPECIAL_TOKENS } from "../format/tokens.ts";
import { adapterOf, saveAdapter } from "../model/adapter.ts";
import { adaptModel } from "../sft/lora.ts";
import { sftPart } from "../sft/run-config.ts";
import { countTargets, manifest, messagesJsonl, readAsset, writeExportFolder, writeStartCheckpoint, type ExportJob } from "./job.ts";
import { mappingTableMarkdown, mapSettings, pyLiteral, refusedWhen, setting, type MappingTable, type Setting } from "./mapping.ts";

export const TRL_FILES = {
  start: "start", // the starting checkpoint
  startAdapter: "start-adapter", // a LoRA run's adapter as it started (PEFT's layout)
  train: "data/train.jsonl",
  eval: "data/eval.jsonl",
  batches: "batches.jsonl", // one line per optimizer step: indices into data/train.jsonl
  referenceTrain: "reference/train_rows.jsonl", // the project's {ids, mask} of every row
  referenceEval: "reference/eval_rows.jsonl",
  script: "train_trl.py",
  accelerate: "accelerate.yaml",
} as const;

/** Every run config key, as a setting of train_trl.py (a Python constant it reads) or the reason
 * it is not part of the TRL job. */
export const TRL_TABLE = {
  steps: setting("STEPS", (c) => c.steps, "optimizer steps (max_steps); the lr schedule spans exactly these"),
  lr: setting("LR", (c) => c.lr, "peak learning rate"),
  warmup: setting("WARMUP", (c) => c.warmup, "linear warmup steps of the project's schedule (a LambdaLR: HF's own schedulers differ)"),
  minLrRatio: setting("MIN_LR_RATIO", (c) => c.minLrRatio, "the cosine ends at this fraction of LR at step STEPS"),
  batchSize: setting("BATCH", (c) => c.batchSize, "conversations per optimizer step over all processes together; each batch is split over the ranks"),
  maxSeqLen: setting("MAX_SEQ_LEN", (c) => c.maxSeqLen, "targets per row (ids - 1); longer rows are refused, never truncated (TRL's max_length is off)"),
  padMultiple: setting("PAD_MULTIPLE", (c) => c.padMultiple, "pad_to_multiple_of: padding is never supervised, so it changes no loss"),
  evalEvery: setting("EVAL_EVERY", (c) => c.evalEvery, "steps between held-out evaluations (also at step 0 and the last step)"),
  patience: setting("PATIENCE", (c) => c.patience, "evaluations without improvement before stopping; 0 = never"),
  minDelta: setting("MIN_DELTA", (c) => c.minDelta, "nats/token an evaluation must beat the best by"),
  gradClip: setting("GRAD_CLIP", (c) => c.gradClip, "max_grad_norm: global norm clipping; 0 = off"),
  weightDecay: setting("WEIGHT_DECAY", (c) => c.weightDecay, "AdamW decoupled decay, on matrices only (as the project)"),
  seed: setting("SEED", (c) => c.seed, "the seed batches.jsonl was drawn with; also HF's seed"),
  maskMode: setting("ASSISTANT_ONLY_LOSS", (c) => assistantOnly(c.maskMode), (c) => `mask "${c.maskMode}": assistant_only_loss ${c.maskMode === "assistant" ? "on (the template's {% generation %} span)" : "off (every token)"}`),
  keep: setting("KEEP", (c) => c.keep, "weights saved as output/checkpoint: the last step's, or the best held-out loss"),
  groupByLength: setting("GROUP_BY_LENGTH", (c) => c.groupByLength, "already applied: batches.jsonl holds the project's (length-grouped or shuffled) batches"),
  dropOverlength: setting("DROP_OVERLENGTH", (c) => c.dropOverlength, "already applied: over-length rows were dropped from the exported data"),
  logEvery: setting("LOG_EVERY", (c) => c.logEvery, "logging_steps (metrics.jsonl gets every step)"),
  base: setting("START", () => TRL_FILES.start, (c) => `a copy of ${c.base} as the project starts from it (the base is only read)`),
  data: setting("TRAIN_FILE", () => TRL_FILES.train, (c) => `the rows of ${c.data}, as chat messages`),
  evalData: setting("EVAL_FILE", () => TRL_FILES.eval, (c) => `the rows of ${c.evalData}, as chat messages`),
  name: setting("RUN_NAME", (c) => c.name, "run_name"),
  addChatTokens: { outside: "already applied: start/ holds the vocabulary the run trains (chat tokens added when asked)" },
  probes: { outside: "the probes run after training in the project; chat with the result: bun scripts/chat.ts --model <output>/checkpoint" },
  probeTokens: { outside: "see probes" },
  truncate: refusedWhen((c) => c.truncate, "the run cuts over-long rows (--truncate), which the exported job would not: export a run without --truncate (or with --drop-overlength)", "off: no row is cut"),
  courseSplit: { outside: "already applied: the exported train and eval files are the run's (course) split" },
  splitSeed: { outside: "see courseSplit" },
  epochs: { outside: "already applied: the steps are epochs × ceil(rows / batch size), the batches drawn for them" },
  mixProse: refusedWhen((c) => c.mixProse > 0, "the run mixes pretraining replay rows into its batches (--mix-prose), which the exported job would not: export a run trained with --mix-prose 0 (e.g. --preset course), or --config a file with mixProse 0", "off: the batches hold conversations only"),
  proseData: { outside: "the replay text of --mix-prose (see mixProse)" },
  neftuneAlpha: refusedWhen((c) => c.neftuneAlpha > 0, "the run adds NEFTune noise to the input embeddings (--neftune-alpha), which the exported job would not: export a run trained with --neftune-alpha 0", "off: no embedding noise"),
  out: { outside: "where the project puts run folders; train_trl.py writes to --output" },
  gradAccum: refusedWhen((c) => c.gradAccum > 1, "the run sums --grad-accum batches into each optimizer step, and the exported batch order has one batch per step: export a run with --grad-accum 1 (a --batch-size of batch × accum is the same gradient)", "1: one batch per step, as the run"),
  gradCheckpoint: setting("GRAD_CHECKPOINT", (c) => c.gradCheckpoint, "gradient_checkpointing: the same gradients, layers recomputed in the backward pass"),
  lora: setting("PEFT_CONFIG", peftConfig, (c) => (c.lora
    ? `the run trains a LoRA adapter: LoraConfig's r, lora_alpha, lora_dropout, target_modules${c.loraTokens === "chat" ? " and the chat tokens' rows (trainable_token_indices)" : ""}; ` +
      `the job loads ${TRL_FILES.startAdapter}/ (the run's adapter at step 0: A drawn from its seed, B zero) with these settings and checks them` +
      `${c.loraDropout > 0 ? "; dropout draws other masks than the run's (torch's RNG, not MLX's): the same objective in expectation, per-step losses differ" : ""}`
    : "None: every weight is trained")),
  loraRank: { outside: "in PEFT_CONFIG (r)" },
  loraAlpha: { outside: "in PEFT_CONFIG (lora_alpha)" },
  loraDropout: { outside: "in PEFT_CONFIG (lora_dropout)" },
  loraTargets: { outside: "in PEFT_CONFIG (target_modules)" },
  loraTokens: refusedWhen((c) => c.lora && c.loraTokens === "added", "the run trains the rows of the tokens --add-chat-tokens added (--lora-tokens added), which the export does not record: export a run with --lora-tokens chat or none", "in PEFT_CONFIG (trainable_tokens), or none"),
  quantize: refusedWhen((c) => c.quantize > 0, "the run's base is quantized in MLX (QLoRA); PEFT's 4/8-bit bases come from bitsandbytes, another quantization, on CUDA: export the run with --quantize 0 (the same adapter on a float32 base)", "0: the base in float32, as the run"),
  quantizeGroupSize: { outside: "see quantize" },
} satisfies MappingTable;

/** PEFT's LoraConfig arguments for a LoRA run (null when every weight trains). `trainable_tokens`
 * holds token strings; train_trl.py checks them against start-adapter/'s trainable_token_indices with
 * start/'s tokenizer. */
function peftConfig(c: RunConfig): Setting["value"] {
  if (!c.lora) return null;
  return {
    task_type: "CAUSAL_LM",
    r: c.loraRank,
    lora_alpha: c.loraAlpha,
    lora_dropout: c.loraDropout,
    target_modules: c.loraTargets === "all-linear" ? "all-linear" : c.loraTargets.split(","),
    trainable_tokens: c.loraTokens === "chat" ? [...CHAT_TOKENS] : null,
  };
}

function assistantOnly(mask: string): boolean {
  if (mask === "assistant") return true;
  if (mask === "all") return false;
  throw new Error(`mask \`${mask}\` has no TRL mapping`);
}

/** Settings that are not config keys: the project's fixed optimizer constants and chat tokens. */
export function fixedTrlSettings(): Setting[] {
  const opt = defaultOptimizerConfig();
  return [
    { name: "ADAM_BETA1", value: opt.beta1, why: "lib/train/step.ts defaultOptimizerConfig" },
    { name: "ADAM_BETA2", value: opt.beta2, why: "lib/train/step.ts defaultOptimizerConfig" },
    { name: "ADAM_EPS", value: opt.eps, why: "added to sqrt of the bias-corrected second moment, as torch's AdamW" },
    { name: "EOS_TOKEN", value: SPECIAL_TOKENS.end, why: "closes every assistant turn; supervised" },
    { name: "PAD_TOKEN", value: SPECIAL_TOKENS.pad, why: "padding; never supervised" },
    { name: "BATCHES_FILE", value: TRL_FILES.batches, why: "the project's batch of every step, drawn by its own iterateBatches" },
    { name: "START_ADAPTER", value: TRL_FILES.startAdapter, why: "a LoRA run's adapter at step 0 (PEFT's layout); used only with PEFT_CONFIG" },
  ];
}

/** train_trl.py: a docstring with the commands, the settings block, then the static part
 * (lib/export/train_trl.template.py). */
export function trlScript(cfg: RunConfig, source: string): string {
  const { settings } = mapSettings(cfg, TRL_TABLE, "TRL");
  const block = [
    `# ---- The run's settings, one per config key (generated from ${source}; lib/export/trl.ts TRL_TABLE) ----`,
    ...settings.map(settingLine),
    "# ---- Fixed by the project ----",
    ...fixedTrlSettings().map(settingLine),
  ].join("\n");
  const header = [
    '"""This project\'s SFT job in Hugging Face TRL, with the same loss, data order and lr at every step.',
    "",
    `Generated by \`bun scripts/export.ts --format trl\` from ${source}. Change a setting by`,
    "exporting again: data order (batches.jsonl) and the reference rows are drawn for these settings.",
    "",
    "    python train_trl.py                                   # one GPU, or the CPU",
    `    accelerate launch --config_file ${TRL_FILES.accelerate} --num_processes N train_trl.py   # N GPUs`,
    '"""',
  ].join("\n");
  const body = readAsset("train_trl.template.py");
  if (!body.includes("# @SETTINGS@")) throw new Error("lib/export/train_trl.template.py lost its # @SETTINGS@ line");
  return `${header}\n${body.replace("# @SETTINGS@", block)}`;
}

const settingLine = (s: Setting) => `${s.name} = ${pyLiteral(s.value)}  # ${s.why}`;

/** Accelerate's launch config: data parallel over the GPUs of one machine, in fp32. */
export function accelerateConfig(): string {
  return [
    "# Accelerate config for train_trl.py: data parallel (DDP) over the GPUs of one machine.",
    "# `accelerate launch --num_processes N` overrides num_processes; add --num_machines,",
    "# --machine_rank, --main_process_ip and --main_process_port for several machines.",
    "compute_environment: LOCAL_MACHINE",
    "distributed_type: MULTI_GPU",
    "mixed_precision: 'no' # fp32 as the project; bf16 here would override the script's bf16=False",
    "downcast_bf16: 'no'",
    "num_machines: 1",
    "machine_rank: 0",
    "num_processes: 2",
    "gpu_ids: all",
    "main_training_function: main",
    "rdzv_backend: static",
    "same_network: true",
    "use_cpu: false",
    "",
  ].join("\n");
}

/** Write the TRL export of `job` into the new folder `out`. */
export function writeTrlExport(job: ExportJob, out: string, source: string): string {
  const rows = (examples: { ids: number[]; mask: number[] }[]) => examples.map(({ ids, mask }) => JSON.stringify({ ids, mask }) + "\n").join("");
  const files: Record<string, string> = {
    [TRL_FILES.train]: messagesJsonl(job.train),
    [TRL_FILES.eval]: messagesJsonl(job.eval),
    [TRL_FILES.batches]: job.batches.map((b) => JSON.stringify(b) + "\n").join(""),
    [TRL_FILES.referenceTrain]: rows(job.trainExamples),
    [TRL_FILES.referenceEval]: rows(job.evalExamples),
    [TRL_FILES.script]: trlScript(job.cfg, source),
    [TRL_FILES.accelerate]: accelerateConfig(),
    "README.md": trlReadme(job, source),
    "export.json": JSON.stringify(manifest("trl", job, { files: TRL_FILES, start: "copy" }), null, 2) + "\n",
  };
  return writeExportFolder(out, files, (dir) => {
    writeStartCheckpoint(join(dir, TRL_FILES.start), job);
    if (job.cfg.lora) writeStartAdapter(join(dir, TRL_FILES.startAdapter), job);
  });
}

/** A LoRA run's adapter as the run started it (the same seed draws the same A; B zero; the token rows
 * at the base's values), in PEFT's layout: train_trl.py trains it from there, so its steps are the
 * run's, not those of another random A (PEFT's LoraConfig would draw its own). Call after
 * writeStartCheckpoint: the job's model is adapted in place. */
function writeStartAdapter(dir: string, job: ExportJob): void {
  const { inputs, cfg } = job;
  const setup = adaptModel(inputs.model, inputs.tokenizer, inputs.addedTokens, sftPart(cfg));
  saveAdapter(dir, adapterOf(inputs.model, setup.settings), {
    baseModel: TRL_FILES.start,
    tokenizer: inputs.tokenizer,
    contextLength: inputs.model.config.maxPositionEmbeddings,
    meta: { kind: "export-start-adapter", base: cfg.base, run: job.runDir ?? null },
  });
}

function trlReadme(job: ExportJob, source: string): string {
  const { cfg } = job;
  const { outside } = mapSettings(cfg, TRL_TABLE, "TRL");
  return `# ${cfg.name}: the SFT job in TRL + Accelerate

Exported by \`bun scripts/export.ts --format trl\` from ${source}. The same objective as the project's
run: the same starting weights, the same rows (${job.train.length} training, ${job.eval.length} held-out;
${countTargets(job.trainExamples)} and ${countTargets(job.evalExamples)} supervised targets), the loss on exactly
the assistant content and its \`<|end|>\` in every turn, the same batches in the same order and the same lr
at every step.

| file | what |
| --- | --- |
| \`${TRL_FILES.script}\` | the job: TRL's SFTTrainer with the settings below |
| \`${TRL_FILES.accelerate}\` | Accelerate: data parallel on the GPUs of one machine, fp32 |
| \`${TRL_FILES.start}/\` | the starting checkpoint (a copy of the base as the run starts from it; its chat template's \`{% generation %}\` markers give TRL the mask) |${cfg.lora ? `
| \`${TRL_FILES.startAdapter}/\` | the run's LoRA adapter at step 0 in PEFT's layout (A as the run drew it, B zero, the token rows at the base's values): the job trains it with \`PeftModel.from_pretrained(..., is_trainable=True)\` |` : ""}
| \`${TRL_FILES.train}\`, \`${TRL_FILES.eval}\` | the conversations, one \`{"messages": [...]}\` per line |
| \`${TRL_FILES.batches}\` | the row indices of every optimizer step's batch (${job.batches.length} steps) |
| \`reference/\` | the project's own ids and mask of every row, for \`scripts/trl-parity.py\` |
| \`export.json\` | where this came from: base and data hashes, config, counts |

## Run

Set-up (any machine with Python 3.10+): \`pip install torch transformers trl accelerate datasets\` (and
\`peft\` for adapters). Then, in this folder:

    python train_trl.py                                                        # one GPU, or the CPU
    accelerate launch --config_file accelerate.yaml --num_processes N train_trl.py   # N GPUs on one machine
    torchrun --nproc_per_node N train_trl.py --cpu                             # N CPU processes: tries the multi-process path

Several machines: the same command on each, with \`--num_machines M --machine_rank R
--main_process_ip <first machine> --main_process_port 29500\` and \`--num_processes\` the total. Outputs go
to \`output/\` (\`--output\` for another new folder; an existing one is refused): \`metrics.jsonl\` (every
step's loss, lr and supervised tokens; every held-out evaluation, in the project's schema) and
\`checkpoint/\`, which \`bun scripts/chat.ts --model output/checkpoint\` loads.

With N processes every step still trains on the project's batch of ${cfg.batchSize} rows: each rank takes every
N-th row of it, and the loss is the batch's supervised sum over its supervised count
(\`average_tokens_across_devices\`). To train on more rows per step, export again with a larger
\`batchSize\` (\`--config\`): batches.jsonl is drawn for these settings.

## The settings, one to one

${mappingTableMarkdown(cfg, TRL_TABLE, "train_trl.py", pyLiteral)}

Not config keys: AdamW β ${defaultOptimizerConfig().beta1}/${defaultOptimizerConfig().beta2}, ε ${defaultOptimizerConfig().eps} (the project's constants).
${outside.length ? `Keys outside this job: ${outside.map(([k]) => `\`${k}\``).join(", ")}.` : ""}

## Where TRL's defaults differ, and what the script sets

- **Precision**: TRL trains in bf16 by default; the project in fp32. \`bf16=False\`, \`tf32=False\`, the model
  loaded in float32, and \`mixed_precision: 'no'\` in accelerate.yaml. bf16 is faster on GPUs and changes every loss.
- **Gradient checkpointing**: on by default in TRL; here the run's \`--grad-checkpoint\` (GRAD_CHECKPOINT).
  It recomputes activations: less memory, the same math.
- **lr schedule**: HF's schedulers warm up and decay on other formulas; a LambdaLR gives step k exactly the
  project's lr (lib/train/schedule.ts). HF's own warmup is unused.
- **Batches and order**: HF shuffles with its own sampler; here every step's batch comes from
  batches.jsonl (the project's iterateBatches), split over the ranks.
- **Packing / padding-free / truncation**: off; one conversation per row, never cut.
- **eos**: TRL appends an eos only to non-chat data; the template closes every assistant turn with
  \`<|end|>\`, supervised, as the project.
- **Weight decay set**: matrices only (\`ndim >= 2\`), never norms or biases.
- **Evaluation**: HF averages per-batch means; here the held-out loss is the project's, token-weighted over
  the whole eval set, on assistant tokens, at step 0, every ${cfg.evalEvery} steps and at the end.
- **Not the same**: PyTorch and MLX kernels round differently (fp32, ~1e-6 per op), so losses drift apart
  slowly over steps; more processes sum in another order. Message text that spells a chat token (\`<|end|>\`)
  is one special id in transformers and plain text in the project: \`scripts/trl-parity.py\` reports such rows.
  The probes, samples.md and report.html are the project's; run them on the result with the project.
`;
}
