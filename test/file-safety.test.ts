// Issue #18's file-safety cases, one regression test each (case numbers from the issue): a tiny base
// in a temporary folder, real signals from a child process (test/helpers/run-child.ts) where a
// handler or a kill must land at an exact moment, a write hook (and a real full tmpfs where this
// user may mount one) for a full disk. The base's hash is checked unchanged after every case.
//   bun test test/file-safety.test.ts
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { hashCheckpoint, loadCheckpoint, saveCheckpoint } from "../lib/model/checkpoint.ts";
import { createRunDir } from "../lib/run/folder.ts";
import { readMetrics } from "../lib/run/metrics.ts";
import { readSummary } from "../lib/run/summary.ts";
import { writeHooks } from "../lib/io/files.ts";
import { resolveRunConfig, type RunConfig } from "../lib/sft/run-config.ts";
import { executeRun, prepareRun } from "../lib/sft/run.ts";
import { resumeRun } from "../lib/sft/resume.ts";
import { readPlan } from "../lib/sweep/plan.ts";
import { collectRows } from "../lib/sweep/aggregate.ts";
import { buildPlan, writePlan } from "../lib/sweep/plan.ts";
import { saveConversation } from "../lib/chat/save.ts";
import { loadConversations } from "../lib/data/data.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { chat, tinyRunFiles, interruptAfterFirstEval } from "./helpers/tiny-run.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout(180_000); // ms: child processes train and probe a tiny model

const PROJECT = resolve(import.meta.dir, "..");
const tmp = mkdtempSync(join(tmpdir(), "sft-file-safety-"));
const tok = tinyTokenizer();
const base = join(tmp, "base");
saveCheckpoint(base, tinyModel(tok.vocabSize, { seed: 1 }), tok); // no sft-mlx.json: like a Hugging Face base, no recorded digest
const BASE_HASH = hashCheckpoint(base);
afterAll(() => {
  expect(hashCheckpoint(base)).toBe(BASE_HASH); // every case left the base as it was
  rmSync(tmp, { recursive: true, force: true });
});

const { write, data, evalData, out } = tinyRunFiles(tmp);
const flags = (over: Partial<RunConfig> = {}) => ({ base, data, evalData, out, mixProse: 0, steps: 6, evalEvery: 3, batchSize: 2, maxSeqLen: 64, logEvery: 2, lr: 3e-3, probeTokens: 0, ...over });
const config = (over: Partial<RunConfig> = {}) => resolveRunConfig({}, flags(over));
const files = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);
const bytesOf = (dir: string) => Object.fromEntries(files(dir).map((f) => [f, readFileSync(join(dir, f)).toString("base64")]));

/** A run interrupted (Ctrl-C, in this process) right after its step-0 evaluation: it holds a
 * checkpoint and a trainer state at step 1. */
async function interruptedRun(name: string, over: Partial<RunConfig> = {}): Promise<string> {
  const cfg = config({ name, ...over });
  const p = await prepareRun(cfg);
  const dir = createRunDir(cfg.out, cfg.name);
  expect(await interruptAfterFirstEval(p, dir)).toBe(130);
  expect(readSummary(dir)!.status).toBe("interrupted");
  return dir;
}

/** test/helpers/run-child.ts with `spec`: a run in its own process, for real signals. */
async function child(spec: Record<string, unknown>): Promise<{ code: number; err: string }> {
  const proc = Bun.spawn([process.execPath, join(PROJECT, "test/helpers/run-child.ts"), JSON.stringify(spec)], { cwd: PROJECT, stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  await new Response(proc.stdout).text();
  return { code, err };
}

describe("case 1: a truncated safetensors file is refused before use, never read as zeros", () => {
  const copyBase = (name: string) => {
    const dir = join(tmp, name);
    cpSync(base, dir, { recursive: true });
    return dir;
  };

  test("a base cut to 60% of its weights file: an error naming the file and what to do; no run folder", async () => {
    const cut = copyBase("base-cut");
    const file = join(cut, "model.safetensors");
    truncateSync(file, Math.floor(readFileSync(file).length * 0.6));
    const before = files(out).length;
    await expect(prepareRun(config({ base: cut }))).rejects.toThrow(/--base .*base-cut: .*model\.safetensors: the file is cut short: \d+ bytes, but its header describes \d+ .*copy or download it again/);
    expect(files(out).length).toBe(before);
  });

  test("a base cut inside its header: a message, not an empty `Error: `", async () => {
    const cut = copyBase("base-header-cut");
    truncateSync(join(cut, "model.safetensors"), 40);
    await expect(prepareRun(config({ base: cut }))).rejects.toThrow(/model\.safetensors: the file is cut inside its header \(40 bytes; the header alone needs \d+\)/);
  });

  test("a run's checkpoint (what chat loads): cut short, or one byte changed (its recorded sha256)", async () => {
    const dir = join(tmp, "ckpt-damaged");
    saveCheckpoint(dir, tinyModel(tok.vocabSize, { seed: 2 }), tok, { meta: { kind: "sft" } });
    const file = join(dir, "model.safetensors");
    const whole = readFileSync(file);
    truncateSync(file, whole.length - 64);
    await expect(loadCheckpoint(dir)).rejects.toThrow(/the file is cut short: .* \(64 missing; MLX would read them as zeros\)/);
    const changed = Buffer.from(whole);
    changed[changed.length - 1]! ^= 0xff;
    writeFileSync(file, changed);
    await expect(loadCheckpoint(dir)).rejects.toThrow(/its content is not what was saved/);
  });
});

describe("case 2: a full disk is an error, never a short file taken as saved", () => {
  test("the final checkpoint written short: exit 1 with the reason, no checkpoint/, no temporary folder, no `completed`", async () => {
    const cfg = config({ name: "fulldisk" });
    const p = await prepareRun(cfg);
    const dir = createRunDir(cfg.out, cfg.name);
    writeHooks.afterWrite = (path) => {
      if (/checkpoint.*model\.safetensors$/.test(path)) truncateSync(path, 1000);
    };
    try {
      expect(await executeRun(p, dir)).toBe(1);
    } finally {
      delete writeHooks.afterWrite;
    }
    expect(files(dir)).toEqual(["config.json", "metrics.jsonl"]);
  });

  test("a resumed run's new state written short: the earlier state stays whole and resumable", async () => {
    const dir = await interruptedRun("fulldisk-state");
    const state = join(dir, "trainer-state");
    const before = bytesOf(state);
    writeHooks.afterWrite = (path) => {
      if (path.endsWith("trainer-state.safetensors")) truncateSync(path, 2000);
    };
    const poll = setInterval(() => {
      if (readMetrics(dir, { warn: () => {} }).some((m) => m.step >= 2)) {
        clearInterval(poll);
        process.emit("SIGINT"); // interrupted again: a new state is saved, and the disk is full
      }
    }, 1);
    try {
      expect(await resumeRun(dir)).toBe(1);
    } finally {
      delete writeHooks.afterWrite;
      clearInterval(poll);
    }
    expect(bytesOf(state)).toEqual(before);
    expect(readdirSync(dir).filter((f) => f.startsWith("."))).toEqual([]); // no temporary folder left
    expect(await resumeRun(dir)).toBe(0);
  });

  test("a short state file on --resume: the file named, not `loss NaN ... lower --lr`; the state is kept", async () => {
    const dir = await interruptedRun("short-state");
    const arrays = join(dir, "trainer-state", "trainer-state.safetensors");
    truncateSync(arrays, Math.floor(readFileSync(arrays).length / 2));
    await expect(resumeRun(dir)).rejects.toThrow(/trainer-state\.safetensors: the file is cut short.*this run cannot be resumed from it/);
    expect(existsSync(arrays)).toBe(true);
  });

  const canMount = process.getuid?.() === 0 && Bun.which("mount") !== null;
  test.skipIf(!canMount)("a real full tmpfs: mx.saveSafetensors's short file is caught; metrics.jsonl keeps whole lines", async () => {
    const disk = join(tmp, "tmpfs");
    mkdirSync(disk);
    if (Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk]).exitCode !== 0) return console.log("file-safety: cannot mount a tmpfs here: skipped");
    try {
      const { saveArrays } = await import("../lib/mlx/arrays-file.ts");
      const { core: mx } = await import("@frost-beta/mlx");
      expect(() => saveArrays(join(disk, "big.safetensors"), { w: mx.zeros([200, 200]) })).toThrow(/the disk did not take the whole file, though the write reported no error/);
      rmSync(join(disk, "big.safetensors"));
      const { appendMetrics } = await import("../lib/run/metrics.ts");
      writeFileSync(join(disk, "filler"), Buffer.alloc(64 * 1024 - 4096 - 100)); // leave less than a page
      let threw = false;
      for (let step = 1; step < 200 && !threw; step++) {
        try {
          appendMetrics(disk, { type: "train", step, loss: 1.2345678901234, lr: 1e-3, gradNorm: 0.123456789, tokensPerSec: 1234.5678 });
        } catch (e) {
          threw = true;
          expect((e as Error).message).toMatch(/metrics\.jsonl: the disk is full/);
        }
      }
      expect(threw).toBe(true);
      expect(readFileSync(join(disk, "metrics.jsonl"), "utf8").endsWith("\n")).toBe(true);
      expect(() => readMetrics(disk, { warn: () => { throw new Error("no torn line expected"); } })).not.toThrow();
    } finally {
      Bun.spawnSync(["umount", disk]);
    }
  });
});

describe("case 3: Ctrl-C during the final save finishes the save", () => {
  test("one Ctrl-C while the checkpoint is written: checkpoint and summary saved, exit 130, --resume runs the probes", async () => {
    const dir = createRunDir(out, "ctrlc-save");
    const { code, err } = await child({ config: flags({ name: "ctrlc-save", probeTokens: 2 }), runDir: dir, signalAfterWrite: { match: "checkpoint.*model\\.safetensors$", signal: "SIGINT" } });
    expect(err).toMatch(/SIGINT ×1 after writing/);
    expect(code).toBe(130);
    expect(err).toContain("saving the checkpoint and summary.json first");
    const summary = readSummary(dir)!;
    expect([summary.status, summary.probeStatus, summary.probes]).toEqual(["completed", "pending", null]);
    await loadCheckpoint(join(dir, "checkpoint"));
    expect(await resumeRun(dir)).toBe(0); // the probes, from the saved checkpoint
    expect(readSummary(dir)!.probeStatus).toBe("done");
    expect(files(dir)).toEqual(["checkpoint", "config.json", "metrics.jsonl", "report.html", "samples.md", "summary.json"]);
  });

  test("Ctrl-C twice while saving: the save still completes (a save is never cut), then the run aborts saying so", async () => {
    const dir = createRunDir(out, "ctrlc-twice");
    const { code, err } = await child({ config: flags({ name: "ctrlc-twice", probeTokens: 2 }), runDir: dir, signalAfterWrite: { match: "checkpoint.*model\\.safetensors$", signal: "SIGINT", times: 2 } });
    expect(code).toBe(130);
    expect(err).toMatch(/interrupt: aborted\. everything is saved; the probes did not run: `bun scripts\/train\.ts --resume .*ctrlc-twice` runs them/);
    expect(readSummary(dir)!.probeStatus).toBe("pending");
    await loadCheckpoint(join(dir, "checkpoint"));
  });

  test("a resumed run killed while its new checkpoint is written keeps trainer-state/ and the earlier checkpoint/", async () => {
    const dir = await interruptedRun("killed-resume");
    const { code, err } = await child({ resume: dir, signalAfterWrite: { match: "checkpoint.*model\\.safetensors$", signal: "SIGKILL" } });
    expect(err).toMatch(/SIGKILL ×1 after writing/);
    expect(code).not.toBe(0);
    expect(existsSync(join(dir, "trainer-state", "trainer-state.json"))).toBe(true);
    await loadCheckpoint(join(dir, "checkpoint"));
    expect(await resumeRun(dir)).toBe(0);
    expect(readSummary(dir)!.status).toBe("completed");
  });
});

describe("case 4: the resume state is one unit", () => {
  test("arrays of one save with the JSON of another are refused, not resumed with the wrong weights", async () => {
    const a = await interruptedRun("unit-a");
    const b = await interruptedRun("unit-b", { seed: 7 });
    cpSync(join(b, "trainer-state", "trainer-state.safetensors"), join(a, "trainer-state", "trainer-state.safetensors"));
    await expect(resumeRun(a)).rejects.toThrow(/trainer-state\.safetensors: its content is not what was saved/);
  });

  test("killed right after the new arrays are written: the state on disk is still the earlier one, whole", async () => {
    const dir = await interruptedRun("unit-kill");
    const before = bytesOf(join(dir, "trainer-state"));
    const { err } = await child({ resume: dir, sigintWhen: { file: "metrics.jsonl", contains: '"type":"train","step":2' }, signalAfterWrite: { match: "trainer-state", signal: "SIGKILL" } });
    expect(err).toMatch(/SIGKILL ×1 after writing/);
    expect(bytesOf(join(dir, "trainer-state"))).toEqual(before);
    expect(await resumeRun(dir)).toBe(0);
  });
});

describe("case 5: metrics.jsonl is append-safe", () => {
  const runWith = (name: string, text: string) => {
    const dir = join(tmp, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "metrics.jsonl"), text);
    return dir;
  };
  const rows = '{"type":"eval","step":0,"evalLoss":3}\n{"type":"train","step":2,"loss":2.5,"lr":0.001}\n{"type":"eval","step":2,"evalLoss":2.4}\n';

  test("a torn last line is skipped with a warning (the report, the sweep)", () => {
    const dir = runWith("torn-last", rows + '{"type":"train","st');
    const warnings: string[] = [];
    expect(readMetrics(dir, { warn: (m) => warnings.push(m) }).map((m) => m.step)).toEqual([0, 2, 2]);
    expect(warnings[0]).toMatch(/metrics\.jsonl: ignoring a torn last line \(line 4/);
  });

  test("a damaged line before the last is an error naming the file and the line; the sweep's table still comes out, with the reason", () => {
    const dir = runWith("sweep-x/20250101-000000-lr-1e-4", '{"type":"eval","step":0,"evalLoss":3}\n{"type":"train","st\n' + rows);
    expect(() => readMetrics(dir)).toThrow(/metrics\.jsonl: line 2 is damaged: not valid JSON/);
    const sweepDir = join(tmp, "sweep-x");
    const plan = buildPlan({ param: "lr", values: ["1e-4"], passthrough: [] });
    plan.runs[0]!.dir = "20250101-000000-lr-1e-4";
    const [row] = collectRows(plan, sweepDir);
    expect(row!.reason).toMatch(/metrics\.jsonl: line 2 is damaged/);
  });
});

test("case 6: --resume drops the rows a killed attempt wrote past the state's step: no step twice", async () => {
  const dir = await interruptedRun("dup-rows");
  // what a resumed attempt killed at step 4 (kill -9: no new state) leaves behind
  appendFileSync(join(dir, "metrics.jsonl"), ['{"type":"train","step":2,"loss":6,"lr":0.001}', '{"type":"eval","step":3,"evalLoss":6}', '{"type":"train","step":4,"loss":6,"lr":0.001}', ""].join("\n"));
  expect(await resumeRun(dir)).toBe(0);
  const keys = readMetrics(dir).map((m) => `${m.type}@${m.step}`);
  expect(keys.length).toBe(new Set(keys).size);
  expect(readMetrics(dir).filter((m) => m.type === "eval").map((m) => m.step)).toEqual([0, 3, 6]);
});

test("case 7: Ctrl-C during the probes leaves a run whose --resume runs them", async () => {
  const dir = createRunDir(out, "ctrlc-probes");
  const { code } = await child({ config: flags({ name: "ctrlc-probes", probeTokens: 4 }), runDir: dir, sigintWhen: { file: "summary.json", delayMs: 150 } });
  expect(code).toBe(130);
  expect(readSummary(dir)!.probeStatus).toBe("pending");
  expect(await resumeRun(dir)).toBe(0);
  const summary = readSummary(dir)!;
  expect([summary.status, summary.probeStatus, summary.probes?.sft.chatProbes! > 0]).toEqual(["completed", "done", true]);
  expect(existsSync(join(dir, "samples.md")) && existsSync(join(dir, "report.html"))).toBe(true);
  await expect(resumeRun(dir)).rejects.toThrow(/nothing to resume \(status `completed`, no trainer-state\/, probes done\)/);
});

test("case 9: a symbolic link inside a run folder is refused on --resume, not followed", async () => {
  const dir = await interruptedRun("symlink");
  const outside = write("outside.jsonl", "precious\n");
  rmSync(join(dir, "metrics.jsonl"));
  symlinkSync(outside, join(dir, "metrics.jsonl"));
  await expect(resumeRun(dir)).rejects.toThrow(/holds symbolic link \(.*metrics\.jsonl\): .*Remove the link/);
  expect(readFileSync(outside, "utf8")).toBe("precious\n");
});

describe("case 13: damaged or unwritable files give the project's errors, naming the file", () => {
  test("a corrupt config.json on --resume", async () => {
    const dir = await interruptedRun("bad-config");
    writeFileSync(join(dir, "config.json"), '{"lr": 0.001, "steps":');
    await expect(resumeRun(dir)).rejects.toThrow(/config\.json is damaged: not valid JSON .*: restore it, or start a new run/);
  });

  test("a corrupt trainer-state.json on --resume", async () => {
    const dir = await interruptedRun("bad-state-json");
    writeFileSync(join(dir, "trainer-state", "trainer-state.json"), '{"step": "three"}');
    await expect(resumeRun(dir)).rejects.toThrow(/trainer-state\.json is damaged or not the file expected: step: expected an integer >= 0, got "three"/);
  });

  test("a corrupt sweep.json on sweep --resume", () => {
    const sweepDir = join(tmp, "sweep-bad");
    mkdirSync(sweepDir);
    writePlan(sweepDir, buildPlan({ param: "lr", values: ["1e-4"], passthrough: [] }));
    writeFileSync(join(sweepDir, "sweep.json"), readFileSync(join(sweepDir, "sweep.json"), "utf8").slice(0, 40));
    expect(() => readPlan(sweepDir)).toThrow(/--resume .*sweep-bad: .*sweep\.json is damaged: not valid JSON/);
  });

  test("an --out that cannot hold folders", () => {
    const file = write("not-a-folder", "x");
    expect(() => createRunDir(join(file, "runs"), "sft")).toThrow(/cannot create a folder in .*not-a-folder\/runs: a part of the path is a file, not a folder \(choose a writable --out\)/);
  });

  const canMount = process.getuid?.() === 0 && Bun.which("mount") !== null;
  test.skipIf(!canMount)("a read-only --out (a read-only mount: root ignores file modes)", () => {
    const ro = join(tmp, "ro");
    mkdirSync(ro);
    if (Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", ro]).exitCode !== 0) return console.log("file-safety: cannot mount here: skipped");
    try {
      expect(() => createRunDir(join(ro, "runs"), "sft")).toThrow(/cannot create a folder in .*ro\/runs: the file system is read-only/);
      expect(() => saveConversation(join(ro, "chat.jsonl"), [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }])).toThrow(/chat\.jsonl: the file system is read-only.*nothing was saved/);
    } finally {
      Bun.spawnSync(["umount", ro]);
    }
  });

  test("/save to a path that cannot be written: a SaveError (the REPL says it and goes on), no *.tmp-PID left", () => {
    const blocker = write("save-blocker", "x");
    expect(() => saveConversation(join(blocker, "chat.jsonl"), [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }])).toThrow(/cannot write .*chat\.jsonl: a part of the path is a file.*nothing was saved/);
    const dir = join(tmp, "save-ok");
    mkdirSync(dir);
    saveConversation(join(dir, "chat.jsonl"), [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }]);
    expect(readdirSync(dir)).toEqual(["chat.jsonl"]);
  });

  test("invalid UTF-8 in a data file is refused with the line and byte offset, not replaced by U+FFFD", () => {
    const path = write("latin1.jsonl", Buffer.concat([Buffer.from(JSON.stringify(chat("hi", "hello")) + "\n"), Buffer.from('{"messages": [{"role": "user", "content": "caf'), Buffer.from([0xe9]), Buffer.from('"}]}\n')]));
    expect(() => loadConversations(path)).toThrow(/latin1\.jsonl: line 2: not valid UTF-8 at byte \d+ \(bytes e9 22 7d 5d\): save the file as UTF-8/);
  });
});
