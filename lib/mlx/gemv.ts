// One-row matrix products on the CPU through gemv (Linux).
//
// MLX 0.13 sends every float32 matmul to cblas_sgemm, also the ones with a single row: every
// projection of a decode step (x [1, D] · W). OpenBLAS 0.3.21 runs those in its single-threaded
// small-matrix sgemm kernel, which walks each weight matrix a block of columns at a time down all of
// its rows (a strided pass over memory), or, for the 4,096-row head, copies (packs) the whole weight
// every call before multiplying. A decode step of the bundled base reads its 23 MB of weights that
// way at ~8–9 GB/s: two thirds of the step. The same products through cblas_sgemv read each weight
// row once, in order, on both cores (OpenBLAS threads gemv): measured in C on this machine (AMD EPYC,
// 2 cores), the 42 layer products of a token 1.0–1.4 ms → 0.3–0.4 ms, the head 160–360 µs → 41–81 µs;
// decode of the bundled base 1.2–1.7× in alternating pairs of processes, of the Qwen3-0.6B shapes 2.2×
// (README "Performance"). OpenBLAS itself forwards these calls to gemv from 0.3.27 on; Debian 12
// ships 0.3.21.
//
// The forwarding is a small library (gemv-forward.cpp) that defines cblas_sgemm and hands the
// one-row (or one-column) products to the same libblas.so.3's cblas_sgemv, the rest to its
// cblas_sgemm: preloaded by lib/mlx/startup.ts when it re-executes a script, as it does for tcmalloc,
// and taken out of LD_PRELOAD again so the programs the script starts do not inherit it. It is built
// on first use with the g++ MLX needs anyway, into the user's cache folder (a private folder, as the
// compiled kernels: lib/io/private-dir.ts), under a name keyed by its source and the compiler, written
// to a temporary sibling, checked by loading it, and renamed into place; where that folder cannot be
// used, in a fresh private temporary folder that the re-executed process removes once the library is
// loaded. Without g++ (which MLX needs too) it is left out, with a warning. `SFT_MLX_GEMV=0` turns it off.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { dlopen, FFIType } from "bun:ffi";
import { ensurePrivateDir, freshPrivateDir, unsafeReason, userCacheDir } from "../io/private-dir.ts";
import { dlLibraryOf, dropFromPreload } from "./libc.ts";

export const GEMV_SOURCE = join(import.meta.dir, "gemv-forward.cpp");
const LIBRARY_NAME = "libsftmlx-gemv.so";
const VERSION = 1; // sftmlx_gemv_version() of the source above
const BUILD_FLAGS = ["-O2", "-shared", "-fPIC", "-std=c++17"];

const SYMBOLS = {
  sftmlx_gemv_version: { args: [], returns: FFIType.i32 },
  sftmlx_gemv_forwarded: { args: [], returns: FFIType.i64 },
  sftmlx_gemv_enable: { args: [FFIType.i32], returns: FFIType.void },
} as const;

/** Whether this process should run with the forwarding preloaded: Linux, a libblas.so.3 with
 * cblas_sgemm and cblas_sgemv, not turned off, not already loaded. */
export function wantGemvForward(): boolean {
  if (process.platform !== "linux" || process.env.SFT_MLX_GEMV === "0" || gemvLibraryLoaded() !== null) return false;
  return dlLibraryOf("libblas.so.3", "cblas_sgemm") !== null && dlLibraryOf("libblas.so.3", "cblas_sgemv") !== null;
}

/** Where the forwarding library is, built if needed: in the user's cache folder, or, when that cannot
 * be used (`note` says why), in a fresh private temporary folder (`temporary`) for this run only,
 * which the re-executed process removes once the library is loaded. `why` when it cannot be built. */
export function gemvLibrary(): { path: string; temporary?: string; note?: string } | { why: string } {
  const compiler = Bun.which("g++");
  if (!compiler) return { why: "no g++ on PATH" };
  const source = readFileSync(GEMV_SOURCE, "utf8");
  const key = createHash("sha256").update([compiler, ...BUILD_FLAGS, source].join("\n")).digest("hex").slice(0, 12);
  const cache = userCacheDir();
  const dir = cache ? join(cache, "sft-mlx", `gemv-${key}`) : null;
  const unsafe = cache && dir ? ensurePrivateDir(cache, dir) : "no home folder";
  if (!unsafe && dir) {
    const path = join(dir, LIBRARY_NAME);
    if (existsSync(path) && unsafeReason(path) === null && versionOf(path) === VERSION) return { path };
    const why = build(compiler, path);
    return why ? { why } : { path };
  }
  const temporary = freshPrivateDir(`${TEMPORARY_PREFIX}${key}-`);
  const path = join(temporary, LIBRARY_NAME);
  const why = build(compiler, path);
  if (why) {
    rmSync(temporary, { recursive: true, force: true });
    return { why };
  }
  return { path, temporary, note: `the cache folder is not used: ${unsafe}` };
}

const TEMPORARY_PREFIX = "sft-mlx-gemv-";

/** Remove a temporary build folder that gemvLibrary() made (the preloaded library stays mapped). */
export function removeTemporaryBuild(dir: string): void {
  if (basename(dir).startsWith(TEMPORARY_PREFIX) && dirname(dir) === tmpdir() && unsafeReason(dir) === null) rmSync(dir, { recursive: true, force: true });
}

// Build the library at `path` through a temporary sibling, checked by loading it; the reason on failure.
function build(compiler: string, path: string): string | null {
  const tmp = join(dirname(path), `.building-${process.pid}.so`);
  try {
    const built = Bun.spawnSync([compiler, ...BUILD_FLAGS, GEMV_SOURCE, "-o", tmp, "-ldl"], { stderr: "pipe", stdout: "ignore" });
    if (built.exitCode !== 0) return `g++ failed on ${GEMV_SOURCE}: ${built.stderr.toString().trim().split("\n").slice(-3).join(" ")}`;
    const v = versionOf(tmp);
    if (v !== VERSION) return `the built ${LIBRARY_NAME} reports version ${v}, expected ${VERSION}`;
    renameSync(tmp, path);
    return null;
  } finally {
    rmSync(tmp, { force: true });
  }
}

// The version a built library reports, or null when it does not load or has no such symbol.
function versionOf(path: string): number | null {
  try {
    const lib = dlopen(path, { sftmlx_gemv_version: SYMBOLS.sftmlx_gemv_version });
    const v = lib.symbols.sftmlx_gemv_version();
    lib.close();
    return v;
  } catch {
    return null;
  }
}

/** The environment that preloads the forwarding library (after whatever is preloaded already). */
export function gemvEnv(env: Record<string, string | undefined>, library: string): Record<string, string | undefined> {
  return { ...env, LD_PRELOAD: [env.LD_PRELOAD, library].filter(Boolean).join(":") };
}

let loaded: string | null | undefined;

/** The forwarding library in effect in this process (its path): the library MLX's calls of
 * cblas_sgemm resolve to (preloaded, so first in the global scope); null when they reach the BLAS
 * itself. Decided at start-up, so asked once. */
export function gemvLibraryLoaded(): string | null {
  if (loaded !== undefined) return loaded;
  const path = process.platform === "linux" ? dlLibraryOf(null, "cblas_sgemm") : null;
  return (loaded = path?.endsWith(`/${LIBRARY_NAME}`) ? path : null);
}

/** Take the forwarding library out of LD_PRELOAD (Bun's environment and the C library's), so that
 * the programs this process starts do not inherit it. */
export function forgetGemvPreload(): void {
  dropFromPreload((p) => p.endsWith(`/${LIBRARY_NAME}`));
}

/** The loaded forwarding library's controls, or null when it is not loaded. */
export function gemvForward(): { forwarded: () => number; enable: (on: boolean) => void } | null {
  const path = gemvLibraryLoaded();
  if (!path) return null;
  const lib = dlopen(path, SYMBOLS); // the loaded instance
  return { forwarded: () => Number(lib.symbols.sftmlx_gemv_forwarded()), enable: (on) => lib.symbols.sftmlx_gemv_enable(on ? 1 : 0) };
}
