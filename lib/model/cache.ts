// The key/value cache of incremental decoding, one per layer, and what a layer's attention sees of
// it. One cache (KVCache) serves the prefill, eager single-token steps and the compiled decode step
// (decode.ts); inside the compiled step each layer sees it through a StepCache, which hands the whole
// buffer (a bucket of positions, decode.ts bufferFor) to the graph so that the graph's shapes do not
// change with the position.
import { core as mx } from "@frost-beta/mlx";
import type { Positions } from "./rope.ts";

const CHUNK = 256; // positions allocated at a time

/** What a layer's queries attend to (llama.ts `attend`). */
export interface AttentionInputs {
  keys: mx.array; // [B, Hkv, S, D]: the keys the queries see under the pass's mask (new ones included)
  values: mx.array;
  /** The compiled decode step only: the whole buffer of earlier positions, attended beside
   * `keys` rather than concatenated with them (that would copy the buffer every token), and its
   * additive mask [1, 1, 1, capacity] that hides the slots not filled yet. */
  past?: { keys: mx.array; values: mx.array; mask: mx.array };
}

/** A layer's cache as the layer code uses it: where the new tokens sit, and the keys and values
 * they attend to once theirs are added. */
export interface LayerCache {
  readonly positions: Positions;
  /** Add this pass's keys and values [B, Hkv, T, D]; return what the queries attend to. */
  update(keys: mx.array, values: mx.array): AttentionInputs;
}

export class KVCache implements LayerCache {
  keys: mx.array | null = null; // [B, Hkv, capacity, D]
  values: mx.array | null = null;
  offset = 0; // positions filled

  get positions(): number {
    return this.offset;
  }

  update(k: mx.array, v: mx.array): AttentionInputs {
    const [keys, values] = this.updateAndFetch(k, v);
    return { keys, values };
  }

  /** Append new keys/values [B, Hkv, T, D] and return everything cached so far. */
  updateAndFetch(k: mx.array, v: mx.array): [mx.array, mx.array] {
    this.append(k, v);
    const upto = ["...", mx.Slice(0, this.offset), mx.Slice()] as const;
    return [this.keys!.index(...(upto as any)), this.values!.index(...(upto as any))];
  }

  /** Write keys/values [B, Hkv, T, D] at the next positions, in place (`indexPut_` copies nothing
   * while no other array holds the buffer), growing the buffer by whole chunks when it is full. */
  append(k: mx.array, v: mx.array): void {
    const T = k.shape[2]!;
    this.reserve(this.offset + T, k);
    const slot = ["...", mx.Slice(this.offset, this.offset + T), mx.Slice()] as const;
    this.keys!.indexPut_(slot as any, k);
    this.values!.indexPut_(slot as any, v);
    this.offset += T;
  }

  /** Make room for `positions` positions, keeping what is filled; `like` (keys [B, Hkv, T, D]) gives
   * the shape and dtype of a buffer not made yet. */
  reserve(positions: number, like: mx.array | null = this.keys): void {
    if (this.keys !== null && positions <= this.keys.shape[2]!) return;
    if (like === null) throw new Error("KVCache.reserve: the cache is empty, so its shape is unknown: append first");
    const [B, H, , D] = like.shape;
    const capacity = Math.ceil(positions / CHUNK) * CHUNK;
    const filled = ["...", mx.Slice(0, this.offset), mx.Slice()] as const;
    const grow = (old: mx.array | null) => {
      const fresh = mx.zeros([B!, H!, capacity, D!], like.dtype);
      // written in place, as append does: a concatenation with the empty rest held both the new
      // buffer and the zeros it was made from (two new buffers per layer while it was evaluated)
      if (old !== null && this.offset > 0) fresh.indexPut_(filled as any, old.index(...(filled as any)));
      return fresh;
    };
    this.keys = grow(this.keys);
    this.values = grow(this.values);
  }
}

/** One empty cache per layer. */
export function makeCaches(numLayers: number): KVCache[] {
  return Array.from({ length: numLayers }, () => new KVCache());
}

/**
 * A layer's KVCache inside the compiled single-token step: its whole buffer [1, Hkv, capacity, D]
 * and the position are inputs of the graph. The new key and value are not written into the buffer
 * inside the graph, where any write copies the whole buffer of every layer each token; the queries
 * attend to the buffer and the new key side by side, and the step returns the new key and value
 * for the caller to append to the KVCache in place.
 */
export class StepCache implements LayerCache {
  newKeys: mx.array | null = null; // [1, Hkv, 1, D], set by update
  newValues: mx.array | null = null;

  /** `keys`, `values`: the buffer; `pastMask` [1, 1, 1, capacity]: 0 for filled slots, -inf after. */
  constructor(
    private readonly keys: mx.array,
    private readonly values: mx.array,
    readonly positions: { at: mx.array; capacity: number },
    private readonly pastMask: mx.array,
  ) {}

  update(k: mx.array, v: mx.array): AttentionInputs {
    if (k.shape[2] !== 1) throw new Error(`StepCache: the compiled step takes one position, got ${k.shape[2]}`);
    this.newKeys = k;
    this.newValues = v;
    return { keys: k, values: v, past: { keys: this.keys, values: this.values, mask: this.pastMask } };
  }
}
