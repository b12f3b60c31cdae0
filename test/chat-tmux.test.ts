// The interactive chat, driven through a real terminal: tmux runs `bun scripts/chat.ts` on a tiny
// random checkpoint, keys are sent, the screen is read back. Polls with a timeout, never fixed sleeps.
// Skips (and says why) when tmux is not installed: apt-get install -y tmux.
//   bun test test/chat-tmux.test.ts

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { saveCheckpoint } from "../lib/model/checkpoint.ts";
import { loadConversations } from "../lib/data/data.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const ROOT = resolve(import.meta.dir, "..");
const HAS_TMUX = Bun.which("tmux") !== null;
if (!HAS_TMUX) console.warn("chat-tmux: skipped: tmux is not installed (apt-get install -y tmux)");

// A private tmux server per test, its socket in the test's temp dir: never touches the user's
// sessions, and a new test never connects to the previous test's server while it shuts down.
let socket = "";
let sockets = 0;
const SESSION = "chat";
const EXITED = "CHAT-EXITED-"; // printed after the script ends, with its exit code
const TIMEOUT_MS = 20_000; // model load + a reply take well under a second; this is for a loaded machine
const TEST_TIMEOUT_MS = 60_000; // a few waits per test

let work = "";
let tiny = ""; // context 128: replies end at once
let long = ""; // context 4096: a greedy 4000-token reply runs for seconds, long enough to interrupt

const tmux = (...args: string[]) => {
  const r = Bun.spawnSync(["tmux", "-S", socket, ...args], { stdout: "pipe", stderr: "pipe" });
  if (!r.success) throw new Error(`tmux ${args.join(" ")} failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
};
const screen = () => tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", SESSION);
const keys = (...k: string[]) => tmux("send-keys", "-t", SESSION, ...k);
const type = (text: string) => tmux("send-keys", "-t", SESSION, "-l", text);

/** Start the REPL with `args`; the pane stays open after it exits so the exit code can be read. */
function start(args: string[]) {
  socket = join(work, `tmux-${++sockets}`);
  const cmd = `bun scripts/chat.ts ${args.join(" ")}; echo ${EXITED}$?; sleep 600`;
  tmux("new-session", "-d", "-s", SESSION, "-x", "150", "-y", "50", "-c", ROOT, cmd);
}

/** Poll the screen until `match` appears (at least `count` times); returns the screen. */
async function waitFor(match: string | RegExp, { count = 1 } = {}): Promise<string> {
  const deadline = Date.now() + TIMEOUT_MS;
  const occurrences = (s: string) => (typeof match === "string" ? s.split(match).length - 1 : (s.match(new RegExp(match, "g")) ?? []).length);
  for (;;) {
    const s = screen();
    if (occurrences(s) >= count) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${match} (x${count}); the screen:\n${s}`);
    await Bun.sleep(50);
  }
}

beforeAll(() => {
  if (!HAS_TMUX) return;
  work = mkdtempSync(join(tmpdir(), "chat-tmux-"));
  const tok = tinyTokenizer();
  tiny = join(work, "tiny");
  long = join(work, "long");
  saveCheckpoint(tiny, tinyModel(tok.vocabSize), tok, { meta: { kind: "sft" } });
  saveCheckpoint(long, tinyModel(tok.vocabSize, { overrides: { max_position_embeddings: 4096 } }), tok, { meta: { kind: "sft" } });
});
afterEach(() => {
  if (socket) Bun.spawnSync(["tmux", "-S", socket, "kill-server"]);
  if (socket) rmSync(socket, { force: true });
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!HAS_TMUX)("chat REPL in a terminal", () => {
  test("a message streams a reply with its stats; /history, /params, /save, /quit", async () => {
    start(["--model", tiny, "--max-tokens", "8"]);
    await waitFor("you> ");
    expect(screen()).toContain(`checkpoint ${tiny}`);
    const sent = ["What is a noun?", "And a verb?"];
    for (const [i, m] of sent.entries()) {
      type(m);
      keys("Enter");
      await waitFor(/tok\/s/, { count: i + 1 });
    }
    const s = await waitFor("you> ", { count: 3 });
    expect(s).toContain("sft> ");
    expect(s).toMatch(/\d+ tokens · [\d.]+ tok\/s · prompt \d+ tokens/);

    type("/history");
    keys("Enter");
    await waitFor(/1 you: What is a noun\?|\(no messages yet\)/);

    type("/params temperature=0.2 top_p=0.5");
    keys("Enter");
    await waitFor("temperature=0.2 top_k=0 top_p=0.5 repetition_penalty=1 max_tokens=8 seed=0");

    const file = join(work, "saved.json");
    type(`/save ${file}`);
    keys("Enter");
    const saved = await waitFor(/saved \d exchange\(s\)|nothing to save yet/);
    if (saved.includes("saved ")) {
      const [conversation] = loadConversations(file);
      const asked = conversation.filter((m) => m.role === "user").map((m) => m.content);
      expect(asked.every((q) => sent.includes(q))).toBe(true);
    }

    type("/quit");
    keys("Enter");
    await waitFor(`${EXITED}0`);
  }, TEST_TIMEOUT_MS);

  test("Ctrl-C at the prompt clears the line; twice at an empty prompt exits", async () => {
    start(["--model", tiny]);
    await waitFor("you> ");
    type("half a thought");
    keys("C-c");
    type("/history"); // if the line had not been cleared this would be a message, not a command
    keys("Enter");
    const s = await waitFor("(no messages yet)");
    expect(s).not.toContain("half a thought/history");
    keys("C-c");
    await waitFor("Ctrl-C again");
    keys("C-c");
    await waitFor(`${EXITED}0`);
  }, TEST_TIMEOUT_MS);

  test("Ctrl-C during a reply stops the reply, not the program; Ctrl-D exits", async () => {
    start(["--model", long, "--max-tokens", "4000", "--temperature", "0"]);
    await waitFor("you> ");
    type("Tell me a long story.");
    keys("Enter");
    await waitFor("sft> ");
    keys("C-c");
    const s = await waitFor(/\[interrupted after \d+ tokens\]/);
    const n = Number(s.match(/\[interrupted after (\d+) tokens\]/)![1]);
    expect(n).toBeLessThan(4000);
    await waitFor("you> ", { count: 2 }); // back at the prompt
    expect(screen()).not.toContain(EXITED);
    keys("C-d");
    await waitFor(`${EXITED}0`);
  }, TEST_TIMEOUT_MS);
});
