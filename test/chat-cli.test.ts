// `bun scripts/chat.ts` with piped stdin, end to end, on a tiny random checkpoint saved in the test:
// stdout is exactly the replies generate() gives for the training-template prompts (one block
// per input line), everything else goes to stderr; and the errors a new user meets first.
//   bun test test/chat-cli.test.ts

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { generate } from "../lib/generate/generate.ts";
import { saveCheckpoint } from "../lib/model/checkpoint.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import type { Message } from "../lib/format/types.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const ROOT = resolve(import.meta.dir, "..");
const tok = tinyTokenizer();
const model = tinyModel(tok.vocabSize, { seed: 3 });
let work = "";
let dir = "";

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "chat-cli-"));
  dir = join(work, "checkpoint");
  saveCheckpoint(dir, model, tok, { meta: { kind: "sft" } });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Run the chat script with `input` on stdin; returns exit code, stdout and stderr. */
async function chat(args: string[], input: string) {
  const proc = Bun.spawn(["bun", "scripts/chat.ts", ...args], { cwd: ROOT, stdin: new Blob([input]), stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

describe("chat script, piped", () => {
  test("one line per message, a multi-turn conversation; stdout holds only the replies", async () => {
    const questions = ["What is a noun?", "And a verb?", "Thanks."];
    const { code, stdout, stderr } = await chat(["--model", dir, "--max-tokens", "8"], questions.join("\n") + "\n\n");
    expect(stderr).not.toContain("error");
    expect(code).toBe(0);

    // The same conversation in-process: the training template's prompt, the default sampling
    // (temperature 0.7, top-p 0.9, reply n with seed n), 8 tokens, <|end|> (or <|user|>, <|endoftext|>) stops.
    const tpl = new ChatTemplate();
    const history: Message[] = [];
    let expected = "";
    for (const [n, q] of questions.entries()) {
      history.push({ role: "user", content: q });
      const opts = { temperature: 0.7, topK: 0, topP: 0.9, repetitionPenalty: 1, seed: n, maxTokens: 8, stopIds: [4, 2, 1] };
      const g = await generate(model, tok, tpl.renderPromptIds(history, tok), opts);
      expected += g.text + "\n";
      if (g.text.trim()) history.push({ role: "assistant", content: g.text });
      else history.pop(); // the script keeps no empty replies either
    }
    expect(stdout).toBe(expected);
    expect(history.length).toBeGreaterThan(2); // replies were kept, so later prompts carried history
    expect(stderr).toContain(`checkpoint ${dir}`); // which model it used
    expect(stderr.match(/tokens · [\d.]+ tok\/s/g)).toHaveLength(3); // one stats line per reply (the blank line is skipped)
  });

  test("when the history no longer fits, the oldest exchanges are dropped and stderr says so", async () => {
    // context 128, 100 reply tokens: a second question no longer fits next to the first exchange
    const { code, stdout, stderr } = await chat(["--model", dir, "--max-tokens", "100", "--top-k", "20"], "What is a noun?\nAnd a verb?\nAnd an adverb?\n");
    expect(code).toBe(0);
    expect(stderr).toMatch(/dropped the oldest exchange from the context to fit 128 tokens \(0 kept; \/history shows all\)/);
    expect(stdout).not.toContain("dropped");
  });

  test("with no flags it opens the newest finished run and says which", async () => {
    const runs = join(work, "runs-finished");
    const run = join(runs, "20260101-120000-sft");
    saveCheckpoint(join(run, "checkpoint"), model, tok, { meta: { kind: "sft" } });
    writeFileSync(join(run, "summary.json"), JSON.stringify({ status: "completed" }));
    const { code, stderr } = await chat(["--runs", runs, "--max-tokens", "4"], "Hi\n");
    expect(code).toBe(0);
    expect(stderr).toMatch(/\[chat\] newest finished run .*20260101-120000-sft \(status completed\)/);
  });

  test("the same input and seed give the same replies", async () => {
    const args = ["--model", dir, "--max-tokens", "8", "--seed", "5"];
    const [a, b] = [await chat(args, "Hello\n"), await chat(args, "Hello\n")];
    expect(a.stdout).toBe(b.stdout);
    expect(a.stderr).toMatch(/\[cut at 8 tokens\]|tok\/s/);
  });

  test("commands work in piped mode; their output goes to stderr", async () => {
    const { code, stdout, stderr } = await chat(["--model", dir, "--max-tokens", "4"], "/params temperature=0 seed=2\n/help\n/bogus\n");
    expect(code).toBe(0);
    expect(stdout).toBe("");
    expect(stderr).toContain("temperature=0 top_k=0 top_p=0.9 repetition_penalty=1 max_tokens=4 seed=2");
    expect(stderr).toContain("/save <file.json|file.jsonl>");
    expect(stderr).toContain("unknown command `/bogus`");
  });

  test.each([
    ["no run yet", ["--runs", "RUNS"], 1, /no fine-tuned model yet .*run `bun scripts\/train\.ts` first/],
    ["a bad flag value", ["--model", "CKPT", "--temperature", "hot"], 2, /--temperature expects a number >= 0 <= 5, got `hot`/],
    ["a base model dir that is not there", ["--base", "/nonexistent/base"], 1, /--base: no model at `\/nonexistent\/base`/],
  ])("%s: exits with a message that says the fix", async (_name, args, exitCode, message) => {
    const runs = join(work, "runs"); // does not exist: no run yet
    const { code, stderr } = await chat(args.map((a) => a.replace("RUNS", runs).replace("CKPT", dir)), "hi\n");
    expect(code).toBe(exitCode);
    expect(stderr).toMatch(message);
  });
});
