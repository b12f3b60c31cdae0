// Spreading one batch's work over the CPU cores: one MLX stream per core, one BLAS thread each.
//
// MLX runs the ops of a stream one after another on that stream's thread, and in this build its CPU
// elementwise ops, reductions and softmax are single-threaded; only OpenBLAS matmuls use more than one
// core. On one stream a training step therefore leaves a core idle for about half of the step.
// Splitting the batch into row shards, each on its own CPU stream, keeps every core busy; OpenBLAS is
// then held to one thread per call, since two shards' matmuls already run side by side (measured on
// 2 cores, forward + backward of 16 x 256: one stream 2.18 s, two streams 1.50 s; two streams with
// two BLAS threads each 2.55 s, because the threads oversubscribe the cores).
// On the GPU there is one stream: Metal parallelises within each op.
import { availableParallelism } from "node:os";
import { dlopen, FFIType } from "bun:ffi";
import { core as mx } from "@frost-beta/mlx";
import { useOneMallocArena } from "./memory.ts";
import { blasInfo } from "./blas.ts";

const MAX_CPU_STREAMS = 8; // shards beyond this get too thin to keep a core busy

let streams: mx.Stream[] | null = null;

/** Whether MLX computes on the CPU (Linux, or a Mac told to), not on Metal. */
export function onCpu(): boolean {
  return String(mx.defaultDevice()).includes("cpu");
}

/** The streams a batch is sharded over: one per CPU core on the CPU, the default stream on the GPU.
 * Made once per process; work sharded over them calls `useBlasFor(streams.length)` first.
 * `SFT_MLX_STREAMS=N` sets the number of CPU streams (1 turns sharding off). */
export function computeStreams(): mx.Stream[] {
  if (streams) return streams;
  const env = process.env.SFT_MLX_STREAMS;
  const wanted = env === undefined ? Math.min(availableParallelism(), MAX_CPU_STREAMS) : Number(env);
  if (!Number.isInteger(wanted) || wanted < 1) throw new Error(`SFT_MLX_STREAMS=${env}: expected a whole number of streams, 1 or more (unset it to use one per core)`);
  const n = onCpu() ? wanted : 1;
  if (n > 1) useOneMallocArena(); // before the stream threads allocate
  streams = n > 1 ? Array.from({ length: n }, () => mx.newStream(mx.cpu)) : [mx.defaultStream(mx.defaultDevice())];
  return streams;
}

/** The row ranges [start, end) that split `rows` rows into at most `shards` near-equal shards. */
export function shardRanges(rows: number, shards: number): [number, number][] {
  const k = Math.max(1, Math.min(shards, rows));
  return Array.from({ length: k }, (_, i) => [Math.floor((i * rows) / k), Math.floor(((i + 1) * rows) / k)]);
}

/** Assign each of `sizes` (e.g. parameter element counts) to one of `k` bins, largest first into
 * the emptiest bin, so each stream gets about the same amount of elementwise work. */
export function balance(sizes: number[], k: number): number[] {
  const load = new Array<number>(k).fill(0);
  const bin = new Array<number>(sizes.length).fill(0);
  const order = sizes.map((_, i) => i).sort((a, b) => sizes[b]! - sizes[a]!);
  for (const i of order) {
    const j = load.indexOf(Math.min(...load));
    bin[i] = j;
    load[j]! += sizes[i]!;
  }
  return bin;
}

type BlasLib = { setThreads: (n: number) => void; getThreads: () => number };
let blas: BlasLib | null | undefined;

// The thread setting of the BLAS that serves libblas.so.3 (lib/mlx/blas.ts): OpenBLAS's, or Intel
// MKL's when it is the alternative selected. Debian's BLIS exports no thread setting from its
// libblas.so.3 (BLIS_NUM_THREADS, read at start, decides there).
function blasControl(): BlasLib | null {
  if (blas !== undefined) return blas;
  blas = null;
  if (process.platform !== "linux") return blas; // macOS: Accelerate, which MLX does not thread this way
  const info = blasInfo();
  try {
    if (info?.kind === "openblas") {
      // Already loaded by MLX: dlopen returns that instance.
      const lib = dlopen(info.path, {
        openblas_set_num_threads: { args: [FFIType.i32], returns: FFIType.void },
        openblas_get_num_threads: { args: [], returns: FFIType.i32 },
      });
      blas = { setThreads: (n) => lib.symbols.openblas_set_num_threads(n), getThreads: () => lib.symbols.openblas_get_num_threads() };
    } else if (info?.kind === "mkl") {
      const lib = dlopen(info.path, {
        MKL_Set_Num_Threads: { args: [FFIType.i32], returns: FFIType.void },
        MKL_Get_Max_Threads: { args: [], returns: FFIType.i32 },
      });
      blas = { setThreads: (n) => lib.symbols.MKL_Set_Num_Threads(n), getThreads: () => lib.symbols.MKL_Get_Max_Threads() };
    }
  } catch {
    // a build without these symbols: nothing to set
  }
  return blas;
}

let defaultBlasThreads: number | null = null;

/** Set the BLAS's threads for work spread over `streams` streams: one thread per call when several
 * shards run at once (their matmuls already run side by side), its own default (OpenBLAS: one per
 * core, or OPENBLAS_NUM_THREADS) for work on one stream such as decoding (measured 274 vs 253 tokens/s). */
export function useBlasFor(streams: number): void {
  const lib = blasControl();
  if (!lib) return;
  defaultBlasThreads ??= lib.getThreads();
  const want = streams > 1 ? 1 : defaultBlasThreads;
  if (lib.getThreads() !== want) lib.setThreads(want);
}

/** The number of BLAS threads now, or null when the BLAS has no thread setting here. */
export function blasThreads(): number | null {
  return blasControl()?.getThreads() ?? null;
}
