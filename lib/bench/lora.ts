// The LoRA benchmark (`bun scripts/bench.ts --case lora`): one training step of a base with
// Qwen3-0.6B-Base's shapes, for full fine-tuning, LoRA r 8 on q/v, LoRA on every linear layer and
// QLoRA (4-bit base, LoRA q/v), each in a process of its own so that its peak memory is its own, and
// the PyTorch + PEFT peer (scripts/peer-lora.py) on the same shapes after each, interleaved.
import { core as mx } from "@frost-beta/mlx";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { configFromHF } from "../model/config.ts";
import { LlamaModel } from "../model/llama.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { applyLoRA } from "../model/lora.ts";
import { parseTargets } from "../model/lora-config.ts";
import { quantizeModel } from "../model/quantize.ts";
import { TrainStep } from "../train/step.ts";
import { peakRssMB, releaseMemory, resetPeakRss, rssMB } from "../mlx/memory.ts";
import { returnFreeMemory } from "../mlx/allocator.ts";
import { PROJECT_ROOT } from "../util/paths.ts";

/** Qwen3-0.6B-Base's shapes as a Llama config (no q/k norms: a rounding error of its parameters). */
export const QWEN3_06B_SHAPE = {
  model_type: "llama", vocab_size: 151936, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28,
  num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, max_position_embeddings: 32768,
  rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true,
};
export const LORA_BATCH = 4; // sequences
export const LORA_SEQ = 128; // tokens

export const LORA_VARIANTS = {
  full: { lora: null, quantize: 0 },
  "lora-qv": { lora: "q_proj,v_proj", quantize: 0 },
  "lora-all": { lora: "all-linear", quantize: 0 },
  qlora4: { lora: "q_proj,v_proj", quantize: 4 },
} as const;
export type LoRAVariant = keyof typeof LORA_VARIANTS;

export const PEER_LORA_SCRIPT = resolve(PROJECT_ROOT, "scripts/peer-lora.py");

export interface LoRAStepResult {
  variant: LoRAVariant;
  gradCheckpoint: boolean;
  trainable: number;
  tokensPerSec: number; // the median step's
  stepMs: number;
  stepsMs: number[];
  stepPeakRssMB: number; // peak resident set over the timed steps (free pages returned and VmHWM reset after set-up)
  peakRssMB: number; // the whole process's, set-up included
  rssBeforeStepMB: number;
}

/**
 * Build the model (random init with `QWEN3_06B_SHAPE`, or `base` from disk), quantize and adapt it as
 * `variant` says, then time `steps` optimizer steps after one warm-up step, on 4 × 128 random ids
 * with every position supervised, the head and loss at supervised positions as the SFT trainer runs
 * them.
 */
export async function benchLoRAStep(variant: LoRAVariant, { base, steps = 2, gradCheckpoint = false }: { base?: string; steps?: number; gradCheckpoint?: boolean }): Promise<LoRAStepResult> {
  const v = LORA_VARIANTS[variant];
  let model: LlamaModel;
  if (base) {
    if (!existsSync(base)) throw new Error(`--base ${base}: no such checkpoint folder`);
    model = (await loadCheckpoint(base, { lazy: v.quantize > 0 })).model; // quantized as it is read, as a QLoRA run does
  } else {
    mx.random.seed(0);
    model = new LlamaModel(configFromHF(QWEN3_06B_SHAPE)); // lazy: quantizing first never holds all of it in float32
  }
  if (v.quantize) await quantizeModel(model, { bits: v.quantize, groupSize: 64 });
  if (v.lora) applyLoRA(model, { rank: 8, alpha: 8, dropout: 0, targets: parseTargets(v.lora) });
  mx.eval(model.parameters());
  await releaseMemory();
  const step = new TrainStep(model, undefined, { sparseHead: true, recompute: gradCheckpoint });
  const trainable = step.flat.read().reduce((n, a) => n + a.size, 0);
  mx.random.seed(1);
  const data = mx.random.randint(0, QWEN3_06B_SHAPE.vocab_size, [LORA_BATCH, LORA_SEQ + 1]).astype(mx.int32);
  const batch = { inputs: data.index(mx.Slice(), mx.Slice(0, LORA_SEQ)), targets: data.index(mx.Slice(), mx.Slice(1)), mask: mx.ones([LORA_BATCH, LORA_SEQ]) };
  mx.eval(batch.inputs, batch.targets, batch.mask);
  await step.step(batch, 1e-4); // warm-up: compiles, optimizer state, allocator
  for (let i = 0; i < 3; i++) await releaseMemory(); // a collection may leave some finalizers for the next
  const setupPeak = peakRssMB();
  returnFreeMemory(); // what set-up freed (a float32 model before quantizing) must not count as the step's
  const rssBeforeStepMB = rssMB();
  resetPeakRss();
  const stepsMs: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    await step.step(batch, 1e-4);
    stepsMs.push(performance.now() - t);
  }
  const stepPeakRssMB = peakRssMB();
  const stepMs = [...stepsMs].sort((a, b) => a - b)[Math.floor(steps / 2)]!;
  return {
    variant, gradCheckpoint, trainable,
    tokensPerSec: (LORA_BATCH * LORA_SEQ) / (stepMs / 1000),
    stepMs, stepsMs: stepsMs.map(Math.round),
    stepPeakRssMB, peakRssMB: Math.max(setupPeak, stepPeakRssMB), rssBeforeStepMB,
  };
}
