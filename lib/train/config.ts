// The SFT training configuration: a typed config and its table of options (key, flag, type,
// range, default and why, help), from which its defaults, its validation, train.ts's flags and the
// sweep's checks are derived (lib/util/options.ts). No MLX here, so scripts can parse and check
// options before the native binding loads (lib/train/trainer.ts re-exports all of it).
import type { MaskMode } from "../format/template.ts";
import { defaultsOf, describeOption, isValidOption, type OptionTable } from "../util/options.ts";
import { ALL_LINEAR, formatTargets, LINEAR_MODULES, parseTargets } from "../model/lora-config.ts";

export interface SFTConfig {
  steps: number;
  epochs: number;
  lr: number;
  warmup: number;
  minLrRatio: number;
  batchSize: number;
  maxSeqLen: number;
  padMultiple: number;
  evalEvery: number;
  patience: number;
  minDelta: number;
  gradClip: number;
  weightDecay: number;
  seed: number;
  maskMode: MaskMode;
  keep: "best" | "last";
  groupByLength: boolean;
  dropOverlength: boolean;
  truncate: boolean;
  logEvery: number;
  mixProse: number;
  neftuneAlpha: number;
  gradAccum: number;
  gradCheckpoint: boolean;
  lora: boolean;
  loraRank: number;
  loraAlpha: number;
  loraDropout: number;
  loraTargets: string;
  loraTokens: "chat" | "added" | "none";
  quantize: number;
  quantizeGroupSize: number;
}

/** The peak lr and the passes of a LoRA run that sets neither (README "LoRA and QLoRA", the sweep
 * table): on the bundled base with replay (r 8 q/v + the chat tokens' rows), every rate at the default
 * 10 passes stopped on at most 33 of 40 probe prompts; 3e-3 for 20 passes (400 steps) stopped on 37 and
 * 39 of 40 with seeds 0 and 1 (95% together), prose loss +0.3/+0.4% vs the base, its held-out loss still
 * at its best, nothing memorised; 1e-2 stopped on 39 and 35, +2.4/+2.2%, past its best held-out loss.
 * An adapter starts from zero and moves few weights: it takes a higher rate and more passes than
 * full fine-tuning. */
export const LORA_LR = 3e-3;
export const LORA_EPOCHS = 20;

const MODULE = `(?:${Object.keys(LINEAR_MODULES).join("|")})`;

/** The course's defaults for a ~6M-parameter base and a few hundred conversations. */
export const SFT_OPTIONS: OptionTable<SFTConfig> = {
  steps: {
    type: "int", positive: true, help: "optimizer steps, when --epochs is 0 (--steps sets it to 0 unless both are given, which is refused)",
    default: 500, // the course's number (--preset course); the default run counts --epochs instead
  },
  // Measured on the bundled base and data (README "Teaching the format without memorising the
  // data"): the held-out loss bottoms out after ~5 passes; by 25 passes (the course's 500 steps)
  // half the replies to unrelated prompts are training answers. 10 passes with replay keep the stop
  // rate and leave few.
  epochs: {
    type: "int", min: 0, help: `passes over the training data instead of --steps: steps = epochs × ceil(conversations / batch size); 0 = use --steps (with --lora and neither: ${LORA_EPOCHS})`,
    default: 10, // 200 steps on the bundled 154 conversations in batches of 8
  },
  lr: {
    type: "number", positive: true, help: `peak learning rate (with --lora and no --lr: ${LORA_LR})`,
    default: 3e-4, // ~0.1x the base's pretraining lr (3e-3): adapt the model, don't overwrite it
  },
  warmup: {
    type: "int", min: 0, help: "linear warmup steps",
    default: 20, // Adam's second-moment estimate is noisy for the first steps
  },
  minLrRatio: {
    type: "number", min: 0, max: 1, help: "final lr as a fraction of the peak",
    default: 0.1, // the cosine ends at 0.1x the peak
  },
  batchSize: {
    type: "int", positive: true, help: "conversations per step",
    default: 8, // ~20 steps per pass over 154 conversations
  },
  maxSeqLen: {
    type: "int", min: 2, help: "max targets per conversation, at most the base's context; longer ones are refused unless --drop-overlength or --truncate",
    default: 256, // the bundled base's context
  },
  padMultiple: {
    type: "int", positive: true, help: "round each batch's length up to a multiple of this",
    default: 16, // compiled shapes repeat instead of one per length
  },
  evalEvery: {
    type: "int", positive: true, help: "steps between held-out evaluations (also one at step 0 and one at the end)",
    default: 50, // 10 points on the default run's loss curve
  },
  // Early stopping is opt-in (--patience 3 --keep best). With a few hundred conversations the
  // held-out loss is dominated by facts a small base cannot know: it bottoms out after ~2 epochs
  // (step 50 on the bundled data) while the format is still being learned (measured on
  // models/gutenberg-base: stop rate 55% at that best step, 100% after the course's 500 steps).
  patience: {
    type: "int", min: 0, help: "evaluations without improvement before stopping early; 0 = never",
    default: 0, // never stop early
  },
  minDelta: {
    type: "number", min: 0, help: "held-out loss improvement (nats/token) that counts as better",
    default: 1e-3, // below this an evaluation is noise, not progress
  },
  gradClip: {
    type: "number", min: 0, help: "max global gradient norm; 0 = off",
    default: 1.0, // the usual guard against a rare huge step
  },
  // No decay: a few hundred steps on a few hundred examples. Decoupled decay pulls every matrix
  // toward zero, i.e. away from the pretrained base, which is what SFT should stay close to
  // (mlx-lm's fine-tuning uses plain Adam too).
  weightDecay: {
    type: "number", min: 0, help: "AdamW decoupled weight decay",
    default: 0,
  },
  seed: {
    type: "int", min: 0, help: "batch order and probe sampling seed",
    default: 0, // the same seed gives bit-identical losses
  },
  maskMode: {
    type: "choice", choices: ["assistant", "all"], flag: "mask", help: "loss mask: assistant (replies and their <|end|>) or all (every non-padding token)",
    default: "assistant", // "all" is the ablation
  },
  keep: {
    type: "choice", choices: ["best", "last"], help: "weights the run ends with (checkpoint and probes): best (lowest held-out loss) or last (the final step)",
    default: "last", // the model training reached; "best" goes with --patience
  },
  groupByLength: {
    type: "bool", help: "batch conversations of similar length",
    default: true, // less padding
  },
  dropOverlength: {
    type: "bool", help: "drop conversations longer than --max-seq-len (counted) instead of refusing the data",
    default: false, // refuse: a silently smaller data set is a surprise
  },
  truncate: {
    type: "bool", help: "cut conversations longer than --max-seq-len from the end, as the course's pad_and_collate does (counted; warns naming the rows whose cut removes an <|end|>) instead of refusing the data",
    default: false, // refuse: a cut can remove the <|end|> a row was meant to teach
  },
  logEvery: {
    type: "int", positive: true, help: "steps per report line",
    default: 10, // one metrics.jsonl row per window
  },
  mixProse: {
    type: "number", min: 0, max: 0.75, help: "share of each batch's rows that are plain-text windows of the base's pretraining text, trained on every token (pretraining replay; --prose-data); 0 = off",
    default: 0.25, // 3 prose rows with every 8 conversations: prose loss within +4% of the base's (measured), the format still learned
  },
  neftuneAlpha: {
    type: "number", min: 0, help: "NEFTune: uniform noise of half-width alpha/sqrt(length x width) on the input embeddings while training; 0 = off",
    default: 0, // off: alpha 5 measured no better here (more memorised replies at 25 passes, fewer stops at 8)
  },
  gradAccum: {
    type: "int", positive: true, help: "batches of --batch-size conversations summed into one optimizer step",
    default: 1, // the step sees batchSize × gradAccum conversations; the same gradient as one batch of them
  },
  gradCheckpoint: {
    type: "bool", help: "recompute each layer's activations in the backward pass (less memory, one more forward pass)",
    default: false, // off: the compiled step is faster while it fits
  },
  // LoRA, with PEFT's settings (r, lora_alpha, lora_dropout, target_modules): the course's defaults
  lora: {
    type: "bool", help: "train a LoRA adapter instead of every weight; the run writes adapter/ (PEFT's layout)",
    default: false,
  },
  loraRank: {
    type: "int", positive: true, help: "LoRA rank r",
    default: 8, // the course's
  },
  loraAlpha: {
    type: "number", positive: true, help: "LoRA alpha: the update is scaled by alpha / r",
    default: 8, // the course's: scale 1 at r 8
  },
  loraDropout: {
    type: "number", min: 0, max: 0.99, help: "dropout on the adapter's input while training",
    default: 0, // PEFT's and mlx-lm's default
  },
  loraTargets: {
    type: "string", help: `linear modules to adapt in every layer: ${ALL_LINEAR}, or some of ${Object.keys(LINEAR_MODULES).join(",")}`,
    pattern: { re: new RegExp(`^(?:${ALL_LINEAR}|${MODULE}(?:\\s*,\\s*${MODULE})*)$`), says: `${ALL_LINEAR} or comma-separated module names such as q_proj,v_proj` },
    default: "q_proj,v_proj", // the course's
  },
  // A base with the chat tokens may never have seen them (the bundled one's card says so): their rows
  // are its random init. Training them is 4 rows: on the bundled base at lr 1e-3 for 500 steps the stop
  // rate went 85% → 88%, held-out loss 4.134 → 4.073.
  loraTokens: {
    type: "choice", choices: ["chat", "added", "none"], help: "embedding (and untied head) rows that train with the adapter: chat (the chat tokens'), added (only those --add-chat-tokens added), none",
    default: "chat",
  },
  quantize: {
    type: "int", min: 0, max: 8, help: "QLoRA: 4 or 8 bits for the frozen base's weights in memory (needs --lora); 0 = off",
    default: 0, // float32
  },
  quantizeGroupSize: {
    type: "int", min: 32, max: 128, help: "inputs per quantization scale and bias: 32, 64 or 128",
    default: 64, // MLX's default
  },
};

/** Named settings laid over the defaults (under a config file and flags): `--preset course` is the
 * course's own recipe, kept one flag away from the measured defaults. */
export const SFT_PRESETS: Record<string, Partial<SFTConfig>> = {
  course: { steps: 500, epochs: 0, lr: 3e-4, mixProse: 0, neftuneAlpha: 0 }, // 500 steps at 3e-4, no replay, no noise
};

/** Optimizer steps for `epochs` passes over `rows` conversations: each pass is ceil(rows / batchSize)
 * batches (the last one smaller), so the steps end exactly at a pass boundary; with `gradAccum`
 * batches per step, at the first step that reaches it. */
export function stepsForEpochs(epochs: number, rows: number, batchSize: number, gradAccum = 1): number {
  return Math.ceil((epochs * Math.ceil(rows / batchSize)) / gradAccum);
}

export function defaultSFTConfig(): SFTConfig {
  return defaultsOf(SFT_OPTIONS);
}

export class SFTConfigError extends Error {
  override name = "SFTConfigError";
}

/** Defaults overlaid with `partial`, validated: an unknown key or a bad value throws an
 * SFTConfigError naming the key and the value. */
export function resolveSFTConfig(partial: Partial<SFTConfig>): SFTConfig {
  const cfg: Record<string, unknown> = { ...defaultSFTConfig() };
  // Steps given without epochs: the steps count (the default counts epochs). Both given: epochs win
  // (a config.json records both, its steps derived from its epochs).
  if (partial.steps !== undefined && partial.epochs === undefined) cfg.epochs = 0;
  for (const [key, value] of Object.entries(partial)) {
    const spec = SFT_OPTIONS[key as keyof SFTConfig];
    if (!spec) throw new SFTConfigError(`unknown SFT config key \`${key}\`; known keys: ${Object.keys(SFT_OPTIONS).join(", ")}`);
    if (value === undefined) continue;
    if (!isValidOption(spec, value)) throw new SFTConfigError(`${key} must be ${describeOption(spec)}, got \`${JSON.stringify(value)}\``);
    cfg[key] = value;
  }
  if (cfg.dropOverlength && cfg.truncate) throw new SFTConfigError("dropOverlength and truncate both say what to do with over-length examples: choose one (--drop-overlength or --truncate)");
  // LoRA's own defaults where the run sets none (written resolved into config.json): a --steps or
  // --epochs given, or a preset's, is kept
  if (cfg.lora && partial.lr === undefined) cfg.lr = LORA_LR;
  if (cfg.lora && partial.epochs === undefined && partial.steps === undefined) cfg.epochs = LORA_EPOCHS;
  // Rules a table entry cannot say: sets of numbers, and options that need each other.
  if (![0, 4, 8].includes(cfg.quantize as number)) throw new SFTConfigError(`quantize must be 0, 4 or 8 (bits; 0 = off), got \`${cfg.quantize}\``);
  if (![32, 64, 128].includes(cfg.quantizeGroupSize as number)) throw new SFTConfigError(`quantizeGroupSize must be 32, 64 or 128, got \`${cfg.quantizeGroupSize}\``);
  if (cfg.quantize !== 0 && !cfg.lora) throw new SFTConfigError(`quantize ${cfg.quantize} needs lora: a quantized base is frozen, and only a LoRA adapter trains on top of it (add --lora)`);
  cfg.loraTargets = formatTargets(parseTargets(cfg.loraTargets as string)); // one spelling: all-linear, or layer order
  return cfg as unknown as SFTConfig;
}
