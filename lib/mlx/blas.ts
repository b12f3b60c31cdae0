// Which BLAS serves MLX's matmuls, which kernels it runs, and which kernels this CPU should get.
//
// MLX calls cblas_sgemm from whatever libblas.so.3 the loader resolves (on Debian, the alternative
// that update-alternatives selects). OpenBLAS built with DYNAMIC_ARCH (Debian's is) picks its kernels
// once, when it loads, from the CPU model; a model newer than its table gets a generic core: Debian's
// OpenBLAS 0.3.21 runs Prescott (SSE3) kernels on an Intel Xeon of family 6 model 207 (AVX-512),
// at a third of the speed of its SkylakeX kernels there. OPENBLAS_CORETYPE names the core instead;
// it is read only at load time, so lib/mlx/startup.ts sets it before re-executing the script.
//
// The choice and the doctor's expectation come from pure functions of /proc/cpuinfo's text and
// OpenBLAS's own answer (test/blas.test.ts holds them to real cpuinfo excerpts); the FFI below only
// asks the loaded library.
import { readFileSync, realpathSync } from "node:fs";
import { CString, dlopen, FFIType, ptr } from "bun:ffi";
import { dlLibraryOf } from "./libc.ts";

/** The facts of /proc/cpuinfo that the kernel choice and the matmul expectation use. */
export interface CpuInfo {
  vendor: string; // vendor_id: GenuineIntel, AuthenticAMD, ...
  family: number;
  model: number;
  modelName: string;
  mhz: number | null; // "cpu MHz" (the nominal clock in a VM); null when not reported
  flags: Set<string>;
}

/** Parse the first processor block of /proc/cpuinfo (all cores of these machines are alike). */
export function parseCpuinfo(text: string): CpuInfo {
  const block = text.split(/\n\s*\n/)[0] ?? "";
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(block)?.[1]?.trim();
  const mhz = Number(field("cpu MHz"));
  return {
    vendor: field("vendor_id") ?? "",
    family: Number(field("cpu family") ?? NaN),
    model: Number(field("model") ?? NaN),
    modelName: field("model name") ?? "",
    mhz: Number.isFinite(mhz) && mhz > 0 ? mhz : null,
    flags: new Set((field("flags") ?? "").split(/\s+/).filter(Boolean)),
  };
}

/** This machine's /proc/cpuinfo, or null where there is none (macOS). */
export function readCpuinfo(): CpuInfo | null {
  try {
    return parseCpuinfo(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return null;
  }
}

// The vector instruction sets of OpenBLAS's x86 fp32 kernels, lowest first. (Cooperlake adds bf16
// kernels to SkylakeX's; its fp32 ones are SkylakeX's.)
const LEVELS = ["sse", "avx", "avx2", "avx512"] as const;
export type SimdLevel = (typeof LEVELS)[number];

const hasAll = (cpu: CpuInfo, ...flags: string[]) => flags.every((f) => cpu.flags.has(f));

/** The highest level the CPU's flags support (the flags the kernel has enabled, so also what a VM
 * passes through). SkylakeX kernels need AVX-512 F, BW and VL; Haswell's AVX2 and FMA. */
export function simdLevel(cpu: CpuInfo): SimdLevel {
  if (hasAll(cpu, "avx512f", "avx512bw", "avx512vl")) return "avx512";
  if (hasAll(cpu, "avx2", "fma")) return "avx2";
  if (hasAll(cpu, "avx")) return "avx";
  return "sse";
}

// OpenBLAS's x86-64 core names (driver/others/dynamic.c, as openblas_get_corename returns them) by
// the instruction set their sgemm kernels use. A name not listed (a newer OpenBLAS's) is left alone.
const CORE_LEVEL: Record<string, SimdLevel> = Object.fromEntries([
  ...["unknown", "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington", "nehalem",
    "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat"].map((c) => [c, "sse"]),
  ...["sandybridge", "bulldozer", "piledriver", "steamroller"].map((c) => [c, "avx"]),
  ...["haswell", "excavator", "zen"].map((c) => [c, "avx2"]),
  ...["skylakex", "cooperlake", "sapphirerapids"].map((c) => [c, "avx512"]),
]);

/** The instruction set of an OpenBLAS core's kernels, or null for a name this table does not know. */
export function coreLevel(corename: string): SimdLevel | null {
  return CORE_LEVEL[corename.toLowerCase()] ?? null;
}

/** The OpenBLAS core (an OPENBLAS_CORETYPE value) for the CPU's best level. On AMD the AVX2 core
 * is Zen (the Haswell kernels with Zen's blocking); with AVX-512, OpenBLAS itself picks SkylakeX or
 * Cooperlake on AMD too (Zen 4). */
export function bestCore(cpu: CpuInfo): string | null {
  switch (simdLevel(cpu)) {
    case "avx512": return hasAll(cpu, "avx512_bf16") ? "COOPERLAKE" : "SKYLAKEX"; // as OpenBLAS names a CPU it knows
    case "avx2": return cpu.vendor === "AuthenticAMD" ? "ZEN" : "HASWELL";
    case "avx": return "SANDYBRIDGE";
    default: return null; // OpenBLAS's own choice is as good as any
  }
}

/** The OPENBLAS_CORETYPE to set, or null to leave OpenBLAS's choice: only when the core it chose
 * (`corename`) runs a lower instruction set than the CPU's flags support, i.e. it fell back to a
 * generic core for a CPU it does not know. */
export function chooseCoretype(cpu: CpuInfo, corename: string): string | null {
  const chosen = coreLevel(corename);
  const best = bestCore(cpu);
  if (chosen === null || best === null) return null;
  return LEVELS.indexOf(chosen) < LEVELS.indexOf(simdLevel(cpu)) ? best : null;
}

// fp32 FLOPs per cycle per core that any CPU with these flags retires at least: AVX-512 one 512-bit
// FMA (Zen 4 runs it as two 256-bit halves; Intel server cores with two FMA units do twice this),
// AVX2 two 256-bit FMAs on Intel, Zen 2 on (Zen 1 has half: Debian's OpenBLAS chooses right there),
// AVX one 256-bit add and one multiply, SSE one 128-bit add and one multiply.
const FLOPS_PER_CYCLE: Record<SimdLevel, number> = { sse: 8, avx: 16, avx2: 32, avx512: 32 };
/** The share of that peak a right-for-the-CPU sgemm reaches at 1024² at least; below it the doctor
 * says the kernels are wrong. Measured here: Cooperlake kernels 170–176 GFLOP/s on 2 cores of a
 * 2.6 GHz Zen 4 (~103% of 166: it boosts above the nominal clock), Prescott's 58–72 (~40%). */
export const MIN_PEAK_SHARE = 0.5;

/** The matmul speed this CPU's right kernels should give on `cores` cores: cores × fp32 FLOPs per
 * cycle of its best instruction set × the clock cpuinfo reports. Null without a clock. */
export function expectedGflops(cpu: CpuInfo, cores: number): { peak: number; floor: number } | null {
  if (cpu.mhz === null) return null;
  const peak = (cores * FLOPS_PER_CYCLE[simdLevel(cpu)] * cpu.mhz) / 1000;
  return { peak, floor: peak * MIN_PEAK_SHARE };
}

/** The BLAS library that serves MLX's cblas_sgemm, as far as it tells. */
export interface BlasInfo {
  kind: "openblas" | "mkl" | "blis" | "reference" | "other";
  path: string; // the file that holds cblas_sgemm, symlinks resolved
  version: string; // OpenBLAS's config string, MKL's or BLIS's version
  core?: string; // OpenBLAS: the kernels it runs (openblas_get_corename)
}

const cstringFn = { args: [], returns: FFIType.cstring } as const;

/** The libblas.so.3 in this process (loading it if MLX has not yet), or null without one. */
export function blasInfo(): BlasInfo | null {
  const path = dlLibraryOf("libblas.so.3", "cblas_sgemm");
  if (!path) return null;
  const real = safeRealpath(path);
  const openblas = tryCall(path, "openblas_get_config");
  if (openblas !== null) return { kind: "openblas", path: real, version: openblas.trim(), core: tryCall(path, "openblas_get_corename") ?? undefined };
  const mkl = mklVersion(path);
  if (mkl !== null) return { kind: "mkl", path: real, version: mkl };
  // Debian's BLIS libblas.so.3 exports the BLAS symbols only, no bli_info_*: known by its folder
  if (/blis/.test(real)) return { kind: "blis", path: real, version: "BLIS" };
  if (/\/blas\/libblas\.so/.test(real)) return { kind: "reference", path: real, version: "reference BLAS (netlib)" };
  return { kind: "other", path: real, version: real.split("/").pop() ?? real };
}

/** The core OpenBLAS runs in this process, or null when libblas.so.3 is not OpenBLAS. */
export function openblasCore(): string | null {
  const info = blasInfo();
  return info?.kind === "openblas" ? (info.core ?? null) : null;
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

// dlopen of a loaded library returns that instance; a missing symbol throws, which means "not this BLAS".
function tryCall(path: string, symbol: string): string | null {
  try {
    const lib = dlopen(path, { [symbol]: cstringFn });
    const out = String((lib.symbols[symbol] as () => CString)());
    return out;
  } catch {
    return null;
  }
}

// MKL writes its version into a caller's buffer: mkl_get_version_string(char* buf, int len).
function mklVersion(path: string): string | null {
  try {
    const lib = dlopen(path, { mkl_get_version_string: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.void } });
    const buf = Buffer.alloc(256);
    lib.symbols.mkl_get_version_string(ptr(buf), buf.length);
    const full = buf.toString("utf8").replace(/\0.*$/s, "").trim(); // "Intel(R) Math Kernel Library Version 2020.0.4 Product Build ..."
    return `Intel MKL ${/Version ([\d.]+)/.exec(full)?.[1] ?? full}`;
  } catch {
    return null;
  }
}

export const LEVEL_NAME: Record<SimdLevel, string> = { sse: "SSE", avx: "AVX", avx2: "AVX2", avx512: "AVX-512" };

/** "Cooperlake (AVX-512 kernels)": a core name with the instruction set of its kernels. */
export function describeCore(core: string): string {
  const level = coreLevel(core);
  return level ? `${core} (${LEVEL_NAME[level]} kernels)` : core;
}
