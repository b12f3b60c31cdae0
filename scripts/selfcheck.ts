// bun scripts/selfcheck.ts [--data a.json,b.jsonl] [--base dir | --tokenizer path] [--max-seq-len N] [--mask-mode all] [--mix-prose F]
//   bun scripts/selfcheck.ts --tokenizer models/tokenizer-4096
//
// The pre-flight self-check on real data (default: the bundled train and eval sets) and a real
// tokenizer: markers are single ids, no text becomes a special id, prompts are id-exact prefixes
// of the training render, masks and the collate shift are right, lengths fit, and replay windows
// (--mix-prose, default as train.ts) collate into the batches with every target supervised. A pass is one line
// per file; a failure lists conversation, problem and fix, and exits 1.

import { defineCommand } from "citty";
import { consola } from "consola";
import { parseList, parseNumber, runStrict, UsageError } from "../lib/util/cli.ts";
import { REPLAY_ARGS, replayFromArgs } from "../lib/sft/prose-source.ts";
import { DEFAULT_BASE, DEFAULT_EVAL_DATA, DEFAULT_TRAIN_DATA } from "../lib/util/paths.ts";
import { DataError, loadConversations } from "../lib/data/data.ts";
import { DEFAULT_MAX_SEQ_LEN, formatFailure, loadCheckTokenizer, selfCheck, TOKENIZER_ARGS } from "../lib/data/selfcheck.ts";

const log = consola.withTag("selfcheck");
const MAX_SHOWN = 30; // failures printed per file; the rest are counted

const command = defineCommand({
  meta: { name: "selfcheck", description: "Check that template, mask, collate and chat prompt agree on real data" },
  args: {
    data: { type: "string", default: `${DEFAULT_TRAIN_DATA},${DEFAULT_EVAL_DATA}`, description: "comma-separated .json/.jsonl conversation files" },
    ...TOKENIZER_ARGS,
    "mask-mode": { type: "string", default: "assistant", description: "assistant (train on answers) or all (the ablation)" },
    ...REPLAY_ARGS,
  },
  async run({ args }) {
    try {
      const maskMode = args["mask-mode"];
      if (maskMode !== "assistant" && maskMode !== "all") throw new UsageError(`--mask-mode expects assistant or all, got \`${maskMode}\``);
      const { tokenizer, source, context } = await loadCheckTokenizer(args.tokenizer, args.base ?? DEFAULT_BASE);
      const maxSeqLen = parseNumber("max-seq-len", args["max-seq-len"] ?? context ?? DEFAULT_MAX_SEQ_LEN, { integer: true, positive: true });
      const { replay } = await replayFromArgs(args, tokenizer);
      log.info(`tokenizer \`${source}\`, max-seq-len ${maxSeqLen}${replay ? `, replay ${replay.rows} rows per batch from ${replay.source}` : ""}`);
      let failed = false;
      for (const file of parseList(args.data)) {
        const result = selfCheck({ tokenizer, conversations: loadConversations(file), maxSeqLen, context, maskMode, replay });
        if (result.ok) {
          log.success(`${file}: ${result.summary}`);
          continue;
        }
        failed = true;
        log.error(`${file}: ${result.summary}`);
        for (const f of result.failures.slice(0, MAX_SHOWN)) console.log(`  ${formatFailure(f)}`);
        if (result.failures.length > MAX_SHOWN) console.log(`  ... and ${result.failures.length - MAX_SHOWN} more`);
      }
      process.exitCode = failed ? 1 : 0;
    } catch (e) {
      if (!(e instanceof UsageError || e instanceof DataError)) throw e;
      log.error((e as Error).message);
      process.exitCode = 2;
    }
  },
});

runStrict(command);
