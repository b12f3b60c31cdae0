// bun scripts/inspect.ts --data data/sft/instructions.json --index 3 [--ids] [--plain] [--shift-bug] [--input-view] [--base dir | --tokenizer path]
//   bun scripts/inspect.ts --index 3 --shift-bug --tokenizer models/tokenizer-4096
//   bun scripts/inspect.ts --batch 0 --mix-prose 0.25      (a training batch with its replay windows)
//
// Mask view of one conversation: each token marked by whether it is a supervised TARGET (what the
// model is trained to predict at the position before it), read from the collated mask. Colour on
// a terminal, [brackets] otherwise or with --plain; --ids prints one token per line with its id.
// --shift-bug adds the same row under the classic input-aligned mask; --input-view adds the
// correct mask drawn on input positions, the way viewers that hide the off-by-one draw it.

import { defineCommand } from "citty";
import { consola } from "consola";
import { parseNumber, runStrict, UsageError } from "../lib/util/cli.ts";
import { DEFAULT_BASE, DEFAULT_TRAIN_DATA } from "../lib/util/paths.ts";
import { defaultSFTConfig } from "../lib/train/config.ts";
import { REPLAY_ARGS, replayFromArgs } from "../lib/sft/prose-source.ts";
import { DataError, loadConversations } from "../lib/data/data.ts";
import { VIEW_ARGS, viewConversation, viewOptionsFromArgs, viewTrainingBatch } from "../lib/data/inspect.ts";
import { loadCheckTokenizer, TOKENIZER_ARGS } from "../lib/data/selfcheck.ts";

const log = consola.withTag("inspect");

const command = defineCommand({
  meta: { name: "inspect", description: "Show which tokens of a conversation are supervised targets" },
  args: {
    data: { type: "string", default: DEFAULT_TRAIN_DATA, description: ".json/.jsonl conversation file" },
    index: { type: "string", default: "0", description: "conversation to show, counted from 0" },
    batch: { type: "string", description: "show training batch N (from 0) instead, as the trainer draws it (with --batch-size, --seed, --mix-prose)" },
    ...REPLAY_ARGS,
    ...VIEW_ARGS,
    ...TOKENIZER_ARGS,
  },
  async run({ args }) {
    try {
      const convs = loadConversations(args.data);
      const index = parseNumber("index", args.index, { integer: true, min: 0, max: convs.length - 1 });
      const { tokenizer, context } = await loadCheckTokenizer(args.tokenizer, args.base ?? DEFAULT_BASE);
      if (args.batch === undefined) {
        console.log(viewConversation(tokenizer, convs[index]!, `${args.data} #${index}`, viewOptionsFromArgs(args)));
        return;
      }
      const { replay, batchSize, seed } = await replayFromArgs(args, tokenizer);
      const batch = parseNumber("batch", args.batch, { integer: true, min: 0 });
      const { padMultiple, maxSeqLen } = defaultSFTConfig();
      console.log(viewTrainingBatch(tokenizer, convs, batch, { ...viewOptionsFromArgs(args), batchSize, seed, replay, padMultiple, maxSeqLen: Math.min(maxSeqLen, context ?? maxSeqLen) }));
    } catch (e) {
      if (!(e instanceof UsageError || e instanceof DataError)) throw e;
      log.error(e.message);
      process.exitCode = 2;
    }
  },
});

runStrict(command);
