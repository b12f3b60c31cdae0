// The chat REPL's logic: the prompt at every turn is the training render's prefix, history trimming
// drops whole exchanges and keeps the newest, command and /params parsing, /save round-trips through
// the data loader, checkpoint selection. The script itself: test/chat-cli.test.ts, test/chat-tmux.test.ts.
//   bun test test/chat.test.ts

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../lib/util/cli.ts";
import { parseInput } from "../lib/chat/commands.ts";
import { historyText, sideBySide, stopMark, wrapText } from "../lib/chat/format.ts";
import { applyParamAssignments, defaultChatParams, formatParams, resolveChatParams } from "../lib/chat/params.ts";
import { conversationFile, saveConversation } from "../lib/chat/save.ts";
import { chooseModel, listRuns, optionalValue, pickRun, recordedBase } from "../lib/chat/select.ts";
import { ChatSession, ContextError, fitHistory } from "../lib/chat/session.ts";
import { loadConversations } from "../lib/data/data.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import type { Message } from "../lib/format/types.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tok = tinyTokenizer();
const tpl = new ChatTemplate();
const u = (content: string): Message => ({ role: "user", content });
const a = (content: string): Message => ({ role: "assistant", content });
const made: string[] = [];
const tmp = () => {
  made.push(mkdtempSync(join(tmpdir(), "chat-test-")));
  return made[made.length - 1];
};
afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

const CONVERSATIONS: [string, Message[]][] = [
  ["one exchange", [u("What is a noun?"), a("A naming word.")]],
  ["three exchanges", [u("What is 2+2?"), a("4."), u("And 3+3?"), a("6, of course."), u("Thanks!"), a("You are welcome.")]],
  ["multi-line and spaces", [u("  Write two lines:\nthe sea "), a("The sea is wide.\nIt is deep.\n"), u("Again"), a(" ok ")]],
  ["markers as text", [u("say <|end|> then <|user|>"), a("<|assistant|> done <|end|>"), u("<|pad|>?"), a("no")]],
  ["unicode", [u("Café, naïve — “quotes” 🌊"), a("Oui: déjà vu…"), u("日本語?"), a("はい")]],
];

describe("chat prompt = training render prefix", () => {
  test.each(CONVERSATIONS)("%s: every turn", (_name, conversation) => {
    const session = new ChatSession(tok, { contextLength: 100_000 });
    for (let i = 0; i < conversation.length; i += 2) {
      const turn = session.prepare(conversation[i].content);
      const training = tpl.renderWithMask(conversation.slice(0, i + 2), tok).ids;
      // ids: an exact prefix of the training ids, ending right after `<|assistant|>\n`
      expect(turn.ids).toEqual(training.slice(0, turn.ids.length));
      expect(turn.ids.slice(-1 - tok.encode("\n").length)).toEqual([tok.tokenId("<|assistant|>"), ...tok.encode("\n")]);
      // the next training id is the first id of the reply: nothing is missing before it
      expect(training.slice(turn.ids.length)).toEqual([...tok.encode(conversation[i + 1].content), tok.tokenId("<|end|>")]);
      // bytes: the decoded prompt is the training text up to the reply
      const text = tpl.render(conversation.slice(0, i + 2));
      expect(tok.decode(turn.ids)).toBe(text.slice(0, text.length - conversation[i + 1].content.length - "<|end|>".length));
      expect(turn.dropped).toBe(0);
      expect(session.commit(conversation[i].content, conversation[i + 1].content)).toBe(true);
    }
    expect(session.messages).toEqual(conversation);
  });

  test("raw mode (a base model) is the plain text, no template", () => {
    const session = new ChatSession(tok, { contextLength: 128, mode: "raw" });
    session.commit("Once upon a time", " there was a fox.");
    expect(session.prepare("The sea").ids).toEqual(tok.encode("The sea"));
  });
});

describe("history trimming", () => {
  // measure = number of messages: easy to reason about budgets
  const msgs = (n: number) => Array.from({ length: 2 * n + 1 }, (_, i) => (i % 2 ? a(`a${i >> 1}`) : u(`q${i >> 1}`)));
  test.each([
    // exchanges before the new message, budget (messages), expected start, dropped
    [3, 7, 0, 0],
    [3, 6, 2, 1],
    [3, 5, 2, 1],
    [3, 3, 4, 2],
    [3, 1, 6, 3],
    [3, 0, 6, 3], // never drops the new message itself
    [0, 0, 0, 0],
  ])("%i exchanges, budget %i: start %i, dropped %i", (n, budget, start, dropped) => {
    const m = msgs(n);
    const fit = fitHistory(m, 0, (kept) => kept.length, budget);
    expect([fit.start, fit.dropped]).toEqual([start, dropped]);
    expect(fit.start % 2).toBe(0); // a user turn: never half an exchange
    expect(m[fit.start].role).toBe("user");
    expect(fit.length).toBe(m.length - fit.start);
  });

  test("a session drops the oldest whole exchanges, keeps the newest, and says how many", () => {
    const session = new ChatSession(tok, { contextLength: 128, params: { ...defaultChatParams(), maxTokens: 64 } });
    const reply = "The capital of France is Paris.";
    let dropped = 0;
    for (let i = 0; i < 8; i++) {
      const turn = session.prepare(`question ${i}`);
      expect(turn.ids.length + 64).toBeLessThanOrEqual(128);
      const kept = session.messages.slice(session.contextStart);
      expect(session.contextStart % 2).toBe(0);
      expect(turn.ids).toEqual(tpl.renderPromptIds([...kept, u(`question ${i}`)], tok));
      dropped += turn.dropped;
      session.commit(`question ${i}`, reply);
    }
    expect(dropped).toBeGreaterThan(0);
    expect(session.messages).toHaveLength(16); // /history and /save keep everything
    expect(session.contextStart).toBe(2 * dropped);
    const last = session.messages.slice(session.contextStart);
    expect(last[last.length - 2]).toEqual(u("question 7")); // the newest stays
  });

  test("a message too long for the context is refused; a long one gets less reply room", () => {
    const session = new ChatSession(tok, { contextLength: 128, params: { ...defaultChatParams(), maxTokens: 64 } });
    expect(() => session.prepare("fox ".repeat(200))).toThrow(ContextError);
    const turn = session.prepare("fox ".repeat(40)); // ~80 ids: fits, with less than 64 to spare
    expect(turn.roomCut).toBe(true);
    expect(turn.ids.length + turn.options.maxTokens!).toBe(128);
  });

  test("reply n samples with seed + n; an empty reply is not kept; reset forgets", () => {
    const session = new ChatSession(tok, { contextLength: 128, params: { ...defaultChatParams(), seed: 7 } });
    expect(session.prepare("hi").options.seed).toBe(7);
    expect(session.commit("hi", "  \n")).toBe(false);
    expect(session.prepare("hi").options.seed).toBe(8);
    session.commit("hi", "hello");
    session.reset();
    expect([session.messages, session.contextStart, session.turn]).toEqual([[], 0, 0]);
  });
});

describe("input and /params parsing", () => {
  test.each([
    ["", { kind: "empty" }],
    ["   ", { kind: "empty" }],
    ["  What is a noun?  ", { kind: "message", text: "What is a noun?" }],
    ["//etc/passwd is a path", { kind: "message", text: "/etc/passwd is a path" }],
    ["/reset", { kind: "command", name: "reset", arg: "" }],
    ["/HISTORY", { kind: "command", name: "history", arg: "" }],
    ["/params temperature=0.2 top_p=0.9", { kind: "command", name: "params", arg: "temperature=0.2 top_p=0.9" }],
    ["/compare What is a verb?", { kind: "command", name: "compare", arg: "What is a verb?" }],
    ["/save out/chat.json", { kind: "command", name: "save", arg: "out/chat.json" }],
    ["/exit", { kind: "command", name: "quit", arg: "" }],
    ["/?", { kind: "command", name: "help", arg: "" }],
  ])("%j", (line, expected) => {
    expect(parseInput(line)).toEqual(expected as ReturnType<typeof parseInput>);
  });

  test.each([
    ["/frobnicate", /unknown command `\/frobnicate`: type \/help/],
    ["/save", /\/save needs an argument: \/save <file/],
  ])("%s is an error that says the fix", (line, message) => {
    const input = parseInput(line);
    expect(input.kind).toBe("error");
    expect(input.kind === "error" && input.message).toMatch(message);
  });

  test.each([
    ["temperature=0.2 top_p=0.9", { temperature: 0.2, topP: 0.9 }],
    ["top-k=40 max_tokens=32", { topK: 40, maxTokens: 32 }],
    ["repetition_penalty=1.1 seed=3", { repetitionPenalty: 1.1, seed: 3 }],
    ["topP=0.5", { topP: 0.5 }],
  ])("/params %s", (text, changed) => {
    expect(applyParamAssignments(defaultChatParams(), text)).toEqual({ ...defaultChatParams(), ...changed });
  });

  test.each([
    ["bogus=1", /unknown parameter `bogus`: expected one of temperature, top_k/],
    ["temperature", /`temperature` has no value: write temperature=<value>/],
    ["top_k=2.5", /top_k expects an integer >= 0, got `2.5`/],
    ["top_p=0", /top_p expects a number > 0 <= 1, got `0`/],
    ["max_tokens=x", /max_tokens expects an integer > 0, got `x`/],
  ])("/params %s is refused", (text, message) => {
    expect(() => applyParamAssignments(defaultChatParams(), text)).toThrow(message);
  });

  test("formatParams reads back through /params", () => {
    const p = { ...defaultChatParams(), temperature: 0.3, topK: 5 };
    expect(applyParamAssignments(defaultChatParams(), formatParams(p))).toEqual(p);
  });

  test.each([
    [{ temperature: "-1" }, "--temperature expects a number >= 0 <= 5, got `-1`"],
    [{ "max-tokens": "0" }, "--max-tokens expects an integer > 0, got `0`"],
    [{ seed: "1.5" }, "--seed expects an integer >= 0, got `1.5`"],
  ])("flags %j are refused with a UsageError naming the flag", (flags, message) => {
    expect(() => resolveChatParams(flags)).toThrow(UsageError);
    expect(() => resolveChatParams(flags)).toThrow(message);
  });

  test.each([
    [["--base"], ["--base="]],
    [["--base", "--temperature", "0"], ["--base=", "--temperature", "0"]],
    [["--base", "/tmp/devbase"], ["--base", "/tmp/devbase"]],
    [["--model", "x"], ["--model", "x"]],
  ])("optional --base value: %j", (argv, expected) => {
    expect(optionalValue(argv, "--base")).toEqual(expected);
  });
});

describe("/save", () => {
  const conversation = CONVERSATIONS[1][1];
  test.each(["chat.json", "chat.jsonl", "nested/dir/chat.json"])("%s loads back with loadConversations", (name) => {
    const file = saveConversation(join(tmp(), name), conversation);
    expect(loadConversations(file)).toEqual([conversation]);
  });

  test("the .json form is the training format: an array of {messages}", () => {
    expect(JSON.parse(conversationFile("x.json", conversation))).toEqual([{ messages: conversation }]);
  });

  test.each([
    ["chat.txt", [u("q"), a("r")], /name the file \.json .* or \.jsonl/],
    ["chat.json", [], /nothing to save yet/],
  ])("%s with %j is refused", (name, messages, message) => {
    expect(() => saveConversation(join(tmp(), name), messages)).toThrow(message);
  });
});

describe("which checkpoint", () => {
  /** A runs/ folder with the given runs: [name, status or null, has checkpoint, checkpoint kind]. */
  const makeRuns = (runs: [string, string | null, boolean, string?][]) => {
    const root = tmp();
    for (const [name, status, ckpt, kind] of runs) {
      const dir = join(root, name);
      mkdirSync(dir);
      if (status) writeFileSync(join(dir, "summary.json"), JSON.stringify({ status }));
      if (ckpt) {
        mkdirSync(join(dir, "checkpoint"));
        for (const f of ["config.json", "model.safetensors"]) writeFileSync(join(dir, "checkpoint", f), "{}");
        if (kind) writeFileSync(join(dir, "checkpoint", "sft-mlx.json"), JSON.stringify({ kind }));
      }
    }
    return root;
  };
  const choose = (root: string, flags = {}) => chooseModel({ runsDir: root, defaultBase: join(root, "no-base"), ...flags });

  test.each([
    ["newest completed", [["20260101-000000-a", "completed", true], ["20260102-000000-b", "completed", true]], "20260102-000000-b", /newest finished run/],
    ["stopped-early counts as finished", [["20260101-000000-a", "completed", true], ["20260102-000000-b", "stopped-early", true]], "20260102-000000-b", /status stopped-early/],
    ["a newer interrupted run is skipped, and named", [["20260101-000000-a", "completed", true], ["20260102-000000-b", "interrupted", true]], "20260101-000000-a", /newer 20260102-000000-b is interrupted \(--run to pick it\)/],
    ["interrupted with a checkpoint when nothing finished", [["20260101-000000-a", "interrupted", true], ["20260102-000000-b", "failed", false]], "20260101-000000-a", /no finished run; newest interrupted run/],
    ["pretraining runs are base models, never picked", [["20260101-000000-a", "completed", true, "sft"], ["20260102-000000-p", "completed", true, "base"]], "20260101-000000-a", /newest finished run/],
    ["a run still going (no summary) is skipped", [["20260101-000000-a", "completed", true], ["20260102-000000-b", null, false]], "20260101-000000-a", /status completed/],
  ] as [string, [string, string | null, boolean, string?][], string, RegExp][])("%s", (_name, runs, expected, note) => {
    const root = makeRuns(runs);
    expect(pickRun(listRuns(root))?.name).toBe(expected);
    const choice = choose(root);
    expect(choice.dir).toBe(join(root, expected, "checkpoint"));
    expect(choice.mode).toBe("chat");
    expect(choice.note).toMatch(note);
  });

  test.each([
    ["no runs folder", null, {}, /no fine-tuned model yet .*run `bun scripts\/train\.ts` first, or chat with a checkpoint: --model <dir>, or with the base model: --base/],
    ["only a pretraining run", [["20260101-000000-p", "completed", true, "base"]], {}, /found 1 run folder, none a finished fine-tuning run .*20260101-000000-p \[base model\].*bun scripts\/train\.ts/],
    ["--run without a checkpoint", [["20260101-000000-a", "failed", false]], { run: "RUN/20260101-000000-a" }, /--run: .* has no checkpoint\/ or adapter\/ \(status failed\)/],
    ["--run that does not exist", [], { run: "RUN/nope" }, /--run: `.*\/nope` does not exist: pass a folder under runs\//],
    ["--model without a model", [], { model: "/nonexistent/ckpt" }, /--model: no model at `\/nonexistent\/ckpt`/],
    ["--base when the default base is missing", [], { base: "" }, /--base: no model at .*no-base/],
    ["two ways to pick", [], { model: "x", run: "y" }, /--model and --run both pick a model: use one/],
  ] as [string, [string, string | null, boolean, string?][] | null, Record<string, string>, RegExp][])("%s: a clear error", (_name, runs, flags, message) => {
    const root = runs ? makeRuns(runs) : join(tmp(), "runs");
    const withRoot = Object.fromEntries(Object.entries(flags).map(([k, v]) => [k, v.replace("RUN", root)]));
    expect(() => choose(root, withRoot)).toThrow(message);
  });

  test("/compare's base: the checkpoint's sft-mlx.json, else its run's config.json, if it exists", () => {
    const root = makeRuns([["20260101-000000-a", "completed", true], ["20260102-000000-b", "completed", true]]);
    const [a, b] = ["20260101-000000-a", "20260102-000000-b"].map((r) => join(root, r, "checkpoint"));
    writeFileSync(join(root, "20260101-000000-a", "config.json"), JSON.stringify({ base: b }));
    expect(recordedBase(a, {})).toBe(b);
    expect(recordedBase(a, { base: join(root, "missing") })).toBe(b);
    expect(recordedBase(b, { base: { dir: a } })).toBe(a);
    expect(recordedBase(b, {})).toBeUndefined();
  });

  test("--run and --base pick what they name", () => {
    const root = makeRuns([["20260101-000000-a", "interrupted", true], ["20260102-000000-b", "completed", true]]);
    expect(choose(root, { run: join(root, "20260101-000000-a") }).dir).toBe(join(root, "20260101-000000-a", "checkpoint"));
    const base = choose(root, { base: join(root, "20260102-000000-b", "checkpoint") });
    expect([base.mode, base.note]).toEqual(["raw", expect.stringMatching(/raw continuation/)]);
  });
});

describe("what the chat prints", () => {
  test.each([
    ["end-token", 5, null],
    ["max-tokens", 8, "[cut at 8 tokens]"],
    ["interrupted", 3, "[interrupted after 3 tokens]"],
    ["context", 4, "[cut: the context is full after 4 tokens]"],
  ] as const)("stop %s", (stopReason, n, mark) => {
    expect(stopMark({ ids: Array(n).fill(7), stopReason }, 8)).toBe(mark);
  });

  test("/history numbers exchanges and marks those dropped from the context", () => {
    expect(historyText([u("q1"), a("r1\nmore"), u("q2"), a("r2")], 2)).toBe(
      ["  1 you: q1  (dropped from the context)", "    sft: r1", "         more", "  2 you: q2", "    sft: r2"].join("\n"),
    );
    expect(historyText([], 0)).toBe("(no messages yet)");
  });

  test.each([
    ["the quick brown fox", 9, ["the quick", "brown fox"]],
    ["abcdefghij", 4, ["abcd", "efgh", "ij"]],
    ["one\n\ntwo", 10, ["one", "", "two"]],
  ])("wrap %j at %i", (text, width, lines) => {
    expect(wrapText(text, width)).toEqual(lines);
  });

  test("/compare prints two columns, or stacks them on a narrow terminal", () => {
    const wide = sideBySide({ title: "sft", text: "A naming word." }, { title: "base", text: "and the dog ran away into the night" }, 63).split("\n");
    expect(wide[0]).toBe("sft".padEnd(30) + " │ base");
    expect(wide[1]).toBe("─".repeat(30) + " │ " + "─".repeat(30));
    expect(wide[2]).toBe("A naming word.".padEnd(30) + " │ and the dog ran away into the");
    expect(wide[3]).toBe(" ".repeat(30) + " │ night");
    expect(sideBySide({ title: "sft", text: "x" }, { title: "base", text: "y" }, 59)).toBe("── sft\nx\n── base\ny");
  });
});
