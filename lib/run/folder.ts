// The run folder on disk: `runs/<YYYYMMDD-HHMMSS>-<name>/`, created once and never reused.
// metrics.jsonl and summary.json have their schemas in metrics.ts and summary.ts; whole files go
// through lib/io/files.ts.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { execSync } from "node:child_process";
import os from "node:os";
import { activeAllocator } from "../mlx/allocator.ts";
import { FileError, fsReason } from "../io/files.ts";
import { blasRecord } from "../mlx/startup.ts";

/** `YYYYMMDD-HHMMSS` in local time. */
export function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Create a fresh run folder `root/<YYYYMMDD-HHMMSS>-<name>`. If the second is taken, the next
 * free suffix is used: an earlier run is never overwritten. */
export function createRunDir(root: string, name: string): string {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`run name \`${name}\` may only contain letters, digits, '.', '_' and '-'`);
  return claimDir(root, `${timestamp()}-${name}`);
}

/** Atomically claim `root/<baseName>` (or `<baseName>-2`, `-3`, ... if taken) and return its path. */
export function claimDir(root: string, baseName: string): string {
  const cannot = (e: unknown) => new FileError(root, `cannot create a folder in ${root}: ${fsReason(e)} (choose a writable --out)`);
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    throw cannot(e);
  }
  const base = join(resolve(root), baseName);
  for (let i = 0; ; i++) {
    const dir = i === 0 ? base : `${base}-${i + 1}`;
    try {
      mkdirSync(dir); // fails if it exists: the atomic claim on the name
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw cannot(e);
    }
  }
}

/** The project's git commit (with `-dirty` when the work tree has changes), or null. */
export function gitCommit(): string | null {
  try {
    const sha = execSync("git rev-parse --short HEAD", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    const dirty = execSync("git status --porcelain --untracked-files=no", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return null;
  }
}

/** What a run was made on, for config.json. */
export function machineInfo(device: string): Record<string, unknown> {
  return {
    platform: `${process.platform}-${process.arch}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    bun: Bun.version,
    device,
    allocator: activeAllocator(), // tcmalloc when lib/mlx/allocator.ts could preload it
    blas: blasRecord(), // the library, its kernels and who chose them (lib/mlx/startup.ts)
  };
}

/** Format seconds as h:mm:ss. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}
