// Gradient checkpointing (`--grad-checkpoint`), by hand: MLX 0.13 declares mx.checkpoint but the
// native binding lacks it, and inside one compiled graph a recomputed forward would be merged with
// the first one (common subexpressions), saving nothing. So the step runs in pieces, each evaluated
// before the next: a forward pass that keeps only each decoder layer's input [B, T, D]; then, from the
// loss backwards, one `mx.vjp` per piece, which recomputes that piece's activations from its input
// and frees them once its gradients are out. The head and loss run over the supervised positions in
// chunks of HEAD_CHUNK rows, each over the vocabulary in slices (lib/train/head-loss.ts), so neither
// the [N, V] logits nor a quantized embedding's dequantized copy ever exist whole. Cost: one more
// forward pass (and one more product of the head), and the pieces are not compiled. Being eager, their intermediate arrays are JavaScript
// objects freed only by the collector (lib/mlx/memory.ts): memory is released after every piece,
// or the recomputation would hold every layer's activations after all (measured: 13 GB instead of
// 4.6 without checkpointing, LoRA q/v on the Qwen3-0.6B shapes).
//
// Gradients come out as sums (like flatValueAndGrad of the loss sum), in the FlatParams order.
import { core as mx } from "@frost-beta/mlx";
import type { LlamaModel } from "../model/llama.ts";
import { causalMask } from "../model/llama.ts";
import type { DropoutKeys } from "../model/lora.ts";
import type { FlatParams } from "../mlx/autodiff.ts";
import { slicedCrossEntropy, VOCAB_CHUNK } from "./head-loss.ts";
import { releaseMemory } from "../mlx/memory.ts";

const HEAD_CHUNK = 512; // supervised positions per head-and-loss piece: a vocabulary slice's logits are 512 × 16k × 4 B = 32 MB

/** One shard's arrays as shardArrays makes them: [inputs, (noise,) targets, prose, mask] or, with
 * the sparse head, [inputs, (noise,) positions, targets, prose, weights]. */
type ShardArrays = mx.array[];

/** Which trainable parameters (indices into FlatParams) each piece of the model reads. */
function pieces(model: LlamaModel, flat: FlatParams) {
  const paths = flat.paths;
  const where = (test: (p: string) => boolean) => paths.flatMap((p, i) => (test(p) ? [i] : []));
  const embed = where((p) => p.startsWith("model.embedTokens."));
  return {
    embed,
    layers: model.model.layers.map((_, l) => where((p) => p.startsWith(`model.layers.${l}.`))),
    norm: where((p) => p.startsWith("model.norm.")),
    // a tied head is the embedding: its parameters are read by both pieces (their gradients add)
    head: where((p) => p.startsWith("lmHead.") || (model.config.tieWordEmbeddings && p.startsWith("model.embedTokens."))),
  };
}

/**
 * Loss sums (every supervised target; the replay rows' targets), and gradient sums of every shard,
 * recomputing each layer in the backward pass. Shards (one per compute stream) go through each
 * piece side by side. `keys` (LoRA dropout) is re-seeded per layer so that a recomputed layer draws
 * the mask its forward pass drew. With `embedNoise` each shard carries NEFTune's noise, added to its
 * input embeddings (a constant: the embedding's gradient is the same with or without it).
 */
export async function recomputedGradients(
  model: LlamaModel,
  flat: FlatParams,
  params: mx.array[],
  shards: ShardArrays[],
  { streams, sparseHead, embedNoise = false, dropout, key, vocabChunk = VOCAB_CHUNK }:
    { streams: mx.Stream[]; sparseHead: boolean; embedNoise?: boolean; dropout: DropoutKeys | null; key?: mx.array; vocabChunk?: number },
): Promise<{ sums: mx.array[]; proseSums: mx.array[]; grads: mx.array[][] }> {
  const { embed, layers, norm, head } = pieces(model, flat);
  const L = layers.length;
  const layerKeys = dropout && key ? mx.random.split(key, L) : null; // [L, 2]
  const body = model.model;
  const onStreams = <T>(fn: (shard: ShardArrays, s: number) => T): T[] =>
    shards.map((shard, s) => {
      using _ = mx.stream(streams[s]!);
      return fn(shard, s);
    });
  /** `fn`'s output and its vjp over `primals` then the parameters `idx` (written into the model
   * while it traces). */
  const vjpWith = (idx: number[], primals: mx.array[], cotangents: mx.array[], fn: (...x: mx.array[]) => mx.array): [mx.array, mx.array[]] => {
    const [out, grads] = mx.vjp((...args: mx.array[]) => {
      writeSome(flat, idx, args.slice(primals.length));
      return fn(...args.slice(0, primals.length));
    }, [...primals, ...idx.map((i) => params[i]!)], cotangents);
    writeSome(flat, idx, idx.map((i) => params[i]!)); // tracing left placeholders: put the arrays back
    return [out[0]!, grads];
  };
  const grads: mx.array[][] = shards.map(() => params.map(() => null as unknown as mx.array));
  const add = (s: number, idx: number[], g: mx.array[]) => idx.forEach((i, j) => (grads[s]![i] = grads[s]![i] ? mx.add(grads[s]![i]!, g[j]!) : g[j]!));
  const setKey = (l: number) => {
    if (dropout && layerKeys) dropout.key = layerKeys.index(l);
  };

  // Forward: only each layer's input is kept.
  flat.write(params);
  const masks = onStreams((shard) => causalMask(shard[0]!.shape[1]!, 0));
  const embedded = (shard: ShardArrays) => {
    const e = body.embedTokens.forward(shard[0]!);
    return embedNoise ? mx.add(e, shard[1]!) : e; // NEFTune (lib/train/neftune.ts), as LlamaBody.forward adds it
  };
  const hs: mx.array[][] = [onStreams(embedded)]; // [layer][shard] → [B, T, D]
  mx.eval(...hs[0]!);
  for (let l = 0; l < L; l++) {
    setKey(l);
    hs.push(onStreams((_, s) => body.layers[l]!.forward(hs[l]![s]!, masks[s]!)));
    mx.eval(...hs[l + 1]!);
    await releaseMemory(); // eager ops leave their arrays to JavaScript's collector: free them now
  }

  // Head and loss, in chunks of supervised positions: dL/dh at the last layer, and the head's gradients.
  const heads = onStreams((shard, s) => {
    const [B, T, D] = hs[L]![s]!.shape as [number, number, number];
    const rest = shard.slice(embedNoise ? 2 : 1);
    const [positions, targets, prose, weights] = sparseHead
      ? (rest as [mx.array, mx.array, mx.array, mx.array])
      : [mx.arange(0, B * T, 1, mx.int32), ...rest.map((a) => a.reshape([-1]))] as [mx.array, mx.array, mx.array, mx.array];
    return { B, T, D, positions, targets, prose, weights, N: positions.shape[0]! };
  });
  const sums = shards.map(() => mx.array(0, mx.float32));
  const proseSums = shards.map(() => mx.array(0, mx.float32));
  let dh = onStreams((_, s) => mx.zerosLike(hs[L]![s]!));
  // One shard's chunk at a time (not side by side as the layers): the head's slices are the step's
  // largest arrays. Per chunk: the final norm's rows at its positions, the sliced cross-entropy and
  // its gradient wrt those rows and the head, then the rows' gradient pulled back through the norm.
  for (let c = 0; c < Math.max(...heads.map((x) => x.N)); c += HEAD_CHUNK) for (let s = 0; s < shards.length; s++) {
    {
      using _ = mx.stream(streams[s]!);
      const { B, T, D, positions, targets, prose, weights, N } = heads[s]!;
      if (c >= N) continue;
      const part = (a: mx.array) => a.index(mx.Slice(c, Math.min(N, c + HEAD_CHUNK)));
      const [pos, tgt, p, w] = [part(positions), part(targets), part(prose), part(weights)];
      const rowsOf = (hLast: mx.array) => mx.take(body.norm.forward(hLast).reshape([B * T, D]), pos, 0); // [n, D]
      const rows = rowsOf(hs[L]![s]!);
      mx.eval(rows);
      const { ce, grads: g } = await slicedCrossEntropy(model, rows, tgt, w, (fn, r, ct) => vjpWith(head, [r], [ct], fn)[1], { vocabChunk });
      add(s, head, g.slice(1));
      const [, gn] = vjpWith(norm, [hs[L]![s]!], [g[0]!], rowsOf);
      dh[s] = mx.add(dh[s]!, gn[0]!);
      add(s, norm, gn.slice(1));
      sums[s] = mx.add(sums[s]!, mx.sum(mx.multiply(ce, w)));
      proseSums[s] = mx.add(proseSums[s]!, mx.sum(mx.multiply(ce, p)));
    }
    mx.eval(dh[s]!, sums[s]!, proseSums[s]!, ...[...norm, ...head].map((i) => grads[s]![i]!));
    await releaseMemory();
  }

  // Layers, last to first: each recomputed from its input, then freed.
  for (let l = L - 1; l >= 0; l--) {
    setKey(l);
    dh = onStreams((_, s) => {
      const [, g] = vjpWith(layers[l]!, [hs[l]![s]!], [dh[s]!], (x) => body.layers[l]!.forward(x, masks[s]!));
      add(s, layers[l]!, g.slice(1));
      return g[0]!;
    });
    mx.eval(...dh, ...grads.flatMap((g) => layers[l]!.map((i) => g[i]!)));
    hs[l + 1] = []; // no longer needed
    await releaseMemory();
  }
  if (embed.length) {
    onStreams((shard, s) => add(s, embed, vjpWith(embed, [], [dh[s]!], () => body.embedTokens.forward(shard[0]!))[1]));
  }
  if (dropout) dropout.key = null;
  // a parameter no piece reads (none in a Llama model) has a zero gradient
  return { sums, proseSums, grads: grads.map((g) => g.map((x, i) => x ?? mx.zerosLike(params[i]!))) };
}

/** The final hidden states [B, T, D] (after the final norm) of `inputs`, forward only, one decoder
 * layer evaluated at a time with memory released in between: an eager forward pass otherwise holds
 * every layer's intermediates (and, quantized, every dequantized weight) until the collector runs.
 * The held-out evaluation of a gradient-checkpointed run uses it. */
export async function hiddenByLayer(model: LlamaModel, inputs: mx.array): Promise<mx.array> {
  const body = model.model;
  const mask = causalMask(inputs.shape[1]!, 0);
  let h = body.embedTokens.forward(inputs); // [B, T, D]
  mx.eval(h);
  for (const layer of body.layers) {
    h = layer.forward(h, mask);
    mx.eval(h);
    await releaseMemory();
  }
  return body.norm.forward(h);
}

/** Put `arrays` into the slots `idx` of `flat` (the others stay). */
function writeSome(flat: FlatParams, idx: number[], arrays: mx.array[]): void {
  idx.forEach((i, j) => {
    const slot = flat.slots[i]!;
    slot.owner[slot.key] = arrays[j];
  });
}
