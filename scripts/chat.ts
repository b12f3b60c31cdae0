// Chat with a fine-tuned model in the terminal.
//   bun scripts/chat.ts                              (the newest finished run in runs/)
//   bun scripts/chat.ts --run runs/<dir>             (or --model <checkpoint dir>)
//   bun scripts/chat.ts --base [dir]                 (a base model, raw continuation; default models/gutenberg-base)
//   echo "What is a noun?" | bun scripts/chat.ts     (piped: one message per line, prints only the replies)
// Sampling: --temperature --top-k --top-p --repetition-penalty --max-tokens --seed. In the session:
// /help lists the commands. Ctrl-C stops a reply; Ctrl-D or /quit exits.
import { prepareProcess } from "../lib/mlx/startup.ts";
import { defineCommand } from "citty";
import { consola } from "consola";
import { colors } from "consola/utils";
import { createInterface, type Interface } from "node:readline";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { runStrict, UsageError } from "../lib/util/cli.ts";
import { DEFAULT_BASE, RUNS_DIR } from "../lib/util/paths.ts";
import type { Checkpoint } from "../lib/model/checkpoint.ts";
import { countParameters } from "../lib/model/config.ts";
import type { Generation } from "../lib/generate/generate.ts";
import { helpText, parseInput } from "../lib/chat/commands.ts";
import { formatStats, historyText, sideBySide, stopMark } from "../lib/chat/format.ts";
import { applyParamAssignments, defaultChatParams, formatParams, ParamError, PARAM_SPECS, resolveChatParams } from "../lib/chat/params.ts";
import { saveConversation, SaveError } from "../lib/chat/save.ts";
import { chooseModel, ChoiceError, optionalValue, recordedBase } from "../lib/chat/select.ts";
import { ChatSession, ContextError, type PreparedTurn } from "../lib/chat/session.ts";
import { ChatFormat, rawStopIds } from "../lib/format/chat-format.ts";

const log = consola.withTag("chat");

/** Lines from stdin, one at a time, whether typed or piped; null at end of input. */
class LineQueue {
  private lines: string[] = [];
  private waiting: ((line: string | null) => void) | null = null;
  private closed = false;
  constructor(rl: Interface) {
    rl.on("line", (line) => this.push(line));
    rl.on("close", () => {
      this.closed = true;
      this.waiting?.(null);
      this.waiting = null;
    });
  }
  private push(line: string) {
    if (this.waiting) {
      this.waiting(line);
      this.waiting = null;
    } else this.lines.push(line);
  }
  next(): Promise<string | null> {
    if (this.lines.length) return Promise.resolve(this.lines.shift()!);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiting = resolve));
  }
}

const command = defineCommand({
  meta: { name: "chat", description: "Chat with a fine-tuned model (or a base model with --base)" },
  args: {
    model: { type: "string", description: "checkpoint directory to chat with" },
    run: { type: "string", description: "run folder whose checkpoint/ to chat with (default: the newest finished run)" },
    base: { type: "string", description: `chat with a base model as raw continuation (default dir: models/gutenberg-base)` },
    "compare-base": { type: "string", description: "base model for /compare (default: the checkpoint's recorded base, else models/gutenberg-base)" },
    runs: { type: "string", default: RUNS_DIR, description: "where run folders are" },
    ...Object.fromEntries(PARAM_SPECS.map((s) => [s.flag, { type: "string" as const, description: `${s.description} (default ${defaultChatParams()[s.key]})` }])),
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts
    let params, choice;
    try {
      params = resolveChatParams(args);
      choice = chooseModel({ model: args.model, run: args.run, base: args.base, runsDir: resolve(args.runs), defaultBase: DEFAULT_BASE });
    } catch (e) {
      if (e instanceof UsageError || e instanceof ChoiceError) {
        log.error(e.message);
        process.exit(e instanceof UsageError ? 2 : 1);
      }
      throw e;
    }
    let adapters: typeof import("../lib/model/adapter.ts");
    let generate: typeof import("../lib/generate/generate.ts").generate;
    let warmUp: typeof import("../lib/generate/generate.ts").warmUp;
    try {
      adapters = await import("../lib/model/adapter.ts");
      ({ generate, warmUp } = await import("../lib/generate/generate.ts"));
    } catch (e) {
      log.error(`MLX failed to load (${(e as Error).message}): run \`bun scripts/doctor.ts\` for the fix`);
      process.exit(1);
    }
    /** Load a checkpoint, or a LoRA run's adapter onto its base, merged into a copy of the weights
     * (what the compiled decode step reads); a broken one is a message, not a stack trace. */
    const load = async (dir: string): Promise<Checkpoint | null> => {
      try {
        const ckpt = await adapters.loadForDecoding(dir);
        await warmUp(ckpt.model, ckpt.tokenizer); // the first reply neither waits for nor counts first-use costs
        return ckpt;
      } catch (e) {
        if (!(e instanceof Error) || !["CheckpointError", "AdapterError", "ConfigError"].includes(e.name)) throw e;
        log.error(e.message);
        return null;
      }
    };
    const ckpt = await load(choice.dir);
    if (!ckpt) process.exit(1);
    const missing = ChatFormat.missingTokens(ckpt.tokenizer);
    if (choice.mode === "chat" && missing.length) {
      log.error(`${choice.dir}: the tokenizer has no ${missing.join(", ")}: this is not a chat model; continue text with it instead: --base ${choice.dir}`);
      process.exit(1);
    }
    const interactive = Boolean(process.stdin.isTTY);
    const label = choice.mode === "raw" ? "base" : "sft";
    const session = new ChatSession(ckpt.tokenizer, { contextLength: ckpt.config.maxPositionEmbeddings, mode: choice.mode, params });
    const stopIds = choice.mode === "raw" ? rawStopIds(ckpt.tokenizer) : ChatFormat.of(ckpt.tokenizer).chatStopIds;

    // Output: replies on stdout; in piped mode everything else goes to stderr so stdout stays replies only.
    const out = (s: string) => process.stdout.write(s);
    const info = (s: string) => (interactive ? out(colors.dim(s) + "\n") : process.stderr.write(`[chat] ${s}\n`));
    const show = (s: string) => (interactive ? out(s + "\n") : process.stderr.write(s + "\n"));

    const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
    const lines = new LineQueue(rl);
    let generating = false;
    let stopRequested = false;
    let exitArmed = false; // one Ctrl-C at an empty prompt arms, the second exits
    rl.on("SIGINT", () => {
      if (generating) {
        stopRequested = true;
      } else if (rl.line) {
        out("^C\n");
        rl.write(null, { ctrl: true, name: "e" }); // to the end of the line, then
        rl.write(null, { ctrl: true, name: "u" }); // delete everything before the cursor
        exitArmed = false;
        rl.prompt();
      } else if (exitArmed) {
        rl.close();
      } else {
        exitArmed = true;
        out("^C\n");
        info("(Ctrl-C again, Ctrl-D or /quit to exit)");
        rl.prompt();
      }
    });
    // Piped mode has no terminal to catch Ctrl-C: the signal stops a reply, or exits between replies.
    if (!interactive) process.on("SIGINT", () => (generating && !stopRequested ? (stopRequested = true) : process.exit(130)));

    const run = async (c: Checkpoint, ids: number[], opts: PreparedTurn["options"], stops: number[], onText?: (s: string) => void): Promise<Generation> => {
      generating = true;
      stopRequested = false;
      try {
        return await generate(c.model, c.tokenizer, ids, { ...opts, stopIds: stops, onText, shouldStop: () => stopRequested });
      } finally {
        generating = false;
      }
    };

    const reply = async (text: string) => {
      let turn: PreparedTurn;
      try {
        turn = session.prepare(text);
      } catch (e) {
        if (!(e instanceof ContextError)) throw e;
        show(`${label}: ${e.message}`);
        if (!interactive) out("\n"); // keep one reply block per input line
        return;
      }
      if (turn.dropped) {
        const what = turn.dropped > 1 ? `the ${turn.dropped} oldest exchanges` : "the oldest exchange";
        info(`dropped ${what} from the context to fit ${session.contextLength} tokens (${turn.kept} kept; /history shows all)`);
      }
      if (turn.roomCut) info(`only room for ${turn.options.maxTokens} reply tokens in the ${session.contextLength}-token context`);
      if (interactive) out(colors.cyan(`${label}> `));
      const g = await run(ckpt, turn.ids, turn.options, stopIds, out);
      const mark = stopMark(g, turn.options.maxTokens!);
      if (interactive) {
        out((mark ? " " + colors.yellow(mark) : "") + "\n" + colors.dim(formatStats(g)) + "\n");
      } else {
        out("\n");
        process.stderr.write(`[chat] ${mark ? mark + " " : ""}${formatStats(g)}\n`);
      }
      if (!session.commit(text, g.text)) info("(empty reply: not kept in the history)");
    };

    let baseSession: { ckpt: Checkpoint; session: ChatSession } | undefined;
    const compare = async (arg: string) => {
      if (choice.mode === "raw") return show("/compare: this session is already the base model; start it without --base to compare");
      const last = session.lastExchange();
      const prompt = arg || last?.user;
      if (!prompt) return show("/compare: nothing to compare yet: send a message first, or /compare <prompt>");
      if (!baseSession) {
        const dir = resolve(args["compare-base"] ?? recordedBase(ckpt.dir, ckpt.meta) ?? DEFAULT_BASE);
        if (!existsSync(dir)) return show(`/compare: no base model at \`${dir}\`: restart with --compare-base <base checkpoint dir>`);
        const base = await load(dir);
        if (!base) return;
        baseSession = { ckpt: base, session: new ChatSession(base.tokenizer, { contextLength: base.config.maxPositionEmbeddings, mode: "raw" }) };
        info(`/compare base: ${dir}`);
      }
      baseSession.session.params = session.params;
      const marked = (g: Generation, t: PreparedTurn) => [g.text, stopMark(g, t.options.maxTokens!)].filter(Boolean).join(" ");
      let sftText = last?.assistant ?? "";
      if (arg) {
        // A given prompt is asked on its own (not added to the conversation), like the base sees it.
        const single = new ChatSession(ckpt.tokenizer, { contextLength: session.contextLength, params: session.params });
        const t = single.prepare(arg);
        sftText = marked(await run(ckpt, t.ids, t.options, stopIds), t);
      }
      const baseTok = baseSession.ckpt.tokenizer;
      const docIds = rawStopIds(baseTok);
      const t = baseSession.session.prepare(prompt);
      const baseText = marked(await run(baseSession.ckpt, t.ids, t.options, docIds), t);
      show(`prompt: ${prompt}`);
      show(sideBySide({ title: "sft (chat template)", text: sftText }, { title: "base (raw continuation)", text: baseText }, process.stdout.columns ?? 80));
    };

    const runCommand = async (name: string, arg: string): Promise<boolean> => {
      switch (name) {
        case "quit":
          return false;
        case "help":
          show(helpText());
          break;
        case "reset":
          session.reset();
          info("(new conversation)");
          break;
        case "history":
          show(historyText(session.messages, session.contextStart, label));
          break;
        case "params":
          if (arg) session.params = applyParamAssignments(session.params, arg);
          show(formatParams(session.params));
          break;
        case "save":
          info(`saved ${session.messages.length / 2} exchange(s) to ${saveConversation(arg, session.messages)}`);
          break;
        case "compare":
          await compare(arg);
          break;
      }
      return true;
    };

    const params0 = formatParams(session.params);
    if (interactive) {
      out(`${colors.bold("sft-mlx chat")} · ${choice.note}\n`);
      info(`${ckpt.dir} · ${(countParameters(ckpt.config) / 1e6).toFixed(1)}M parameters · context ${session.contextLength} tokens`);
      info(params0);
      if (choice.mode === "raw") info("raw continuation: each message is continued on its own, without the chat template");
      info("/help for commands · Ctrl-C stops a reply · Ctrl-D or /quit exits");
      rl.setPrompt(colors.green("you> "));
    } else {
      info(`${choice.note} · ${params0}`);
    }

    for (;;) {
      if (interactive) rl.prompt();
      const line = await lines.next();
      if (line === null) break;
      exitArmed = false;
      const input = parseInput(line);
      try {
        if (input.kind === "message") await reply(input.text);
        else if (input.kind === "error") show(input.message);
        else if (input.kind === "command" && !(await runCommand(input.name, input.arg))) break;
      } catch (e) {
        if (e instanceof ParamError || e instanceof SaveError || e instanceof ContextError) show(e.message);
        else throw e;
      }
    }
    if (interactive) out("\n");
    rl.close();
    process.exit(0); // the stdin reader would otherwise keep the process alive
  },
});

runStrict(command, optionalValue(process.argv.slice(2), "--base"));
