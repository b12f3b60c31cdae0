// The one start-up call of every script that trains, evaluates or generates: the process is set up
// here, before MLX runs anything, and nowhere else quietly changes the environment.
import { useTcmalloc } from "./allocator.ts";
import { useFastCpuKernels } from "./jit.ts";

/** Prepare this process for MLX work on this machine. Call first thing in a script's `run()`:
 * 1. re-executes the script once under tcmalloc when installed (Linux; lib/mlx/allocator.ts),
 * 2. points MLX's run-time CPU kernel builds at the vectorizing compiler wrapper (lib/mlx/jit.ts). */
export function prepareProcess(): void {
  useTcmalloc(); // replaces the process image: must come before anything long-lived
  useFastCpuKernels(); // before MLX builds its first fused kernel
}
