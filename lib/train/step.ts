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

/** Build the compiled step for `model`. Call `step(batch, lr)` once per optimizer step; it updates
 * the model in place and yields to the event loop so that memory stays flat. */
export class TrainStep {
  readonly flat: FlatParams;
  private m: mx.array[];
  private v: mx.array[];
  private t = 0;
  private readonly compiled: (...args: mx.array[]) => mx.array[];

  constructor(
    readonly model: LlamaModel,
    readonly opt: OptimizerConfig = defaultOptimizerConfig(),
    { compile = true }: { compile?: boolean } = {},
  ) {
    this.flat = new FlatParams(model);
    const params = this.flat.read();
    this.m = params.map((p) => mx.zerosLike(p));
    this.v = params.map((p) => mx.zerosLike(p));
    const n = params.length;
    const decays = params.map((p) => p.ndim >= 2);
    const vg = flatValueAndGrad(this.flat, (inputs, targets, mask) => batchLoss(model, inputs, targets, mask));
    const { beta1, beta2, eps, weightDecay, gradClip } = opt;

    // args: [...params, ...m, ...v, inputs, targets, mask, lr, t]; returns [loss, gradNorm, ...params', ...m', ...v']
    const update = (...args: mx.array[]): mx.array[] => {
      const p = args.slice(0, n);
      const m = args.slice(n, 2 * n);
      const v = args.slice(2 * n, 3 * n);
      const [inputs, targets, mask, lr, t] = args.slice(3 * n);
      const [loss, grads] = vg(p, inputs, targets, mask);
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
    const out = this.compiled(
      ...this.flat.read(),
      ...this.m,
      ...this.v,
      batch.inputs,
      batch.targets,
      batch.mask,
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
