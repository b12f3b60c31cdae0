// Measurements for the benchmark script: training-step throughput and memory, generation speed and
// memory, and the matmul peak that MFU is measured against. Numbers only: no thresholds here.
import { core as mx } from "@frost-beta/mlx";
import type { LlamaConfig } from "../model/config.ts";
import { countParameters } from "../model/config.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { TrainStep, type StepBatch } from "../train/step.ts";
import { generate, type SampleOptions } from "../generate/generate.ts";
import { peakRssMB, releaseMemory, rssMB } from "../mlx/memory.ts";
import { useBlasFor } from "../mlx/parallel.ts";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Best-of-reps fp32 matmul throughput, GFLOP/s: the peak MFU is measured against. */
export function matmulPeakGflops(n = 1024, reps = 10): number {
  useBlasFor(1); // the machine's peak: OpenBLAS's own threads
  const a = mx.random.normal([n, n]);
  const b = mx.random.normal([n, n]);
  mx.eval(a, b, mx.matmul(a, b));
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    mx.eval(mx.matmul(a, b));
    best = Math.min(best, performance.now() - t);
  }
  return (2 * n ** 3) / (best / 1000) / 1e9;
}

// The matmul shapes of a training step of the bundled base on one 8-row shard of SFT rows (~48
// positions each): projections forward, a weight gradient (transposed operand), the output head at
// supervised positions; and the 1024² square the doctor and MFU use.
const SGEMM_SHAPES: { name: string; m: number; k: number; n: number; transposeA?: boolean }[] = [
  { name: "1024x1024x1024", m: 1024, k: 1024, n: 1024 },
  { name: "x.Wq 384x256x256", m: 384, k: 256, n: 256 },
  { name: "x.Wup 384x256x688", m: 384, k: 256, n: 688 },
  { name: "x.Wdown 384x688x256", m: 384, k: 688, n: 256 },
  { name: "dWup 256x384x688 (Aᵀ)", m: 256, k: 384, n: 688, transposeA: true },
  { name: "head 128x256x4096", m: 128, k: 256, n: 4096 },
];

/** One BLAS thread's fp32 matmul speed at training shapes, in GFLOP per second of CPU time (best of
 * 3 batches of ~2 GFLOP): what the kernels do, nearly blind to other work on the machine. */
export function sgemmPerCpuSecond(): Record<string, number> {
  useBlasFor(2); // one thread per call, as while shards run side by side
  const out: Record<string, number> = {};
  for (const { name, m, k, n, transposeA } of SGEMM_SHAPES) {
    const a = transposeA ? mx.random.normal([k, m]) : mx.random.normal([m, k]);
    const b = mx.random.normal([k, n]);
    const product = () => mx.matmul(transposeA ? mx.transpose(a) : a, b);
    mx.eval(a, b, product());
    const reps = Math.max(3, Math.round(2e9 / (2 * m * k * n)));
    let best = 0;
    for (let r = 0; r < 3; r++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < reps; i++) mx.eval(product());
      const c = process.cpuUsage(c0);
      best = Math.max(best, (2 * m * k * n * reps) / ((c.user + c.system) / 1e6) / 1e9);
    }
    out[name] = best;
  }
  useBlasFor(1);
  return out;
}

/** Training FLOPs per token: 6N for the weights (forward + backward) plus attention scores and
 * values (12 · layers · T · heads · headDim), the PaLM appendix-B convention. */
export function trainFlopsPerToken(c: LlamaConfig, seqLen: number): number {
  const nonEmbedding = countParameters(c) - (c.tieWordEmbeddings ? 0 : c.vocabSize * c.hiddenSize);
  return 6 * nonEmbedding + 12 * c.numHiddenLayers * seqLen * c.numAttentionHeads * c.headDim;
}

export interface TrainBenchResult {
  tokensPerSec: number; // the median run's
  runsTokensPerSec: number[]; // every run's, in order
  // Tokens per second of this process's CPU time (all threads), every run's: nearly blind to other
  // work on a shared machine, so it compares kernels or libraries measured minutes apart.
  runsTokensPerCpuSec: number[];
  stepMs: number; // median over measured steps
  firstStepMs: number; // the first warm-up step: compiling the step, allocating the optimizer state
  mfu: number; // achieved FLOP/s over the measured matmul peak
  paddingFraction: number;
  rssAtWarmupMB: number; // after warm-up (compiles done)
  rssAtEndMB: number;
  rssGrowth: number; // (end - warm-up) / warm-up
  peakRssMB: number;
}

export interface TrainBenchOptions {
  warmup?: number; // untimed steps first (compiles, allocator)
  steps?: number; // timed steps per run
  runs?: number;
  peakGflops: number;
  sparseHead?: boolean;
  /** Called after each timed run, e.g. to run a peer in between so that both meet the same moments
   * of a shared machine (its time is not counted). */
  afterRun?: (run: number) => void | Promise<void>;
}

/** Time `runs` runs of `steps` optimizer steps after `warmup` steps; tokens/s is the median run's
 * (the PyTorch peer's figures are medians of 3 runs too). `batchAt(i)` gives batch i and its tokens. */
export async function benchTrainStep(
  model: LlamaModel,
  batchAt: (i: number) => { batch: StepBatch; tokens: number; paddingFraction: number },
  { warmup = 3, steps = 20, runs = 3, peakGflops, sparseHead = false, afterRun }: TrainBenchOptions,
): Promise<TrainBenchResult> {
  const trainer = new TrainStep(model, undefined, { sparseHead });
  let firstStepMs = 0;
  for (let i = 0; i < warmup; i++) {
    const t = performance.now();
    await trainer.step(batchAt(i).batch, 1e-4);
    if (i === 0) firstStepMs = performance.now() - t;
  }
  const rssAtWarmupMB = rssMB();
  const times: number[] = [];
  const perRun: { tokensPerSec: number; flopsPerSec: number; tokensPerCpuSec: number }[] = [];
  let padding = 0;
  let i = warmup;
  for (let r = 0; r < runs; r++) {
    let tokens = 0;
    let flops = 0;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    for (let s = 0; s < steps; s++, i++) {
      const { batch, tokens: n, paddingFraction } = batchAt(i);
      const t = performance.now();
      await trainer.step(batch, 1e-4);
      times.push(performance.now() - t);
      tokens += n;
      padding += paddingFraction;
      flops += n * trainFlopsPerToken(model.config, batch.inputs.shape[1]);
    }
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    perRun.push({ tokensPerSec: tokens / secs, flopsPerSec: flops / secs, tokensPerCpuSec: tokens / ((cpu.user + cpu.system) / 1e6) });
    await afterRun?.(r);
  }
  const rssAtEndMB = rssMB();
  const mid = [...perRun].sort((a, b) => a.tokensPerSec - b.tokensPerSec)[Math.floor(runs / 2)]!;
  return {
    tokensPerSec: mid.tokensPerSec,
    runsTokensPerSec: perRun.map((p) => Math.round(p.tokensPerSec)),
    runsTokensPerCpuSec: perRun.map((p) => Math.round(p.tokensPerCpuSec)),
    stepMs: median(times),
    firstStepMs,
    mfu: mid.flopsPerSec / (peakGflops * 1e9),
    paddingFraction: padding / (steps * runs),
    rssAtWarmupMB,
    rssAtEndMB,
    rssGrowth: (rssAtEndMB - rssAtWarmupMB) / rssAtWarmupMB,
    peakRssMB: peakRssMB(),
  };
}

export interface GenerateBenchResult {
  promptTokens: number;
  generatedTokens: number;
  timeToFirstTokenMs: number;
  decodeTokensPerSec: number;
  rssBeforeMB: number;
  rssAfterMB: number;
}

/** Decode `tokens` tokens at batch 1 with no stop id (so it runs the full length): greedy, or with
 * `sampling` (e.g. chat's defaults, whose draws run on the host). */
export async function benchGenerate(model: LlamaModel, tokenizer: Tokenizer, prompt: string, tokens = 500, sampling: SampleOptions = {}): Promise<GenerateBenchResult> {
  const ids = tokenizer.encode(prompt);
  const maxTokens = Math.min(tokens, model.config.maxPositionEmbeddings - ids.length);
  await generate(model, tokenizer, ids, { ...sampling, maxTokens }); // warm-up at full length: compiles, caches, allocator
  await releaseMemory();
  const rssBeforeMB = rssMB();
  const runs = [];
  let rssAfterMB = 0;
  for (let r = 0; r < 3; r++) {
    runs.push(await generate(model, tokenizer, ids, { ...sampling, maxTokens, seed: r }));
    await releaseMemory();
    rssAfterMB = rssMB();
  }
  const best = runs.reduce((a, b) => (b.tokensPerSec > a.tokensPerSec ? b : a));
  return {
    promptTokens: ids.length,
    generatedTokens: best.ids.length,
    timeToFirstTokenMs: median(runs.map((g) => g.timeToFirstTokenMs)),
    decodeTokensPerSec: median(runs.map((g) => g.tokensPerSec)),
    rssBeforeMB,
    rssAfterMB,
  };
}
