// Every script's command line as a user types it, run as a child process: a misspelled flag is
// refused with the nearest known flag and exit code 2 before anything runs (no doctor, no model,
// no folder), numbers are plain decimal, and the sweep refuses what train.ts would refuse before
// its first run, and exits non-zero when a run failed.
//   bun test test/scripts-cli.test.ts

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const ROOT = resolve(import.meta.dir, "..");
const tmp = mkdtempSync(join(tmpdir(), "scripts-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const NOPE = join(tmp, "nonexistent"); // where a script that ignored the bad flag would fail (fast, and differently)

/** Run `bun scripts/<script>.ts ...args`; exit code, stderr + stdout, and the wall time in ms. */
function run(script: string, args: string[]) {
  const t0 = performance.now();
  const proc = Bun.spawnSync(["bun", `scripts/${script}.ts`, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  return { code: proc.exitCode, out: proc.stderr.toString() + proc.stdout.toString(), ms: performance.now() - t0 };
}

describe("unknown flags", () => {
  test.each([
    ["train", ["--step", "6", "--base", NOPE], "--step", "--steps"],
    ["chat", ["--temprature", "0", "--model", NOPE], "--temprature", "--temperature"],
    ["sweep", ["--param", "mask", "--step", "5", "--dry-run"], "--step", "--steps"], // train.ts would have ignored it in every run
    ["pretrain", ["--step", "5", "--corpus", NOPE], "--step", "--steps"],
    ["inspect", ["--indx", "3", "--data", NOPE], "--indx", "--index"],
    ["data-check", ["--batch", "4", "--data", NOPE], "--batch", "--batch-size"],
    ["selfcheck", ["--mask", "all", "--data", NOPE], "--mask", "--mask-mode"],
    ["doctor", ["--skp", "model", "--skip", "bun,mlx,device,blas,matmul,memory,model"], "--skp", "--skip"],
    ["bench", ["--step", "5", "--case", "nope"], "--step", "--steps"],
    ["export-base", ["--runs", NOPE, "--run", NOPE], "--runs", "--run"],
    ["export", ["--fromat", "course", "--run", NOPE], "--fromat", "--format"],
    ["train-tokenizer", ["--vocab", "512", "--corpus", NOPE, "--out", join(tmp, "tok")], "--vocab", "--vocab-size"],
    ["dump-logits", [NOPE, "--token", "5", "--out", join(tmp, "logits.json")], "--token", "--tokens"],
  ])("%s %j: %s, did you mean %s? exit 2, before anything runs", (script, args, bad, near) => {
    const r = run(script, args);
    expect(r.out).toContain(`unknown flag \`${bad}\`: did you mean \`${near}\`?`);
    expect(r.code).toBe(2);
    expect(r.out.trim().split("\n")).toHaveLength(1); // that line only: refused before the doctor, the data or a model
    expect(existsSync(join(tmp, "tok"))).toBe(false);
  });

  test("train.ts refuses a camelCase flag and `--no-` on a flag that takes a value", () => {
    expect(run("train", ["--batchSize", "4", "--base", NOPE]).out).toContain("did you mean `--batch-size`?");
    const r = run("train", ["--no-steps", "--base", NOPE]);
    expect([r.code, r.out.includes("--steps is not a switch")]).toEqual([2, true]);
  });
});

describe("numbers are plain decimal", () => {
  test.each([
    [["--steps", "0x10"], "--steps expects an integer > 0, got `0x10`; write it in plain decimal, e.g. `16`"],
    [["--steps", "1e2"], "--steps expects an integer > 0, got `1e2`; write it in plain decimal, e.g. `100`"],
    [["--steps", " 12 "], "--steps expects an integer > 0, got ` 12 `; write it in plain decimal, e.g. `12`"],
    [["--lr", "Infinity"], "--lr expects a number > 0, got `Infinity`"],
    [["--lr", "1e-4", "--eval-every", "abc"], "--eval-every expects an integer > 0, got `abc`"], // 1e-4 is fine for a learning rate
  ])("train.ts %j", (args, message) => {
    const r = run("train", [...args, "--base", NOPE]);
    expect(r.out).toContain(message);
    expect(r.code).toBe(2);
  });

  test("chat.ts and pretrain.ts too", () => {
    expect(run("chat", ["--max-tokens", "0x20", "--model", NOPE]).out).toContain("--max-tokens expects an integer > 0, got `0x20`");
    expect(run("pretrain", ["--steps", "1e3", "--corpus", NOPE]).out).toContain("--steps expects an integer > 0, got `1e3`");
  });
});

describe("sweep", () => {
  const out = join(tmp, "sweeps");
  const sweeps = () => (existsSync(out) ? readdirSync(out) : []);

  test("a train.ts flag value train.ts would refuse stops the sweep before any run or folder (issue #18 case 11)", () => {
    const r = run("sweep", ["--param", "mask", "--steps", "abc", "--out", out]);
    expect(r.out).toContain("--steps expects an integer > 0, got `abc`");
    expect(r.code).toBe(2);
    expect(sweeps()).toEqual([]);
  });

  test("runs that fail make the sweep exit 1, with a line naming each failed run", () => {
    const r = run("sweep", ["--param", "mask", "--values", "assistant", "--base", NOPE, "--probe-tokens", "0", "--out", out]);
    expect(r.out).toContain("no such directory"); // train.ts's own error, from the run
    expect(r.out).toMatch(/1 of 1 runs did not finish: mask-assistant failed \(train.ts exited with code 2 before making a run folder/);
    expect(r.code).toBe(1);
  });
});

describe("pretrain", () => {
  const out = join(tmp, "pretrain-runs");
  const text = (name: string, body: string) => {
    writeFileSync(join(tmp, name), body);
    return join(tmp, name);
  };
  const tokenizerDir = join(tmp, "tokenizer");
  const pretrain = async (corpus: string, evalCorpus: string) => {
    if (!existsSync(tokenizerDir)) await tinyTokenizer().save(tokenizerDir);
    return run("pretrain", ["--preset", "tiny", "--steps", "1", "--batch-size", "2", "--eval-windows", "1", "--log-every", "1", "--tokenizer", tokenizerDir, "--corpus", corpus, "--eval-corpus", evalCorpus, "--out", out]);
  };
  const prose = "It was a bright cold day in April, and the clocks were striking thirteen.\n".repeat(40);

  test.each([
    ["an empty corpus (issue #18 case 12)", () => [text("empty.txt", ""), text("prose.txt", prose)], /--corpus `.*empty\.txt`: no text \(the file or byte range is empty\)/],
    ["a corpus shorter than one window", () => [text("short.txt", "A few words.\n"), text("prose.txt", prose)], /--corpus `.*short\.txt`: \d+ tokens \(\d+ bytes of text\), fewer than one window of 129 \(--seq-len 128 \+ 1\): give more text or a shorter --seq-len/],
    ["an empty held-out corpus", () => [text("prose.txt", prose), text("empty.txt", "")], /--eval-corpus `.*empty\.txt`: no text/],
  ])("%s is refused with the file named, before any run folder", async (_name, files, message) => {
    const [corpus, evalCorpus] = files();
    const r = await pretrain(corpus!, evalCorpus!);
    expect(r.out).toMatch(message);
    expect(r.code).toBe(2);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });
});
