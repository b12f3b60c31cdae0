// The memory policy for @frost-beta/mlx 0.0.7 under Bun, in one place.
//
// The binding frees native arrays only from finalizers, which run from the event loop, and the
// garbage collector does not see native memory. A loop that never yields keeps every step's arrays
// (measured: a 5.8M-param training loop grew to ~24 GB in ~20 steps). Yielding once per step and
// collecting explicitly kept resident memory flat and was also the fastest setting.
import { readFileSync, writeFileSync } from "node:fs";
import { libc } from "./libc.ts";
import { returnFreeMemory } from "./allocator.ts";

/** Yield to the event loop and run a collection, so finalizers free the last step's arrays. Call
 * once per training step (a full collection, ~1 ms there) or every few generated tokens, where a full
 * collection cost ~3.5 ms — more than a whole token — and a young-generation one (`full: false`,
 * ~0.1 ms) frees the per-token arrays just as well. */
export async function releaseMemory({ full = true, toSystem = false }: { full?: boolean; toSystem?: boolean } = {}): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  Bun.gc(full);
  if (toSystem) {
    // That collection queued the finalizers of what was just dropped; they free the native arrays
    // on a later turn (measured: one pass kept a released optimizer state resident, two freed it).
    await new Promise((resolve) => setTimeout(resolve, 0));
    Bun.gc(true);
    returnFreeMemory(); // see there: at the end of a phase, not every step
  }
}

/** Collect, then yield once more: the finalizers of what the collection found dead run on the event
 * loop after it, so only then is the native memory of the arrays JavaScript let go of released. Call
 * before evaluating a graph that should overwrite those arrays in place (MLX reuses an input's memory
 * only when nothing else holds it). */
export async function releaseMemoryNow(): Promise<void> {
  await releaseMemory();
  await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Resident set size now, in MB. */
export function rssMB(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}

/** Peak resident set size of this process so far, in MB. On Linux from VmHWM: getrusage's maxRSS
 * survives exec, so a script spawned by a larger process (the benchmark) reported its parent's peak. */
export function peakRssMB(): number {
  if (process.platform === "linux") {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (hwm) return Number(hwm[1]) / 1024;
  }
  const maxRSS = process.resourceUsage().maxRSS;
  return process.platform === "darwin" ? maxRSS / 2 ** 20 : maxRSS / 1024; // bytes on macOS, KB elsewhere
}

/** Start the peak resident set over from the current one (Linux: VmHWM through /proc/self/clear_refs),
 * so that peakRssMB() afterwards is the peak of what follows, e.g. one training step after loading.
 * Returns false where that is not possible (then the peak stays the process's). */
export function resetPeakRss(): boolean {
  if (process.platform !== "linux") return false;
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

const M_ARENA_MAX = -8; // glibc mallopt parameter (malloc.h)

/** Make every thread allocate from glibc's one main arena. By default each MLX stream thread gets an
 * arena of its own, and arrays freed in one are not reused by the other, so resident memory wandered
 * by ±15% between steps of an SFT run; with one arena it stayed within 1% from step 150 to 500
 * (MALLOC_ARENA_MAX=1, same run). Call before the stream threads start. Linux with glibc only. */
export function useOneMallocArena(): void {
  if (process.platform !== "linux") return;
  try {
    libc().mallopt(M_ARENA_MAX, 1);
  } catch {
    // not glibc (e.g. musl): nothing to set
  }
}
