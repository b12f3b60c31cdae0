// Two-stage Ctrl-C for long loops: the first press asks the loop to stop after its current step
// (so it can save), the second aborts at once.

export interface Interrupt {
  /** Whether Ctrl-C has been pressed once. */
  readonly requested: boolean;
  /** Stop listening (restore the default Ctrl-C). */
  dispose(): void;
}

/** Listen for SIGINT; `notify` runs on the first press. */
export function onInterrupt(notify: () => void): Interrupt {
  let requested = false;
  const handler = () => {
    if (requested) process.exit(130);
    requested = true;
    notify();
  };
  process.on("SIGINT", handler);
  return {
    get requested() {
      return requested;
    },
    dispose: () => void process.off("SIGINT", handler),
  };
}
