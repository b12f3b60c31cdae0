// The memory policy for @frost-beta/mlx 0.0.7 under Bun, in one place.
//
// The binding frees native arrays only from finalizers, which run from the event loop, and the
// garbage collector does not see native memory. A loop that never yields keeps every step's arrays
// (measured: a 5.8M-param training loop grew to ~24 GB in ~20 steps). Yielding once per step and
// collecting explicitly kept resident memory flat and was also the fastest setting.

/** Yield to the event loop and run a full collection, so finalizers free last step's arrays.
 * Call once per training step or every few generated tokens. */
export async function releaseMemory(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  Bun.gc(true);
}

/** Resident set size now, in MB. */
export function rssMB(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}

/** Peak resident set size of this process so far, in MB. */
export function peakRssMB(): number {
  return process.resourceUsage().maxRSS / 1024; // maxRSS is in KB on Linux
}
