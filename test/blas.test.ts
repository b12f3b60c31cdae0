// lib/mlx/blas.ts and lib/mlx/startup.ts: which OpenBLAS kernels a CPU should get, from real
// /proc/cpuinfo excerpts (test/fixtures/cpuinfo/: an Intel Xeon of family 6 model 207, on which
// Debian's OpenBLAS 0.3.21 falls back to Prescott, and this project's AMD EPYC, family 25 model 17),
// and that a re-executed script really runs with the chosen OPENBLAS_CORETYPE.
//   bun test test/blas.test.ts
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { blasInfo, chooseCoretype, expectedGflops, parseCpuinfo, simdLevel } from "../lib/mlx/blas.ts";
import { runProbeScript } from "./helpers/probe-script.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const fixture = (name: string) => readFileSync(resolve(import.meta.dir, "fixtures/cpuinfo", name), "utf8");
const INTEL = fixture("intel-xeon-6-207.txt");
const AMD = fixture("amd-epyc-25-17.txt");
// The same CPUs with their AVX-512 flags taken out: an AVX2 Intel (Haswell on) and an AVX2 AMD (Zen 1-3).
const withoutAvx512 = (text: string) => text.replace(/ avx512\w*/g, "");
const INTEL_AVX2 = withoutAvx512(INTEL);
const AMD_AVX2 = withoutAvx512(AMD);
const SSE_ONLY = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 15\nflags\t\t: fpu sse sse2 pni ssse3\n";

describe("parseCpuinfo", () => {
  test("reads the first processor block", () => {
    const intel = parseCpuinfo(INTEL);
    expect([intel.vendor, intel.family, intel.model, intel.modelName, intel.mhz]).toEqual(["GenuineIntel", 6, 207, "Intel(R) Xeon(R) Processor", 2400]);
    const amd = parseCpuinfo(AMD);
    expect([amd.vendor, amd.family, amd.model, amd.modelName, amd.mhz]).toEqual(["AuthenticAMD", 25, 17, "AMD EPYC", 2596.138]);
    expect(amd.flags.has("avx512_bf16")).toBe(true);
    expect(parseCpuinfo(SSE_ONLY).mhz).toBeNull();
  });

  test.each([
    { cpu: "Intel 6/207", text: INTEL, level: "avx512" },
    { cpu: "AMD EPYC 25/17", text: AMD, level: "avx512" },
    { cpu: "Intel AVX2", text: INTEL_AVX2, level: "avx2" },
    { cpu: "SSE only", text: SSE_ONLY, level: "sse" },
  ])("$cpu supports $level", ({ text, level }) => {
    expect(simdLevel(parseCpuinfo(text))).toBe(level);
  });
});

describe("chooseCoretype: OpenBLAS's corename and the CPU's flags -> OPENBLAS_CORETYPE or none", () => {
  test.each([
    // the machine: OpenBLAS 0.3.21 does not know model 207 and falls back
    { cpu: "Intel 6/207", text: INTEL, chose: "Prescott", want: "COOPERLAKE" },
    { cpu: "Intel 6/207", text: INTEL, chose: "Nehalem", want: "COOPERLAKE" },
    { cpu: "Intel 6/207", text: INTEL, chose: "Haswell", want: "COOPERLAKE" },
    { cpu: "Intel 6/207", text: INTEL, chose: "Cooperlake", want: null }, // a newer OpenBLAS knows it
    { cpu: "Intel 6/207", text: INTEL, chose: "SkylakeX", want: null }, // the same fp32 kernels
    { cpu: "Intel 6/207", text: INTEL, chose: "SapphireRapids", want: null },
    // this machine: Debian's OpenBLAS picks Cooperlake for Zen 4 itself
    { cpu: "AMD EPYC 25/17", text: AMD, chose: "Cooperlake", want: null },
    { cpu: "AMD EPYC 25/17", text: AMD, chose: "Prescott", want: "COOPERLAKE" },
    { cpu: "AMD EPYC 25/17", text: AMD, chose: "Zen", want: "COOPERLAKE" },
    { cpu: "Intel AVX2", text: INTEL_AVX2, chose: "Prescott", want: "HASWELL" },
    { cpu: "Intel AVX2", text: INTEL_AVX2, chose: "Sandybridge", want: "HASWELL" },
    { cpu: "Intel AVX2", text: INTEL_AVX2, chose: "Haswell", want: null },
    { cpu: "AMD AVX2", text: AMD_AVX2, chose: "Barcelona", want: "ZEN" },
    { cpu: "AMD AVX2", text: AMD_AVX2, chose: "Zen", want: null },
    { cpu: "AMD AVX2", text: AMD_AVX2, chose: "Haswell", want: null },
    { cpu: "SSE only", text: SSE_ONLY, chose: "Prescott", want: null }, // nothing better to name
    { cpu: "Intel 6/207", text: INTEL, chose: "NewCore", want: null }, // a name it does not know: left alone
    { cpu: "Intel 6/207", text: INTEL, chose: "prescott", want: "COOPERLAKE" }, // case as the user may write it
  ])("$cpu, OpenBLAS chose $chose -> $want", ({ text, chose, want }) => {
    expect(chooseCoretype(parseCpuinfo(text), chose)).toBe(want);
  });
});

describe("expectedGflops: cores x fp32 FLOPs per cycle of the best instruction set x cpu MHz", () => {
  test.each([
    // the doctor passed 61 GFLOP/s (Prescott) on the Intel; its SkylakeX kernels gave 90-205
    { cpu: "Intel 6/207", text: INTEL, cores: 2, peak: 2 * 32 * 2.4, measured: 61, ok: false },
    { cpu: "Intel 6/207", text: INTEL, cores: 2, peak: 2 * 32 * 2.4, measured: 90, ok: true },
    // here: Cooperlake kernels 164-176, Prescott's 58-72 (doctor-like matmul, 2 threads)
    { cpu: "AMD EPYC 25/17", text: AMD, cores: 2, peak: 2 * 32 * 2.596138, measured: 164, ok: true },
    { cpu: "AMD EPYC 25/17", text: AMD, cores: 2, peak: 2 * 32 * 2.596138, measured: 72, ok: false },
    { cpu: "Intel AVX2", text: INTEL_AVX2, cores: 4, peak: 4 * 32 * 2.4, measured: 200, ok: true },
  ])("$cpu on $cores cores: $measured GFLOP/s ok=$ok", ({ text, cores, peak, measured, ok }) => {
    const e = expectedGflops(parseCpuinfo(text), cores)!;
    expect(e.peak).toBeCloseTo(peak, 6);
    expect(measured >= e.floor).toBe(ok);
  });

  test("no clock in cpuinfo: no expectation", () => {
    expect(expectedGflops(parseCpuinfo(SSE_ONLY), 2)).toBeNull();
  });
});

const openblas = process.platform === "linux" && blasInfo()?.kind === "openblas";
const STARTUP = resolve(import.meta.dir, "../lib/mlx/startup.ts");
const BLAS = resolve(import.meta.dir, "../lib/mlx/blas.ts");

/** Run a script that calls prepareProcess(facts) and reports the kernels OpenBLAS runs. */
function runProbe(facts: object, env: Record<string, string | undefined> = {}): Record<string, any> {
  const run = runProbeScript(`
    import { kernelChoice, prepareProcess } from ${JSON.stringify(STARTUP)};
    import { openblasCore } from ${JSON.stringify(BLAS)};
    import { execSync } from "node:child_process";
    prepareProcess(${JSON.stringify(facts)});
    console.log(JSON.stringify({ pid: process.pid, core: openblasCore(), choice: kernelChoice(),
      childCoretype: execSync("echo -n $OPENBLAS_CORETYPE").toString() }));
  `, { env: { OPENBLAS_CORETYPE: undefined, ...env } });
  expect(run.stderr).toBe("");
  expect(run.exitCode).toBe(0);
  return { ...run.report(), spawnedPid: run.pid };
}

describe.skipIf(!openblas)(`the start-up sets OPENBLAS_CORETYPE for the re-executed script${openblas ? "" : " (skipped: libblas.so.3 is not OpenBLAS)"}`, () => {
  // An AVX2 CPU whose OpenBLAS "chose" Prescott: the re-executed script must run Haswell kernels,
  // which OpenBLAS never picks by itself on this AVX-512 machine (nor on the Intel 6/207).
  test("a fallback core is replaced by the CPU's, in the same pid; the programs it starts do not inherit it", () => {
    const r = runProbe({ cpuinfo: INTEL_AVX2, openblasCore: "Prescott" });
    expect(r.core).toBe("Haswell");
    expect(r.choice).toEqual({ by: "sft-mlx", coretype: "HASWELL", openblasChose: "Prescott" });
    expect(r.pid).toBe(r.spawnedPid);
    expect(r.childCoretype).toBe("");
  });

  test("a value the user set is never replaced, and stays for the programs it starts", () => {
    const r = runProbe({ cpuinfo: INTEL_AVX2, openblasCore: "Prescott" }, { OPENBLAS_CORETYPE: "SANDYBRIDGE" });
    expect(r.core).toBe("Sandybridge");
    expect(r.choice).toEqual({ by: "user", coretype: "SANDYBRIDGE" });
    expect(r.childCoretype).toBe("SANDYBRIDGE");
  });

  test("OpenBLAS's own choice is kept when it matches the CPU", () => {
    const r = runProbe({ cpuinfo: INTEL_AVX2, openblasCore: "Haswell" }, { SFT_MLX_TCMALLOC: "0" });
    expect(r.choice).toEqual({ by: "openblas" });
    // this machine's own choice, read in a process where nothing sets it (the caller's environment may)
    const own = runProbeScript(`import { openblasCore } from ${JSON.stringify(BLAS)}; console.log(JSON.stringify({ core: openblasCore() }));`,
      { env: { OPENBLAS_CORETYPE: undefined } }).report().core;
    expect(r.core).toBe(own);
  });
});
