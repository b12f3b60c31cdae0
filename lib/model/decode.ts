// A compiled single-token decode step. Eager decoding is dispatch-bound on the CPU (~150 small ops per
// token, ~5.5 ms); compiling the step needs fixed shapes, so here the cache is a fixed-capacity buffer
// per layer, attention is masked to the filled positions, and the rotary position comes from a
// precomputed table indexed by an array (mx.fast.rope takes its offset as a number, which would retrace
// every token). Parameters cross the boundary as flat arrays (lib/mlx/autodiff.ts), so a model
// trained after the decoder was built decodes with its new weights.
//
// The new token's key and value are not written into the cache inside the graph: any in-graph write
// (a one-hot `where`) copies the whole buffer of every layer each token, which cost ~30% of decode
// time. The step attends over the cache (positions before this one) and the new key side by side, and
// returns the new key and value; they are then written in place with `indexPut_`, which MLX does
// without a copy because nothing else holds the buffer (measured 0.03 ms per write at any capacity).
import { core as mx } from "@frost-beta/mlx";
import { silu, type LlamaModel } from "./llama.ts";
import type { KVCache } from "./cache.ts";
import { ropeTables } from "./rope.ts";
import { compileFlat, FlatParams } from "../mlx/autodiff.ts";

/** Contexts above this decode eagerly: attending over the whole buffer would cost more than it saves. */
export const MAX_COMPILED_CONTEXT = 1024;

/** x [1, H, 1, D] rotated by the angles of one position (cos, sin [1, 1, 1, D]). */
function rotate(x: mx.array, cos: mx.array, sin: mx.array): mx.array {
  const half = x.shape[3] / 2;
  const x1 = x.index("...", mx.Slice(0, half));
  const x2 = x.index("...", mx.Slice(half));
  const rotated = mx.concatenate([mx.negative(x2), x1], -1);
  return mx.add(mx.multiply(x, cos), mx.multiply(rotated, sin));
}

export class CompiledDecoder {
  readonly capacity: number;
  private readonly flat: FlatParams;
  private readonly step: (...args: mx.array[]) => mx.array[];
  private keys: mx.array[] = [];
  private values: mx.array[] = [];
  private position = 0;
  private transposed: { from: mx.array[]; arrays: mx.array[] } | null = null;

  constructor(readonly model: LlamaModel) {
    const c = model.config;
    this.capacity = c.maxPositionEmbeddings;
    this.flat = new FlatParams(model);
    const { cos: cosTable, sin: sinTable } = ropeTables(this.capacity, c.headDim, c.ropeTheta);
    const L = c.numHiddenLayers;
    const n = this.flat.slots.length;
    const arange = mx.arange(0, this.capacity, 1, mx.int32);
    const body = model.model;
    // args: [token [1,1], pos [1], ...K (L), ...V (L), ...params (n), ...Wᵀ (7L)] → [logits [V], ...k (L), ...v (L)]
    // where K, V [1, Hkv, capacity, D] hold positions < pos, k, v [1, Hkv, 1, D] are this token's, and
    // Wᵀ are each layer's projection weights transposed (see linearWeightsT).
    this.step = compileFlat((...args: mx.array[]) => {
      const [token, pos] = args as [mx.array, mx.array];
      const K = args.slice(2, 2 + L);
      const V = args.slice(2 + L, 2 + 2 * L);
      this.flat.write(args.slice(2 + 2 * L, 2 + 2 * L + n));
      const WT = args.slice(2 + 2 * L + n);
      const linear = (x: mx.array, wT: mx.array, bias?: mx.array) => (bias ? mx.add(mx.matmul(x, wT), bias) : mx.matmul(x, wT));
      const cos = mx.take(cosTable, pos, 0).reshape([1, 1, 1, -1]);
      const sin = mx.take(sinTable, pos, 0).reshape([1, 1, 1, -1]);
      const cached = mx.where(mx.less(arange, pos), mx.array(0, mx.float32), mx.array(-Infinity, mx.float32)).reshape([1, 1, 1, -1]); // -inf: see causalMask
      let h = body.embedTokens.forward(token); // [1, 1, D]
      const newK: mx.array[] = [];
      const newV: mx.array[] = [];
      body.layers.forEach((layer, i) => {
        const a = layer.selfAttn;
        const rep = a.nHeads / a.nKVHeads; // query heads per key/value head (GQA)
        const x = layer.inputLayernorm.forward(h);
        // [1, 1, H*D] -> [1, H, 1, D]: with one position the head transpose is a plain reshape
        const heads = (y: mx.array, nh: number) => y.reshape([1, nh, 1, a.headDim]);
        const [qT, kT, vT, oT, gateT, upT, downT] = WT.slice(7 * i, 7 * i + 7) as mx.array[];
        let q = mx.multiply(rotate(heads(linear(x, qT!, a.qProj.bias), a.nHeads), cos, sin), a.scale); // [1, H, 1, D]
        if (rep > 1) q = q.reshape([1, a.nKVHeads, rep, a.headDim]);
        const k = rotate(heads(linear(x, kT!, a.kProj.bias), a.nKVHeads), cos, sin); // [1, Hkv, 1, D]
        const v = heads(linear(x, vT!, a.vProj.bias), a.nKVHeads);
        newK.push(k);
        newV.push(v);
        // softmax over [the cached positions, this position], written out so the two parts never
        // need to be concatenated or sliced
        const sCached = mx.add(mx.matmul(q, K[i]!.transpose(0, 1, 3, 2)), cached); // [1, Hkv, rep, capacity]
        // a matmul, not sum(q * k): fused into one kernel with k's rotation, that sum made the compiled
        // step read out of bounds when k is also returned (without GQA; MLX 0.0.7 binding, found here)
        const sNew = mx.matmul(q, k.transpose(0, 1, 3, 2)); // [1, Hkv, rep, 1]
        const m = mx.maximum(mx.max(sCached, -1, true), sNew);
        const eCached = mx.exp(mx.subtract(sCached, m));
        const eNew = mx.exp(mx.subtract(sNew, m));
        const total = mx.add(mx.sum(eCached, -1, true), eNew);
        const out = mx.divide(mx.add(mx.matmul(eCached, V[i]!), mx.multiply(eNew, v)), total); // [1, Hkv, rep, D]
        h = mx.add(h, linear(out.reshape([1, 1, -1]), oT!)); // heads in order: kv head, then its queries
        const mlp = layer.mlp;
        const y = layer.postAttentionLayernorm.forward(h);
        const gate = linear(y, gateT!, mlp.gateProj.bias);
        h = mx.add(h, linear(mx.multiply(silu(gate), linear(y, upT!, mlp.upProj.bias)), downT!, mlp.downProj.bias));
      });
      // the head as W·h (a matrix-vector product): for one token this is faster than h·Wᵀ
      const head = model.lmHead ? model.lmHead.weight : body.embedTokens.weight; // [V, D]
      const logits = mx.matmul(head, body.norm.forward(h).reshape([-1, 1])).reshape([-1]);
      return [logits, ...newK, ...newV];
    });
  }

  /** Take over the caches a prefill filled (positions 0 .. offset-1). */
  start(caches: KVCache[]): void {
    this.position = caches[0].offset;
    const fit = (a: mx.array) => {
      const [B, H, , D] = a.shape;
      const filled = a.index("...", mx.Slice(0, this.position), mx.Slice());
      return mx.concatenate([filled, mx.zeros([B, H, this.capacity - this.position, D], a.dtype)], 2);
    };
    this.keys = caches.map((c) => fit(c.keys!));
    this.values = caches.map((c) => fit(c.values!));
  }

  /** Each layer's q, k, v, o, gate, up and down weights transposed to [in, out], row-major: for
   * one token, x·Wᵀ with Wᵀ stored that way is faster in OpenBLAS than with W (measured 22 vs 28 µs
   * for 256×256, 30 vs 41 µs for 688→256). Made again only when the model holds other weight arrays
   * than last time (after training). */
  private linearWeightsT(): mx.array[] {
    const from = this.model.model.layers.flatMap((l) => [l.selfAttn.qProj, l.selfAttn.kProj, l.selfAttn.vProj, l.selfAttn.oProj, l.mlp.gateProj, l.mlp.upProj, l.mlp.downProj].map((p) => p.weight));
    if (!this.transposed || this.transposed.from.some((w, i) => w !== from[i])) {
      const arrays = from.map((w) => w.T.reshape([-1]).reshape([w.shape[1]!, w.shape[0]!])); // a row-major copy
      mx.eval(...arrays);
      this.transposed = { from, arrays };
    }
    return this.transposed.arrays;
  }

  /** Positions filled so far. */
  get offset(): number {
    return this.position;
  }

  /** Feed one token (an id, or an id still on the device such as an argmax); returns the logits
   * [V] at this position. */
  next(token: number | mx.array): mx.array {
    if (this.position >= this.capacity) throw new Error(`CompiledDecoder: context of ${this.capacity} positions is full`);
    const params = this.flat.read();
    const L = this.keys.length;
    const id = typeof token === "number" ? mx.array([[token]], mx.int32) : token.reshape([1, 1]).astype(mx.int32);
    const out = this.step(id, mx.array([this.position], mx.int32), ...this.keys, ...this.values, ...params, ...this.linearWeightsT());
    this.flat.write(params); // tracing leaves placeholders in the model: put the real arrays back
    const at = [mx.Slice(), mx.Slice(), mx.Slice(this.position, this.position + 1)];
    for (let i = 0; i < L; i++) {
      this.keys[i]!.indexPut_(at, out[1 + i]!);
      this.values[i]!.indexPut_(at, out[1 + L + i]!);
    }
    this.position += 1;
    return out[0];
  }
}
