// bun scripts/train-tokenizer.ts --corpus a.txt,b.txt:0-65000000 --vocab-size 4096 --max-mb 30 --out models/tokenizer-4096/tokenizer.json
//
// Trains the project's byte-level BPE tokenizer (specials at ids 0..5) and reports the time taken
// and bytes/token on held-out text. A corpus entry may be a byte range, `path:START-END`, which is
// how held-out books are kept out of training; `--eval` names the held-out text (by default the
// last 1 MiB, at most 5%, of the last corpus entry, which is then not trained on).

import { basename, dirname } from "node:path";
import { defineCommand } from "citty";
import { parseNumber, runStrict, UsageError } from "../lib/util/cli.ts";
import { consola } from "consola";
import { trainBPE } from "../lib/tokenizer/bpe-train.ts";
import { parseSpan, readSpan, sampleSpans, type TextSpan } from "../lib/tokenizer/sample-text.ts";
import { normalizeText } from "../lib/tokenizer/normalize.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { SPECIAL_TOKENS } from "../lib/format/tokens.ts";

const log = consola.withTag("tokenizer");
const MiB = 1 << 20;
const DEFAULT_EVAL_BYTES = MiB; // held out from the last corpus entry when --eval is not given...
const DEFAULT_EVAL_FRACTION = 0.05; // ...but never more than this share of it
const PROGRESS_EVERY = 500; // merges between progress lines

const main = defineCommand({
  meta: { name: "train-tokenizer", description: "Train a byte-level BPE tokenizer.json with the chat special tokens." },
  args: {
    corpus: { type: "string", required: true, description: "comma-separated text files, each optionally `path:START-END` (bytes)" },
    "vocab-size": { type: "string", default: "4096", description: "total ids, 6 specials and 256 bytes included" },
    "max-mb": { type: "string", default: "30", description: "training text budget in MiB, sampled evenly across the corpus" },
    "min-frequency": { type: "string", default: "2", description: "stop merging when the best pair is rarer than this" },
    eval: { type: "string", description: "comma-separated held-out text (same syntax as --corpus) for bytes/token" },
    out: { type: "string", required: true, description: "where to write tokenizer.json (a file path or a directory)" },
  },
  async run({ args }) {
    const vocabSize = parseNumber("vocab-size", args["vocab-size"], { min: 262, integer: true });
    const maxBytes = parseNumber("max-mb", args["max-mb"], { min: 0.001 }) * MiB;
    const minFrequency = parseNumber("min-frequency", args["min-frequency"], { min: 1, integer: true });
    const outDir = args.out.endsWith(".json") ? dirname(args.out) : args.out;
    if (args.out.endsWith(".json") && basename(args.out) !== "tokenizer.json")
      throw new UsageError(`--out must be a directory or end in tokenizer.json (loaders look for that name), got \`${args.out}\``);

    const corpus = args.corpus.split(",").map(parseSpan);
    let evalSpans: TextSpan[];
    if (args.eval) {
      evalSpans = args.eval.split(",").map(parseSpan);
    } else {
      // hold out the tail of the last corpus entry so bytes/token is measured on unseen text
      const last = corpus[corpus.length - 1]!;
      const end = Math.min(last.end, Bun.file(last.path).size);
      const evalBytes = Math.min(DEFAULT_EVAL_BYTES, Math.floor(DEFAULT_EVAL_FRACTION * (end - last.start)));
      evalSpans = [{ path: last.path, start: end - evalBytes, end }];
      last.end = evalSpans[0]!.start;
    }

    const t0 = performance.now();
    const texts = (await sampleSpans(corpus, maxBytes)).map(normalizeText); // as pretraining reads it
    const trainBytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
    log.info(`read \`${(trainBytes / MiB).toFixed(1)}\` MiB in ${texts.length} pieces from ${corpus.length} file(s)`);

    const json = trainBPE(texts, {
      specialTokens: Object.values(SPECIAL_TOKENS), // the chat format's tokens at fixed ids 0..5
      vocabSize,
      minFrequency,
      onProgress: ({ merges, vocabSize: size, pairCount }) => {
        if (merges % PROGRESS_EVERY === 0)
          log.info(`merge ${merges} | vocab ${size} | pair count ${pairCount} | ${((performance.now() - t0) / 1000).toFixed(1)}s`);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const tokenizer = Tokenizer.fromJSON(json, args.out);
    const path = await tokenizer.save(outDir);
    log.success(`wrote \`${path}\`: vocab ${tokenizer.vocabSize}, ${json.model.merges.length} merges in ${seconds.toFixed(1)}s`);

    for (const span of evalSpans) {
      const text = normalizeText(await readSpan(span));
      const ntoks = tokenizer.encode(text).length;
      const bytes = Buffer.byteLength(text);
      log.info(`held-out \`${span.path}:${span.start}-${Number.isFinite(span.end) ? span.end : ""}\`: ` +
        `${(bytes / MiB).toFixed(2)} MiB, ${ntoks} tokens, ${(bytes / ntoks).toFixed(3)} bytes/token`);
    }
  },
});

runStrict(main);
