// The compiler flags for MLX's run-time CPU kernels (lib/mlx/jit.ts): kernels are built in our own
// directory, with vector instructions, and give the same values as MLX's precompiled ops, also for
// ±inf and NaN, which is where fast_exp branches.
//   bun test test/jit.test.ts
import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { core as mx } from "@frost-beta/mlx";
import { cpuSignature, useFastCpuKernels } from "../lib/mlx/jit.ts";
import { silu } from "../lib/model/llama.ts";
import { compileFlat } from "../lib/mlx/autodiff.ts";

const CAN_BUILD = process.platform === "linux" && Bun.which("g++") !== null;
if (!CAN_BUILD) console.log("jit: skipping the kernel tests: they need Linux and g++ (MLX builds CPU kernels with it)");
const OBJDUMP = Bun.which("objdump");

describe("jit", () => {
  test("cpuSignature keeps what -march=native depends on", () => {
    const info = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu sse2 avx512f\n\nprocessor\t: 1\nmodel name\t: Some CPU @ 2.0GHz\n";
    expect(cpuSignature(info)).toBe("Some CPU @ 2.0GHz\nfpu sse2 avx512f\n");
    expect(cpuSignature("")).toBe("\n\n");
  });

  test.skipIf(!CAN_BUILD)("compiled exp and SiLU give the eager values, ±inf and NaN included", () => {
    const x = mx.array([-Infinity, Infinity, NaN, 0, 1, -1, 30, -30, 100, -100, 0.5, -87.5], mx.float32);
    const [e, s] = compileFlat((a: mx.array) => [mx.multiply(mx.exp(a), 3), silu(mx.multiply(a, 0.5))])(x);
    const eager = [mx.multiply(mx.exp(x), 3), mx.multiply(mx.multiply(x, 0.5), mx.sigmoid(mx.multiply(x, 0.5)))];
    expect(e!.tolist()).toEqual(eager[0]!.tolist()); // bit for bit: same fast_exp, no FMA contraction
    const [got, want] = [s!.tolist() as number[], eager[1]!.tolist() as number[]];
    got.forEach((g, i) => {
      if (Number.isNaN(want[i])) expect(g).toBeNaN();
      else if (!Number.isFinite(want[i])) expect(g).toBe(want[i]!);
      else expect(Math.abs(g - want[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i]!)));
    });
  });

  test.skipIf(!CAN_BUILD)("kernels are built in our directory, with vector instructions", () => {
    const dir = useFastCpuKernels();
    expect(dir).not.toBeNull();
    // a graph of its own, so that its kernel is built (or was, by an earlier run) under this test's name
    const f = compileFlat((a: mx.array) => [mx.subtract(mx.multiply(mx.exp(a), 7), 0.25)]);
    mx.eval(f(mx.random.normal([4096]))[0]!);
    const kernels = readdirSync(dir!).filter((n) => n.endsWith(".so") && n.includes("Exp"));
    expect(kernels.length).toBeGreaterThan(0);
    if (!OBJDUMP) return console.log("jit: objdump not found: not checking the instructions");
    const asm = kernels.map((k) => Bun.spawnSync([OBJDUMP, "-d", join(dir!, k)]).stdout.toString()).join("\n");
    expect(asm).toMatch(/\bv?(mul|add|sub)ps\b/); // packed single precision: the loops were vectorized
  });

  test("SFT_MLX_FAST_KERNELS=0 leaves MLX's own flags", () => {
    const code = `import { useFastCpuKernels } from "./lib/mlx/jit.ts"; console.log(JSON.stringify(useFastCpuKernels()));`;
    const p = Bun.spawnSync([process.execPath, "-e", code], { env: { ...process.env, SFT_MLX_FAST_KERNELS: "0" }, cwd: join(import.meta.dir, "..") });
    expect(p.stdout.toString().trim()).toBe("null");
  });
});
