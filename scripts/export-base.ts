// Publish a finished pretraining run as a base model with its model card.
//   bun scripts/export-base.ts --run runs/<YYYYMMDD-HHMMSS>-pretrain-gutenberg-base --out models/gutenberg-base
// Copies the run's final checkpoint (never over an existing directory) and writes MODEL_CARD.md from
// the run's config.json, summary.json and metrics.jsonl, with fresh greedy and sampled continuations.
import { defineCommand } from "citty";
import { runStrict, UsageError } from "../lib/util/cli.ts";
import { consola } from "consola";
import { cpSync, existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { loadCheckpoint } from "../lib/model/checkpoint.ts";
import { countParameters } from "../lib/model/config.ts";
import { generate } from "../lib/generate/generate.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import { SPECIAL_TOKENS } from "../lib/format/tokens.ts";
import { normalizeText } from "../lib/tokenizer/normalize.ts";
import { readMetrics, type EvalRow } from "../lib/run/metrics.ts";
import { readJSON } from "../lib/io/files.ts";
import { ChatFormat } from "../lib/format/chat-format.ts";
import { prepareProcess } from "../lib/mlx/startup.ts";

const log = consola.withTag("export-base");

/** The books in the held-out byte range (63,944,357–end of gutenberg-english.txt), in file order. */
const HELD_OUT_BOOKS = [
  "The Clockwork Man (E. V. Odle)",
  "The Iliad (Homer, tr. Alexander Pope)",
  "The Gift of the Magi (O. Henry)",
  "Second Treatise of Government (John Locke)",
  "Wuthering Heights (Emily Brontë)",
  "Democracy in America, vol. 1 (Alexis de Tocqueville)",
  "The Importance of Being Earnest (Oscar Wilde)",
  "Narrative of the Captivity and Restoration of Mrs. Mary Rowlandson",
];

const HELD_OUT_START = 63944357; // byte where those books begin

const CARD_PROMPTS = [
  "It was a dark and stormy night,",
  "The old man looked at the sea and",
  "Once upon a time, in a kingdom by the sea,",
  "The history of the United States",
  "What is the capital of France?",
];

const fence = (s: string) => "```\n" + s.replace(/```/g, "ʼʼʼ") + "\n```";

const command = defineCommand({
  meta: { name: "export-base", description: "Publish a pretraining run as a base model with a model card" },
  args: {
    run: { type: "string", required: true, description: "the pretraining run folder" },
    out: { type: "string", default: "models/gutenberg-base", description: "where the base model goes (must not exist)" },
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts
    const runDir = resolve(args.run);
    const out = resolve(args.out);
    const src = join(runDir, "checkpoint");
    if (!existsSync(join(src, "model.safetensors"))) throw new UsageError(`${src}: no final checkpoint (has the run completed? resume it with bun scripts/pretrain.ts --resume ${args.run})`);
    if (existsSync(out)) throw new UsageError(`${out} already exists: base models are never overwritten; choose another --out`);
    const cfg = readJSON(join(runDir, "config.json"));
    const summary = readJSON(join(runDir, "summary.json"));
    const evals = readMetrics(runDir).filter((m): m is EvalRow => m.type === "eval");
    const { model, tokenizer, config } = await loadCheckpoint(src);
    const docId = tokenizer.tokenId(SPECIAL_TOKENS.doc);

    const samples: string[] = [];
    for (const prompt of CARD_PROMPTS) {
      const ids = tokenizer.encode(normalizeText(prompt));
      const greedy = await generate(model, tokenizer, ids, { maxTokens: 60, stopIds: [docId] });
      const sampled = await generate(model, tokenizer, ids, { maxTokens: 60, stopIds: [docId], temperature: 0.8, topP: 0.95, seed: 0 });
      samples.push(`**${prompt}**\n\ngreedy:\n${fence(prompt + greedy.text)}\nsampled (temperature 0.8, top-p 0.95, seed 0):\n${fence(prompt + sampled.text)}`);
    }
    const chatPrompt = new ChatTemplate().renderPromptIds([{ role: "user", content: "What is the capital of France?" }], tokenizer);
    const chat = await generate(model, tokenizer, chatPrompt, { maxTokens: 60, stopIds: ChatFormat.of(tokenizer).trainedStopIds });

    // The bundled base's data is described in full; any other corpus by its spans.
    const isGutenberg = cfg.corpus.length === 1 && cfg.corpus[0].endsWith(`gutenberg-english.txt:0-${HELD_OUT_START}`);
    const dataSection = "## Data\n" + (isGutenberg
      ? `- Training: \`${cfg.corpus.map((c: string) => basename(c)).join("\`, \`")}\` (bytes 0–63,944,357 of the 108 Project Gutenberg books in
  \`../shared/corpus/gutenberg-english.txt\`: novels, essays, history, fairy tales), documents packed to ${cfg.seqLen}
  tokens with \`<|endoftext|>\` between them; ${(summary.trainTokensAvailable / 1e6).toFixed(1)}M tokens available.
- Held out (never trained on; the loss below): the last 8 books of the file, bytes 63,944,357–end:
  ${HELD_OUT_BOOKS.join("; ")}. ${(summary.heldOutTokens / 1e6).toFixed(2)}M tokens; evaluation uses
  ${summary.heldOutWindows} windows of ${cfg.seqLen} tokens.
- Not used: the Brown corpus (its tokenised spacing, \`word ,\`, would be learned) and the State of the Union addresses.`
      : `- Training: ${cfg.corpus.map((c: string) => `\`${basename(c)}\``).join(", ")}, documents packed to ${cfg.seqLen} tokens with \`<|endoftext|>\`
  between them; ${(summary.trainTokensAvailable / 1e6).toFixed(1)}M tokens available.
- Held out (never trained on; the loss below): ${cfg.evalCorpus.map((c: string) => `\`${basename(c)}\``).join(", ")}, ${(summary.heldOutTokens / 1e6).toFixed(2)}M tokens;
  evaluation uses ${summary.heldOutWindows} windows of ${cfg.seqLen} tokens.`) + "\n";
    const m = cfg.modelConfig;
    const card = `# gutenberg-base

A small Llama-family base language model, pretrained by this project's own script on public-domain
English books. It continues prose; it has never seen a conversation. It is the default \`--base\` of
\`bun scripts/train.ts\`: SFT teaches it the chat format.

## Architecture
| | |
|---|---|
| parameters | ${countParameters(config).toLocaleString("en-US")} (${(countParameters(config) / 1e6).toFixed(2)}M; embedding tied with the output head) |
| layers × width | ${m.num_hidden_layers} × ${m.hidden_size} |
| attention | ${m.num_attention_heads} heads of ${m.hidden_size / m.num_attention_heads}, RoPE (rotate-half, θ = ${m.rope_theta}), context ${cfg.seqLen} tokens |
| MLP | SwiGLU, ${m.intermediate_size} hidden |
| norm | RMSNorm, ε = ${m.rms_norm_eps} |
| files | Hugging Face layout: \`config.json\`, \`model.safetensors\` (fp32), \`tokenizer.json\`, \`tokenizer_config.json\`, \`generation_config.json\` |

## Tokenizer
Byte-level BPE, vocabulary ${tokenizer.vocabSize} (${tokenizer.vocabSize - 262} merges), from \`${cfg.tokenizer}\`, trained by
\`scripts/train-tokenizer.ts\`${isGutenberg ? " on 25 MB sampled evenly from the training part of `gutenberg-english.txt` (quotes straightened)" : ""}. Special tokens
at fixed ids: \`<|pad|>\` 0, \`<|endoftext|>\` 1 (document separator), \`<|user|>\` 2, \`<|assistant|>\` 3,
\`<|end|>\` 4, \`<|system|>\` 5 (reserved). The chat tokens exist but were never trained in pretraining.
Held-out text: ${summary.bytesPerToken.toFixed(3)} bytes/token.

${dataSection}
## Training
| | |
|---|---|
| steps | ${summary.step} × ${cfg.batchSize} sequences × ${cfg.seqLen} tokens |
| tokens seen | ${(summary.tokensSeen / 1e6).toFixed(2)}M (${(summary.tokensSeen / summary.trainTokensAvailable).toFixed(2)} epochs of the available text) |
| optimizer | AdamW (β 0.9/0.95, weight decay 0.1 on matrices), gradient clipping 1.0 |
| learning rate | ${cfg.lr} peak, ${cfg.warmup} warmup steps, cosine to ${cfg.minLrRatio}× |
| wall time | ${summary.wallTime} on ${cfg.machine?.cpus} CPU cores (${cfg.machine?.cpuModel}), MLX ${cfg.machine?.device}, shared with other work |
| peak memory | ${Math.round(summary.peakRssMB)} MB (mostly the tokenized corpus, held in memory as it is packed) |
| seed | ${cfg.seed} |

Reproduce:
\`\`\`
bun scripts/train-tokenizer.ts --corpus ../shared/corpus/gutenberg-english.txt:0-63944357 --eval ../shared/corpus/gutenberg-english.txt:63944357- --vocab-size 4096 --max-mb 25 --out models/tokenizer-4096/tokenizer.json
${cfg.command.replace(/^.*?scripts\//, "bun scripts/")}
bun scripts/export-base.ts --run runs/<that run> --out models/<name>
\`\`\`
${cfg.note ? `\nNote: ${cfg.note}.\n` : ""}
## Held-out loss
| step | loss (nats/token) | bits per byte |
|---|---|---|
${evals.map((e) => `| ${e.step} | ${e.evalLoss.toFixed(4)} | ${e.bitsPerByte?.toFixed(3) ?? "n/a"} |`).join("\n")}

Final: **${summary.evalLoss.toFixed(4)} nats/token, ${summary.bitsPerByte.toFixed(3)} bits per byte** on the held-out books.

## Continuations
${samples.join("\n\n")}

**In the chat format** (\`<|user|>\\nWhat is the capital of France?\\n<|assistant|>\\n\`, greedy, 60 tokens):
${fence(chat.text)}
stop reason: \`${chat.stopReason}\`. The base model does not answer in the chat format and does not stop: that is what SFT is for.
`;
    const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    cpSync(src, tmp, { recursive: true });
    writeFileSync(join(tmp, "MODEL_CARD.md"), card);
    renameSync(tmp, out);
    log.success(`wrote ${out} (${(countParameters(config) / 1e6).toFixed(2)}M parameters, held-out ${summary.bitsPerByte.toFixed(3)} bits/byte)`);
  },
});

runStrict(command);
