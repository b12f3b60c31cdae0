// The compiled single-token decode step: the model's own forward pass (llama.ts) on one token,
// compiled, over the same KVCache the prefill filled. Eager decoding of a small model is dispatch-bound
// on the CPU (~150 small ops per token; a large one is bound by reading its weights); compiling the step needs fixed shapes, so each layer sees its cache
// through a StepCache (cache.ts): the whole buffer goes in, attention is masked to the filled
// positions, and the position is an array (RoPE rows are taken from the tables by it).
// The buffer is not the model's whole context (Qwen3's 32,768 positions would be attended every
// token) but a bucket, a power of two that holds the positions so far: the KVCache grows to the next
// bucket when it is full, so a step attends over fewer than twice the filled positions. MLX's compile
// traces the step again for each new input shape and keeps every trace, so each bucket is traced
// once per decoder (per model), and there are few of them (log₂ of the context).
// Parameters cross the boundary as flat arrays (lib/mlx/autodiff.ts), so a model trained after the
// decoder was built decodes with its new weights. The new key and value come out of the graph and
// are appended to the KVCache in place (`indexPut_`), outside the graph, where that copies nothing.
// The layers' projection weights go in transposed too (see linearWeightsT), where they are small
// enough to pay (TRANSPOSE_UP_TO_MB) and the one-row products are not sent to gemv (lib/mlx/gemv.ts:
// gemv reads the weights as they are, W·x, fastest).
import { core as mx } from "@frost-beta/mlx";
import { Linear, type LlamaModel } from "./llama.ts";
import { StepCache, type KVCache } from "./cache.ts";
import { compileFlat, FlatParams } from "../mlx/autodiff.ts";
import { gemvLibraryLoaded } from "../mlx/gemv.ts";

const MIN_BUFFER = 256; // positions: the KVCache's chunk, so that every bucket is whole chunks
/** Projection weights (all layers) up to this size decode as x·Wᵀ on transposed copies, larger ones
 * as W·x: through OpenBLAS's sgemm the copies are faster for the bundled base's 19 MB, and slower once
 * every token streams the weights from memory (Qwen3-0.6B's 1.7 GB, which they would double): README
 * "Performance". Through gemv (lib/mlx/gemv.ts), W·x is faster at every size and nothing is copied. */
const TRANSPOSE_UP_TO_MB = 64;

/** The buffer the compiled step runs over for `positions` positions (the new one included): the
 * smallest power of two from MIN_BUFFER that holds them, at most the context. */
export function bufferFor(positions: number, context: number): number {
  return Math.min(context, Math.max(MIN_BUFFER, 2 ** Math.ceil(Math.log2(positions))));
}

export class CompiledDecoder {
  readonly context: number; // the model's positions: the last one the step can fill
  /** Steps taken through the compiled graph: for benchmarks and tests (no model decodes eagerly unnoticed). */
  readonly steps = { compiled: 0 };
  private readonly flat: FlatParams;
  private readonly step: (...args: mx.array[]) => mx.array[];
  private caches: KVCache[] = [];
  private readonly linears: Linear[]; // every layer's projections, in a fixed order (Wᵀ's order)
  private transposed: { from: mx.array[]; arrays: mx.array[] } | null = null;
  readonly transposeWeights: boolean; // whether the step runs x·Wᵀ on copies (linearWeightsT) or W·x

  /** `transposeWeights`: by default, whether the projections are at most TRANSPOSE_UP_TO_MB and go
   * through sgemm (no gemv forwarding in this process). */
  constructor(readonly model: LlamaModel, { transposeWeights }: { transposeWeights?: boolean } = {}) {
    const c = model.config;
    this.context = c.maxPositionEmbeddings;
    this.flat = new FlatParams(model);
    const L = c.numHiddenLayers;
    const n = this.flat.slots.length;
    // every Linear inside the layers, wherever a layer keeps it (the head stays W·h: see linear())
    this.linears = model.model.layers.flatMap((layer) => layer.modules().filter((m): m is Linear => m instanceof Linear));
    this.transposeWeights = transposeWeights ?? (gemvLibraryLoaded() === null && this.linears.reduce((n, l) => n + l.weight.nbytes!, 0) <= TRANSPOSE_UP_TO_MB * 2 ** 20);
    // args: [token [1,1], pos [1], ...K (L), ...V (L), ...params (n), ...Wᵀ] → [logits [V], ...k (L), ...v (L)]
    // where K, V [1, Hkv, buffer, D] are the caches' buffers (positions < pos filled), k, v
    // [1, Hkv, 1, D] this token's, and Wᵀ the projection weights transposed (linearWeightsT).
    this.step = compileFlat((...args: mx.array[]) => {
      const [token, pos] = args as [mx.array, mx.array];
      const K = args.slice(2, 2 + L);
      const V = args.slice(2 + L, 2 + 2 * L);
      this.flat.write(args.slice(2 + 2 * L, 2 + 2 * L + n));
      const WT = args.slice(2 + 2 * L + n);
      const buffer = K[0]!.shape[2]!;
      const filled = mx.less(mx.arange(0, buffer, 1, mx.int32), pos);
      const pastMask = mx.where(filled, mx.array(0, mx.float32), mx.array(-Infinity, mx.float32)).reshape([1, 1, 1, -1]); // -inf: see causalMask
      const views = K.map((keys, i) => new StepCache(keys, V[i]!, { at: pos, capacity: buffer }, pastMask));
      this.linears.forEach((lin, i) => (lin._weightT = WT[i] ?? null));
      try {
        const logits = model.forward(token, views).reshape([-1]); // [V]
        return [logits, ...views.map((v) => v.newKeys!), ...views.map((v) => v.newValues!)];
      } finally {
        for (const lin of this.linears) lin._weightT = null; // other forward passes never see them
      }
    });
  }

  /** Continue from the caches a prefill filled (positions 0 .. offset-1); each step grows them to
   * its bucket (bufferFor) when they are full. */
  start(caches: KVCache[]): void {
    this.caches = caches;
  }

  /** Each projection's weight transposed to [in, out], row-major, for `linear`'s one-row product
   * (README "Performance"). Made again only when the model holds other weight arrays than last time
   * (after training). */
  private linearWeightsT(): mx.array[] {
    if (!this.transposeWeights) return [];
    const from = this.linears.map((l) => l.weight);
    if (!this.transposed || this.transposed.from.some((w, i) => w !== from[i])) {
      const arrays = from.map((w) => w.T.reshape([-1]).reshape([w.shape[1]!, w.shape[0]!])); // a row-major copy
      mx.eval(...arrays);
      this.transposed = { from, arrays };
    }
    return this.transposed.arrays;
  }

  /** Positions filled so far. */
  get offset(): number {
    return this.caches[0]?.offset ?? 0;
  }

  /** Feed one token (an id, or an id still on the device such as an argmax); returns the logits
   * [V] at this position. */
  next(token: number | mx.array): mx.array {
    const position = this.offset;
    if (position >= this.context) throw new Error(`CompiledDecoder: context of ${this.context} positions is full`);
    // a no-op until the bucket is full; then one copy of the filled positions into the next bucket
    for (const c of this.caches) c.reserve(bufferFor(position + 1, this.context));
    const params = this.flat.read();
    const L = this.caches.length;
    const id = typeof token === "number" ? mx.array([[token]], mx.int32) : token.reshape([1, 1]).astype(mx.int32);
    const keys = this.caches.map((c) => c.keys!);
    const values = this.caches.map((c) => c.values!);
    const out = this.step(id, mx.array([position], mx.int32), ...keys, ...values, ...params, ...this.linearWeightsT());
    this.flat.write(params); // tracing leaves placeholders in the model: put the real arrays back
    this.caches.forEach((c, i) => c.append(out[1 + i]!, out[1 + L + i]!));
    this.steps.compiled++;
    return out[0]!;
  }
}
