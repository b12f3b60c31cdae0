// The SFT training configuration: a typed config, its defaults and its validation. No MLX here, so
// scripts can parse and check options before the native binding loads (lib/train/trainer.ts
// re-exports all of it).
import type { MaskMode } from "../format/template.ts";

export interface SFTConfig {
  steps: number;
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
  logEvery: number;
}

/** The course's defaults for a ~6M-parameter base and a few hundred conversations. */
export function defaultSFTConfig(): SFTConfig {
  return {
    steps: 500, // optimizer steps (the course's number); early stopping may end sooner
    lr: 3e-4, // peak; ~0.1x the base's pretraining lr (3e-3): adapt the model, don't overwrite it
    warmup: 20, // steps of linear warmup: Adam's second-moment estimate is noisy for the first steps
    minLrRatio: 0.1, // the cosine ends at 0.1x the peak
    batchSize: 8, // conversations per step: ~20 steps per pass over 154 conversations
    maxSeqLen: 256, // targets per row: the base's context; longer examples are refused, never cut
    padMultiple: 16, // round the batch length up to a multiple of this so compiled shapes repeat
    evalEvery: 50, // steps between held-out evaluations (also one at step 0 and one at the end)
    // Early stopping is opt-in (--patience 3 --keep best). With a few hundred conversations the
    // held-out loss is dominated by facts a small base cannot know: it bottoms out after ~2 epochs
    // (step 50 on the bundled data) while the format is still being learned (measured on
    // models/gutenberg-base: stop rate 55% at that best step, 100% after the course's 500 steps).
    patience: 0, // evaluations without improvement before stopping early; 0 = never stop early
    minDelta: 1e-3, // nats/token an evaluation must beat the best by to count as an improvement
    gradClip: 1.0, // max global gradient norm
    // No decay: a few hundred steps on a few hundred examples. Decoupled decay pulls every matrix
    // toward zero, i.e. away from the pretrained base, which is what SFT should stay close to
    // (mlx-lm's fine-tuning uses plain Adam too).
    weightDecay: 0,
    seed: 0, // batch order; the same seed gives bit-identical losses
    keep: "last", // which weights the run ends with (checkpoint and probes): "last" step, or "best" held-out loss
    maskMode: "assistant", // supervise assistant replies and their <|end|>; "all" is the ablation
    groupByLength: true, // batch conversations of similar length: less padding
    dropOverlength: false, // refuse examples longer than maxSeqLen (true: drop and count them)
    logEvery: 10, // steps per report window
  };
}

export class SFTConfigError extends Error {
  override name = "SFTConfigError";
}

type Rule = { kind: "int" | "number" | "bool" | "mask" | "keep"; min?: number; max?: number; positive?: boolean };
const RULES: Record<keyof SFTConfig, Rule> = {
  steps: { kind: "int", positive: true },
  lr: { kind: "number", positive: true },
  warmup: { kind: "int", min: 0 },
  minLrRatio: { kind: "number", min: 0, max: 1 },
  batchSize: { kind: "int", positive: true },
  maxSeqLen: { kind: "int", min: 2 },
  padMultiple: { kind: "int", positive: true },
  evalEvery: { kind: "int", positive: true },
  patience: { kind: "int", min: 0 },
  minDelta: { kind: "number", min: 0 },
  gradClip: { kind: "number", min: 0 },
  weightDecay: { kind: "number", min: 0 },
  seed: { kind: "int", min: 0 },
  maskMode: { kind: "mask" },
  keep: { kind: "keep" },
  groupByLength: { kind: "bool" },
  dropOverlength: { kind: "bool" },
  logEvery: { kind: "int", positive: true },
};

/** Defaults overlaid with `partial`, validated: an unknown key or a bad value throws an
 * SFTConfigError naming the key and the value. */
export function resolveSFTConfig(partial: Partial<SFTConfig>): SFTConfig {
  const cfg: Record<string, unknown> = { ...defaultSFTConfig() };
  for (const [key, value] of Object.entries(partial)) {
    const rule = RULES[key as keyof SFTConfig];
    if (!rule) throw new SFTConfigError(`unknown SFT config key \`${key}\`; known keys: ${Object.keys(RULES).join(", ")}`);
    if (value === undefined) continue;
    const bad = (want: string) => new SFTConfigError(`${key} must be ${want}, got \`${JSON.stringify(value)}\``);
    if (rule.kind === "mask") {
      if (value !== "assistant" && value !== "all") throw bad(`"assistant" or "all"`);
    } else if (rule.kind === "keep") {
      if (value !== "best" && value !== "last") throw bad(`"best" or "last"`);
    } else if (rule.kind === "bool") {
      if (typeof value !== "boolean") throw bad("true or false");
    } else {
      const want = [rule.kind === "int" ? "an integer" : "a number", rule.positive ? "> 0" : "",
        rule.min !== undefined ? `>= ${rule.min}` : "", rule.max !== undefined ? `<= ${rule.max}` : ""].filter(Boolean).join(" ");
      const n = value as number;
      if (typeof value !== "number" || !Number.isFinite(n) || (rule.kind === "int" && !Number.isInteger(n)) ||
        (rule.positive && !(n > 0)) || (rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max)) {
        throw bad(want);
      }
    }
    cfg[key] = value;
  }
  return cfg as unknown as SFTConfig;
}
