// AdamW with decoupled weight decay, applied one parameter at a time by a small compiled graph of its
// own, on the parameter's stream.
//
// Why not inside the compiled step with everything else: there, MLX's graph simplification merges
// equal ops across parameters, so one broadcast of the learning rate (and of each other scalar) to a
// shape fed every parameter of that shape; a node with consumers in several fused kernels is not fused,
// and each kernel then read the scalars as full-size broadcast views, which sends it down its strided,
// unvectorized path (lib/mlx/layout.ts). Compiled apart, each update is one kernel that takes the
// scalars as scalars. The same split lets the step hand the old weights and moments over to be
// overwritten in place (lib/train/step.ts).
import { core as mx } from "@frost-beta/mlx";
import { compileFlat } from "../mlx/autodiff.ts";

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

/** The step's scalars, 0-dim float32 arrays: learning rate, the factor from gradient sums to the
 * clipped gradient, bias corrections. */
export interface AdamWScalars {
  lr: mx.array;
  gradScale: mx.array; // min(1, gradClip / ‖g‖) / ntoks: the loss is a mean over ntoks targets
  bc1: mx.array; // 1 - beta1^t
  bc2: mx.array; // 1 - beta2^t
}

/** The bias corrections of step `t` (a 0-dim float32 array), computed in float32 as the update uses them. */
export function biasCorrections({ beta1, beta2 }: OptimizerConfig, t: mx.array): { bc1: mx.array; bc2: mx.array } {
  return {
    bc1: mx.subtract(1, mx.power(mx.array(beta1, mx.float32), t)),
    bc2: mx.subtract(1, mx.power(mx.array(beta2, mx.float32), t)),
  };
}

type Kernel = (...args: mx.array[]) => mx.array[];

/** The AdamW update of single parameters, as three compiled graphs of one output each — m', v', then
 * p' from them — per stream and per kind of parameter (decayed or not), each traced once per shape by
 * MLX. One output each, because MLX 0.13 writes a kernel's output into an input's memory only when
 * nothing else holds that input, and every output of a kernel with several holds all its inputs: so
 * m', v' and p' overwrite m, v and p in place (when the step has let go of them), where one fused
 * kernel of three outputs needed three new arrays per parameter (+7.2 GB for 0.6B parameters). */
export class AdamW {
  private readonly kernels = new Map<mx.Stream, Map<boolean, { m: Kernel; v: Kernel; p: Kernel }>>();

  constructor(
    readonly opt: OptimizerConfig,
    private readonly compile = true,
  ) {}

  /** [p', m', v'] of parameter `p` with moments `m`, `v` and gradient sum `gradSum` (scaled here to
   * the clipped gradient of the mean loss), queued on `stream`. Matrices (2-D and up) decay; norms and
   * biases do not.
   *
   * The gradient is gradSum · gradScale, one scalar: MLX fuses a chain of at most 11 ops into one
   * kernel, and dividing by the token count and then clipping made the chain from that broadcast to
   * the new weight 12 long, so the count came in as a full-size view and the kernel ran strided. */
  update(p: mx.array, m: mx.array, v: mx.array, gradSum: mx.array, s: AdamWScalars, stream: mx.Stream): mx.array[] {
    using _ = mx.stream(stream);
    const k = this.kernelsFor(stream, p.ndim >= 2 && this.opt.weightDecay > 0);
    const [m1] = k.m(m, gradSum, s.gradScale) as [mx.array];
    const [v1] = k.v(v, gradSum, s.gradScale) as [mx.array];
    const [p1] = k.p(p, m1, v1, s.lr, s.bc1, s.bc2) as [mx.array];
    return [p1, m1, v1];
  }

  private kernelsFor(stream: mx.Stream, decays: boolean): { m: Kernel; v: Kernel; p: Kernel } {
    let byKind = this.kernels.get(stream);
    if (!byKind) this.kernels.set(stream, (byKind = new Map()));
    let k = byKind.get(decays);
    if (!k) {
      const { beta1, beta2, eps, weightDecay } = this.opt;
      const made = {
        m: (m, gradSum, gradScale) => [mx.add(mx.multiply(beta1, m!), mx.multiply(1 - beta1, mx.multiply(gradSum!, gradScale!)))],
        v: (v, gradSum, gradScale) => [mx.add(mx.multiply(beta2, v!), mx.multiply(1 - beta2, mx.square(mx.multiply(gradSum!, gradScale!))))],
        p: (p, m, v, lr, bc1, bc2) => {
          const stepDir = mx.divide(mx.divide(m!, bc1!), mx.add(mx.sqrt(mx.divide(v!, bc2!)), eps));
          const decayed = decays ? mx.multiply(p!, mx.subtract(1, mx.multiply(lr!, weightDecay))) : p!;
          return [mx.subtract(decayed, mx.multiply(lr!, stepDir))];
        },
      } satisfies Record<string, Kernel>;
      k = this.compile ? { m: compileFlat(made.m), v: compileFlat(made.v), p: compileFlat(made.p) } : made;
      byKind.set(decays, k);
    }
    return k;
  }
}
