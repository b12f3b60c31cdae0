// Environment checks: is this machine ready to train? Each check returns a structured result and,
// for every failure, the exact command that fixes it. train/sweep call runDoctor({quiet: true})
// before long jobs; the full report is `bun scripts/doctor.ts`.
import { existsSync } from "node:fs";
import { availableParallelism, freemem } from "node:os";
import { join, relative, resolve } from "node:path";
import { consola } from "consola";
import { FIX_TCMALLOC, TCMALLOC_PATH } from "./allocator.ts";
import { gemvLibraryLoaded } from "./gemv.ts";
import { bestCore, blasInfo, chooseCoretype, describeCore, expectedGflops, LEVEL_NAME, MIN_PEAK_SHARE, readCpuinfo, simdLevel, type BlasInfo, type CpuInfo } from "./blas.ts";
import { DEBIAN_TRIPLE } from "./libc.ts";
import { kernelChoice } from "./startup.ts";

export type CheckStatus = "pass" | "warn" | "fail" | "skip";

export interface CheckResult {
  id: string; // stable name, usable with --skip
  status: CheckStatus;
  detail: string; // what was found, with the measured value
  fix?: string; // the command that fixes a failure or warning
}

export interface DoctorReport {
  ok: boolean; // no check failed (warnings are allowed)
  checks: CheckResult[];
}

export interface DoctorOptions {
  quiet?: boolean; // one line when everything passes; the full report on failure
  modelDir?: string; // base model to check; relative paths resolve against the cwd
  skip?: string[]; // check ids to leave out, e.g. ["model"]
}

const MIN_BUN = "1.1.0"; // oldest Bun the scripts run on
const LOCKFILE_BUN = "1.4.0"; // bun.lock is "lockfileVersion": 2; older Bun rejects it (Unknown lockfile version)
const MATMUL_N = 1024; // square fp32 matmul; ~2.1 GFLOP per rep
const MATMUL_REPS = 7; // the best of these, after one warm-up: what the kernels reach at the machine's quietest moment
const MIN_GFLOPS = 50; // without a clock in /proc/cpuinfo (no expectation): OpenBLAS on 2 cores ~110-200, reference BLAS ~5
const MIN_FREE_GB = 2; // the 5.8M-param benchmark loop held 1.0-1.5 GB with the GC/yield policy
const REPO_ROOT = resolve(import.meta.dir, "../..");
export const DEFAULT_MODEL_DIR = join(REPO_ROOT, "models", "gutenberg-base");
const MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json"];

// OpenBLAS for both libraries MLX links: the fastest BLAS measured on this project's CPUs
// (README → Performance → Which BLAS).
const OPENBLAS_DIR = `/usr/lib/${DEBIAN_TRIPLE}/openblas-pthread`;
export const FIX_BLAS = ["apt-get install -y libopenblas0-pthread liblapack3",
  ...["libblas", "liblapack"].map((l) => `update-alternatives --set ${l}.so.3-${DEBIAN_TRIPLE} ${OPENBLAS_DIR}/${l}.so.3`)].join(" && ");

type Mx = typeof import("@frost-beta/mlx").core;

/** Runs every check, in order, and returns the results without printing anything. */
export async function checkEnvironment({ modelDir = DEFAULT_MODEL_DIR, skip = [] }: DoctorOptions = {}): Promise<DoctorReport> {
  const checks: CheckResult[] = [checkBun()];
  const { mx, check: mlxCheck } = await checkMlx();
  checks.push(mlxCheck);
  if (mx) {
    const { check: blas, info } = checkBlas(mx);
    checks.push(checkDevice(mx), blas, checkMatmul(mx, info, blas.status === "fail"), checkKernels(mx));
  } else {
    for (const id of ["device", "blas", "matmul", "kernels"]) checks.push({ id, status: "skip", detail: "needs MLX" });
  }
  checks.push(checkAllocator(), checkMemory(), checkModel(modelDir));
  const kept = checks.filter((c) => !skip.includes(c.id));
  return { ok: kept.every((c) => c.status !== "fail"), checks: kept };
}

/**
 * Runs the checks and prints them: one line per check with its fix (or, with `quiet`, a single
 * line when nothing failed). Never throws for a failed check; callers decide from `report.ok`.
 */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const log = consola.withTag("doctor");
  const report = await checkEnvironment(options);
  if (options.quiet && report.ok) {
    const parts = report.checks.filter((c) => c.status !== "skip").map((c) => `${c.status === "warn" ? "! " : ""}${c.id} ${c.detail}`);
    log.log(`✓ ${parts.join(" · ")}`);
    for (const c of report.checks) if (c.fix && c.status === "warn") log.log(`  ${c.id} fix: ${c.fix}`);
    return report;
  }
  for (const c of report.checks) {
    log.log(`${MARK[c.status]} ${c.id.padEnd(7)} ${c.detail}`);
    if (c.fix && c.status !== "pass") log.log(`            fix: ${c.fix}`);
  }
  if (report.ok) log.success("environment ready");
  else log.error(`${report.checks.filter((c) => c.status === "fail").length} check(s) failed: run the fix lines above, then \`bun scripts/doctor.ts\``);
  return report;
}

const MARK: Record<CheckStatus, string> = { pass: "✓", warn: "!", fail: "✗", skip: "-" };

/** Prefixes sudo to each command of a chain when not running as root. */
function asRoot(cmd: string): string {
  if (process.getuid?.() === 0) return cmd;
  return cmd.split(" && ").map((c) => `sudo ${c}`).join(" && ");
}

function checkBun(): CheckResult {
  const fix = "npm install -g bun@latest";
  if (!Bun.semver.satisfies(Bun.version, `>=${MIN_BUN}`)) {
    return { id: "bun", status: "fail", detail: `${Bun.version} is older than ${MIN_BUN}`, fix };
  }
  if (!Bun.semver.satisfies(Bun.version, `>=${LOCKFILE_BUN}`)) {
    return { id: "bun", status: "warn", detail: `${Bun.version} cannot read bun.lock (needs ${LOCKFILE_BUN})`, fix };
  }
  return { id: "bun", status: "pass", detail: Bun.version };
}

// Dynamic import so a missing native library (libblas/liblapack) is a result, not a crash.
async function checkMlx(): Promise<{ mx?: Mx; check: CheckResult }> {
  try {
    const { core } = await import("@frost-beta/mlx");
    return { mx: core, check: { id: "mlx", status: "pass", detail: "loaded" } };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { check: { id: "mlx", status: "fail", detail: `import failed: ${message.split("\n")[0]}`, fix: mlxFix(message) } };
  }
}

// A missing liblapack.so.3 or libblas.so.3 gets both packages: liblapack3 alone pulls in
// Debian's reference BLAS (libblas3), which the blas check would then reject.
function mlxFix(message: string): string {
  if (/lib\w+\.so[.\d]*: cannot open shared object file/.test(message)) {
    return asRoot("apt-get install -y libopenblas0-pthread liblapack3");
  }
  if (/mlx\.node|mlx\.metallib/.test(message)) return "bun install && bun scripts/postinstall.ts";
  return "bun install  (then re-run `bun scripts/doctor.ts`; if it still fails, report the error above)";
}

function checkDevice(mx: Mx): CheckResult {
  const device = String(mx.defaultDevice()); // "Device(cpu, 0)"
  const wantGpu = process.platform === "darwin" && process.arch === "arm64";
  if (wantGpu && !device.includes("gpu")) {
    return { id: "device", status: "warn", detail: `${device}: Metal not in use`, fix: "bun scripts/postinstall.ts" };
  }
  return { id: "device", status: "pass", detail: device };
}

// On the CPU, MLX builds the fused kernels of every compiled graph (training step, decode step) with
// the g++ on PATH at run time; without one the first training step fails inside MLX.
function checkKernels(mx: Mx): CheckResult {
  if (!String(mx.defaultDevice()).includes("cpu")) return { id: "kernels", status: "skip", detail: "Metal kernels" };
  if (!Bun.which("g++")) {
    return { id: "kernels", status: "fail", detail: "no g++: MLX builds the CPU kernels of compiled graphs with it", fix: asRoot("apt-get install -y g++") };
  }
  const fast = process.platform === "linux" && process.env.SFT_MLX_FAST_KERNELS !== "0";
  return { id: "kernels", status: "pass", detail: fast ? "g++, vectorizing flags (lib/mlx/jit.ts)" : "g++, MLX's own flags" };
}

// Which BLAS serves MLX's cblas_sgemm (the file the loader resolved for libblas.so.3: OpenBLAS,
// Intel MKL, BLIS, Debian's reference BLAS) and, for OpenBLAS, which kernels it runs and who chose
// them (lib/mlx/startup.ts sets OPENBLAS_CORETYPE when OpenBLAS falls back to a generic core).
function checkBlas(mx: Mx): { check: CheckResult; info?: BlasInfo } {
  if (process.platform === "darwin") return { check: { id: "blas", status: "pass", detail: "Accelerate (macOS)" } };
  if (process.platform !== "linux") return { check: { id: "blas", status: "skip", detail: `not checked on ${process.platform}` } };
  mx.eval(mx.matmul(mx.ones([64, 64]), mx.ones([64, 64])));
  const info = blasInfo() ?? undefined;
  const fix = asRoot(FIX_BLAS);
  if (!info) return { check: { id: "blas", status: "fail", detail: "no libblas.so.3 with cblas_sgemm in the process", fix } };
  const file = info.path.split("/").slice(-2).join("/");
  const rows = gemvLibraryLoaded() ? "one-row products (decoding) through gemv"
    : `one-row products through sgemm${process.env.SFT_MLX_GEMV === "0" ? " (SFT_MLX_GEMV=0)" : ""}: decoding is slower (lib/mlx/gemv.ts)`;
  if (info.kind === "reference") return { info, check: { id: "blas", status: "fail", detail: `reference BLAS ${info.path} (~30x slower than OpenBLAS)`, fix } };
  if (info.kind !== "openblas") return { info, check: { id: "blas", status: "pass", detail: `${info.version} (${file}), ${rows}; the matmul check says whether it is fast here` } };
  const version = /^OpenBLAS [\d.]+/.exec(info.version)?.[0] ?? "OpenBLAS";
  const choice = kernelChoice();
  const by = choice.by === "sft-mlx" ? `OPENBLAS_CORETYPE=${choice.coretype} set at start-up: OpenBLAS chose ${choice.openblasChose}`
    : choice.by === "user" ? `your OPENBLAS_CORETYPE=${choice.coretype}` : "chosen by OpenBLAS";
  const detail = `${version} (${file}), kernels ${describeCore(info.core ?? "?")}, ${by}; ${rows}`;
  const cpu = readCpuinfo();
  const low = kernelsBelowCpu(info, cpu);
  if (!low) return { info, check: { id: "blas", status: "pass", detail } };
  return { info, check: { id: "blas", status: "warn", detail: `${detail}; this CPU supports ${LEVEL_NAME[simdLevel(cpu!)]} kernels (${low})`, fix: coretypeFix(cpu!, process.env.OPENBLAS_CORETYPE) } };
}

// The core this CPU should run instead of OpenBLAS's, or null when OpenBLAS's matches the CPU.
function kernelsBelowCpu(info: BlasInfo | undefined, cpu: CpuInfo | null): string | null {
  if (info?.kind !== "openblas" || !info.core || !cpu) return null;
  return chooseCoretype(cpu, info.core);
}

function coretypeFix(cpu: CpuInfo, userCoretype: string | undefined): string {
  const best = bestCore(cpu);
  return userCoretype
    ? `unset OPENBLAS_CORETYPE  (the scripts then choose ${best} for this CPU themselves)`
    : `export OPENBLAS_CORETYPE=${best}  (the scripts set it when they start; this process did not)`;
}

function checkMatmul(mx: Mx, blas: BlasInfo | undefined, blasFailed: boolean): CheckResult {
  const gflops = bestMatmulGflops(mx);
  return judgeMatmul(gflops, { cpu: readCpuinfo(), cores: availableParallelism(), blas, blasFailed, userCoretype: process.env.OPENBLAS_CORETYPE });
}

/** What the matmul check concludes from a measured speed (best of reps, all cores), pure.
 * The expectation: cores × fp32 FLOPs per cycle of the CPU's best instruction set × the clock in
 * /proc/cpuinfo (lib/mlx/blas.ts expectedGflops); the right kernels reach at least half of that.
 * Below it with the wrong kernels or another BLAS: a failure, with the fix; with the right kernels
 * it is a busy machine: a warning. */
export function judgeMatmul(gflops: number, at: { cpu: CpuInfo | null; cores: number; blas?: BlasInfo; blasFailed: boolean; userCoretype?: string }): CheckResult {
  const { cpu, cores, blas, blasFailed } = at;
  const expected = cpu ? expectedGflops(cpu, cores) : null;
  let detail = `${gflops.toFixed(0)} GFLOP/s (${MATMUL_N}² fp32, best of ${MATMUL_REPS})`;
  if (!cpu || !expected) {
    if (gflops >= MIN_GFLOPS) return { id: "matmul", status: "pass", detail };
    return { id: "matmul", status: "warn", detail: `${detail}, below ${MIN_GFLOPS}`, fix: blasFailed ? "fix the blas check above first" : BUSY_FIX };
  }
  const ghz = cpu.mhz! / 1000;
  detail += `; this CPU's kernels: ≥ ${expected.floor.toFixed(0)} (${MIN_PEAK_SHARE} × ${cores} cores × ${(expected.peak / cores / ghz).toFixed(0)} FLOP/cycle ${LEVEL_NAME[simdLevel(cpu)]} × ${ghz.toFixed(2)} GHz)`;
  if (gflops >= expected.floor) return { id: "matmul", status: "pass", detail };
  if (blasFailed) return { id: "matmul", status: "fail", detail, fix: "fix the blas check above first" };
  // Kernels below the CPU's are a failure when OpenBLAS or the scripts chose them; when the user's
  // OPENBLAS_CORETYPE did, it is the user's choice: a warning (the blas line names it), not a refusal to train.
  if (kernelsBelowCpu(blas, cpu)) return { id: "matmul", status: at.userCoretype ? "warn" : "fail", detail: `${detail}: OpenBLAS runs ${describeCore(blas!.core!)}`, fix: coretypeFix(cpu, at.userCoretype) };
  if (blas?.kind === "openblas") return { id: "matmul", status: "warn", detail: `${detail}: the right kernels, so a busy machine`, fix: BUSY_FIX };
  return { id: "matmul", status: "fail", detail: `${detail}: ${blas?.version ?? "this BLAS"} is slow on this CPU`, fix: asRoot(FIX_BLAS) };
}

const BUSY_FIX = "close other CPU-heavy processes (`top`), then re-run";

function bestMatmulGflops(mx: Mx): number {
  const a = mx.random.normal([MATMUL_N, MATMUL_N]); // fp32
  const b = mx.random.normal([MATMUL_N, MATMUL_N]);
  mx.eval(a, b);
  mx.eval(mx.matmul(a, b)); // warm-up: thread pool start, first-touch pages
  let best = Infinity;
  for (let i = 0; i < MATMUL_REPS; i++) {
    const t0 = performance.now();
    mx.eval(mx.matmul(a, b));
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return (2 * MATMUL_N ** 3) / best / 1e9;
}

// The scripts that train or generate re-execute themselves under tcmalloc when it is installed
// (lib/mlx/allocator.ts): glibc's malloc page-faults its way through every large array.
function checkAllocator(): CheckResult {
  if (process.platform !== "linux") return { id: "malloc", status: "skip", detail: `system allocator on ${process.platform}` };
  if (process.env.SFT_MLX_TCMALLOC === "0") return { id: "malloc", status: "pass", detail: "glibc (SFT_MLX_TCMALLOC=0)" };
  if (!existsSync(TCMALLOC_PATH)) {
    return { id: "malloc", status: "warn", detail: "glibc: no tcmalloc, training ~5% slower (page faults)", fix: asRoot(FIX_TCMALLOC) };
  }
  return { id: "malloc", status: "pass", detail: "tcmalloc, preloaded by the scripts (lib/mlx/allocator.ts)" };
}

function checkMemory(): CheckResult {
  const gb = freemem() / 2 ** 30; // MemAvailable on Linux
  const detail = `${gb.toFixed(1)} GB free`;
  if (gb >= MIN_FREE_GB) return { id: "memory", status: "pass", detail };
  return { id: "memory", status: "warn", detail: `${detail}, below ${MIN_FREE_GB} GB`, fix: "close other processes to free memory" };
}

function checkModel(modelDir: string): CheckResult {
  const dir = resolve(modelDir);
  const rel = relative(process.cwd(), dir);
  const shown = rel.startsWith("..") ? dir : rel || ".";
  const missing = MODEL_FILES.filter((f) => !existsSync(join(dir, f)));
  if (missing.length === 0) return { id: "model", status: "pass", detail: `${shown}/` };
  const fix = dir === DEFAULT_MODEL_DIR
    ? "git checkout models/  (or rebuild it: bun scripts/pretrain.ts)"
    : `pass a model directory with ${MODEL_FILES.join(", ")}`;
  return { id: "model", status: "fail", detail: `${shown}/ is missing ${missing.join(", ")}`, fix };
}
