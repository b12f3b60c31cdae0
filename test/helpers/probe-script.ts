// A script run as its own process, for tests of what a script's start-up does (re-executing itself,
// preloads, the environment its children get): `source` is written to a fresh temporary folder and
// run as `bun <script> ...args`; it reports by printing one JSON line last.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ProbeRun {
  exitCode: number;
  stderr: string;
  pid: number; // the spawned process's: a re-execution keeps it
  report: () => Record<string, any>; // the last stdout line, parsed
}

/** Run `source` (imports by absolute path) with `env` over this process's environment. */
export function runProbeScript(source: string, { args = [], env = {}, cwd }: { args?: string[]; env?: Record<string, string | undefined>; cwd?: string } = {}): ProbeRun {
  const dir = mkdtempSync(join(tmpdir(), "probe-script-"));
  try {
    const script = join(dir, "probe.ts");
    writeFileSync(script, source);
    const proc = Bun.spawnSync([process.execPath, script, ...args], { cwd, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
    const stdout = proc.stdout.toString();
    return { exitCode: proc.exitCode ?? -1, stderr: proc.stderr.toString(), pid: proc.pid, report: () => JSON.parse(stdout.trim().split("\n").pop()!) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
