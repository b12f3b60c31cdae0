// A training run in a child process, for tests that need a real signal (Ctrl-C handlers, kill -9)
// at an exact moment: `bun test/helpers/run-child.ts '<json>'` with
//   {"config": {...RunConfig flags}, "runDir"?: string, "resume"?: string,
//    "signalAfterWrite"?: {"match": "<regex on the path>", "signal": "SIGINT" | "SIGKILL", "times"?: n},
//    "sigintWhen"?: {"file": "<name in the run folder>", "contains"?: "<text>", "delayMs"?: n}}
// `signalAfterWrite` sends the signal to this process right after MLX has written a safetensors file
// whose path matches (mx.saveSafetensors wrapped, so it works on any version of the project's
// code): a Ctrl-C (`times` presses at once) or a kill in the middle of saving. `sigintWhen` presses
// Ctrl-C `delayMs` after the run folder holds that file (e.g. summary.json: during the probes),
// holding `contains` if given. Exits with the run's code.
import { core as mx } from "@frost-beta/mlx";
import { useFastCpuKernels } from "../../lib/mlx/jit.ts";

const spec = JSON.parse(process.argv[2]!);
useFastCpuKernels();

if (spec.signalAfterWrite) {
  const { match, signal, times = 1 } = spec.signalAfterWrite;
  const re = new RegExp(match);
  const save = mx.saveSafetensors;
  let done = false;
  (mx as any).saveSafetensors = (path: string, ...rest: unknown[]) => {
    (save as any)(path, ...rest);
    if (!done && re.test(path)) {
      done = true;
      process.stderr.write(`[run-child] ${signal} ×${times} after writing ${path}\n`);
      for (let i = 0; i < times; i++) process.kill(process.pid, signal);
    }
  };
}

if (spec.sigintWhen) {
  const { file, contains, delayMs = 0 } = spec.sigintWhen;
  const { existsSync, readFileSync } = await import("node:fs");
  const poll = setInterval(() => {
    const path = `${spec.resume ?? spec.runDir}/${file}`;
    if (existsSync(path) && (contains === undefined || readFileSync(path, "utf8").includes(contains))) {
      clearInterval(poll);
      setTimeout(() => {
        process.stderr.write(`[run-child] SIGINT: ${file} exists\n`);
        process.kill(process.pid, "SIGINT");
      }, delayMs);
    }
  }, 2);
  poll.unref();
}

const { resolveRunConfig } = await import("../../lib/sft/run-config.ts");
const { executeRun, prepareRun } = await import("../../lib/sft/run.ts");
const { createRunDir } = await import("../../lib/run/folder.ts");
try {
  if (spec.resume) {
    const { resumeRun } = await import("../../lib/sft/resume.ts");
    process.exitCode = await resumeRun(spec.resume);
  } else {
    const cfg = resolveRunConfig({}, spec.config);
    const prepared = await prepareRun(cfg);
    const runDir = spec.runDir ?? createRunDir(cfg.out, cfg.name);
    console.log(`RUN_DIR ${runDir}`);
    process.exitCode = await executeRun(prepared, runDir);
  }
} catch (e) {
  process.stderr.write(`[run-child] ${(e as Error).name}: ${(e as Error).message}\n`);
  process.exitCode = 3;
}
