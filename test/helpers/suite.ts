// The suite's per-test timeout. Bun applies setDefaultTimeout only to the file that calls it (a
// preload reaches the first file alone), so every test file calls useSuiteTimeout() at its top;
// test/suite.test.ts checks that none is missing.
import { setDefaultTimeout } from "bun:test";

/** Long enough for the slowest tests (tiny training runs, the tmux REPL) on a cold kernel cache on 2 cores. */
export const SUITE_TIMEOUT_MS = 120_000;

/** Give this file's tests the suite's timeout (or a longer one) instead of Bun's 5 s. */
export function useSuiteTimeout(ms = SUITE_TIMEOUT_MS): void {
  setDefaultTimeout(Math.max(ms, SUITE_TIMEOUT_MS));
}
