// Incremental decoding with a key/value cache: greedy, temperature, top-k, top-p, repetition
// penalty; stop ids and stop strings; a streaming callback that receives text as soon as it is
// complete (multi-byte characters intact). Batch size 1.
import { core as mx } from "@frost-beta/mlx";
import { LlamaModel } from "../model/llama.ts";
import { makeCaches } from "../model/cache.ts";
import { CompiledDecoder } from "../model/decode.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { seededRandom } from "../util/random.ts";
import { releaseMemory } from "../mlx/memory.ts";
import { useBlasFor } from "../mlx/parallel.ts";

export interface SampleOptions {
  temperature?: number; // 0 = greedy
  topK?: number; // 0 = off
  topP?: number; // 1 = off
  repetitionPenalty?: number; // 1 = off; >1 discourages ids already in the prompt or reply
  maxTokens?: number;
  stopIds?: number[]; // generation ends after emitting one of these (it is not part of `text`)
  stopStrings?: string[]; // generation ends when the decoded reply contains one (it is cut off)
  seed?: number;
  onText?: (text: string) => void; // streamed pieces of the reply
  shouldStop?: () => boolean; // polled every token, e.g. for Ctrl-C
}

export type StopReason = "end-token" | "max-tokens" | "stop-string" | "context" | "interrupted";

export interface Generation {
  ids: number[]; // generated ids, including the stop id if one was emitted
  text: string; // decoded reply, without the stop token or stop string
  stopReason: StopReason;
  promptTokens: number;
  timeToFirstTokenMs: number;
  tokensPerSec: number; // decode speed after the first token
}

/** One compiled decoder per model, reused across calls (a new one would compile a new graph). */
const decoders = new WeakMap<LlamaModel, CompiledDecoder>();

/** The compiled decoder of `model`, at any context (its buffer is sized per bucket of positions). */
export function decoderFor(model: LlamaModel): CompiledDecoder | null {
  // Anything else that only offers forward() (a test's scripted model) decodes eagerly.
  if (!(model instanceof LlamaModel)) return null;
  let d = decoders.get(model);
  if (!d) decoders.set(model, (d = new CompiledDecoder(model)));
  return d;
}

const WARM_UP_TOKENS = 24;

/** Run `model` once, briefly (a sampled continuation of one id, as chat samples), so that what a
 * process pays the first time it decodes is paid now: tracing and compiling the decode step (~30–40
 * ms on the bundled base, more for larger ones), loading its kernels, and the JavaScript engine's
 * compiling of the sampling loops (the first reply of a fresh process decoded 10–20% slower than the
 * next ones). Chat calls it when it loads a model, before the first prompt, so that the first reply
 * neither waits for it nor counts it in its tokens/s. Nothing of it is kept: every generation starts
 * from its own seed and caches. */
export async function warmUp(model: LlamaModel, tokenizer: Tokenizer): Promise<void> {
  const maxTokens = Math.min(WARM_UP_TOKENS, model.config.maxPositionEmbeddings - 2);
  if (maxTokens > 0) await generate(model, tokenizer, [0], { maxTokens, temperature: 0.7, topP: 0.9 });
}

const COLLECT_EVERY = 16; // tokens between young-generation collections: often enough to stay flat
const FULL_COLLECT_EVERY = 256; // tokens between full collections (each ~3.5 ms: more than a token)

/** Pick the next id from logits [V] (float32) on the host. `rand` draws uniforms in [0, 1). */
export function sampleNext(
  logits: Float32Array,
  history: number[],
  opts: SampleOptions,
  rand: () => number,
): number {
  const x = penalised(logits, history, opts.repetitionPenalty ?? 1);
  if ((opts.temperature ?? 0) <= 0) {
    let best = 0;
    for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
    return best;
  }
  const { ids, weights, total } = samplingCandidates(x, opts);
  let r = rand() * total;
  for (let i = 0; i < ids.length; i++) {
    r -= weights[i];
    if (r <= 0) return ids[i];
  }
  return ids[ids.length - 1];
}

/** The logits after the repetition penalty (a copy only when there is one): the CTRL/HF rule shrinks
 * positive logits and grows negative ones, for ids seen so far. */
function penalised(logits: Float32Array, history: number[], penalty: number): Float32Array {
  if (penalty === 1) return logits;
  const x = Float32Array.from(logits);
  for (const id of new Set(history)) x[id] = x[id] > 0 ? x[id] / penalty : x[id] * penalty;
  return x;
}

/** The ids a temperature draw chooses among and their unnormalised weights exp((x - max) / T): all
 * ids in id order when neither top-k nor top-p is set, else the most likely first (ties by id), cut to
 * the k largest and then to the shortest prefix holding `topP` of their mass. Sorting the whole
 * vocabulary for every token cost ~1.1 ms at 4,096 ids (a third of a decode step of the bundled base)
 * and grows with the vocabulary, so only the ids above a weight threshold are sorted, the threshold
 * lowered until they are sure to hold the answer: every id below it weighs less than every id above
 * it, so the cut is the one the whole sorted vocabulary gives. */
export function samplingCandidates(
  x: Float32Array,
  { temperature = 1, topK = 0, topP = 1 }: SampleOptions,
): { ids: number[]; weights: number[]; total: number } {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  const w = new Float64Array(x.length);
  let all = 0;
  for (let i = 0; i < x.length; i++) all += w[i] = Math.exp((x[i] - max) / temperature);
  if (topK <= 0 && topP >= 1) return { ids: Array.from(w.keys()), weights: Array.from(w), total: all };
  for (let threshold = 1e-4; ; threshold = threshold > 1e-300 ? threshold * 1e-8 : 0) {
    const ids: number[] = [];
    let mass = 0;
    for (let i = 0; i < w.length; i++) {
      if (w[i] >= threshold) {
        ids.push(i);
        mass += w[i];
      }
    }
    // Enough when the k largest are all above the threshold, or (no top-k) when the ids above it
    // already hold topP of the whole mass; at threshold 0 every id is in.
    const enough = threshold === 0 || (topK > 0 ? ids.length >= topK : mass >= topP * all);
    if (!enough) continue;
    ids.sort((a, b) => w[b] - w[a] || a - b);
    if (topK > 0) ids.length = Math.min(ids.length, topK);
    let weights = ids.map((i) => w[i]);
    let total = topK > 0 ? weights.reduce((a, b) => a + b, 0) : all; // the mass top-p is a share of
    if (topP < 1) {
      let cum = 0;
      let keep = 0;
      while (keep < weights.length && cum < topP * total) cum += weights[keep++];
      keep = Math.max(1, keep);
      ids.length = keep;
      weights = weights.slice(0, keep);
      total = weights.reduce((a, b) => a + b, 0);
    }
    return { ids, weights, total };
  }
}

/** Where the earliest stop string starts in `text`, or -1. */
function firstStop(text: string, stopStrings: string[]): number {
  let first = -1;
  for (const s of stopStrings) {
    const at = text.indexOf(s);
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  return first;
}

/** Length of the longest end of `text` that could be the start of a stop string: it is held back
 * from the stream so that streamed pieces never include text a stop string then cuts off. */
function heldBack(text: string, stopStrings: string[]): number {
  let hold = 0;
  for (const s of stopStrings) {
    for (let n = Math.min(s.length - 1, text.length); n > hold; n--) {
      if (text.endsWith(s.slice(0, n))) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

/** Generate a continuation of `promptIds`. Streamed pieces (`onText`) concatenate to `text`. */
export async function generate(
  model: LlamaModel,
  tokenizer: Tokenizer,
  promptIds: number[],
  opts: SampleOptions = {},
): Promise<Generation> {
  const { maxTokens = 128, stopIds = [], stopStrings = [], seed = 0, onText, shouldStop } = opts;
  if (promptIds.length === 0) throw new Error("generate: the prompt is empty");
  const contextLength = model.config.maxPositionEmbeddings;
  useBlasFor(1); // one stream: OpenBLAS's own threads (a training step in this process may have set one)
  const rand = seededRandom(seed);
  const penalty = opts.repetitionPenalty ?? 1;
  const hostSampling = (opts.temperature ?? 0) > 0 || penalty !== 1; // the history is copied for the penalty only
  const caches = makeCaches(model.config.numHiddenLayers);
  const stream = tokenizer.decodeStream({ skipSpecial: true });
  const stops = new Set(stopIds);
  const ids: number[] = [];
  let text = "";
  let emitted = 0; // text[0, emitted) has gone to onText
  const emit = (upto: number) => {
    if (upto > emitted) onText?.(text.slice(emitted, upto));
    emitted = Math.max(emitted, upto);
  };
  let stopReason: StopReason = "max-tokens";
  const t0 = performance.now();
  let tFirst = t0;

  // Prefill the prompt (its last `contextLength - 1` ids at most), then one token at a time.
  const prompt = promptIds.slice(-(contextLength - 1));
  let logits = model.forward(mx.array([prompt], mx.int32), caches).index(0, -1);
  // Single tokens go through the compiled step (lib/model/decode.ts), over a buffer per bucket of positions.
  const decoder = decoderFor(model);
  decoder?.start(caches);
  // Greedy decoding through the compiled step runs one token ahead: the step that consumes token i
  // is queued (asyncEval) on token i's id while it is still an array on the device, before i is read
  // back, so building the next graph, reading, detokenizing and streaming overlap with the compute
  // (~0.7 of ~3.6 ms per token were spent here). A stop wastes the one queued step.
  let queued: mx.array | null = decoder && !hostSampling ? mx.argmax(logits, -1) : null;
  for (let i = 0; i < maxTokens; i++) {
    const room = (decoder ? decoder.offset : caches[0].offset) < contextLength; // can another token be fed?
    let next: number;
    if (queued) {
      const current = queued;
      queued = room && i + 1 < maxTokens ? mx.argmax(decoder!.next(current), -1) : null;
      if (queued) mx.asyncEval(queued);
      next = current.item() as number;
    } else {
      // Plain greedy stays on the device; anything else samples on the host from the full row.
      next = hostSampling
        ? sampleNext(Float32Array.from(logits.astype(mx.float32).tolist() as number[]), penalty !== 1 ? [...prompt, ...ids] : [], opts, rand)
        : (mx.argmax(logits, -1).item() as number);
      // The next position's logits are queued before this token is detokenized and streamed, so
      // that host work overlaps the step (a stop or an interruption wastes the one queued step).
      if (room && i + 1 < maxTokens && !stops.has(next)) {
        logits = decoder ? decoder.next(next) : model.forward(mx.array([[next]], mx.int32), caches).index(0, -1);
        mx.asyncEval(logits);
      }
    }
    if (i === 0) tFirst = performance.now();
    ids.push(next);
    if (stops.has(next)) {
      stopReason = "end-token";
      break;
    }
    // An id past the tokenizer is a spare embedding row (Qwen3 has 151,936 rows for 151,669 tokens):
    // it has no text, as in transformers' decode.
    if (next < tokenizer.vocabSize) text += stream.push(next);
    const cut = firstStop(text, stopStrings);
    if (cut >= 0) {
      text = text.slice(0, cut);
      stopReason = "stop-string";
      break;
    }
    emit(text.length - heldBack(text, stopStrings));
    if (shouldStop?.()) {
      stopReason = "interrupted";
      break;
    }
    if (!room) {
      stopReason = "context";
      break;
    }
    if (i % COLLECT_EVERY === COLLECT_EVERY - 1) await releaseMemory({ full: i % FULL_COLLECT_EVERY === FULL_COLLECT_EVERY - 1 });
  }
  if (stopReason !== "stop-string") {
    text += stream.flush();
    const cut = firstStop(text, stopStrings);
    if (cut >= 0) {
      text = text.slice(0, cut);
      stopReason = "stop-string";
    }
  }
  emit(text.length);
  const decodeMs = performance.now() - tFirst;
  return {
    ids,
    text,
    stopReason,
    promptTokens: prompt.length,
    timeToFirstTokenMs: tFirst - t0,
    tokensPerSec: ids.length > 1 ? ((ids.length - 1) * 1000) / decodeMs : 0,
  };
}
