// The process's malloc on Linux: tcmalloc when it is installed, by re-executing the script once.
//
// glibc's malloc serves every block above its mmap threshold (at most 32 MB; the logits of one 8-row
// shard of the reference batch are 33.5 MB) with fresh pages from the kernel and unmaps them on free,
// and trims freed memory off the top of its heap: each training step touched hundreds of MB of new
// pages, a page fault per 4 KB (~3–8 µs each on this VM). tcmalloc keeps freed pages and reuses them.
// Measured on the reference step (16 × 256, three interleaved pairs of separate processes): system
// time 3.3–4.1 s → 1.0–1.4 s for the same work, tokens/s +9% (2,724 / 2,578 / 2,661 → 3,030 / 2,854 /
// 2,843); in `bun scripts/bench.ts --case train-ref` (three interleaved pairs) +2%, +6%, +6%. Peak
// resident memory +30 MB; decoding the same speed (five pairs), ~55 MB more resident. glibc's own
// remedies measured less: transparent huge pages (`glibc.malloc.hugetlb=1`) +3%; a fixed mmap
// threshold with a high trim threshold +4% but resident memory grew 46% over an SFT run.
//
// A malloc cannot be replaced inside a running process, so the scripts that train or generate
// re-execute themselves once at start (lib/mlx/startup.ts) with LD_PRELOAD naming tcmalloc, and in
// the re-executed process take tcmalloc out of LD_PRELOAD again so the programs they start (git,
// g++, Python) keep their own malloc. `SFT_MLX_TCMALLOC=0` opts out.
import { dlopen, FFIType } from "bun:ffi";
import { existsSync, readFileSync } from "node:fs";
import { DEBIAN_TRIPLE, dropFromPreload } from "./libc.ts";

/** Debian's libtcmalloc-minimal4 (gperftools: malloc only, no profiler). */
export const TCMALLOC_PATH = `/usr/lib/${DEBIAN_TRIPLE}/libtcmalloc_minimal.so.4`;
export const FIX_TCMALLOC = "apt-get install -y libtcmalloc-minimal4";
// tcmalloc prints a stack trace to stderr for every allocation above 1 GB by default; a 1B-parameter
// checkpoint has single tensors that large. 1 TB: never.
const REPORT_THRESHOLD = String(2 ** 40);

/** Which malloc this process runs on: read from its own memory map, not assumed. */
export function activeAllocator(): "tcmalloc" | "glibc" | "system" {
  if (process.platform !== "linux") return "system";
  try {
    return readFileSync("/proc/self/maps", "utf8").includes("libtcmalloc") ? "tcmalloc" : "glibc";
  } catch {
    return "glibc";
  }
}

/** Whether a re-execution should preload tcmalloc: Linux, installed, not opted out, not in use. */
export function wantTcmalloc(): boolean {
  return process.platform === "linux" && activeAllocator() !== "tcmalloc" && process.env.SFT_MLX_TCMALLOC !== "0" && existsSync(TCMALLOC_PATH);
}

/** The environment that makes a re-executed process run on tcmalloc. */
export function tcmallocEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  return {
    TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD: REPORT_THRESHOLD, // unless the user set it
    ...env,
    LD_PRELOAD: [TCMALLOC_PATH, env.LD_PRELOAD].filter(Boolean).join(":"),
  };
}

/** Take tcmalloc out of LD_PRELOAD, leaving whatever else the user preloads, in Bun's environment and
 * in the C library's (MLX starts g++ through the latter). */
export function forgetPreload(): void {
  dropFromPreload((p) => p === TCMALLOC_PATH);
}

/** Hand the pages malloc keeps for reuse back to the kernel (tcmalloc: ReleaseFreeMemory; glibc:
 * malloc_trim), so that the resident set is the memory in use. For measurements: a peak taken after
 * this is the peak of what follows, not of what came before (e.g. a float32 model freed after
 * quantizing). And at the end of a run's phase (releaseMemory({ toSystem: true })): tcmalloc keeps
 * every freed page, so after training a 0.6B base a run stayed at its ~21 GB peak for the ~7 GB it
 * still used, through the last evaluation, the save and the probes. Never per step: every page comes
 * back as a page fault. Returns false where neither is available. */
export function returnFreeMemory(): boolean {
  try {
    if (activeAllocator() === "tcmalloc") {
      dlopen(TCMALLOC_PATH, { MallocExtension_ReleaseFreeMemory: { args: [], returns: FFIType.void } }).symbols.MallocExtension_ReleaseFreeMemory();
    } else {
      dlopen("libc.so.6", { malloc_trim: { args: [FFIType.u64], returns: FFIType.i32 } }).symbols.malloc_trim(0);
    }
    return true;
  } catch {
    return false;
  }
}
