// The memory a full fine-tuning step needs (lib/train/footprint.ts), checked against steps measured
// in a process of their own, and the refusal before a run that cannot fit (lib/sft/memory-check.ts).
//   bun test test/memory-check.test.ts
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { configFromHF } from "../lib/model/config.ts";
import { estimateStepMemory } from "../lib/train/footprint.ts";
import { checkStepMemory, largestStep } from "../lib/sft/memory-check.ts";
import { usageError } from "./helpers/errors.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

/** Qwen3-0.6B-Base's config.json, as its model card has it (transformers 5 spelling). */
const QWEN3_06B = {
  model_type: "qwen3", vocab_size: 151936, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28,
  num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
  rope_parameters: { rope_theta: 1e6, rope_type: "default" }, tie_word_embeddings: true, use_sliding_window: false,
};
const qwen3 = configFromHF(QWEN3_06B);
const MB = 2 ** 20;

describe("the estimate", () => {
  test("Qwen3-0.6B: 596M parameters; float32 weights, two moments, the gradient sums, an update in place", () => {
    const e = estimateStepMemory(qwen3, { rows: 4, seqLen: 128 });
    expect(e.parameters).toBe(596_049_920);
    expect([e.weightsMB, e.momentsMB].map((x) => x * MB / e.parameters)).toEqual([4, 8]);
    const embedding = 4 * 151936 * 1024; // bytes
    expect(e.gradientsMB * MB).toBe(4 * e.parameters + 2 * embedding); // the sums, and both shards' embedding gradients
    expect(e.updateMB * MB).toBe(embedding); // weights and moments overwritten in place: one temporary
    expect(e.activationsMB).toBeGreaterThan(e.updateMB); // at this batch the activations are the peak
    expect(e.totalMB).toBeCloseTo(e.weightsMB + e.momentsMB + e.gradientsMB + e.activationsMB, 6);
    // measured on the 0.6B-shaped checkpoint at 4 × 128: peak 12,958 MB (README, Performance)
    expect(e.totalMB).toBeGreaterThan(12_958);
    expect(e.totalMB).toBeLessThan(1.25 * 12_958);
  });

  test("activations grow with the rows; the rest does not; the larger of update and activations counts", () => {
    const at = (rows: number) => estimateStepMemory(qwen3, { rows, seqLen: 256 });
    expect(at(8).activationsMB).toBeCloseTo(2 * at(4).activationsMB, 6);
    expect(at(8).updateMB).toBe(at(4).updateMB);
    const big = at(32);
    expect(big.activationsMB).toBeGreaterThan(big.updateMB);
    expect(big.totalMB).toBeCloseTo(big.weightsMB + big.momentsMB + big.gradientsMB + big.activationsMB, 6);
  });

  // Measured: two steps in a fresh process (test/helpers/step-peak.ts), peak resident memory beyond
  // what the process held before them. One shape where the update is the peak (a large embedding,
  // Qwen3's q/k norms), one where the activations are. Over 9 shapes the estimate was 0.91–1.13× the
  // measured peak; the bounds leave room for allocator noise, not for a missing term (the update
  // alone is ~half of the first shape's figure, the activations ~90% of the second's).
  test.each([
    ["update-bound: a 64k × 256 embedding, qwen3, 1 × 16", 1, 16, { model_type: "qwen3", vocab_size: 64000, hidden_size: 256, intermediate_size: 768, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 128 }],
    ["activation-bound: 8k × 256, 4 layers, 16 × 256", 16, 256, { model_type: "llama", vocab_size: 8192, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2 }],
  ] as const)("within 0.8–1.25× of a measured step: %s", (_name, rows, seqLen, config) => {
    const proc = Bun.spawnSync(["bun", join(import.meta.dir, "helpers/step-peak.ts"), JSON.stringify({ rows, seqLen, config: { ...config, max_position_embeddings: 1024 } })], { stderr: "pipe" });
    expect(proc.exitCode, proc.stderr.toString()).toBe(0);
    const { growthMB, estimateMB } = JSON.parse(proc.stdout.toString());
    expect(estimateMB / growthMB).toBeGreaterThan(0.8);
    expect(estimateMB / growthMB).toBeLessThan(1.25);
  }, 60_000);
});

describe("the largest step of a run", () => {
  const ex = (n: number, supervised: number) => ({ ids: Array.from({ length: n + 1 }, (_, i) => i), mask: [0, ...Array.from({ length: n }, (_, i) => (i >= n - supervised ? 1 : 0))] });
  test.each([
    ["padded to the multiple; the most supervised conversations", [ex(40, 10), ex(70, 20), ex(20, 15)], { batchSize: 2, maxSeqLen: 256, padMultiple: 16, replayRows: 0 }, { rows: 2, seqLen: 80, supervised: 35 }],
    ["replay rows train on every position", [ex(40, 10), ex(70, 20)], { batchSize: 2, maxSeqLen: 256, padMultiple: 16, replayRows: 1 }, { rows: 3, seqLen: 80, supervised: 30 + 80 }],
    ["over-length rows count as cut to max-seq-len", [ex(300, 300), ex(10, 5)], { batchSize: 8, maxSeqLen: 128, padMultiple: 16, replayRows: 0 }, { rows: 2, seqLen: 128, supervised: 128 + 5 }],
  ] as const)("%s", (_name, examples, opts, shape) => {
    expect(largestStep(examples as any, opts)).toEqual(shape);
  });
});

describe("a run that cannot fit is refused before it trains", () => {
  const shape = { rows: 11, seqLen: 256, supervised: 2000 };
  const opts = { base: "models/qwen3-0.6b-base", batchSize: 8, mixProse: 0.25 };
  afterEach(() => delete process.env.SFT_MLX_MEMORY_CHECK);

  test("the message gives the estimate, its parts, what is available and what lowers it", () => {
    const message = usageError(() => checkStepMemory(qwen3, shape, { ...opts, availableMB: 18 * 1024 }));
    expect(message).toMatch(/^full fine-tuning of --base models\/qwen3-0\.6b-base \(596M parameters\) needs about \d+\.\d GB at its largest step \(11 rows × 256 positions\)/);
    for (const part of ["float32 weights 2.2 GB", "AdamW moments 4.4 GB", "gradients 3.4 GB", "18.0 GB available"]) expect(message).toContain(part);
    expect(message).toContain("then the larger of the update's temporaries (0.6 GB) and the activations (");
    expect(message).toMatch(/Lower it with --batch-size 4 \(\d+\.\d GB\), --mix-prose 0 \(no replay rows\), --max-seq-len below 256; at least 10\.6 GB is the weights, gradients, optimizer state and update, whatever the batch\./); // 2.2 + 4.4 + 3.4 + 0.6 (GiB, rounded)
    expect(message).toContain("Where that does not fit, train adapters on the frozen base instead (--lora; --lora --quantize 4 --grad-checkpoint for the least memory)");
    expect(message).toContain("SFT_MLX_MEMORY_CHECK=0 runs anyway");
  });

  test("when the update is the peak, the message says the batch does not lower it", () => {
    const small = { rows: 1, seqLen: 64, supervised: 64 }; // the activations (~0.3 GB) are below the update's temporary (0.6 GB)
    const message = usageError(() => checkStepMemory(qwen3, small, { ...opts, batchSize: 1, availableMB: 8 * 1024 }));
    expect(message).toContain("needs about 10.6 GB at its largest step (1 rows × 64 positions)");
    expect(message).toContain("A smaller batch does not lower it: the weights, gradients, optimizer state and update are 10.6 GB whatever the batch. Where that does not fit");
    expect(message).not.toContain("--batch-size");
  });

  test("a step that fits passes and returns the estimate; SFT_MLX_MEMORY_CHECK=0 skips the check", () => {
    expect(checkStepMemory(qwen3, shape, { ...opts, availableMB: 64 * 1024 }).parameters).toBe(596_049_920);
    const { totalMB, weightsMB } = estimateStepMemory(qwen3, shape);
    expect(() => checkStepMemory(qwen3, shape, { ...opts, availableMB: totalMB - weightsMB + 512 })).toThrow(/1\.0 GB is kept for everything else/); // fits only without the headroom
    process.env.SFT_MLX_MEMORY_CHECK = "0";
    expect(checkStepMemory(qwen3, shape, { ...opts, availableMB: 1024 }).parameters).toBe(596_049_920);
  });
});
