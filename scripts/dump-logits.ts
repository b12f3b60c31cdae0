// bun scripts/dump-logits.ts <checkpoint or adapter dir> [--ids 1,2,3] [--prompt "Once upon a time"] [--tokens 20] --out f.json
//
// What this project computes for a checkpoint, as JSON, for scripts/check-hf.py to compare with
// transformers: logits for fixed ids, the greedy continuation of a prompt, the chat template's
// renders (training text and generation prompt), their ids and training mask, and the chat tokens' ids.
import { defineCommand } from "citty";
import { consola } from "consola";
import { writeFileSync } from "node:fs";
import { parseList, parseNumber, runStrict, UsageError } from "../lib/util/cli.ts";
import type { Message } from "../lib/format/types.ts";
import { prepareProcess } from "../lib/mlx/startup.ts";

const log = consola.withTag("dump-logits");

/** Conversations whose renders are compared: multi-turn, non-ASCII, and text that merely looks
 * like a chat token (our tokenizer never turns it into the special id). */
const CONVERSATIONS: Message[][] = [
  [
    { role: "user", content: "What is the capital of France?" },
    { role: "assistant", content: "The capital of France is Paris." },
  ],
  [
    { role: "user", content: "Say hello in two languages." },
    { role: "assistant", content: "Hello! Bonjour, ça va? 🎉" },
    { role: "user", content: "And one more." },
    { role: "assistant", content: "Hola." },
  ],
  [
    { role: "user", content: "What does <|end|> mean in <|user|> text?" },
    { role: "assistant", content: "It is only text here." },
  ],
];

const main = defineCommand({
  meta: { name: "dump-logits", description: "Dump logits, greedy ids and chat renders of a checkpoint as JSON" },
  args: {
    dir: { type: "positional", description: "checkpoint directory (Hugging Face layout), or a LoRA adapter folder (PEFT's layout, on its recorded base)", required: true },
    ids: { type: "string", description: "comma-separated ids to compute logits for", default: "1,2,3,10,20,30,40,50" },
    prompt: { type: "string", description: "prompt text for the greedy continuation", default: "Once upon a time" },
    tokens: { type: "string", description: "greedy tokens to generate", default: "20" },
    out: { type: "string", description: "JSON file to write", required: true },
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts
    const ids = parseList(args.ids).map((v) => parseNumber("ids", v, { integer: true, min: 0 }));
    if (ids.length === 0) throw new UsageError("--ids expects at least one id, e.g. `--ids 1,2,3`");
    const tokens = parseNumber("tokens", args.tokens, { integer: true, min: 1 });
    // Imported here so that a broken MLX install is reported as such, not as a module error.
    const { core: mx } = await import("@frost-beta/mlx");
    const { loadForDecoding } = await import("../lib/model/adapter.ts");
    const { generate } = await import("../lib/generate/generate.ts");
    const { ChatTemplate } = await import("../lib/format/template.ts");
    const { CHAT_TOKENS } = await import("../lib/format/tokens.ts");

    const { model, tokenizer, config } = await loadForDecoding(args.dir); // a checkpoint, or an adapter on its base
    const bad = ids.filter((id) => id >= config.vocabSize);
    if (bad.length) throw new UsageError(`--ids: ${bad.join(", ")} out of range: ${args.dir} has vocab_size ${config.vocabSize}`);
    const logits = model.forward(mx.array([ids], mx.int32)).index(0).tolist() as number[][]; // [T, V]

    const promptIds = tokenizer.encode(args.prompt);
    const greedy = await generate(model, tokenizer, promptIds, { maxTokens: tokens });

    const template = new ChatTemplate();
    const chats = CONVERSATIONS.map((messages) => ({
      messages,
      render: template.render(messages),
      ...template.renderWithMask(messages, tokenizer), // ids and the supervised mask
      promptMessages: messages.slice(0, -1),
      renderPrompt: template.renderPrompt(messages.slice(0, -1)),
    }));
    const specialIds = Object.fromEntries(CHAT_TOKENS.filter((t) => tokenizer.hasToken(t)).map((t) => [t, tokenizer.tokenId(t)]));

    const record = { checkpoint: args.dir, ids, logits, prompt: args.prompt, promptIds, greedyIds: greedy.ids, greedyText: greedy.text, chats, specialIds };
    writeFileSync(args.out, JSON.stringify(record));
    log.success(`wrote \`${args.out}\`: logits [${ids.length}, ${config.vocabSize}], ${greedy.ids.length} greedy ids, ${chats.length} chats`);
  },
});

runStrict(main);
