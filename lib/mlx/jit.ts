// Compiler flags for the kernels MLX builds at run time on the CPU.
//
// A compiled graph (mx.compile) runs its chains of elementwise ops as fused kernels that MLX's CPU
// backend writes as C++ and builds on first use with `g++ -std=c++17 -O2 -Wall -fPIC -shared`, found
// through PATH, keeping each shared library in the temporary directory under a name taken from the
// graph. With those flags GCC vectorizes none of the kernels that call exp (softmax, SiLU, the
// cross-entropy): MLX's fast_exp returns early for ±inf and NaN, and GCC turns those branches into
// vector selects only when it may ignore floating-point traps. Here a wrapper first on PATH adds
// `-O3 -march=native -fno-trapping-math` (nothing in MLX reads the floating-point exception flags)
// and `-ffp-contract=off` (no fused multiply-adds, so compiled and eager ops agree to the bit): an
// exp kernel went from 8.0 to 0.9 ns per element, and with SiLU written as x / (1 + exp(-x)) so that
// it fuses, the reference training step +4% (`bun scripts/bench.ts --case train-ref` against the same
// with SFT_MLX_FAST_KERNELS=0, two runs each). Kernels with many inputs and outputs (AdamW's update:
// 8 inputs, 3 outputs) stayed scalar even so: `std::sqrt` keeps a branch that sets errno, and GCC
// gives up on vectorizing a loop that needs more than 10 run-time overlap checks between its
// pointers; `-fno-math-errno` and a higher limit vectorize them (results unchanged: IEEE sqrt either way).
//
// The kernels go in a directory of their own, named from the flags, the compiler and the CPU, so that
// kernels built with other flags or for another CPU are never picked up by name, and those built here
// are reused by later runs on this machine (no compile at start-up). The directory is in the user's
// cache folder ($XDG_CACHE_HOME/sft-mlx/kernels-<key>, else ~/.cache/...), created 0700 and used only
// while it belongs to this user and no one else can write into it (lib/io/private-dir.ts): its
// wrapper and libraries are code this process runs, so a directory planted by another local user
// (a shared /tmp with a predictable name, as before) must never be picked up. When the cache cannot
// be used, kernels go to a fresh private temporary directory for this process, with a warning.
// macOS builds Metal kernels instead: nothing to do there. `SFT_MLX_FAST_KERNELS=0` turns this off
// (MLX's own flags and directory).
import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { consola } from "consola";
import { ensurePrivateDir, freshPrivateDir, unsafeReason, userCacheDir } from "../io/private-dir.ts";
import { setCEnv } from "./libc.ts";

/** Flags added after MLX's own (a later -O wins). */
export const KERNEL_FLAGS = [
  "-O3", // vectorize
  "-march=native", // AVX-512 where the CPU has it; the directory name includes the CPU
  "-fno-trapping-math", // lets fast_exp's ±inf/NaN branches become vector selects
  "-fno-math-errno", // sqrt without its errno branch (nothing reads errno), so the AdamW update vectorizes
  "--param=vect-max-version-for-alias-checks=64", // a kernel with many inputs and outputs (AdamW: 9 and 3) is vectorized behind run-time overlap checks; GCC's default gives up above 10
  "-ffp-contract=off", // no FMA contraction: same rounding as MLX's precompiled ops (tests compare them)
];

let kernelDir: string | null | undefined;

/** Set up the compiler wrapper and the kernel directory for this process. Call before the first
 * compiled graph runs (scripts: prepareProcess() in lib/mlx/startup.ts; tests: test/setup.ts); later calls do nothing. */
export function useFastCpuKernels(): string | null {
  if (kernelDir !== undefined) return kernelDir;
  kernelDir = null;
  if (process.platform !== "linux" || process.env.SFT_MLX_FAST_KERNELS === "0") return null;
  const compiler = Bun.which("g++");
  if (!compiler) return null; // MLX will say that it cannot build its kernels
  const cpu = existsSync("/proc/cpuinfo") ? cpuSignature(readFileSync("/proc/cpuinfo", "utf8")) : "";
  const key = kernelKey(compiler, cpu);
  const cache = userCacheDir();
  const why = cache ? ensurePrivateDir(cache, join(cache, "sft-mlx", `kernels-${key}`)) : "no home folder";
  let dir = cache && !why ? join(cache, "sft-mlx", `kernels-${key}`) : null;
  try {
    if (!dir) {
      dir = freshPrivateDir(`sft-mlx-kernels-${key}-`);
      const made = dir;
      process.once("exit", () => rmSync(made, { recursive: true, force: true }));
      consola.warn(`compiled-kernel cache not used: ${why}. Kernels are built in ${dir} for this process only; ` +
        `remove or fix the folder (it must be yours, mode 700) to reuse kernels across runs`);
    }
    writeWrapper(join(dir, "bin", "g++"), compiler);
    // MLX reads these through the C library (getenv, and the shell std::system starts), not through
    // Bun's process.env, which stays as it was: temporary files of this program still go to tmpdir().
    setCEnv("PATH", `${join(dir, "bin")}:${process.env.PATH ?? ""}`);
    setCEnv("TMPDIR", dir);
    kernelDir = dir;
  } catch (e) {
    consola.warn(`MLX's own kernel flags are used: the kernel directory could not be set up (${(e as Error).message})`);
    kernelDir = null;
  }
  return kernelDir;
}

/** The kernel directory's key: compiler, flags and CPU (what the built kernels depend on). */
export function kernelKey(compiler: string, cpu: string): string {
  return createHash("sha256").update([compiler, ...KERNEL_FLAGS, cpu].join("\n")).digest("hex").slice(0, 12);
}

/** The compiler wrapper, (re)written unless it is already ours, unchanged and not writable by others.
 * MLX runs it as `g++ -std=c++17 -O2 -Wall -fPIC -shared SOURCE -o LIBRARY` through the shell, and the
 * wrapper mends two faults of MLX 0.13 on the way:
 * - A kernel whose name is too long for a file is stored as its first 229 characters, "_" and its hash
 *   in hex, padded to 16 characters with spaces (`setw` without a fill), and MLX leaves the name
 *   unquoted: for one such kernel in sixteen (a hash below 16^15) g++ got the source and the library
 *   as two arguments each, failed, and MLX aborted the process. The halves are joined back here with
 *   the spaces the shell dropped.
 * - Each stream's thread builds the kernels it meets, so on a cold cache the two shards of a batch
 *   build the same kernel at once, each writing its source and library under the same name: one
 *   thread's g++ read a source the other was rewriting (a compile error, MLX aborted), and a library
 *   could be loaded half-written. g++ could also succeed on a source cut short by the other writer
 *   and give a library without the kernel, which the dynamic loader then keeps for the process. So
 *   the source is copied first to a file of this call's own and built only when the copy names its
 *   kernel (`void NAME(void** args) {`), and the library is renamed into place only once it defines
 *   NAME (a copy cut anywhere later does not compile); otherwise it is retried. */
export function wrapperScript(compiler: string): string {
  const build = `'${compiler}' "$1" "$2" "$3" "$4" "$5" "$tmp.cpp" -o "$tmp.so" ${KERNEL_FLAGS.join(" ")}`;
  return [
    "#!/bin/sh",
    "# written by sft-mlx (lib/mlx/jit.ts): MLX's JIT kernels with vectorizing flags",
    'if [ $# -eq 10 ] && [ "$8" = "-o" ]; then',
    "  # a long kernel name split at the spaces that pad its hash: join it back",
    '  hex=${7%.cpp}; pad=""; i=${#hex}',
    '  while [ "$i" -lt 16 ]; do pad="$pad "; i=$((i + 1)); done',
    '  set -- "$1" "$2" "$3" "$4" "$5" "$6$pad$7" -o "$9$pad${10}"',
    "fi",
    'if [ $# -ne 8 ] || [ "$7" != "-o" ]; then',
    `  exec '${compiler}' "$@" ${KERNEL_FLAGS.join(" ")}`,
    "fi",
    'tmp="${8%/*}/.building-$$" # beside the library (the rename stays in one file system), short (names are near the limit)',
    "for attempt in 1 2 3 4 5 6; do",
    '  if cp "$6" "$tmp.cpp" 2>"$tmp.log"; then',
    "    name=$(sed -n 's/^void \\([A-Za-z0-9_]*\\)(void\\*\\* args) {$/\\1/p' \"$tmp.cpp\")",
    `    if [ -n "$name" ] && ${build} 2>>"$tmp.log" &&`,
    '      nm -D --defined-only "$tmp.so" | grep -q " T $name\\$"; then',
    '      mv -f "$tmp.so" "$8"; rm -f "$tmp.cpp" "$tmp.log"; exit 0',
    "    fi",
    "  fi",
    "  sleep 1 # another thread may be rewriting the same source",
    "done",
    'cat "$tmp.log" >&2; echo "sft-mlx: no whole kernel built from $6" >&2; rm -f "$tmp.cpp" "$tmp.so" "$tmp.log"; exit 1',
    "",
  ].join("\n");
}

function writeWrapper(wrapper: string, compiler: string): void {
  const script = wrapperScript(compiler);
  const ok = existsSync(wrapper) && unsafeReason(wrapper) === null && readFileSync(wrapper, "utf8") === script;
  if (ok) return;
  const why = ensurePrivateDir(join(wrapper, "..", ".."), join(wrapper, ".."));
  if (why) throw new Error(why);
  const tmp = `${wrapper}.${process.pid}.tmp`;
  writeFileSync(tmp, script, { mode: 0o700 });
  renameSync(tmp, wrapper);
}

/** The lines of /proc/cpuinfo that decide what -march=native produces. */
export function cpuSignature(cpuinfo: string): string {
  const first = (field: string) => new RegExp(`^${field}\\s*:\\s*(.*)$`, "m").exec(cpuinfo)?.[1] ?? "";
  return [first("model name"), first("flags"), first("Features")].join("\n");
}
