// Key/value cache for incremental decoding: one per layer, grown in chunks so that appending a
// token does not copy the whole history every step.
import { core as mx } from "@frost-beta/mlx";

const CHUNK = 256; // positions allocated at a time

export class KVCache {
  keys: mx.array | null = null; // [B, Hkv, capacity, D]
  values: mx.array | null = null;
  offset = 0; // positions filled

  /** Append new keys/values [B, Hkv, T, D] and return everything cached so far. */
  updateAndFetch(k: mx.array, v: mx.array): [mx.array, mx.array] {
    const [B, H, T, D] = k.shape;
    const needed = this.offset + T;
    if (this.keys === null || needed > this.keys.shape[2]) {
      const capacity = Math.ceil(needed / CHUNK) * CHUNK;
      const grow = (old: mx.array | null, like: mx.array) => {
        const fresh = mx.zeros([B, H, capacity, like.shape[3]], like.dtype);
        if (old === null || this.offset === 0) return fresh;
        const kept = old.index("...", mx.Slice(0, this.offset), mx.Slice());
        return mx.concatenate([kept, fresh.index("...", mx.Slice(this.offset), mx.Slice())], 2);
      };
      this.keys = grow(this.keys, k);
      this.values = grow(this.values, v);
    }
    const slot = ["...", mx.Slice(this.offset, needed), mx.Slice()] as const;
    this.keys!.indexPut_(slot as any, k);
    this.values!.indexPut_(slot as any, v);
    this.offset = needed;
    const upto = ["...", mx.Slice(0, needed), mx.Slice()] as const;
    return [this.keys!.index(...(upto as any)), this.values!.index(...(upto as any))];
  }
}

/** One empty cache per layer. */
export function makeCaches(numLayers: number): KVCache[] {
  return Array.from({ length: numLayers }, () => new KVCache());
}
