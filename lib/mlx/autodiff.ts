// The one place where the project crosses the native boundary for differentiation and compilation.
//
// Under Bun, @frost-beta/mlx 0.0.7 walks JavaScript *objects* in native code in an order that can
// change between flattening a tree and rebuilding it when the garbage collector runs in between:
// `mx.valueAndGrad` over an object of parameters returned gradients under the wrong keys in ~5% of
// calls, and `mx.compile` mislabelled its outputs likewise (../shared/bench/peers). Plain arrays are
// walked by index and were never mislabelled. So here parameters cross the boundary only as a flat
// array in a fixed, recorded order, and trees are rebuilt in JavaScript. Nothing else in the project
// calls `nn.valueAndGrad`, `mx.valueAndGrad`, `mx.grad` or `mx.compile`.
import { core as mx, nn } from "@frost-beta/mlx";

/** Flatten a parameter tree in JavaScript (never in native code: see above). */
export function flattenParams(tree: unknown, prefix = ""): [string, mx.array][] {
  if (tree instanceof mx.array) return [[prefix, tree]];
  const out: [string, mx.array][] = [];
  const entries = Array.isArray(tree) ? tree.map((v, i) => [String(i), v] as const) : Object.entries(tree as object);
  for (const [k, v] of entries) out.push(...flattenParams(v, prefix ? `${prefix}.${k}` : k));
  return out;
}

/** A parameter's place in a module tree: set with `owner[key] = array`, no tree walk per step. */
interface ParamSlot {
  path: string; // e.g. "model.layers.0.selfAttn.qProj.weight"
  owner: Record<string, unknown>;
  key: string;
}

/** The parameters of a model as a flat, ordered list, with O(1) read and write of each. */
export class FlatParams {
  readonly slots: ParamSlot[];

  constructor(model: nn.Module) {
    this.slots = flattenParams(model.trainableParameters()).map(([path]) => {
      const parts = path.split(".");
      let owner: any = model;
      for (const p of parts.slice(0, -1)) owner = owner[p];
      return { path, owner, key: parts[parts.length - 1] };
    });
  }

  get paths(): string[] {
    return this.slots.map((s) => s.path);
  }

  /** The current arrays, in slot order. */
  read(): mx.array[] {
    return this.slots.map((s) => s.owner[s.key] as mx.array);
  }

  /** Put arrays (in slot order) into the model. */
  write(arrays: mx.array[]): void {
    if (arrays.length !== this.slots.length) {
      throw new Error(`FlatParams.write: got ${arrays.length} arrays for ${this.slots.length} parameters`);
    }
    this.slots.forEach((s, i) => {
      s.owner[s.key] = arrays[i];
    });
  }
}

/** `valueAndGrad` of `loss(...inputs)` with respect to the model's trainable parameters, where
 * parameters and gradients cross the native boundary as flat arrays only. A loss returning a list
 * of arrays is differentiated through its first; the others come back as values (auxiliary sums). */
export function flatValueAndGrad<V extends mx.array | mx.array[]>(
  flat: FlatParams,
  loss: (...inputs: mx.array[]) => V,
): (params: mx.array[], ...inputs: mx.array[]) => [V, mx.array[]] {
  const inner = (params: mx.array[], ...inputs: mx.array[]) => {
    flat.write(params);
    return loss(...inputs);
  };
  const vg = mx.valueAndGrad(inner, 0);
  return (params, ...inputs) => {
    const [value, grads] = vg(params, ...inputs) as unknown as [V, mx.array[]];
    if (!Array.isArray(grads) || grads.length !== params.length) {
      throw new Error(`flatValueAndGrad: expected ${params.length} gradients, got ${describe(grads)}`);
    }
    return [value, grads];
  };
}

/** `mx.compile` of a function from a flat list of arrays to a flat list of arrays. The compiled
 * function can be collected with whatever `fn` reaches, even when that holds the compiled function
 * itself (a decoder's step reads its own fields): see `reachedWeakly`. */
export function compileFlat(fn: (...args: mx.array[]) => mx.array[]): (...args: mx.array[]) => mx.array[] {
  const compiled = mx.compile(reachedWeakly(fn));
  const run = (...args: mx.array[]) => {
    const out = compiled(...args) as unknown as mx.array[];
    if (!Array.isArray(out)) throw new Error(`compileFlat: expected an array of outputs, got ${describe(out)}`);
    return out;
  };
  return Object.assign(run, { source: fn }); // holds fn, in JavaScript, for as long as `run` lives: reachedWeakly finds it
}

function describe(x: unknown): string {
  return Array.isArray(x) ? `an array of ${x.length}` : typeof x;
}

/** `fn` behind a weak reference, for handing to native code. The binding holds a function it
 * compiles with a strong reference from native code, which the collector cannot see through: when
 * `fn` reaches the compiled function back (an object holding its own compiled step), the pair was
 * never freed, nor the model it decodes (a CompiledDecoder kept every model it had decoded alive).
 * The caller keeps `fn` alive in JavaScript instead, where such a cycle is collected. Declared at the
 * top level so that the closure captures nothing but the reference. */
function reachedWeakly<F extends (...args: any[]) => any>(fn: F): F {
  const ref = new WeakRef(fn);
  return ((...args: Parameters<F>) => {
    const f = ref.deref();
    if (!f) throw new Error("a compiled function outlived the function it compiles: keep the latter alive (compileFlat does)");
    return f(...args);
  }) as F;
}

