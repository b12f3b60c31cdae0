// The training step: masked loss, gradients, global-norm clipping and AdamW, compiled as one MLX
// graph over flat arrays (see autodiff.ts), with the memory policy applied after every step.
import { core as mx } from "@frost-beta/mlx";
import type { LlamaModel } from "../model/llama.ts";
import { maskedCrossEntropy, maskedCrossEntropySum } from "./loss.ts";
import { releaseMemory } from "../mlx/memory.ts";
import { balance, computeStreams, shardRanges, useBlasFor } from "../mlx/parallel.ts";
import { compileFlat, FlatParams, flatValueAndGrad } from "../mlx/autodiff.ts";

export interface OptimizerConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number; // decoupled (AdamW); applied to matrices only, never to norms or biases
  gradClip: number; // max global gradient norm; 0 disables clipping
}

export function defaultOptimizerConfig(): OptimizerConfig {
  return {
    beta1: 0.9,
    beta2: 0.95, // the usual choice for small language models (nanoGPT)
    eps: 1e-8,
    weightDecay: 0.1,
    gradClip: 1.0,
  };
}

/** A batch as the step consumes it: int32 [B, T] inputs/targets, float32 [B, T] target-aligned mask. */
export interface StepBatch {
  inputs: mx.array;
  targets: mx.array;
  mask: mx.array;
}

export interface StepResult {
  loss: number; // mean cross-entropy over supervised targets, nats/token
  gradNorm: number; // global norm before clipping
}

/** Sum of masked cross-entropy over a batch (the supervised-token count travels separately). */
export function batchLossSum(model: LlamaModel, inputs: mx.array, targets: mx.array, mask: mx.array): mx.array {
  return maskedCrossEntropySum(model.forward(inputs), targets, mask)[0];
}

/** Mean masked cross-entropy of the model on one batch (the training objective). */
export function batchLoss(model: LlamaModel, inputs: mx.array, targets: mx.array, mask: mx.array): mx.array {
  return maskedCrossEntropy(model.forward(inputs), targets, mask);
}

/** Sum of cross-entropy computed only at gathered positions: the output head and the softmax over
 * the vocabulary run on [N, D] rows instead of [B·T, D]. `positions` index the flattened [B·T]
 * batch; `weights` is 1 for real supervised positions and 0 for the padding that rounds N up. */
export function sparseBatchLossSum(model: LlamaModel, inputs: mx.array, positions: mx.array, targets: mx.array, weights: mx.array): mx.array {
  const h = model.hidden(inputs); // [B, T, D]
  const [B, T, D] = h.shape;
  const rows = mx.take(h.reshape([B * T, D]), positions, 0); // [N, D]
  const n = positions.shape[0];
  const logits = model.head(rows).reshape([1, n, -1]); // [1, N, V]
  return maskedCrossEntropySum(logits, targets.reshape([1, n]), weights.reshape([1, n]))[0];
}

/** Rows [start, end) of a batch. */
export function sliceRows(batch: StepBatch, [start, end]: [number, number]): StepBatch {
  const rows = (a: mx.array) => a.index(mx.Slice(start, end));
  return { inputs: rows(batch.inputs), targets: rows(batch.targets), mask: rows(batch.mask) };
}

/** A batch's rows split into at most `shards` shards, each as the arrays `shardLossSum` takes:
 * [inputs, targets, mask], or with `sparseHead` [inputs, positions, targets, weights]. The last
 * array is always the one whose sum is the shard's supervised-token count. */
export function shardArrays(batch: StepBatch, shards: number, sparseHead: boolean): mx.array[][] {
  return shardRanges(batch.inputs.shape[0], shards).map((range) => {
    const shard = sliceRows(batch, range);
    if (!sparseHead) return [shard.inputs, shard.targets, shard.mask];
    const g = gatherSupervised(shard);
    return [shard.inputs, g.positions, g.targets, g.weights];
  });
}

/** Sum of cross-entropy over one shard's arrays (see shardArrays). */
export function shardLossSum(model: LlamaModel, sparseHead: boolean, a: mx.array[]): mx.array {
  return sparseHead ? sparseBatchLossSum(model, a[0]!, a[1]!, a[2]!, a[3]!) : batchLossSum(model, a[0]!, a[1]!, a[2]!);
}

/** Sum of masked cross-entropy and the supervised-token count of a batch, its rows sharded over
 * the compute streams (forward only: evaluation). With `sparseHead`, the output head and the softmax
 * run only at supervised positions (the same sum, a fraction of the memory). */
export function shardedLossSum(model: LlamaModel, batch: StepBatch, { sparseHead = false }: { sparseHead?: boolean } = {}): { sum: number; ntoks: number } {
  const streams = computeStreams();
  useBlasFor(streams.length);
  const parts = shardArrays(batch, streams.length, sparseHead).map((a, i) => {
    using _ = mx.stream(streams[i]!);
    return shardLossSum(model, sparseHead, a);
  });
  const sum = parts.reduce((a, b) => mx.add(a, b));
  const ntoks = mx.sum(batch.mask);
  mx.eval(sum, ntoks);
  return { sum: sum.item() as number, ntoks: ntoks.item() as number };
}

const POSITION_MULTIPLE = 64; // gathered rows are padded to a multiple of this so compiled shapes repeat

/** The supervised positions of a batch, found on the host from its mask. */
export function gatherSupervised(batch: StepBatch): { positions: mx.array; targets: mx.array; weights: mx.array; ntoks: number } {
  const mask = batch.mask.tolist() as number[][];
  const targets = batch.targets.tolist() as number[][];
  const T = mask[0]?.length ?? 0;
  const pos: number[] = [];
  const tgt: number[] = [];
  mask.forEach((row, b) => row.forEach((w, t) => {
    if (w > 0) {
      pos.push(b * T + t);
      tgt.push(targets[b][t]);
    }
  }));
  const ntoks = pos.length;
  const padded = Math.max(POSITION_MULTIPLE, Math.ceil(ntoks / POSITION_MULTIPLE) * POSITION_MULTIPLE);
  const weights = Array.from({ length: padded }, (_, i) => (i < ntoks ? 1 : 0));
  while (pos.length < padded) {
    pos.push(0);
    tgt.push(0);
  }
  return { positions: mx.array(pos, mx.int32), targets: mx.array(tgt, mx.int32), weights: mx.array(weights, mx.float32), ntoks };
}

/** Build the compiled step for `model`. Call `step(batch, lr)` once per optimizer step; it updates
 * the model in place and yields to the event loop so that memory stays flat.
 *
 * The batch's rows are split into shards, one per compute stream (lib/mlx/parallel.ts): each shard's
 * forward and backward run on their own stream, its gradients of the loss SUM are added, and the
 * total is divided once by the batch's supervised-token count — the same gradient as the mean loss
 * of the whole batch. The optimizer update is spread over the streams by parameter size. */
export class TrainStep {
  readonly flat: FlatParams;
  private m: mx.array[];
  private v: mx.array[];
  private t = 0;
  private readonly compiled: (...args: mx.array[]) => mx.array[];
  private readonly streams: mx.Stream[];
  /** Run the head and loss only at supervised positions (worth it when many positions are masked). */
  readonly sparseHead: boolean;

  constructor(
    readonly model: LlamaModel,
    readonly opt: OptimizerConfig = defaultOptimizerConfig(),
    { compile = true, sparseHead = false, streams = computeStreams() }: { compile?: boolean; sparseHead?: boolean; streams?: mx.Stream[] } = {},
  ) {
    this.sparseHead = sparseHead;
    this.streams = streams;
    this.flat = new FlatParams(model);
    const params = this.flat.read();
    this.m = params.map((p) => mx.zerosLike(p));
    this.v = params.map((p) => mx.zerosLike(p));
    const n = params.length;
    const decays = params.map((p) => p.ndim >= 2);
    const home = balance(params.map((p) => p.size), streams.length).map((i) => streams[i]!); // each parameter's stream
    const perShard = sparseHead ? 4 : 3; // arrays per shard (see shardArrays)
    const vg = flatValueAndGrad(this.flat, (...a) => shardLossSum(model, sparseHead, a));
    const { beta1, beta2, eps, weightDecay, gradClip } = opt;

    // args: [...params, ...m, ...v, ...shard 0, ...shard 1, ..., lr, t];
    // returns [loss, gradNorm, ...params', ...m', ...v']
    const update = (...args: mx.array[]): mx.array[] => {
      const p = args.slice(0, n);
      const m = args.slice(n, 2 * n);
      const v = args.slice(2 * n, 3 * n);
      const shardArgs = args.slice(3 * n, args.length - 2);
      const [lr, t] = args.slice(args.length - 2) as [mx.array, mx.array];
      const sums: mx.array[] = [];
      const counts: mx.array[] = [];
      const shardGrads: mx.array[][] = [];
      for (let s = 0; s * perShard < shardArgs.length; s++) {
        using _ = mx.stream(streams[s]!);
        const b = shardArgs.slice(s * perShard, (s + 1) * perShard);
        const [sum, grads] = vg(p, ...b);
        sums.push(sum);
        counts.push(mx.sum(b[perShard - 1]!)); // the mask, or the weights
        shardGrads.push(grads);
      }
      const ntoks = mx.maximum(counts.reduce((a, b) => mx.add(a, b)), mx.array(1, mx.float32));
      const loss = mx.divide(sums.reduce((a, b) => mx.add(a, b)), ntoks);
      const grads = p.map((_, i) => {
        using _s = mx.stream(home[i]!);
        return mx.divide(shardGrads.map((g) => g[i]!).reduce((a, b) => mx.add(a, b)), ntoks);
      });
      const sq = grads.map((g, i) => {
        using _s = mx.stream(home[i]!);
        return mx.sum(mx.square(g));
      });
      const gradNorm = mx.sqrt(sq.reduce((a, b) => mx.add(a, b)));
      const scale = gradClip > 0 ? mx.minimum(mx.array(1, mx.float32), mx.divide(gradClip, mx.add(gradNorm, 1e-6))) : mx.array(1, mx.float32);
      const bc1 = mx.subtract(1, mx.power(mx.array(beta1, mx.float32), t));
      const bc2 = mx.subtract(1, mx.power(mx.array(beta2, mx.float32), t));
      const newP: mx.array[] = [];
      const newM: mx.array[] = [];
      const newV: mx.array[] = [];
      for (let i = 0; i < n; i++) {
        using _s = mx.stream(home[i]!);
        const g = mx.multiply(grads[i]!, scale);
        const mi = mx.add(mx.multiply(beta1, m[i]!), mx.multiply(1 - beta1, g));
        const vi = mx.add(mx.multiply(beta2, v[i]!), mx.multiply(1 - beta2, mx.square(g)));
        const stepDir = mx.divide(mx.divide(mi, bc1), mx.add(mx.sqrt(mx.divide(vi, bc2)), eps));
        let pi = decays[i] && weightDecay > 0 ? mx.multiply(p[i]!, mx.subtract(1, mx.multiply(lr, weightDecay))) : p[i]!;
        pi = mx.subtract(pi, mx.multiply(lr, stepDir));
        newP.push(pi);
        newM.push(mi);
        newV.push(vi);
      }
      return [loss, gradNorm, ...newP, ...newM, ...newV];
    };
    this.compiled = compile ? compileFlat(update) : update;
  }

  /** Number of optimizer steps taken. */
  get stepCount(): number {
    return this.t;
  }

  /** One optimizer step at learning rate `lr`. */
  async step(batch: StepBatch, lr: number): Promise<StepResult> {
    const n = this.flat.slots.length;
    this.t += 1;
    useBlasFor(this.streams.length);
    const arrays = shardArrays(batch, this.streams.length, this.sparseHead).flat();
    const out = this.compiled(
      ...this.flat.read(),
      ...this.m,
      ...this.v,
      ...arrays,
      mx.array(lr, mx.float32),
      mx.array(this.t, mx.float32),
    );
    const [loss, gradNorm] = out;
    const params = out.slice(2, 2 + n);
    this.m = out.slice(2 + n, 2 + 2 * n);
    this.v = out.slice(2 + 2 * n, 2 + 3 * n);
    this.flat.write(params);
    mx.eval(loss, gradNorm, ...params, ...this.m, ...this.v);
    const result = { loss: loss.item() as number, gradNorm: gradNorm.item() as number };
    await releaseMemory();
    return result;
  }

  /** Optimizer state for resuming: moments in parameter order, and the step count. */
  state(): { m: mx.array[]; v: mx.array[]; t: number } {
    return { m: this.m, v: this.v, t: this.t };
  }

  setState({ m, v, t }: { m: mx.array[]; v: mx.array[]; t: number }): void {
    this.m = m;
    this.v = v;
    this.t = t;
  }
}
