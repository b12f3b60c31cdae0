// lib/mlx/allocator.ts through lib/mlx/startup.ts: the scripts re-execute themselves under tcmalloc,
// and the programs they start do not inherit it. (The BLAS kernel choice of the same start-up:
// test/blas.test.ts.)
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { activeAllocator, TCMALLOC_PATH } from "../lib/mlx/allocator.ts";
import { runProbeScript } from "./helpers/probe-script.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const LINUX = process.platform === "linux";
const reason = !LINUX ? "Linux only" : !existsSync(TCMALLOC_PATH) ? `${TCMALLOC_PATH} not installed (apt-get install -y libtcmalloc-minimal4)` : "";
const ALLOCATOR = resolve(import.meta.dir, "../lib/mlx/allocator.ts");
const STARTUP = resolve(import.meta.dir, "../lib/mlx/startup.ts");

/** A script that calls prepareProcess() and reports what it sees, run as `bun <script> <args>`. */
function runProbe(args: string[], env: Record<string, string | undefined> = {}): Record<string, any> {
  const run = runProbeScript(`
    import { activeAllocator } from ${JSON.stringify(ALLOCATOR)};
    import { prepareProcess } from ${JSON.stringify(STARTUP)};
    import { execSync } from "node:child_process";
    const before = activeAllocator();
    prepareProcess();
    console.log(JSON.stringify({ pid: process.pid, argv: process.argv.slice(2), allocator: activeAllocator(), before,
      childPreload: execSync("echo -n $LD_PRELOAD").toString() }));
  `, { args, env });
  expect(run.exitCode).toBe(0);
  return { ...run.report(), spawnedPid: run.pid };
}

describe("allocator", () => {
  test("the test process itself runs on the C library's malloc", () => {
    expect(activeAllocator()).toBe(LINUX ? "glibc" : "system");
  });

  test.skipIf(reason !== "")(`a script re-executes itself once under tcmalloc, same pid and arguments${reason ? ` (skipped: ${reason})` : ""}`, () => {
    const r = runProbe(["--name", "two words", ""]);
    expect(r.allocator).toBe("tcmalloc");
    expect(r.before).toBe("tcmalloc"); // the first line of the script ran again, after the execve
    expect(r.pid).toBe(r.spawnedPid); // replaced in place: no parent process left waiting
    expect(r.argv).toEqual(["--name", "two words", ""]);
    expect(r.childPreload).toBe(""); // git, g++, Python keep their own malloc
  });

  test.skipIf(reason !== "")(`an LD_PRELOAD of the user's is kept, for the script and its children${reason ? ` (skipped: ${reason})` : ""}`, () => {
    const theirs = "/lib/x86_64-linux-gnu/libm.so.6"; // any library that exists; harmless to preload
    const r = runProbe([], { LD_PRELOAD: theirs });
    expect(r.allocator).toBe("tcmalloc");
    expect(r.childPreload).toBe(theirs);
  });

  test.skipIf(!LINUX)("SFT_MLX_TCMALLOC=0 keeps glibc", () => {
    const r = runProbe([], { SFT_MLX_TCMALLOC: "0" });
    expect(r.allocator).toBe("glibc");
    expect(r.before).toBe("glibc");
  });
});

test.skipIf(reason !== "")(`after training, releaseMemory({ toSystem: true }) hands tcmalloc's kept pages back to the kernel${reason ? ` (skipped: ${reason})` : ""}`, () => {
  const proc = Bun.spawnSync([process.execPath, resolve(import.meta.dir, "helpers/release-pages.ts")], { stdout: "pipe", stderr: "pipe" });
  expect(proc.exitCode, proc.stderr.toString()).toBe(0);
  const r = JSON.parse(proc.stdout.toString().trim().split("\n").pop()!);
  expect(r.allocator).toBe("tcmalloc");
  // measured: 206 → 1,543 MB after two steps and a collection, 521 after the release (the moments,
  // 169 MB, and the last step's inputs stay), 223 once the optimizer state is dropped too
  expect(r.kept - r.before).toBeGreaterThan(500); // freed, but still the process's
  expect(r.released - r.before).toBeLessThan((r.kept - r.before) / 2);
  expect(r.released - r.dropped).toBeGreaterThan(150); // the moments went back in the same call
}, 30_000);
