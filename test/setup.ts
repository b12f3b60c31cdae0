// Preloaded by bun test (bunfig.toml): the default per-test timeout, and the kernel flags the scripts
// use (lib/mlx/startup.ts; tcmalloc is left out: the test runner is not re-executed). The slowest tests train a tiny
// model for tens of steps or drive the chat REPL through tmux; on a loaded 2-core machine they need
// more than Bun's 5 s default.
import { setDefaultTimeout } from "bun:test";
import { useFastCpuKernels } from "../lib/mlx/jit.ts";

setDefaultTimeout(60_000); // ms
useFastCpuKernels();
