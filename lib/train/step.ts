// The training step: masked loss, gradients, global-norm clipping and AdamW, compiled as one MLX
// graph over flat arrays (see autodiff.ts), with the memory policy applied after every step.
import { core as mx } from "@frost-beta/mlx";
import type { LlamaModel } from "../model/llama.ts";
import { maskedCrossEntropySum } from "../sft/loss.ts";
import { releaseMemory } from "../memory.ts";
import { compileFlat, FlatParams, flatValueAndGrad } from "./autodiff.ts";

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

/** Mean masked cross-entropy of the model on one batch (the training objective). */
export function batchLoss(model: LlamaModel, inputs: mx.array, targets: mx.array, mask: mx.array): mx.array {
  const [sum, ntoks] = maskedCrossEntropySum(model.forward(inputs), targets, mask);
  return mx.divide(sum, mx.maximum(ntoks, mx.array(1, mx.float32)));
}

/** Mean cross-entropy computed only at gathered positions: the output head and the softmax over
 * the vocabulary run on [N, D] rows instead of [B·T, D]. `positions` index the flattened [B·T]
 * batch; `weights` is 1 for real supervised positions and 0 for the padding that rounds N up. */
export function sparseBatchLoss(model: LlamaModel, inputs: mx.array, positions: mx.array, targets: mx.array, weights: mx.array): mx.array {
  const h = model.hidden(inputs); // [B, T, D]
  const [B, T, D] = h.shape;
  const rows = mx.take(h.reshape([B * T, D]), positions, 0); // [N, D]
  const n = positions.shape[0];
  const logits = model.head(rows).reshape([1, n, -1]); // [1, N, V]
  const [sum, ntoks] = maskedCrossEntropySum(logits, targets.reshape([1, n]), weights.reshape([1, n]));
  return mx.divide(sum, mx.maximum(ntoks, mx.array(1, mx.float32)));
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
 * the model in place and yields to the event loop so that memory stays flat. */
export class TrainStep {
  readonly flat: FlatParams;
  private m: mx.array[];
  private v: mx.array[];
  private t = 0;
  private readonly compiled: (...args: mx.array[]) => mx.array[];
  /** Run the head and loss only at supervised positions (worth it when many positions are masked). */
  readonly sparseHead: boolean;

  constructor(
    readonly model: LlamaModel,
    readonly opt: OptimizerConfig = defaultOptimizerConfig(),
    { compile = true, sparseHead = false }: { compile?: boolean; sparseHead?: boolean } = {},
  ) {
    this.sparseHead = sparseHead;
    this.flat = new FlatParams(model);
    const params = this.flat.read();
    this.m = params.map((p) => mx.zerosLike(p));
    this.v = params.map((p) => mx.zerosLike(p));
    const n = params.length;
    const decays = params.map((p) => p.ndim >= 2);
    const vg = flatValueAndGrad(this.flat, (...b) =>
      sparseHead ? sparseBatchLoss(model, b[0], b[1], b[2], b[3]) : batchLoss(model, b[0], b[1], b[2]),
    );
    const { beta1, beta2, eps, weightDecay, gradClip } = opt;

    // args: [...params, ...m, ...v, ...batch, lr, t] where batch is [inputs, targets, mask] or, with
    // sparseHead, [inputs, positions, targets, weights]; returns [loss, gradNorm, ...params', ...m', ...v']
    const update = (...args: mx.array[]): mx.array[] => {
      const p = args.slice(0, n);
      const m = args.slice(n, 2 * n);
      const v = args.slice(2 * n, 3 * n);
      const batch = args.slice(3 * n, args.length - 2);
      const [lr, t] = args.slice(args.length - 2);
      const [loss, grads] = vg(p, ...batch);
      const sq = grads.map((g) => mx.sum(mx.square(g)));
      const gradNorm = mx.sqrt(sq.reduce((a, b) => mx.add(a, b)));
      const scale = gradClip > 0 ? mx.minimum(mx.array(1, mx.float32), mx.divide(gradClip, mx.add(gradNorm, 1e-6))) : mx.array(1, mx.float32);
      const bc1 = mx.subtract(1, mx.power(mx.array(beta1, mx.float32), t));
      const bc2 = mx.subtract(1, mx.power(mx.array(beta2, mx.float32), t));
      const newP: mx.array[] = [];
      const newM: mx.array[] = [];
      const newV: mx.array[] = [];
      for (let i = 0; i < n; i++) {
        const g = mx.multiply(grads[i], scale);
        const mi = mx.add(mx.multiply(beta1, m[i]), mx.multiply(1 - beta1, g));
        const vi = mx.add(mx.multiply(beta2, v[i]), mx.multiply(1 - beta2, mx.square(g)));
        const stepDir = mx.divide(mx.divide(mi, bc1), mx.add(mx.sqrt(mx.divide(vi, bc2)), eps));
        let pi = decays[i] && weightDecay > 0 ? mx.multiply(p[i], mx.subtract(1, mx.multiply(lr, weightDecay))) : p[i];
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
    let arrays = [batch.inputs, batch.targets, batch.mask];
    if (this.sparseHead) {
      const g = gatherSupervised(batch);
      arrays = [batch.inputs, g.positions, g.targets, g.weights];
    }
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
