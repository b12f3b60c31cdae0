// Decode step time at long positions, compiled (lib/model/decode.ts) against eager, at batch 1: where
// the compiled step's attention over its whole bucket would cost more than the eager step saves.
//   bun scripts/bench.ts --case decode-context --base /tmp/qwen3-0.6b-shape
// The caches are filled with random keys and values rather than a prefill: a step's time does not
// depend on what they hold, and a prefill of thousands of positions of a real-size base takes minutes.
import { core as mx } from "@frost-beta/mlx";
import type { LlamaModel } from "../model/llama.ts";
import { makeCaches, type KVCache } from "../model/cache.ts";
import { bufferFor, CompiledDecoder } from "../model/decode.ts";
import { releaseMemory, rssMB } from "../mlx/memory.ts";
import { useBlasFor } from "../mlx/parallel.ts";

const BUCKETS = [256, 1024, 2048, 4096, 8192]; // buffers measured (positions), up to the context (Qwen3-0.6B: 1.9 GB of cache at 8,192)
const WARMUP = 2; // steps before timing: the compiled step's first in a bucket traces and compiles it
const STEPS = 6; // timed steps per path and bucket

export interface DecodeAtResult {
  buffer: number; // the compiled step's buffer (positions)
  position: number; // the first timed step's position: just past half the buffer, where the compiled
  // step attends over the most empty slots per filled one
  eagerMs: number; // median ms per step
  compiledMs: number; // the step on transposed weight copies (x·Wᵀ)
  compiledWxMs: number; // the step on the weights as they are (W·x)
  firstCompiledMs: number; // the bucket's first step: trace and compile
  rssMB: number; // resident after the bucket's runs
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Caches of `buffer` positions, the first `positions` of them filled with random keys and values,
 * shaped as `model`'s: made at their full size, so that no step copies them into a larger buffer. */
function filledCaches(model: LlamaModel, positions: number, buffer: number): KVCache[] {
  const caches = makeCaches(model.config.numHiddenLayers);
  model.forward(mx.array([[0]], mx.int32), caches); // the shapes and dtype of a layer's keys
  const [B, H, , D] = caches[0]!.keys!.shape as number[];
  const random = mx.random.normal([B!, H!, positions - 1, D!]).astype(caches[0]!.keys!.dtype); // one block for all: ~no memory of its own
  mx.eval(random);
  for (const c of caches) {
    c.reserve(buffer);
    c.append(random, random);
    mx.eval(c.keys!, c.values!);
  }
  return caches;
}

/** Milliseconds of each of `n` steps of `step` (token → logits), each evaluated before the next.
 * Collected between steps, untimed: an eager step's views keep the cache it wrote past alive, so its
 * next write copies the whole buffer (1.9 GB a step for Qwen3-0.6B at 8,192) until they are freed. */
async function timeSteps(step: (token: number) => mx.array, n: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    mx.eval(step((i * 7919) % 1000));
    ms.push(performance.now() - t);
    await releaseMemory();
  }
  return ms;
}

function eagerSteps(model: LlamaModel, caches: KVCache[]): Promise<number[]> {
  return timeSteps((t) => model.forward(mx.array([[t]], mx.int32), caches).index(0, -1), WARMUP + STEPS);
}

/** Per-step decode time, eager and compiled, at each bucket up to the model's context, one bucket
 * at a time as it is measured. */
export async function* benchDecodeContext(model: LlamaModel): AsyncGenerator<DecodeAtResult> {
  useBlasFor(1); // as generate(): one stream, OpenBLAS's own threads
  const context = model.config.maxPositionEmbeddings;
  const decoders = [new CompiledDecoder(model, { transposeWeights: true }), new CompiledDecoder(model, { transposeWeights: false })];
  for (const buffer of BUCKETS.filter((b) => b <= context)) {
    const position = buffer / 2; // the first step's: bufferFor(position + 1) is `buffer`
    const eagerMs = median((await eagerSteps(model, filledCaches(model, position, buffer))).slice(WARMUP));
    await releaseMemory({ toSystem: true }); // one set of caches resident at a time
    const compiled: number[][] = [];
    for (const decoder of decoders) {
      const before = decoder.steps.compiled;
      decoder.start(filledCaches(model, position, buffer)); // its first step in this bucket traces it
      compiled.push(await timeSteps((t) => decoder.next(t), WARMUP + STEPS));
      if (decoder.steps.compiled - before !== WARMUP + STEPS || bufferFor(decoder.offset, context) !== buffer) throw new Error(`benchDecodeContext: the compiled steps did not run over a ${buffer}-position buffer`);
      decoder.start([]);
      await releaseMemory({ toSystem: true }); // one set of caches resident at a time
    }
    const [wt, wx] = compiled as [number[], number[]];
    yield { buffer, position: position + WARMUP, eagerMs, compiledMs: median(wt.slice(WARMUP)), compiledWxMs: median(wx.slice(WARMUP)), firstCompiledMs: wt[0]!, rssMB: rssMB() };
  }
}
