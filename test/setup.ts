// Preloaded by bun test (bunfig.toml): the kernel flags the scripts use (lib/mlx/startup.ts; tcmalloc
// is left out: the test runner is not re-executed). The per-test timeout is set by each file
// (test/helpers/suite.ts): a preload's setDefaultTimeout reaches only the first file.
import { useFastCpuKernels } from "../lib/mlx/jit.ts";

useFastCpuKernels();
