// lib/mlx/gemv.ts and gemv-forward.cpp: one-row (and one-column) matrix products go to gemv with the
// values sgemm gives, every other product to sgemm untouched; the scripts' processes run with it
// preloaded (lib/mlx/startup.ts), the programs they start do not, and SFT_MLX_GEMV=0 turns it off.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { blasInfo } from "../lib/mlx/blas.ts";
import { gemvLibrary } from "../lib/mlx/gemv.ts";
import { runProbeScript } from "./helpers/probe-script.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const reason = process.platform !== "linux" ? "Linux only" : !Bun.which("g++") ? "no g++ on PATH" : blasInfo() === null ? "no libblas.so.3" : "";
const skipped = reason ? ` (skipped: ${reason})` : "";
const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

let cache = ""; // a fresh cache folder: the library is built here, not taken from the user's cache
let library = "";

beforeAll(() => {
  if (reason) return;
  cache = mkdtempSync(join(tmpdir(), "gemv-test-"));
  const saved = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = cache;
  try {
    const built = gemvLibrary();
    if (!("path" in built)) throw new Error(`gemvLibrary: ${built.why}`);
    library = built.path;
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
});
afterAll(() => {
  if (cache) rmSync(cache, { recursive: true, force: true });
});

/** Seeded values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed * 7919 + 1;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 30) - 1);
}

describe("gemv forwarding", () => {
  test.skipIf(reason !== "")(`the library's cblas_sgemm equals the product, forwarding exactly the one-row and one-column ones${skipped}`, () => {
    const opened = dlopen(library, {
      cblas_sgemm: { args: ["i32", "i32", "i32", "i32", "i32", "i32", "f32", "ptr", "i32", "ptr", "i32", "f32", "ptr", "i32"], returns: FFIType.void },
      sftmlx_gemv_forwarded: { args: [], returns: FFIType.i64 },
      sftmlx_gemv_enable: { args: [FFIType.i32], returns: FFIType.void },
    });
    const lib = opened.symbols;
    const forwarded = () => Number(lib.sftmlx_gemv_forwarded());
    let cases = 0;
    try {
      for (const [M, N, K] of [[1, 7, 5], [6, 1, 5], [1, 1, 5], [3, 4, 5], [1, 300, 260]] as const) {
        for (const ta of [NO_TRANS, TRANS]) {
          for (const tb of [NO_TRANS, TRANS]) {
            for (const [alpha, beta] of [[1, 0], [0.5, 2]] as const) {
              for (const enabled of [1, 0]) {
                // stored shapes (row-major) with two spare columns each, so that a wrong leading dimension shows
                const [ar, ac] = ta === NO_TRANS ? [M, K] : [K, M];
                const [br, bc] = tb === NO_TRANS ? [K, N] : [N, K];
                const lda = ac + 2, ldb = bc + 2, ldc = N + 2;
                const A = values(ar * lda, 1), B = values(br * ldb, 2);
                const C0 = values(M * ldc, 3);
                const C = Float32Array.from(C0);
                if (beta === 0) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) C[m * ldc + n] = NaN; // must not be read
                const a = (m: number, k: number) => (ta === NO_TRANS ? A[m * lda + k]! : A[k * lda + m]!);
                const b = (k: number, n: number) => (tb === NO_TRANS ? B[k * ldb + n]! : B[n * ldb + k]!);
                lib.sftmlx_gemv_enable(enabled);
                const before = forwarded();
                lib.cblas_sgemm(ROW_MAJOR, ta, tb, M, N, K, alpha, ptr(A), lda, ptr(B), ldb, beta, ptr(C), ldc);
                const oneRow = M === 1 || N === 1;
                expect(forwarded() - before).toBe(enabled && oneRow ? 1 : 0);
                for (let m = 0; m < M; m++) {
                  for (let n = 0; n < ldc; n++) {
                    const got = C[m * ldc + n]!;
                    if (n >= N) {
                      expect(got).toBe(C0[m * ldc + n]!); // the spare columns are not written
                      continue;
                    }
                    let want = beta * C0[m * ldc + n]!;
                    for (let k = 0; k < K; k++) want += alpha * a(m, k) * b(k, n);
                    expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.sqrt(K)));
                  }
                }
                cases++;
              }
            }
          }
        }
      }
    } finally {
      lib.sftmlx_gemv_enable(1);
      opened.close(); // the next test replaces the file: a loaded library would be found by its name
    }
    expect(cases).toBe(5 * 2 * 2 * 2 * 2);
  });

  test.skipIf(reason !== "")(`it is built once, private to the user, and a damaged one is built again${skipped}`, () => {
    const saved = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = cache;
    try {
      const again = gemvLibrary();
      expect(again).toEqual({ path: library });
      expect(statSync(join(library, "..")).mode & 0o777).toBe(0o700);
      rmSync(library); // a new file, not the loaded one rewritten in place
      writeFileSync(library, "not a library");
      expect(gemvLibrary()).toEqual({ path: library });
      expect(statSync(library).size).toBeGreaterThan(1000);
    } finally {
      if (saved === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved;
    }
  });

  const STARTUP = resolve(import.meta.dir, "../lib/mlx/startup.ts");
  const GEMV = resolve(import.meta.dir, "../lib/mlx/gemv.ts");
  const DECODE = resolve(import.meta.dir, "../lib/model/decode.ts");
  const TINY = resolve(import.meta.dir, "helpers/tiny-model.ts");

  /** A script that calls prepareProcess(), multiplies through MLX and reports what it sees. */
  function runProbe(env: Record<string, string>): Record<string, any> {
    const run = runProbeScript(`
      import { core as mx } from "@frost-beta/mlx";
      import { execSync } from "node:child_process";
      import { blasRecord, prepareProcess } from ${JSON.stringify(STARTUP)};
      import { gemvForward } from ${JSON.stringify(GEMV)};
      import { CompiledDecoder } from ${JSON.stringify(DECODE)};
      import { tinyModel } from ${JSON.stringify(TINY)};
      prepareProcess();
      const g = gemvForward();
      const count = () => g?.forwarded() ?? 0;
      const x = mx.random.normal([1, 64]), X = mx.random.normal([4, 64]), W = mx.random.normal([96, 64]);
      mx.eval(x, X, W);
      const c0 = count();
      const y = mx.matmul(x, W.T); mx.eval(y);
      const c1 = count();
      const Y = mx.matmul(X, W.T); mx.eval(Y);
      const c2 = count();
      // the one-row product against the same row of a four-row product (sgemm)
      const diff = mx.abs(mx.subtract(y, mx.matmul(mx.concatenate([x, X.index(mx.Slice(0, 3))], 0), W.T).index(mx.Slice(0, 1)))).max().item();
      console.log(JSON.stringify({ oneRowProducts: blasRecord().oneRowProducts, oneRow: c1 - c0, fourRows: c2 - c1, diff,
        transposed: new CompiledDecoder(tinyModel(64)).transposeWeights, childPreload: execSync("echo -n $LD_PRELOAD").toString() }));
    `, { cwd: resolve(import.meta.dir, ".."), env: { XDG_CACHE_HOME: cache, ...env } });
    if (run.exitCode !== 0) throw new Error(run.stderr);
    return run.report();
  }

  test.skipIf(reason !== "")(`a script's one-row matmuls go to gemv, the same values; its children do not inherit it${skipped}`, () => {
    const r = runProbe({});
    expect(r.oneRowProducts).toBe("gemv");
    expect(r.oneRow).toBe(1);
    expect(r.fourRows).toBe(0);
    expect(r.diff).toBeLessThan(1e-5);
    expect(r.transposed).toBe(false); // the decode step multiplies W·x as it is: no transposed copies
    expect(r.childPreload).not.toContain("libsftmlx-gemv");
  });

  test.skipIf(reason !== "")(`with a cache folder others can write into, it is built for the run in a private temporary folder, removed once loaded${skipped}`, () => {
    const shared = mkdtempSync(join(tmpdir(), "gemv-shared-"));
    const temp = mkdtempSync(join(tmpdir(), "gemv-tmp-"));
    try {
      chmodSync(shared, 0o777); // not sticky: nothing in it may be run
      const r = runProbe({ XDG_CACHE_HOME: shared, TMPDIR: temp });
      expect(r.oneRowProducts).toBe("gemv");
      expect(r.oneRow).toBe(1);
      expect(readdirSync(temp).filter((f) => f.startsWith("sft-mlx-gemv-"))).toEqual([]); // removed after the preload
      expect(readdirSync(shared)).not.toContain("sft-mlx"); // nothing of ours was made in the unsafe folder
    } finally {
      rmSync(shared, { recursive: true, force: true });
      rmSync(temp, { recursive: true, force: true });
    }
  });

  test.skipIf(reason !== "")(`SFT_MLX_GEMV=0 leaves MLX's sgemm calls as they are${skipped}`, () => {
    const r = runProbe({ SFT_MLX_GEMV: "0" });
    expect(r.oneRowProducts).toBe("sgemm");
    expect(r.oneRow).toBe(0);
    expect(r.transposed).toBe(true); // the bundled-base-sized default without gemv
  });
});
