// The compiler flags for MLX's run-time CPU kernels (lib/mlx/jit.ts): kernels are built in our own
// directory, with vector instructions, and give the same values as MLX's precompiled ops, also for
// ±inf and NaN, which is where fast_exp branches.
//   bun test test/jit.test.ts
import { describe, expect, test } from "bun:test";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { core as mx } from "@frost-beta/mlx";
import { cpuSignature, KERNEL_FLAGS, useFastCpuKernels, wrapperScript } from "../lib/mlx/jit.ts";
import { silu } from "../lib/model/llama.ts";
import { compileFlat } from "../lib/mlx/autodiff.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

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

  // Issue #18 case 8: the kernel directory used to be $TMPDIR/sft-mlx-kernels-<predictable key>,
  // reused whoever owned it. Here user `nobody` plants a kernel library (its constructor writes a
  // marker) under the name MLX looks up, in that old place and in the new cache folder.
  test.skipIf(!CAN_BUILD || process.getuid?.() !== 0)("a kernel folder planted by another user is never used", () => {
    const root = mkdtempSync(join(tmpdir(), "sft-jit-planted-"));
    try {
      const cwd = join(import.meta.dir, "..");
      const graph = `import { core as mx } from "@frost-beta/mlx"; import { useFastCpuKernels } from "./lib/mlx/jit.ts"; import { compileFlat } from "./lib/mlx/autodiff.ts";
        useFastCpuKernels(); const f = compileFlat((a) => [mx.subtract(mx.multiply(mx.exp(a), 7), 0.25)]); mx.eval(f(mx.random.normal([4096]))[0]);`;
      const run = (cache: string, tmp: string) => {
        for (const d of [cache, tmp]) mkdirSync(d, { recursive: true });
        return Bun.spawnSync([process.execPath, "-e", graph], { cwd, env: { ...process.env, XDG_CACHE_HOME: cache, TMPDIR: tmp } });
      };
      const kernels = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => /lib[^/]*\.so$/.test(f)).map((f) => f.split("/").at(-1)!) : []);
      // 1. the names MLX gives this graph's kernels, from a clean run
      expect(run(join(root, "clean-cache"), join(root, "clean-tmp")).exitCode).toBe(0);
      const names = [...new Set([...kernels(join(root, "clean-cache")), ...kernels(join(root, "clean-tmp"))])];
      expect(names.length).toBeGreaterThan(0);
      // 2. a library that announces itself when loaded
      const marker = join(root, "planted-code-ran");
      writeFileSync(join(root, "evil.cpp"), `#include <cstdio>\n__attribute__((constructor)) static void planted() { FILE* f = std::fopen("${marker}", "w"); if (f) std::fclose(f); }\n`);
      expect(Bun.spawnSync(["g++", "-shared", "-fPIC", "-o", join(root, "evil.so"), join(root, "evil.cpp")]).exitCode).toBe(0);
      // 3. planted by nobody, writable by all, where the old and the new code look
      const key = createHash("sha256").update([Bun.which("g++")!, ...KERNEL_FLAGS, cpuSignature(readFileSync("/proc/cpuinfo", "utf8"))].join("\n")).digest("hex").slice(0, 12);
      const planted = [join(root, "evil-tmp", `sft-mlx-kernels-${key}`), join(root, "evil-cache", "sft-mlx", `kernels-${key}`)];
      for (const dir of planted) {
        mkdirSync(join(dir, "bin"), { recursive: true });
        for (const name of names) copyFileSync(join(root, "evil.so"), join(dir, name));
      }
      for (const d of [join(root, "evil-tmp", `sft-mlx-kernels-${key}`), join(root, "evil-cache", "sft-mlx"), ...planted]) {
        for (const p of [d, ...readdirSync(d).map((f) => join(d, f))]) {
          chownSync(p, 65534, 65534);
          chmodSync(p, 0o777);
        }
      }
      // 4. a run with the planted folders where it looks
      const result = run(join(root, "evil-cache"), join(root, "evil-tmp"));
      expect(existsSync(marker)).toBe(false);
      expect(result.stderr.toString()).toMatch(/compiled-kernel cache not used: .*sft-mlx: it belongs to user id 65534, not to this user/);
      expect(result.exitCode).toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  // The wrapper around a stand-in compiler that records its arguments and runs g++:
  // MLX's command line as it runs it (unquoted, through the shell), for a long kernel name whose hash
  // pads with three spaces, and for a build that fails the first time (another thread rewriting the
  // source), as MLX 0.13 gives them.
  describe.skipIf(!CAN_BUILD || !Bun.which("nm"))("the compiler wrapper", () => {
    const setUp = (failFirst: boolean) => {
      const root = mkdtempSync(join(tmpdir(), "sft-jit-wrapper-"));
      const fake = join(root, "fake-g++");
      writeFileSync(fake, [
        "#!/bin/sh",
        `printf '%s\\n' "$@" > '${root}/args'`,
        failFirst ? `[ -e '${root}/failed-once' ] || { touch '${root}/failed-once'; echo 'source read half-written' >&2; exit 1; }` : "",
        `exec '${Bun.which("g++")}' "$@"`,
      ].join("\n"), { mode: 0o755 });
      writeFileSync(join(root, "g++"), wrapperScript(fake), { mode: 0o755 });
      return root;
    };
    // A kernel source as MLX writes it: a preamble, then the function inside an extern "C" block.
    const PREAMBLE = "static inline float one() { return 1.0f; }\n";
    const kernelSource = (name: string) => `${PREAMBLE}extern "C"  {\nvoid ${name}(void** args) {\n  float* a = (float*)args[0];\n  a[0] = one();\n}\n}\n`;
    const defines = (lib: string, name: string) => {
      const nm = Bun.spawnSync(["nm", "-D", "--defined-only", lib]).stdout.toString();
      return nm.split("\n").some((l) => l.endsWith(` T ${name}`));
    };
    const mlxCommand = (root: string, file: string) => `${join(root, "g++")} -std=c++17 -O2 -Wall -fPIC -shared ${join(root, file)}.cpp -o ${join(root, `lib${file}`)}.so`;

    test("a long kernel name split at the spaces before its hash is joined back, spaces and all", () => {
      const root = setUp(false);
      try {
        const file = `${"K".repeat(229)}_   abc123def4567`; // 13 hex digits: three spaces of padding
        writeFileSync(join(root, `${file}.cpp`), kernelSource(`${"K".repeat(240)}_contiguous`));
        const r = Bun.spawnSync(["sh", "-c", mlxCommand(root, file)]);
        expect(r.exitCode).toBe(0);
        const args = readFileSync(join(root, "args"), "utf8").split("\n");
        expect(args.filter((a) => a.endsWith(".cpp"))).toEqual([expect.stringMatching(/\/\.building-\d+\.cpp$/)]); // built from a private copy of the joined name's source
        expect(args.slice(0, 5)).toEqual(["-std=c++17", "-O2", "-Wall", "-fPIC", "-shared"]);
        expect(args).toContain("-fno-math-errno");
        expect(defines(join(root, `lib${file}.so`), `${"K".repeat(240)}_contiguous`)).toBe(true); // renamed into place
        expect(readdirSync(root).filter((f) => f.startsWith(".building-"))).toEqual([]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });

    test("a failed build is tried again, and the library appears only whole", () => {
      const root = setUp(true);
      try {
        writeFileSync(join(root, "Kshort.cpp"), kernelSource("Kshort_contiguous"));
        const r = Bun.spawnSync(["sh", "-c", mlxCommand(root, "Kshort")]);
        expect(r.exitCode).toBe(0);
        expect(defines(join(root, "libKshort.so"), "Kshort_contiguous")).toBe(true);
        expect(readdirSync(root).filter((f) => f.startsWith(".building-"))).toEqual([]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });

    test("a source cut short by another writer never becomes a library; once whole, it is built", async () => {
      const root = setUp(false);
      try {
        const whole = kernelSource("Kcut_contiguous");
        const source = join(root, "Kcut.cpp");
        writeFileSync(source, PREAMBLE); // cut after the preamble: g++ builds it, into a library without the kernel
        const build = Bun.spawn(["sh", "-c", mlxCommand(root, "Kcut")]);
        await Bun.sleep(1500); // the wrapper has seen the cut copy at least once
        expect(existsSync(join(root, "libKcut.so"))).toBe(false);
        writeFileSync(source, whole); // the other writer finishes
        expect(await build.exited).toBe(0);
        expect(defines(join(root, "libKcut.so"), "Kcut_contiguous")).toBe(true);
        writeFileSync(source, whole.slice(0, 40)); // cut for good: refused, nothing left behind
        rmSync(join(root, "libKcut.so"));
        expect(Bun.spawnSync(["sh", "-c", mlxCommand(root, "Kcut")]).exitCode).not.toBe(0);
        expect(readdirSync(root).filter((f) => f.startsWith("libKcut") || f.startsWith(".building-"))).toEqual([]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  });
});
