// The one start-up call of the scripts that train, generate or measure: `prepareProcess()` makes
// the process run on tcmalloc (lib/mlx/allocator.ts) and on the BLAS kernels this CPU supports
// (lib/mlx/blas.ts). Both can only be chosen before the libraries load (a malloc cannot be swapped
// in a running process; OpenBLAS reads OPENBLAS_CORETYPE once, when it loads, and the scripts load
// MLX with their imports), so when either is needed the script re-executes itself once, through
// execve: same pid, same arguments, the environment extended. The re-executed process then takes
// what it added out of the environment again, so the programs it starts (git, g++, Python peers,
// other scripts) decide for themselves.
//
// The same re-execution preloads the library that sends one-row matrix products to gemv
// (lib/mlx/gemv.ts), taken out of LD_PRELOAD again in the same way.
//
// A user's own OPENBLAS_CORETYPE is never replaced; SFT_MLX_TCMALLOC=0 keeps glibc's malloc,
// SFT_MLX_GEMV=0 MLX's own sgemm calls.
// Then it points MLX's run-time CPU kernel builds at the vectorizing compiler wrapper (lib/mlx/jit.ts).
// Nowhere else quietly changes the environment.
import { activeAllocator, forgetPreload, tcmallocEnv, wantTcmalloc } from "./allocator.ts";
import { useFastCpuKernels } from "./jit.ts";
import { blasInfo, chooseCoretype, openblasCore, parseCpuinfo, readCpuinfo } from "./blas.ts";
import { execve, setCEnv } from "./libc.ts";
import { forgetGemvPreload, gemvEnv, gemvLibrary, gemvLibraryLoaded, removeTemporaryBuild, wantGemvForward } from "./gemv.ts";
import { consola } from "consola";

// Set for the re-executed process: if the preload did not take (the loader ignores a library it
// cannot load), it must not re-execute again, and again.
const REEXECUTED = "SFT_MLX_REEXECUTED";
// Set beside OPENBLAS_CORETYPE when the start-up chose it: the core OpenBLAS had chosen itself.
const FELL_BACK_FROM = "SFT_MLX_OPENBLAS_CHOSE";
// Set when the gemv library was built in a temporary folder: the re-executed process removes it.
const GEMV_TEMPORARY = "SFT_MLX_GEMV_TEMPORARY";

/** How the BLAS kernels of this process were chosen, for config.json and the bench's first line. */
export interface KernelChoice {
  by: "openblas" | "user" | "sft-mlx"; // OpenBLAS itself, the user's OPENBLAS_CORETYPE, or prepareProcess()
  coretype?: string; // the OPENBLAS_CORETYPE in force when OpenBLAS loaded
  openblasChose?: string; // with "sft-mlx": the generic core OpenBLAS had fallen back to
}

let choice: KernelChoice = { by: "openblas" };

/** How this process's BLAS kernels were chosen (after `prepareProcess()`; "openblas" before). */
export function kernelChoice(): KernelChoice {
  const user = process.env.OPENBLAS_CORETYPE;
  return choice.by === "openblas" && user ? { by: "user", coretype: user } : choice;
}

/** The BLAS of this process for config.json's machine info and the bench's first line: the library
 * (OpenBLAS's config string, MKL's version, ...), and for OpenBLAS its kernels and who chose them. */
export function blasRecord(): { library: string; kernels?: string; kernelsChosenBy?: KernelChoice; oneRowProducts?: "gemv" | "sgemm" } {
  if (process.platform === "darwin") return { library: "Accelerate" };
  const info = blasInfo();
  if (!info) return { library: "none" };
  const oneRowProducts = gemvLibraryLoaded() ? "gemv" : "sgemm"; // lib/mlx/gemv.ts
  if (info.kind !== "openblas") return { library: info.version, oneRowProducts };
  return { library: info.version, kernels: info.core, kernelsChosenBy: kernelChoice(), oneRowProducts };
}

/** What the start-up would observe; tests pass their own to exercise a CPU this machine is not. */
export interface StartupFacts {
  cpuinfo?: string; // /proc/cpuinfo's text
  openblasCore?: string | null; // the core OpenBLAS chose without OPENBLAS_CORETYPE
}

/**
 * Prepare this process for MLX work on this machine: re-execute it once under tcmalloc and/or with
 * OPENBLAS_CORETYPE set when either is needed (Linux), then set up MLX's kernel builds. Call first
 * thing in a script's `run`, before any long-lived state exists: the process image may be replaced.
 */
export function prepareProcess(facts: StartupFacts = {}): void {
  reexecuteIfNeeded(facts); // replaces the process image: must come before anything long-lived
  useFastCpuKernels(); // before MLX builds its first fused kernel
}

function reexecuteIfNeeded(facts: StartupFacts): void {
  if (process.platform !== "linux") return;
  const reexecuted = process.env[REEXECUTED] !== undefined;
  const fellBackFrom = process.env[FELL_BACK_FROM];
  const gemvTemporary = process.env[GEMV_TEMPORARY];
  delete process.env[REEXECUTED]; // scripts this one starts decide for themselves
  delete process.env[FELL_BACK_FROM];
  delete process.env[GEMV_TEMPORARY];
  if (gemvTemporary) removeTemporaryBuild(gemvTemporary); // loaded by now (or never will be)
  if (reexecuted) return settleReexecuted(fellBackFrom);
  const coretype = process.env.OPENBLAS_CORETYPE ? null : coretypeFor(facts);
  const tcmalloc = wantTcmalloc();
  const gemv = gemvPreload();
  if (coretype || tcmalloc || gemv) {
    let env: Record<string, string | undefined> = { ...process.env, [REEXECUTED]: "1" };
    if (tcmalloc) env = tcmallocEnv(env);
    if (gemv) env = { ...gemvEnv(env, gemv.path), ...(gemv.temporary ? { [GEMV_TEMPORARY]: gemv.temporary } : {}) };
    if (coretype) env = { ...env, OPENBLAS_CORETYPE: coretype.value, [FELL_BACK_FROM]: coretype.from };
    execve(process.execPath, [process.execPath, ...process.argv.slice(1)], env); // returns only on failure
    if (gemv?.temporary) removeTemporaryBuild(gemv.temporary);
  }
  forgetPreloads(); // the user preloaded them: keep them from children
}

// Take tcmalloc and the gemv library, where this process runs on them, out of LD_PRELOAD so that the
// programs it starts decide for themselves.
function forgetPreloads(): void {
  if (activeAllocator() === "tcmalloc") forgetPreload();
  if (gemvLibraryLoaded()) forgetGemvPreload();
}

// The gemv forwarding library to preload, built if needed; null when it is not wanted or cannot be
// built (then MLX's sgemm calls stay as they are, with a warning saying why).
function gemvPreload(): { path: string; temporary?: string } | null {
  if (!wantGemvForward()) return null;
  const built = gemvLibrary();
  if ("why" in built) {
    consola.warn(`one-row matrix products stay on sgemm (decoding is slower): ${built.why}. SFT_MLX_GEMV=0 silences this`);
    return null;
  }
  if (built.note) consola.warn(`the gemv library (lib/mlx/gemv.ts) is built for this run only, in ${built.temporary}: ${built.note}`);
  return built;
}

// The core to set, when OpenBLAS serves libblas.so.3 and fell back below what the CPU supports.
function coretypeFor(facts: StartupFacts): { value: string; from: string } | null {
  const core = facts.openblasCore !== undefined ? facts.openblasCore : openblasCore();
  const cpu = facts.cpuinfo !== undefined ? parseCpuinfo(facts.cpuinfo) : readCpuinfo();
  if (!core || !cpu) return null;
  const value = chooseCoretype(cpu, core);
  return value ? { value, from: core } : null;
}

// In the re-executed process: record the kernel choice, then take out of the environment what the
// start-up added (OpenBLAS has read OPENBLAS_CORETYPE by now: openblasCore() loads it if MLX has not).
function settleReexecuted(fellBackFrom: string | undefined): void {
  forgetPreloads();
  const coretype = process.env.OPENBLAS_CORETYPE;
  if (fellBackFrom === undefined || !coretype) return;
  openblasCore();
  choice = { by: "sft-mlx", coretype, openblasChose: fellBackFrom };
  delete process.env.OPENBLAS_CORETYPE;
  setCEnv("OPENBLAS_CORETYPE", undefined);
}
