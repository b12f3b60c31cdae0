// bun scripts/data-check.ts [--data f] [--eval f] [--batch-size 8] [--base dir | --tokenizer path] [--index N [--shift-bug]]
//   bun scripts/data-check.ts --tokenizer models/tokenizer-4096
//
// What is in an SFT data set before training on it: counts, a token-length histogram, padding
// waste at the batch size (shuffled vs length-grouped), exact and near duplicates, train/eval
// overlap, style outliers, and the self-check line. --index N then shows that conversation's
// mask view (as scripts/inspect.ts does). Without --data, the bundled train and eval sets.

import { existsSync } from "node:fs";
import { defineCommand } from "citty";
import { consola } from "consola";
import { parseNumber, runStrict, UsageError } from "../lib/util/cli.ts";
import { DEFAULT_BASE, DEFAULT_EVAL_DATA, DEFAULT_NOISE, DEFAULT_TRAIN_DATA } from "../lib/util/paths.ts";
import { DataError, loadConversations, loadNoiseTemplates } from "../lib/data/data.ts";
import { dataCheck, formatDataCheck } from "../lib/data/datacheck.ts";
import { VIEW_ARGS, viewConversation, viewOptionsFromArgs } from "../lib/data/inspect.ts";
import { DEFAULT_MAX_SEQ_LEN, loadCheckTokenizer, TOKENIZER_ARGS } from "../lib/data/selfcheck.ts";

const log = consola.withTag("data-check");

const command = defineCommand({
  meta: { name: "data-check", description: "Report counts, lengths, padding, duplicates, overlap and style outliers of SFT data" },
  args: {
    data: { type: "string", description: `train conversations, .json/.jsonl (default: ${DEFAULT_TRAIN_DATA} with its eval set)` },
    eval: { type: "string", description: "held-out conversations to check for overlap with --data" },
    "batch-size": { type: "string", default: "8", description: "rows per batch for the padding estimate" },
    seed: { type: "string", default: "0", description: "batch order seed for the padding estimate" },
    index: { type: "string", description: "also show the mask view of this train conversation (from 0)" },
    ...VIEW_ARGS,
    ...TOKENIZER_ARGS,
  },
  async run({ args }) {
    try {
      const trainPath = args.data ?? DEFAULT_TRAIN_DATA;
      const evalPath = args.eval ?? (args.data ? undefined : DEFAULT_EVAL_DATA); // the bundled pair goes together
      const train = loadConversations(trainPath);
      const evalSet = evalPath ? loadConversations(evalPath) : undefined;
      const { tokenizer, source, context } = await loadCheckTokenizer(args.tokenizer, args.base ?? DEFAULT_BASE);
      const maxSeqLen = parseNumber("max-seq-len", args["max-seq-len"] ?? context ?? DEFAULT_MAX_SEQ_LEN, { integer: true, positive: true });
      const batchSize = parseNumber("batch-size", args["batch-size"], { integer: true, positive: true });
      const seed = parseNumber("seed", args.seed, { integer: true, min: 0 });
      const detectors = existsSync(DEFAULT_NOISE) ? loadNoiseTemplates(DEFAULT_NOISE).detectors : []; // the noise ablation's filler patterns
      console.log(`data ${trainPath}${evalPath ? `, eval ${evalPath}` : ""} | tokenizer ${source} | max-seq-len ${maxSeqLen}\n`);
      const report = dataCheck({ train, eval: evalSet, tokenizer, batchSize, maxSeqLen, context, detectors, seed });
      console.log(formatDataCheck(report, train, evalSet).join("\n"));
      if (args.index !== undefined) {
        const index = parseNumber("index", args.index, { integer: true, min: 0, max: train.length - 1 });
        console.log(`\n${viewConversation(tokenizer, train[index]!, `${trainPath} #${index}`, viewOptionsFromArgs(args))}`);
      }
    } catch (e) {
      if (!(e instanceof UsageError || e instanceof DataError)) throw e;
      log.error(e.message);
      process.exitCode = 2;
    }
  },
});

runStrict(command);
