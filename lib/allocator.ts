// The process's malloc on Linux: tcmalloc when it is installed, by re-executing the script once.
//
// glibc's malloc serves every block above its mmap threshold (at most 32 MB; the logits of one 8-row
// shard of the reference batch are 33.5 MB) with fresh pages from the kernel and unmaps them on free,
// and trims freed memory off the top of its heap: each training step touched hundreds of MB of new
// pages, a page fault per 4 KB (~3–8 µs each on this VM). tcmalloc keeps freed pages and reuses them.
// Measured on the reference step (16 × 256, three interleaved pairs of separate processes): system
// time 3.3–4.1 s → 1.0–1.4 s for the same work, tokens/s +9% (2,724 / 2,578 / 2,661 → 3,030 / 2,854 /
// 2,843); in `bun scripts/bench.ts --case train-ref` (three interleaved pairs) +2%, +6%, +6%. Peak
// resident memory +30 MB; decoding the same speed (five pairs), ~55 MB more resident. glibc's own remedies measured less: transparent huge pages
// (`glibc.malloc.hugetlb=1`) +3%; a fixed mmap threshold with a high trim threshold +4% but resident
// memory grew 46% over an SFT run.
//
// A malloc cannot be replaced inside a running process, so the scripts that train or generate call
// `useTcmalloc()` first thing: it re-executes the same command (same pid, same arguments, through
// execv) with LD_PRELOAD naming tcmalloc, and in the re-executed process removes LD_PRELOAD again so
// the programs it starts (git, g++, Python) keep their own malloc. `SFT_MLX_TCMALLOC=0` opts out.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { existsSync, readFileSync } from "node:fs";

const TRIPLE = `${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`;
/** Debian's libtcmalloc-minimal4 (gperftools: malloc only, no profiler). */
export const TCMALLOC_PATH = `/usr/lib/${TRIPLE}/libtcmalloc_minimal.so.4`;
export const FIX_TCMALLOC = "apt-get install -y libtcmalloc-minimal4";
const MARKER = "SFT_MLX_REEXEC"; // set in the re-executed process: never re-execute twice
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

/** Re-execute this script under tcmalloc when it is installed and not in use yet (Linux only); a
 * no-op otherwise. Call before any long-lived state exists: the process image is replaced. */
export function useTcmalloc(): void {
  if (process.platform !== "linux") return;
  if (process.env[MARKER]) {
    forgetPreload(); // the preload has done its work: child processes start with their own malloc
    return;
  }
  if (process.env.SFT_MLX_TCMALLOC === "0" || !existsSync(TCMALLOC_PATH) || activeAllocator() === "tcmalloc") return;
  const preload = [TCMALLOC_PATH, process.env.LD_PRELOAD].filter(Boolean).join(":");
  const env = { ...process.env, LD_PRELOAD: preload, [MARKER]: preload, TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD: REPORT_THRESHOLD };
  execv(process.execPath, [process.execPath, ...process.argv.slice(1)], env); // returns only on failure
}

function forgetPreload(): void {
  const before = process.env[MARKER]!.split(":").slice(1).join(":"); // what LD_PRELOAD was before ours
  if (before) process.env.LD_PRELOAD = before;
  else delete process.env.LD_PRELOAD;
  delete process.env.TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD;
  // MLX starts g++ through the C library's environment, not Bun's process.env.
  const libc = dlopen("libc.so.6", {
    setenv: { args: [FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    unsetenv: { args: [FFIType.ptr], returns: FFIType.i32 },
  });
  if (before) libc.symbols.setenv(ptr(cstr("LD_PRELOAD")), ptr(cstr(before)), 1);
  else libc.symbols.unsetenv(ptr(cstr("LD_PRELOAD")));
}

/** execve(2) from Bun: replace this process with `argv` under `env`. Returns only if it failed. */
function execv(path: string, argv: string[], env: Record<string, string | undefined>): void {
  const libc = dlopen("libc.so.6", { execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 } });
  const keep: Buffer[] = []; // the strings must stay alive until execve copies them
  const table = (strings: string[]) => {
    const ptrs = new BigUint64Array(strings.length + 1); // NULL-terminated char*[]
    strings.forEach((s, i) => {
      const b = cstr(s);
      keep.push(b);
      ptrs[i] = BigInt(ptr(b));
    });
    return ptrs;
  };
  const envList = Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  const argvTable = table(argv);
  const envTable = table(envList);
  const file = cstr(path);
  libc.symbols.execve(ptr(file), ptr(argvTable), ptr(envTable));
  void [keep, file];
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}
