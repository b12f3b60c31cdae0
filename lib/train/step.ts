// The training step: masked loss, gradients and global-norm clipping compiled as one MLX graph over
// flat arrays (see autodiff.ts), then AdamW one parameter at a time (adamw.ts), with the memory policy
// applied around every step.
import { core as mx } from "@frost-beta/mlx";
import { Linear, type LlamaModel } from "../model/llama.ts";
import { maskedCrossEntropy, tokenCrossEntropy } from "./loss.ts";
import { releaseMemory, releaseMemoryNow } from "../mlx/memory.ts";
import { balance, computeStreams, shardRanges, useBlasFor } from "../mlx/parallel.ts";
import { compileFlat, FlatParams, flatValueAndGrad, flattenParams } from "../mlx/autodiff.ts";
import { columnMajor, zerosColumnMajor } from "../mlx/layout.ts";
import { assertCpuPrecision } from "../mlx/precision.ts";
import { dropoutKeysOf, LoRALinear, type DropoutKeys } from "../model/lora.ts";
import { recomputedGradients } from "./recompute.ts";
import { AdamW, biasCorrections, defaultOptimizerConfig, type OptimizerConfig } from "./adamw.ts";

export { defaultOptimizerConfig, type OptimizerConfig };

/** Whether `owner[key]` is a matrix the forward pass multiplies transposed (x·Wᵀ): MLX's autodiff
 * returns its gradient column-major, so the step holds it in that layout (lib/mlx/layout.ts). Getting
 * one wrong changes no value, only the speed of its update. */
function usedTransposed(owner: unknown, key: string): boolean {
  return (owner instanceof Linear && key === "weight") || (owner instanceof LoRALinear && (key === "loraA" || key === "loraB"));
}

/** A batch as the step consumes it: int32 [B, T] inputs/targets, float32 [B, T] target-aligned mask. */
export interface StepBatch {
  inputs: mx.array;
  targets: mx.array;
  mask: mx.array;
  /** [B, T] float32: the part of `mask` on replay rows (plain-text windows, lib/data/replay.ts). They
   * train like every other row; their loss is also summed apart, for the log. Absent: none. */
  prose?: mx.array;
  /** [B, T, D] float32 added to the input embeddings: NEFTune (lib/train/neftune.ts), training only. */
  noise?: mx.array;
}

export interface StepResult {
  loss: number; // mean cross-entropy over all supervised targets (replay rows included), nats/token
  gradNorm: number; // global norm before clipping
  proseSum: number; // cross-entropy summed over the replay rows' targets (0 without replay), nats
}

/** Mean masked cross-entropy of the model on one batch (the training objective). */
export function batchLoss(model: LlamaModel, inputs: mx.array, targets: mx.array, mask: mx.array): mx.array {
  return maskedCrossEntropy(model.forward(inputs), targets, mask);
}

/** Rows [start, end) of a batch. */
export function sliceRows(batch: StepBatch, [start, end]: [number, number]): StepBatch {
  const rows = (a: mx.array) => a.index(mx.Slice(start, end));
  const out: StepBatch = { inputs: rows(batch.inputs), targets: rows(batch.targets), mask: rows(batch.mask) };
  if (batch.prose) out.prose = rows(batch.prose);
  if (batch.noise) out.noise = rows(batch.noise);
  return out;
}

/** A batch's rows split into at most `shards` shards, each as the arrays `shardLossSums` takes:
 * [inputs, (noise,) targets, prose, mask], or with `sparseHead` [inputs, (noise,) positions,
 * targets, prose, weights]. The last array is always the one whose sum is the shard's
 * supervised-token count; `prose` is zeros when the batch has no replay rows. */
export function shardArrays(batch: StepBatch, shards: number, sparseHead: boolean): mx.array[][] {
  return shardRanges(batch.inputs.shape[0], shards).map((range) => {
    const shard = sliceRows(batch, range);
    const first = shard.noise ? [shard.inputs, shard.noise] : [shard.inputs];
    if (!sparseHead) return [...first, shard.targets, shard.prose ?? mx.zerosLike(shard.mask), shard.mask];
    const g = gatherSupervised(shard);
    return [...first, g.positions, g.targets, g.prose, g.weights];
  });
}

/** Cross-entropy sums over one shard's arrays (see shardArrays): [every supervised target, the
 * replay rows' targets]. The first is the training objective; the second rides along for the log.
 * With `sparseHead` the output head and the softmax run only at the gathered positions ([N, D]
 * rows instead of [B·T, D]); `weights` is 0 for the padding that rounds N up. */
export function shardLossSums(model: LlamaModel, sparseHead: boolean, noise: boolean, a: mx.array[]): [mx.array, mx.array] {
  const [inputs, ...rest] = a as [mx.array, ...mx.array[]];
  const embedNoise = noise ? rest.shift() : undefined;
  let ce: mx.array; // per-target cross-entropy, [B, T] or [N]
  if (sparseHead) {
    const [positions, targets] = rest as [mx.array, mx.array];
    const h = model.hidden(inputs, undefined, embedNoise); // [B, T, D]
    const [B, T, D] = h.shape;
    const n = positions.shape[0];
    const rows = mx.take(h.reshape([B * T, D]), positions, 0); // [N, D]
    ce = tokenCrossEntropy(model.head(rows).reshape([1, n, -1]), targets.reshape([1, n])).reshape([n]); // [N]
  } else {
    const logits = embedNoise ? model.head(model.hidden(inputs, undefined, embedNoise)) : model.forward(inputs); // [B, T, V]
    ce = tokenCrossEntropy(logits, rest[0]!); // [B, T]
  }
  const [prose, weights] = rest.slice(-2) as [mx.array, mx.array];
  return [mx.sum(mx.multiply(ce, weights)), mx.sum(mx.multiply(ce, prose))];
}

const POSITION_MULTIPLE = 64; // gathered rows are padded to a multiple of this so compiled shapes repeat

/** The supervised positions of a batch, found on the host from its mask, with the replay rows'
 * share of each (`prose`, 0 or 1). */
export function gatherSupervised(batch: StepBatch): { positions: mx.array; targets: mx.array; prose: mx.array; weights: mx.array; ntoks: number } {
  const mask = batch.mask.tolist() as number[][];
  const targets = batch.targets.tolist() as number[][];
  const proseMask = batch.prose ? (batch.prose.tolist() as number[][]) : null;
  const T = mask[0]?.length ?? 0;
  const pos: number[] = [];
  const tgt: number[] = [];
  const prose: number[] = [];
  mask.forEach((row, b) => row.forEach((w, t) => {
    if (w > 0) {
      pos.push(b * T + t);
      tgt.push(targets[b][t]);
      prose.push(proseMask ? proseMask[b]![t]! : 0);
    }
  }));
  const ntoks = pos.length;
  const padded = Math.max(POSITION_MULTIPLE, Math.ceil(ntoks / POSITION_MULTIPLE) * POSITION_MULTIPLE);
  const weights = Array.from({ length: padded }, (_, i) => (i < ntoks ? 1 : 0));
  while (pos.length < padded) {
    pos.push(0);
    tgt.push(0);
    prose.push(0);
  }
  return { positions: mx.array(pos, mx.int32), targets: mx.array(tgt, mx.int32), prose: mx.array(prose, mx.float32), weights: mx.array(weights, mx.float32), ntoks };
}

/** Build the compiled step for `model`. Call `step(batch, lr)` once per optimizer step; it updates
 * the model in place and yields to the event loop so that memory stays flat.
 *
 * The batch's rows are split into shards, one per compute stream (lib/mlx/parallel.ts): each shard's
 * forward and backward run on their own stream, its gradients of the loss SUM are added, and the
 * total is divided once by the batch's supervised-token count — the same gradient as the mean loss
 * of the whole batch. The AdamW updates are spread over the streams by parameter size.
 *
 * Matrices used transposed (every `Linear`'s weight, LoRA's A and B) are held column-major while
 * training: MLX's autodiff returns their gradients in that layout, and their update runs vectorized
 * only when the weight and its moments match it (lib/mlx/layout.ts). Arrays put into the model from
 * outside (a checkpoint, the best weights) are converted at the next step; no value changes.
 *
 * `step([b1, ..., bk], lr)` accumulates: each micro-batch's gradient sums are computed (and
 * evaluated, so only one micro-batch's activations live at a time), added, and divided once by the
 * supervised tokens of all k together: the gradient of one batch holding their rows.
 *
 * With `recompute` (gradient checkpointing, lib/train/recompute.ts) each batch's gradients come from
 * the piecewise recomputation instead, uncompiled; the norm and the update stay compiled.
 *
 * Only the model's trainable parameters are updated (all of them, or a LoRA adapter). When LoRA
 * layers use dropout, each call gets a fresh PRNG key as an input: a compiled graph would otherwise
 * replay the mask it was traced with. */
export class TrainStep {
  readonly flat: FlatParams;
  private m: mx.array[];
  private v: mx.array[];
  private t = 0;
  private readonly fused: (...args: mx.array[]) => mx.array[]; // one batch: the update's scalars and gradient sums
  private readonly micro: (...args: mx.array[]) => mx.array[]; // a micro-batch's loss sum, count, gradient sums
  private readonly apply: (...args: mx.array[]) => mx.array[]; // the update's scalars from summed gradients
  private readonly forwardSum: (...args: mx.array[]) => mx.array[]; // a batch's loss sum, forward only (lossSum)
  private readonly adamw: AdamW;
  private readonly colMajor: boolean[]; // held column-major: the layout its gradient comes in
  private written: mx.array[] = []; // the arrays the last step put into the model
  private readonly streams: mx.Stream[];
  private readonly dropout: DropoutKeys | null;
  private readonly seed: number;
  private readonly recompute: boolean;
  private readonly vocabChunk?: number; // recompute's vocabulary slice (lib/train/head-loss.ts); tests set a small one
  private readonly home: mx.Stream[]; // each parameter's stream
  /** Run the head and loss only at supervised positions (worth it when many positions are masked). */
  readonly sparseHead: boolean;
  /** Every batch carries `noise` for the input embeddings (NEFTune); fixed per step, as it sets the arity. */
  readonly embedNoise: boolean;

  constructor(
    readonly model: LlamaModel,
    readonly opt: OptimizerConfig = defaultOptimizerConfig(),
    { compile = true, sparseHead = false, embedNoise = false, streams = computeStreams(), seed = 0, recompute = false, vocabChunk }:
      { compile?: boolean; sparseHead?: boolean; embedNoise?: boolean; streams?: mx.Stream[]; seed?: number; recompute?: boolean; vocabChunk?: number } = {},
  ) {
    assertCpuPrecision(flattenParams(model.parameters()), "the model to train");
    this.sparseHead = sparseHead;
    this.embedNoise = embedNoise;
    this.streams = streams;
    this.seed = seed;
    this.recompute = recompute;
    this.vocabChunk = vocabChunk;
    this.flat = new FlatParams(model);
    if (this.flat.slots.length === 0) throw new Error("TrainStep: the model has no trainable parameters (everything is frozen)");
    this.colMajor = this.flat.slots.map((s) => usedTransposed(s.owner, s.key));
    const params = this.flat.read();
    this.m = params.map((p, i) => this.zeros(p, i));
    this.v = params.map((p, i) => this.zeros(p, i));
    this.adamw = new AdamW(opt, compile);
    const n = params.length;
    const home = (this.home = balance(params.map((p) => p.size), streams.length).map((i) => streams[i]!)); // each parameter's stream
    const arity = sparseHead ? 5 : 4; // arrays per shard without noise (see shardArrays)
    const perShard = arity + (embedNoise ? 1 : 0); // arrays per shard of a training batch
    const vg = flatValueAndGrad(this.flat, (...a) => shardLossSums(model, sparseHead, embedNoise, a));
    const { gradClip } = opt;
    const dropout = (this.dropout = dropoutKeysOf(model));

    /** Loss sums (all targets, replay rows'), supervised-token count and gradient sums (not yet
     * divided) over the shards. */
    const gradients = (p: mx.array[], shardArgs: mx.array[]) => {
      const sums: mx.array[] = [];
      const proseSums: mx.array[] = [];
      const counts: mx.array[] = [];
      const shardGrads: mx.array[][] = [];
      for (let s = 0; s * perShard < shardArgs.length; s++) {
        using _ = mx.stream(streams[s]!);
        const b = shardArgs.slice(s * perShard, (s + 1) * perShard);
        const [[sum, proseSum], grads] = vg(p, ...b);
        sums.push(sum);
        proseSums.push(proseSum);
        counts.push(mx.sum(b[perShard - 1]!)); // the mask, or the weights
        shardGrads.push(grads);
      }
      const grads = p.map((_, i) => {
        using _s = mx.stream(home[i]!);
        return shardGrads.map((g) => g[i]!).reduce((a, b) => mx.add(a, b));
      });
      const total = (xs: mx.array[]) => xs.reduce((a, b) => mx.add(a, b));
      return { sum: total(sums), proseSum: total(proseSums), count: total(counts), grads };
    };

    /** The loss, the gradient norm and the update's scalars from the gradient sums: [loss, gradNorm,
     * proseSum, gradScale, bc1, bc2] (gradScale = clip / ntoks: adamw.ts). */
    const scalars = (gradSums: mx.array[], sum: mx.array, proseSum: mx.array, count: mx.array, t: mx.array): mx.array[] => {
      const ntoks = mx.maximum(count, mx.array(1, mx.float32));
      const loss = mx.divide(sum, ntoks);
      const sq = gradSums.map((g, i) => {
        using _s = mx.stream(home[i]!);
        return mx.sum(mx.square(g));
      });
      // ‖sum / ntoks‖ as ‖sum‖ / ntoks: dividing each element here would share one broadcast of ntoks
      // between the kernels of all parameters of a shape (see adamw.ts). Added from the last parameter
      // back: MLX evaluates arrays in the order it meets them walking back from the outputs, so each
      // layer's shard gradients are added (in place) as soon as the backward pass has made them, rather
      // than every shard's whole set of gradients living until the end (2.4 GB each at 0.6B parameters).
      const gradNorm = mx.divide(mx.sqrt(sq.reduceRight((a, b) => mx.add(a, b))), ntoks);
      const scale = gradClip > 0 ? mx.minimum(mx.array(1, mx.float32), mx.divide(gradClip, mx.add(gradNorm, 1e-6))) : mx.array(1, mx.float32);
      const { bc1, bc2 } = biasCorrections(opt, t);
      return [loss, gradNorm, proseSum, mx.divide(scale, ntoks), bc1, bc2];
    };

    /** With dropout, the last argument is the PRNG key the LoRA layers draw from while `fn` traces. */
    const keyed = (fn: (args: mx.array[]) => mx.array[]) => (...args: mx.array[]): mx.array[] => {
      if (!dropout) return fn(args);
      dropout.key = args.at(-1)!;
      try {
        return fn(args.slice(0, -1));
      } finally {
        dropout.key = null;
      }
    };
    // [...params, ...shard 0, ...shard 1, ..., t] → [...scalars, ...gradient sums]
    const fused = keyed((args) => {
      const g = gradients(args.slice(0, n), args.slice(n, args.length - 1));
      return [...scalars(g.grads, g.sum, g.proseSum, g.count, args[args.length - 1]!), ...g.grads];
    });
    // [...params, ...shards] → [sum, proseSum, count, ...gradient sums]
    const micro = keyed((args) => {
      const g = gradients(args.slice(0, n), args.slice(n));
      return [g.sum, g.proseSum, g.count, ...g.grads];
    });
    // [...gradient sums, sum, proseSum, count, t] → scalars
    const apply = (...args: mx.array[]) => {
      const [sum, proseSum, count, t] = args.slice(n) as [mx.array, mx.array, mx.array, mx.array];
      return scalars(args.slice(0, n), sum, proseSum, count, t);
    };
    // [...params, ...shards] → [sum]: the parameters go in as inputs, so one trace serves every step's
    // weights; during the trace the model holds them, and its own arrays are put back after.
    const forwardSum = (...args: mx.array[]) => {
      const held = this.flat.read();
      this.flat.write(args.slice(0, n));
      try {
        const sums = streams.slice(0, (args.length - n) / arity).map((stream, s) => {
          using _ = mx.stream(stream);
          return shardLossSums(model, sparseHead, false, args.slice(n + s * arity, n + (s + 1) * arity))[0];
        });
        return [sums.reduce((a, b) => mx.add(a, b))];
      } finally {
        this.flat.write(held);
      }
    };
    this.fused = compile ? compileFlat(fused) : fused;
    this.forwardSum = compile ? compileFlat(forwardSum) : forwardSum;
    this.micro = compile ? compileFlat(micro) : micro;
    this.apply = compile ? compileFlat(apply) : apply;
  }

  /** Number of optimizer steps taken. */
  get stepCount(): number {
    return this.t;
  }

  /** One optimizer step at learning rate `lr`, on one batch or on micro-batches accumulated. */
  async step(batch: StepBatch | StepBatch[], lr: number): Promise<StepResult> {
    const batches = Array.isArray(batch) ? batch : [batch];
    if (batches.length === 0) throw new Error("TrainStep.step: no batch");
    this.t += 1;
    for (const b of batches) {
      if (this.embedNoise !== (b.noise !== undefined)) {
        throw new Error(`TrainStep was built ${this.embedNoise ? "with" : "without"} embedding noise, but the batch ${b.noise ? "has" : "has no"} \`noise\``);
      }
    }
    useBlasFor(this.streams.length);
    let pending: { params: mx.array[]; out: mx.array[] } | null = await this.gradientSums(batches);
    const { loss, gradNorm, proseSum } = this.queueUpdate(pending, lr);
    // The old weights, moments and gradients are now referenced only by the queued graph; freeing
    // their JavaScript handles first lets MLX overwrite them in place instead of allocating new ones.
    pending = null;
    await releaseMemoryNow();
    mx.eval(loss, gradNorm, proseSum, ...this.written, ...this.m, ...this.v);
    return { loss: loss.item() as number, gradNorm: gradNorm.item() as number, proseSum: proseSum.item() as number };
  }

  /** Sum of the masked cross-entropy over every supervised target of `batch` under the current
   * weights, forward only (held-out evaluation; the model in eval mode, no `noise`): the same shards,
   * streams and head as the step. Compiled, so MLX frees each intermediate as soon as the graph has
   * used it; run eagerly, every one stayed alive through its JavaScript handle until the next
   * collection: 176 MB for one 8 × 112 batch of the bundled base, which raised the resident set of a
   * training run by ~80 MB for good at its first evaluation after step 0. */
  lossSum(batch: StepBatch): number {
    if (batch.noise) throw new Error("TrainStep.lossSum: evaluation takes no embedding `noise`");
    useBlasFor(this.streams.length);
    const shards = shardArrays(batch, this.streams.length, this.sparseHead).flat();
    const [sum] = this.forwardSum(...this.flat.read(), ...shards) as [mx.array];
    mx.eval(sum);
    return sum.item() as number;
  }

  /** The parameters in their training layout, and [...the update's scalars, ...gradient sums] (queued). */
  private async gradientSums(batches: StepBatch[]): Promise<{ params: mx.array[]; out: mx.array[] }> {
    const params = this.flat.read().map((p, i) => (this.colMajor[i] && p !== this.written[i] ? columnMajor(p) : p));
    const t = mx.array(this.t, mx.float32);
    if (batches.length === 1 && !this.recompute) return { params, out: this.fused(...params, ...this.arrays(batches[0]!), t, ...this.key(0)) };
    let acc: mx.array[] = [];
    for (const [j, b] of batches.entries()) {
      const g = this.recompute ? await this.recomputed(params, b, j) : this.micro(...params, ...this.arrays(b), ...this.key(j));
      acc = j === 0 ? g : acc.map((a, i) => mx.add(a, g[i]!)); // [sum, proseSum, count, ...gradient sums]
      mx.eval(...acc);
      if (j + 1 < batches.length) await releaseMemory(); // this micro-batch's activations go before the next
    }
    const gradSums = acc.slice(3);
    return { params, out: [...this.apply(...gradSums, acc[0]!, acc[1]!, acc[2]!, t), ...gradSums] };
  }

  /** Queue each parameter's AdamW update and put the new weights and moments in place of the old. */
  private queueUpdate({ params, out }: { params: mx.array[]; out: mx.array[] }, lr: number): { loss: mx.array; gradNorm: mx.array; proseSum: mx.array } {
    const [loss, gradNorm, proseSum, gradScale, bc1, bc2] = out as [mx.array, mx.array, mx.array, mx.array, mx.array, mx.array];
    const s = { lr: mx.array(lr, mx.float32), gradScale, bc1, bc2 };
    const updated = params.map((p, i) => this.adamw.update(p, this.m[i]!, this.v[i]!, out[6 + i]!, s, this.home[i]!));
    this.written = updated.map((u) => u[0]!);
    this.m = updated.map((u) => u[1]!);
    this.v = updated.map((u) => u[2]!);
    this.flat.write(this.written);
    return { loss, gradNorm, proseSum };
  }

  /** Zero moments for parameter `i`, in its training layout. */
  private zeros(p: mx.array, i: number): mx.array {
    return this.colMajor[i] ? zerosColumnMajor(p.shape, p.dtype) : mx.zerosLike(p);
  }

  /** What `micro` computes ([sum, proseSum, count, ...gradient sums]), by recomputation (lib/train/recompute.ts). */
  private async recomputed(params: mx.array[], batch: StepBatch, j: number): Promise<mx.array[]> {
    const shards = shardArrays(batch, this.streams.length, this.sparseHead);
    const { sums, proseSums, grads } = await recomputedGradients(this.model, this.flat, params, shards, {
      streams: this.streams, sparseHead: this.sparseHead, embedNoise: this.embedNoise, dropout: this.dropout, key: this.key(j)[0], vocabChunk: this.vocabChunk,
    });
    const count = shards.map((a) => mx.sum(a.at(-1)!)).reduce((a, b) => mx.add(a, b)); // the mask, or the weights
    const gradSums = params.map((_, i) => {
      using _s = mx.stream(this.home[i]!);
      return grads.map((g) => g[i]!).reduce((a, b) => mx.add(a, b));
    });
    const total = (xs: mx.array[]) => xs.reduce((a, b) => mx.add(a, b));
    return [total(sums), total(proseSums), count, ...gradSums];
  }

  private arrays(batch: StepBatch): mx.array[] {
    return shardArrays(batch, this.streams.length, this.sparseHead).flat();
  }

  /** The dropout key of micro-batch `j` of this step (none without dropout): a function of the seed
   * and the step, so a resumed run draws the masks an uninterrupted one would have. */
  private key(j: number): mx.array[] {
    return this.dropout ? [mx.random.key(this.seed * 1_000_000 + this.t * 64 + j)] : [];
  }

  /** Optimizer state for resuming: moments in parameter order, and the step count. */
  state(): { m: mx.array[]; v: mx.array[]; t: number } {
    return { m: this.m, v: this.v, t: this.t };
  }

  setState({ m, v, t }: { m: mx.array[]; v: mx.array[]; t: number }): void {
    const layout = (a: mx.array, i: number) => (this.colMajor[i] ? columnMajor(a) : a);
    this.m = m.map(layout);
    this.v = v.map(layout);
    this.t = t;
  }
}
