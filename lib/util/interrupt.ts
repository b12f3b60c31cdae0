// Two-stage Ctrl-C for long loops: the first press asks the loop to stop after its current step
// (so it can save), the second aborts at once. While results are being saved the listener stays
// (without one, Ctrl-C kills the process in the middle of a write): a press then only says what is
// being saved, and a second one within a few seconds aborts, saying what is lost. Saves are
// synchronous, so presses during one are handled after it ends; `protect` waits for them before
// it gives the keys back.

export interface Interrupt {
  /** Whether Ctrl-C has been pressed (stop requested). */
  readonly requested: boolean;
  /** Enter a phase whose writes must not be cut short (see the header). `lost` says, at the moment
   * of an abort, what the user loses. Returns `release`, to await when the phase is over. */
  protect(saying: string, lost: () => string, windowMs?: number): () => Promise<void>;
  /** Stop listening (restore the default Ctrl-C). */
  dispose(): void;
}

export interface InterruptOptions {
  /** Printed before a second press exits (what the abort loses). */
  onAbort?: () => void;
  write?: (message: string) => void; // default: stderr
}

/** Listen for SIGINT; `notify` runs on the first press. */
export function onInterrupt(notify: () => void, { onAbort, write = (m) => process.stderr.write(m + "\n") }: InterruptOptions = {}): Interrupt {
  let requested = false;
  let guard: { saying: string; lost: () => string; windowMs: number; last?: number } | null = null;
  const handler = () => {
    if (guard) {
      const now = Date.now();
      if (guard.last !== undefined && now - guard.last <= guard.windowMs) {
        write(`interrupt: aborted. ${guard.lost()}`);
        process.exit(130);
      }
      guard.last = now;
      requested = true;
      write(`interrupt: ${guard.saying}; Ctrl-C again within ${Math.round(guard.windowMs / 1000)} s aborts (${guard.lost()})`);
      return;
    }
    if (requested) {
      onAbort?.();
      process.exit(130);
    }
    requested = true;
    notify();
  };
  process.on("SIGINT", handler);
  return {
    get requested() {
      return requested;
    },
    protect(saying, lost, windowMs = 3000) {
      guard = { saying, lost, windowMs };
      return async () => {
        await new Promise((r) => setTimeout(r, 10)); // presses queued during a synchronous save land here, still guarded
        guard = null;
      };
    },
    dispose: () => void process.off("SIGINT", handler),
  };
}
