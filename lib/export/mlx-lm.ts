// `--format mlx-lm`: the run as an mlx-lm fine-tuning job (`mlx_lm.lora --config mlx-lm.yaml`, full
// fine-tuning or LoRA), for newer MLX with mx.distributed. mlx-lm trains a different objective on multi-turn
// data and has no gradient clipping or early stopping: the README and the YAML say where.
import { join } from "node:path";
import { core as mx } from "@frost-beta/mlx";
import { sftPart, type RunConfig } from "../sft/run-config.ts";
import { adaptModel } from "../sft/lora.ts";
import { loraLayers } from "../model/lora.ts";
import { saveArrays } from "../mlx/arrays-file.ts";
import { LINEAR_MODULES, parseTargets } from "../model/lora-config.ts";
import { defaultOptimizerConfig } from "../train/step.ts";
import { countTargets, manifest, messagesJsonl, writeExportFolder, writeStartCheckpoint, type ExportJob } from "./job.ts";
import { mappingTableMarkdown, mapSettings, refusedWhen, setting, yamlLiteral, type MappingTable, type Setting, type Value } from "./mapping.ts";

export const MLX_LM_FILES = {
  start: "start",
  startAdapter: "start-adapter.safetensors", // a LoRA run's adapter at step 0, mlx-lm's tensor names
  train: "data/train.jsonl",
  valid: "data/valid.jsonl",
  config: "mlx-lm.yaml",
} as const;

/** mlx-lm's optimizer step u (1-based) runs at schedule(u - 1), and build_schedule joins the cosine
 * at `warmup + 1`: warmup W-1 from lr/W gives steps 1..W the project's lr and the cosine starts at
 * step W + 1, as the project's (the course's) does. With W = 1 there is no warmup to join, so the
 * cosine starts a step early. test/export.test.ts pins this against MLX's formulas. */
function lrSchedule(c: RunConfig): Value {
  const W = c.warmup;
  return {
    name: "cosine_decay",
    warmup: Math.max(0, W - 1),
    warmup_init: W > 1 ? c.lr / W : 0,
    arguments: [c.lr, Math.max(1, c.steps - W), c.lr * c.minLrRatio],
  };
}

const differs = (cond: (c: RunConfig) => boolean, why: string, otherwise: string) => (c: RunConfig) => (cond(c) ? `DIFFERS: ${why}` : otherwise);

/** Every run config key, as an mlx_lm.lora config entry or the reason it is not one. */
export const MLX_LM_TABLE = {
  steps: setting("iters", (c) => c.steps, "optimizer steps"),
  lr: setting("learning_rate", (c) => c.lr, "peak learning rate (lr_schedule below shapes it)"),
  warmup: setting("lr_schedule", lrSchedule, (c) => `linear warmup ${c.warmup} steps to the peak, then cosine to ${c.minLrRatio} x peak; ${c.warmup === 1 ? "the cosine runs one step ahead of the project's (no warmup step to join it at)" : "every step's lr as the project's"} (mlx_lm/tuner/utils.py build_schedule)`),
  minLrRatio: { outside: "in lr_schedule (the cosine's end value)" },
  batchSize: setting("batch_size", (c) => c.batchSize, "rows per step; mlx-lm draws its own length-grouped batches and drops the last partial one"),
  maxSeqLen: setting("max_seq_length", (c) => c.maxSeqLen + 1, "ids per row (targets + 1); mlx-lm truncates longer rows, the export has none"),
  padMultiple: { outside: "mlx-lm pads to 1 + a multiple of 32 itself; padding changes no loss" },
  evalEvery: setting("steps_per_eval", (c) => c.evalEvery, "steps between validations (val_batches -1: the whole set)"),
  patience: setting("patience", (c) => c.patience, differs((c) => c.patience > 0, "mlx-lm has no early stopping: it trains every iteration", "no early stopping, as the run")),
  minDelta: { outside: "early stopping only (see patience)" },
  gradClip: setting("grad_clip", (c) => c.gradClip, differs((c) => c.gradClip > 0, "mlx-lm does not clip gradients; this entry is a record, mlx_lm.lora ignores it", "no clipping, as the run")),
  weightDecay: setting("weight_decay", (c) => c.weightDecay, differs((c) => c.weightDecay > 0, "in optimizer_config: MLX's AdamW decays every parameter, norms too; the project only matrices", "in optimizer_config; 0, as the run")),
  seed: setting("seed", (c) => c.seed, "seeds mlx-lm's own batch order (not the project's)"),
  maskMode: setting("mask_prompt", (c) => c.maskMode === "assistant", (c) => c.maskMode === "assistant"
    ? "DIFFERS on multi-turn rows: only the last assistant turn (and its <|end|>) is supervised (mlx_lm/tuner/datasets.py ChatDataset.process)"
    : "every token supervised, as the run's mask \"all\""),
  keep: setting("keep", (c) => c.keep, differs((c) => c.keep === "best", "mlx-lm keeps the last weights; pick a save_every checkpoint by its validation loss", "the last weights, as the run")),
  groupByLength: setting("group_by_length", (c) => c.groupByLength, differs((c) => !c.groupByLength, "mlx-lm always batches rows of similar length", "mlx-lm batches by length too (its own order)")),
  dropOverlength: { outside: "already applied: over-length rows were dropped from the exported data" },
  logEvery: setting("steps_per_report", (c) => c.logEvery, "steps per loss report"),
  base: setting("model", () => MLX_LM_FILES.start, (c) => `a copy of ${c.base} as the project starts from it`),
  data: setting("data", () => "data", (c) => `train.jsonl: the rows of ${c.data}`),
  evalData: { outside: "data/valid.jsonl: the held-out rows" },
  name: setting("adapter_path", (c) => `${c.name}-weights`, "where mlx-lm writes the trained weights"),
  addChatTokens: { outside: "already applied: start/ holds the vocabulary the run trains" },
  probes: { outside: "the probes run after training in the project" },
  probeTokens: { outside: "see probes" },
  truncate: refusedWhen((c) => c.truncate, "the run cuts over-long rows (--truncate), which the exported job would not: export a run without --truncate (or with --drop-overlength)", "off: no row is cut"),
  courseSplit: { outside: "already applied: the exported train and eval files are the run's (course) split" },
  splitSeed: { outside: "see courseSplit" },
  epochs: { outside: "already applied: the steps are epochs × ceil(rows / batch size), the batches drawn for them" },
  mixProse: refusedWhen((c) => c.mixProse > 0, "the run mixes pretraining replay rows into its batches (--mix-prose), which the exported job would not: export a run trained with --mix-prose 0 (e.g. --preset course), or --config a file with mixProse 0", "off: the batches hold conversations only"),
  proseData: { outside: "the replay text of --mix-prose (see mixProse)" },
  neftuneAlpha: refusedWhen((c) => c.neftuneAlpha > 0, "the run adds NEFTune noise to the input embeddings (--neftune-alpha), which the exported job would not: export a run trained with --neftune-alpha 0", "off: no embedding noise"),
  out: { outside: "where the project puts run folders" },
  gradAccum: setting("grad_accumulation_steps", (c) => c.gradAccum, "batches summed into one update (mlx-lm 0.24 and later)"),
  gradCheckpoint: setting("grad_checkpoint", (c) => c.gradCheckpoint, "recompute layers in the backward pass"),
  lora: {
    settings: (c) => [
      { name: "fine_tune_type", value: c.lora ? "lora" : "full", why: c.lora ? "the run trains a LoRA adapter" : "the run trains every weight" },
      ...(c.lora ? [
        { name: "num_layers", value: -1, why: "every layer, as the run" },
        { name: "resume_adapter_file", value: MLX_LM_FILES.startAdapter, why: "the run's adapter at step 0 (A as the run drew it from its seed, B zero): trained from there, not from another random A" },
      ] : []),
    ],
  },
  loraRank: {
    settings: (c) => (c.lora ? [{
      name: "lora_parameters",
      value: { rank: c.loraRank, scale: c.loraAlpha / c.loraRank, dropout: c.loraDropout, keys: parseTargets(c.loraTargets).map((t) => `${LINEAR_MODULES[t][0] === "selfAttn" ? "self_attn" : "mlp"}.${t}`) },
      why: "mlx-lm adds scale·(dropout(x)·lora_a)·lora_b (mlx_lm/tuner/lora.py LoRALinear), the project (alpha/r)·B·A·x: scale = alpha / r" + (c.loraDropout > 0 ? "; dropout draws other masks than the run's" : ""),
    }] : []),
    outsideWhenUnset: "no adapter: full fine-tuning",
  },
  loraAlpha: { outside: "in lora_parameters (scale = alpha / r)" },
  loraDropout: { outside: "in lora_parameters (dropout)" },
  loraTargets: { outside: "in lora_parameters (keys)" },
  loraTokens: refusedWhen((c) => c.lora && c.loraTokens !== "none", "the run trains embedding rows of the chat tokens with its adapter (--lora-tokens), which mlx-lm's LoRA cannot (it adapts linear layers, or a whole embedding in low rank): export --format trl (PEFT's trainable_token_indices), or train with --lora-tokens none for mlx-lm", "none: no embedding rows train, as the run"),
  quantize: refusedWhen((c) => c.quantize > 0, "the run's base is quantized in memory (QLoRA: the embedding and the decoder layers MLX can quantize); mlx-lm's QLoRA trains on a folder mlx_lm.convert quantized, which quantizes other layers (an untied head too): export the run with --quantize 0 (the same adapter on a float32 base)", "0: the base in float32, as the run"),
  quantizeGroupSize: { outside: "see quantize" },
} satisfies MappingTable;

/** Keys that are records of the run, not mlx_lm.lora options: written as comments. */
const RECORD_ONLY = new Set(["patience", "grad_clip", "weight_decay", "keep", "group_by_length"]);

/** mlx-lm.yaml: one entry per setting with its reason; the optimizer and fixed entries after. */
export function mlxLmConfig(cfg: RunConfig, source: string): string {
  const { settings } = mapSettings(cfg, MLX_LM_TABLE, "mlx-lm");
  const opt = defaultOptimizerConfig();
  const lines = [
    `# mlx_lm.lora config for this project's SFT job (generated by bun scripts/export.ts --format mlx-lm`,
    `# from ${source}). Run in this folder: mlx_lm.lora --config ${MLX_LM_FILES.config}`,
    "# Lines marked DIFFERS train something other than the project's run; see README.md.",
    "train: true",
    "val_batches: -1 # the whole validation set",
    `save_every: ${cfg.steps}`,
  ];
  for (const s of settings) lines.push(...yamlEntry(s));
  lines.push(
    "optimizer: adamw",
    "optimizer_config:",
    "  adamw:",
    `    betas: [${yamlLiteral(opt.beta1)}, ${yamlLiteral(opt.beta2)}]`,
    `    eps: ${yamlLiteral(opt.eps)}`,
    `    weight_decay: ${yamlLiteral(cfg.weightDecay)}`,
    "    bias_correction: true # the project's AdamW corrects both moments; MLX's default does not",
    "",
  );
  return lines.join("\n");
}

function yamlEntry(s: Setting): string[] {
  if (RECORD_ONLY.has(s.name)) return [`# ${s.name}: ${yamlLiteral(s.value)} # ${s.why}`];
  if (s.value && typeof s.value === "object" && !Array.isArray(s.value)) {
    return [`${s.name}: # ${s.why}`, ...Object.entries(s.value).map(([k, v]) => `  ${k}: ${yamlLiteral(v)}`)];
  }
  return [`${s.name}: ${yamlLiteral(s.value)} # ${s.why}`];
}

/** Write the mlx-lm export of `job` into the new folder `out`. */
export function writeMlxLmExport(job: ExportJob, out: string, source: string): string {
  const files: Record<string, string> = {
    [MLX_LM_FILES.train]: messagesJsonl(job.train),
    [MLX_LM_FILES.valid]: messagesJsonl(job.eval),
    [MLX_LM_FILES.config]: mlxLmConfig(job.cfg, source),
    "README.md": mlxLmReadme(job, source),
    "export.json": JSON.stringify(manifest("mlx-lm", job, { files: MLX_LM_FILES, start: "copy" }), null, 2) + "\n",
  };
  return writeExportFolder(out, files, (dir) => {
    writeStartCheckpoint(join(dir, MLX_LM_FILES.start), job);
    if (job.cfg.lora) writeStartAdapter(join(dir, MLX_LM_FILES.startAdapter), job);
  });
}

/** A LoRA run's adapter as the run started it (the same seed draws the same A; B zero), in mlx-lm's
 * names and layout (`<module>.lora_a` [in, r], `<module>.lora_b` [r, out]: A and B transposed), for
 * resume_adapter_file. Call after writeStartCheckpoint: the job's model is adapted in place. */
function writeStartAdapter(path: string, job: ExportJob): void {
  const { inputs, cfg } = job;
  adaptModel(inputs.model, inputs.tokenizer, inputs.addedTokens, sftPart(cfg));
  const arrays: Record<string, mx.array> = {};
  for (const [name, layer] of loraLayers(inputs.model)) {
    arrays[`${name}.lora_a`] = layer.loraA.T;
    arrays[`${name}.lora_b`] = layer.loraB.T;
  }
  saveArrays(path, arrays);
}

function mlxLmReadme(job: ExportJob, source: string): string {
  const { cfg } = job;
  const multiTurn = job.train.filter((c) => c.length > 2).length;
  const lastTurnTargets = countTargets(job.trainExamples.map(lastTurnOnly));
  return `# ${cfg.name}: the SFT job in mlx-lm

Exported by \`bun scripts/export.ts --format mlx-lm\` from ${source}: \`data/train.jsonl\` and
\`data/valid.jsonl\` (${job.train.length} and ${job.eval.length} conversations, mlx-lm's chat format), \`start/\` (the
starting checkpoint, a copy of the base as the run starts from it) and \`mlx-lm.yaml\`. On a Mac with a
recent mlx-lm (\`pip install mlx-lm\`), in this folder:

    mlx_lm.lora --config mlx-lm.yaml

mlx-lm trains data-parallel over \`mx.distributed\` when started by \`mlx.launch\` (the batch size must
divide by the number of processes); this project's MLX 0.13 binding has no \`mx.distributed\`.

## Not the same objective on multi-turn data

mlx-lm's \`--mask-prompt\` (\`mask_prompt: true\`) supervises only the **last** assistant turn: in
\`mlx_lm/tuner/datasets.py\`, \`ChatDataset.process\` renders the conversation and sets the loss offset to the
length of everything before the last message (\`apply_chat_template(messages[:-1], add_generation_prompt=True)\`);
\`mlx_lm/tuner/trainer.py\` \`default_loss\` then masks every target before that offset. The project
supervises every assistant turn. ${cfg.maskMode === "assistant"
    ? `Here ${multiTurn} of ${job.train.length} training conversations have more than one exchange: mlx-lm trains on ${lastTurnTargets} of the project's ${countTargets(job.trainExamples)} supervised targets.`
    : `This run's mask is "all", so the export leaves \`mask_prompt\` off: mlx-lm trains on every token, as the run.`} Without
\`mask_prompt\` mlx-lm trains on every token, user turns included (the project's mask "all").

Also: \`default_loss\` counts targets up to and including each row's length, so every row is also trained to
predict one padding id after its \`<|end|>\`; mlx-lm draws its own batch order (sorted by length, batches
shuffled with numpy, the last partial batch dropped); its cosine runs one step ahead of the project's with --warmup 1; it
has no gradient clipping and no early stopping.

## The settings, one to one

${mappingTableMarkdown(cfg, MLX_LM_TABLE, "mlx-lm.yaml", (v) => (v && typeof v === "object" && !Array.isArray(v) ? JSON.stringify(v) : yamlLiteral(v)))}
`;
}

/** A row's mask with only its last assistant turn supervised (what mlx-lm's mask_prompt trains). */
export function lastTurnOnly(ex: { ids: number[]; mask: number[] }): { ids: number[]; mask: number[] } {
  const mask = ex.mask.slice();
  let end = mask.length - 1; // the last supervised run is the last assistant turn (content + <|end|>)
  while (end >= 0 && mask[end] === 0) end--;
  let start = end;
  while (start > 0 && mask[start - 1] === 1) start--;
  return { ids: ex.ids, mask: mask.map((m, i) => (i >= start && i <= end ? m : 0)) };
}
