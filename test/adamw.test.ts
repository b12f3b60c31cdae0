// AdamW one parameter at a time (lib/train/adamw.ts) and the layouts it runs in (lib/mlx/layout.ts):
// the update's values, projection weights held column-major without changing a value (in memory and
// on disk), and the update's kernels running their contiguous, vectorized loop in a real step.
//   bun test test/adamw.test.ts
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { core as mx } from "@frost-beta/mlx";
import { AdamW, biasCorrections, defaultOptimizerConfig } from "../lib/train/adamw.ts";
import { TrainStep } from "../lib/train/step.ts";
import { columnMajor, zerosColumnMajor } from "../lib/mlx/layout.ts";
import { loadArrays, saveArrays } from "../lib/mlx/arrays-file.ts";
import { useFastCpuKernels } from "../lib/mlx/jit.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const maxAbsDiff = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;

describe("adamw", () => {
  test.each([
    ["a matrix (decays)", [3, 5]],
    ["a vector (no decay)", [7]],
  ])("one update of %s against AdamW written out in float64", (_, shape) => {
    const opt = { ...defaultOptimizerConfig(), weightDecay: 0.1 };
    mx.random.seed(11);
    const [p, m, v, gradSum] = [mx.random.normal(shape), mx.random.normal(shape), mx.abs(mx.random.normal(shape)), mx.random.normal(shape)];
    const t = 3;
    const [lr, ntoks, clip] = [1e-2, 8, 0.5];
    const { bc1, bc2 } = biasCorrections(opt, mx.array(t, mx.float32));
    const s = { lr: mx.array(lr, mx.float32), gradScale: mx.array(clip / ntoks, mx.float32), bc1, bc2 };
    const [p1, m1, v1] = new AdamW(opt).update(p, m, v, gradSum, s, mx.defaultStream(mx.cpu));
    const flat = (a: mx.array) => a.reshape([-1]).tolist() as number[];
    const [P, M, V, G] = [p, m, v, gradSum].map(flat) as [number[], number[], number[], number[]];
    const decays = shape.length >= 2;
    const want = P.map((pi, i) => {
      const g = (G[i]! / ntoks) * clip;
      const mi = opt.beta1 * M[i]! + (1 - opt.beta1) * g;
      const vi = opt.beta2 * V[i]! + (1 - opt.beta2) * g * g;
      const dir = mi / (1 - opt.beta1 ** t) / (Math.sqrt(vi / (1 - opt.beta2 ** t)) + opt.eps);
      return [(decays ? pi * (1 - lr * opt.weightDecay) : pi) - lr * dir, mi, vi];
    });
    [p1!, m1!, v1!].forEach((got, k) => flat(got).forEach((x, i) => expect(Math.abs(x - want[i]![k]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(want[i]![k]!)))));
  });

  test("columnMajor keeps every value, and such an array is saved and loaded as the same values", () => {
    const dir = mkdtempSync(join(tmpdir(), "sft-layout-"));
    try {
      const a = mx.random.normal([5, 3]);
      const c = columnMajor(a);
      expect(c.shape).toEqual([5, 3]);
      expect(c.tolist()).toEqual(a.tolist());
      expect(columnMajor(c).tolist()).toEqual(a.tolist()); // already column-major: the same values again
      expect(zerosColumnMajor([4, 2]).tolist()).toEqual(mx.zeros([4, 2]).tolist());
      saveArrays(join(dir, "w.safetensors"), { w: c });
      expect(loadArrays(join(dir, "w.safetensors")).w!.tolist()).toEqual(a.tolist());
      expect(() => columnMajor(mx.zeros([3]))).toThrow(/2-D/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // The kernels of the update are found by what this process loaded from the kernel folder, picked
  // out by constants no other graph has (hyperparameters chosen for it, exact in binary and in the
  // source MLX writes): each kernel's C++ source names the variant that ran (`..._contiguous` or
  // `..._strided_N`).
  const dir = process.platform === "linux" ? useFastCpuKernels() : null;
  test.skipIf(!dir)("in a training step every AdamW kernel runs contiguous, for projections (column-major) too", async () => {
    const opt = { ...defaultOptimizerConfig(), beta1: 0.8125, beta2: 0.96875, weightDecay: 0.0625 };
    const model = tinyModel(64, { seed: 2, tied: false }); // an untied head: a Linear with a gradient from x·Wᵀ only
    const step = new TrainStep(model, opt);
    mx.random.seed(3);
    const ids = mx.random.randint(0, 64, [4, 17]).astype(mx.int32);
    const batch = { inputs: ids.index(mx.Slice(), mx.Slice(0, 16)), targets: ids.index(mx.Slice(), mx.Slice(1)), mask: mx.ones([4, 16]) };
    for (let i = 0; i < 3; i++) await step.step(batch, 1e-3);
    // (a library both streams built at once was replaced on disk after one of them loaded it: " (deleted)")
    const mapped = readFileSync("/proc/self/maps", "utf8").split("\n").map((l) => l.replace(/ \(deleted\)$/, ""));
    const libs = new Set(mapped.filter((l) => l.includes(`${dir}/lib`) && l.endsWith(".so")).map((l) => l.slice(l.indexOf(`${dir}/lib`) + dir!.length + 4, -3)));
    const sources = [...libs].map((name) => readFileSync(join(dir!, `${name}.cpp`), "utf8"));
    const kernel = (src: string) => /void (\w+)\(void\*\* args\)/.exec(src)![1]!;
    const uses = (c: string) => sources.filter((src) => src.includes(`= ${c};`)).map(kernel);
    const [m, v, decay] = [uses("0.8125"), uses("0.96875"), uses("0.0625")];
    expect(m.length).toBeGreaterThan(0);
    expect(v.length).toBeGreaterThan(0);
    expect(decay.length).toBeGreaterThan(0); // p' of the matrices
    for (const k of [...m, ...v, ...decay]) expect(k).toEndWith("_contiguous");
  });
});
