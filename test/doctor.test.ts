// lib/mlx/doctor.ts judgeMatmul: the matmul check against what this CPU's kernels should give, on
// the real cpuinfo of the Intel Xeon (family 6 model 207, 2.4 GHz in its cpuinfo) and of
// this project's AMD EPYC (family 25 model 17, 2.6 GHz), 2 cores each. Speeds are the issue's.
//   bun test test/doctor.test.ts
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { BlasInfo } from "../lib/mlx/blas.ts";
import { parseCpuinfo } from "../lib/mlx/blas.ts";
import { FIX_BLAS, judgeMatmul } from "../lib/mlx/doctor.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const cpu = (name: string) => parseCpuinfo(readFileSync(resolve(import.meta.dir, "fixtures/cpuinfo", name), "utf8"));
const INTEL = cpu("intel-xeon-6-207.txt"); // floor: 0.5 x 2 x 32 x 2.4 = 76.8 GFLOP/s
const AMD = cpu("amd-epyc-25-17.txt"); // floor: 0.5 x 2 x 32 x 2.596 = 83.1 GFLOP/s
const openblas = (core: string): BlasInfo => ({ kind: "openblas", path: "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3", version: `OpenBLAS 0.3.21 DYNAMIC_ARCH ${core}`, core });
const MKL: BlasInfo = { kind: "mkl", path: "/usr/lib/x86_64-linux-gnu/libmkl_rt.so", version: "Intel(R) Math Kernel Library Version 2020.0.4" };

test.each([
  // the issue: the doctor passed 61 GFLOP/s on Prescott kernels; SkylakeX/Cooperlake gave 90-205
  { cpu: "Intel", at: INTEL, gflops: 61, blas: openblas("Prescott"), user: undefined, status: "fail", fix: "export OPENBLAS_CORETYPE=COOPERLAKE" },
  { cpu: "Intel", at: INTEL, gflops: 61, blas: openblas("Prescott"), user: "PRESCOTT", status: "warn", fix: "unset OPENBLAS_CORETYPE" },
  { cpu: "Intel", at: INTEL, gflops: 90, blas: openblas("Cooperlake"), user: undefined, status: "pass", fix: undefined },
  { cpu: "Intel", at: INTEL, gflops: 60, blas: openblas("Cooperlake"), user: undefined, status: "warn", fix: "close other CPU-heavy processes" },
  { cpu: "Intel", at: INTEL, gflops: 280, blas: MKL, user: undefined, status: "pass", fix: undefined }, // MKL on Intel: accepted
  // here: Cooperlake 164-176, Prescott 58-72; MKL 2020 takes its generic path on AMD (35-54 under load)
  { cpu: "AMD", at: AMD, gflops: 170, blas: openblas("Cooperlake"), user: undefined, status: "pass", fix: undefined },
  { cpu: "AMD", at: AMD, gflops: 72, blas: openblas("Prescott"), user: "PRESCOTT", status: "warn", fix: "unset OPENBLAS_CORETYPE" },
  { cpu: "AMD", at: AMD, gflops: 54, blas: MKL, user: undefined, status: "fail", fix: "update-alternatives --set libblas.so.3" },
])("$cpu, $gflops GFLOP/s on $blas.version: $status", ({ at, gflops, blas, user, status, fix }) => {
  const r = judgeMatmul(gflops, { cpu: at, cores: 2, blas, blasFailed: false, userCoretype: user });
  expect(r.status).toBe(status as never);
  if (fix) expect(r.fix).toContain(fix);
  else expect(r.fix).toBeUndefined();
  expect(r.detail).toContain("this CPU's kernels: ≥");
});

test("the fix for a slow BLAS selects OpenBLAS for both libblas and liblapack", () => {
  expect(FIX_BLAS).toContain("openblas-pthread/libblas.so.3");
  expect(FIX_BLAS).toContain("openblas-pthread/liblapack.so.3");
});

test("a failed blas check is fixed first; without a clock the old floor of 50 applies", () => {
  expect(judgeMatmul(5, { cpu: AMD, cores: 2, blasFailed: true }).fix).toBe("fix the blas check above first");
  const noClock = { ...AMD, mhz: null };
  expect(judgeMatmul(60, { cpu: noClock, cores: 2, blasFailed: false }).status).toBe("pass");
  expect(judgeMatmul(40, { cpu: noClock, cores: 2, blasFailed: false }).status).toBe("warn");
});
