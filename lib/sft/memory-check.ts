// Before a run trains: will its largest step fit in the memory this machine has free? Full
// fine-tuning holds about 9 float32 copies of the weights during a step (lib/train/footprint.ts):
// 21 GB for a 0.6B base, on a 24 GiB machine. A run that cannot fit is refused here, with the
// estimate's parts and the settings that lower it, instead of being killed by the kernel part-way.
// LoRA runs (--lora) hold no full gradients or moments and are not checked here.
// `SFT_MLX_MEMORY_CHECK=0` skips the check (an estimate, not a measurement).
import { freemem, totalmem } from "node:os";
import type { LlamaConfig } from "../model/config.ts";
import type { SFTExample } from "../format/types.ts";
import { estimateStepMemory, type StepMemoryEstimate } from "../train/footprint.ts";
import { UsageError } from "../util/cli.ts";

export interface StepShape {
  rows: number; // conversations plus replay windows
  seqLen: number; // positions, padded
  supervised: number; // positions through the output head
}

/** The largest step a run takes: `batchSize` of its longest conversations and the replay windows,
 * padded to the longest (at most `maxSeqLen`) rounded up to `padMultiple`. */
export function largestStep(examples: SFTExample[], { batchSize, maxSeqLen, padMultiple, replayRows }: { batchSize: number; maxSeqLen: number; padMultiple: number; replayRows: number }): StepShape {
  const targets = examples.map((ex) => Math.min(ex.ids.length - 1, maxSeqLen));
  const longest = Math.max(1, ...targets);
  const seqLen = Math.ceil(longest / padMultiple) * padMultiple;
  const mostSupervised = examples.map((ex) => ex.mask.slice(1, maxSeqLen + 1).reduce((a, b) => a + b, 0)).sort((a, b) => b - a);
  const supervised = mostSupervised.slice(0, batchSize).reduce((a, b) => a + b, 0) + replayRows * seqLen; // replay rows train on every target
  return { rows: Math.min(batchSize, examples.length) + replayRows, seqLen, supervised };
}

/** Memory free for this process to grow into, MB: MemAvailable on Linux; on a Mac, whose unified
 * memory the OS compresses and pages, the machine's total. */
export function availableMemoryMB(): number {
  return (process.platform === "linux" ? freemem() : totalmem()) / 2 ** 20;
}

const gb = (mb: number) => `${(mb / 1024).toFixed(1)} GB`;
// Left for the kernel, the page cache and the process's own arrays beyond the estimate: a run that
// needs every last MB is killed by the first other process that wants one.
const HEADROOM_MB = 1024;

/** Throw a UsageError when the largest step would not fit in `availableMB` beside the weights
 * already loaded; return the estimate otherwise. */
export function checkStepMemory(
  config: LlamaConfig,
  shape: StepShape,
  { base, batchSize, mixProse, availableMB = availableMemoryMB() }: { base: string; batchSize: number; mixProse: number; availableMB?: number },
): StepMemoryEstimate {
  const est = estimateStepMemory(config, shape);
  if (process.env.SFT_MLX_MEMORY_CHECK === "0" || est.totalMB - est.weightsMB + HEADROOM_MB <= availableMB) return est;
  const floor = estimateStepMemory(config, { rows: 1, seqLen: 1 }).totalMB; // no batch to speak of
  // The same step with fewer rows: the activations scale with them, and lower the peak only while
  // they are larger than the update.
  const at = (rows: number) => estimateStepMemory(config, { rows, seqLen: shape.seqLen, supervised: (shape.supervised * rows) / shape.rows }).totalMB;
  const lower = est.activationsMB > est.updateMB
    ? `Lower it with ${[
      batchSize > 1 ? `--batch-size ${Math.ceil(batchSize / 2)} (${gb(at(shape.rows - Math.floor(batchSize / 2)))})` : "",
      mixProse > 0 ? "--mix-prose 0 (no replay rows)" : "",
      `--max-seq-len below ${shape.seqLen}`,
    ].filter(Boolean).join(", ")}; at least ${gb(floor)} is the weights, gradients, optimizer state and update, whatever the batch.`
    : `A smaller batch does not lower it: the weights, gradients, optimizer state and update are ${gb(floor)} whatever the batch.`;
  throw new UsageError(
    `full fine-tuning of --base ${base} (${(est.parameters / 1e6).toFixed(0)}M parameters) needs about ${gb(est.totalMB)} at its largest step ` +
      `(${shape.rows} rows × ${shape.seqLen} positions): float32 weights ${gb(est.weightsMB)}, AdamW moments ${gb(est.momentsMB)}, ` +
      `gradients ${gb(est.gradientsMB)}, then the larger of the update's temporaries (${gb(est.updateMB)}) and the activations (${gb(est.activationsMB)}); ` +
      `this machine has ${gb(availableMB)} available besides the weights already loaded, and ${gb(HEADROOM_MB)} is kept for everything else. ` +
      `${lower} Where that does not fit, train adapters on the frozen base instead (--lora; --lora --quantize 4 --grad-checkpoint for the least memory), or use a smaller base. ` +
      "SFT_MLX_MEMORY_CHECK=0 runs anyway (the figure is an estimate)",
  );
}
