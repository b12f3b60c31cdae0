// The forgetting probe: a model's plain-text loss on held-out prose (no chat template), in
// nats/token. Run on the base and the fine-tuned model, the difference is what SFT cost the model
// at its original job.
//
// The text is normalised like the pretraining corpus, tokenised once, and cut into consecutive
// windows of the model's context length, at most MAX_PROSE_WINDOW (the last one shorter); every
// token after the first is scored exactly once, and the loss is token-weighted over all windows.

import type { LlamaModel } from "../model/llama.ts";
import type { TextTokenizer } from "../tokenizer/types.ts";
import { ChatFormat } from "../format/chat-format.ts";
import { padAndCollate } from "../data/batch.ts";
import { proseExample } from "../data/replay.ts";
import { normalizeText } from "../tokenizer/normalize.ts";
import { maskedCrossEntropySum } from "../train/loss.ts";
import { slicedLossSum } from "../train/trainer.ts";
import { releaseMemory } from "../mlx/memory.ts";

export interface ProseLossOptions {
  windowLen?: number; // tokens per window; default: the model's context length, at most MAX_PROSE_WINDOW
  batchSize?: number; // windows per forward pass; default: as many as keep the logits within LOGITS_BUDGET
  logitsBudget?: number; // bytes of logits per forward pass, LOGITS_BUDGET unless a test lowers it
}

export interface ProseLoss {
  loss: number; // nats/token
  ntoks: number; // scored tokens
  windows: number;
  windowLen: number;
}

// A 32,768-position base (Qwen3) would otherwise score the whole held-out text (~7,500 tokens) in one
// window: attention over all of it, and [7,500 × 151,936] float32 logits (4.5 GB) in one array.
export const MAX_PROSE_WINDOW = 1024; // tokens
const MAX_BATCH = 4; // windows per forward: [4, 256] keeps a 5.8M model's logits near 16 MB
const LOGITS_BUDGET = 2 ** 28; // bytes of logits per forward (256 MB); one window always fits

/** Token-weighted next-token loss of `model` on plain `text`. */
export async function proseLoss(
  model: LlamaModel,
  tokenizer: TextTokenizer,
  text: string,
  { windowLen = Math.min(model.config.maxPositionEmbeddings, MAX_PROSE_WINDOW), batchSize, logitsBudget = LOGITS_BUDGET }: ProseLossOptions = {},
): Promise<ProseLoss> {
  batchSize ??= Math.max(1, Math.min(MAX_BATCH, Math.floor(logitsBudget / (4 * windowLen * model.config.vocabSize))));
  const ids = tokenizer.encode(normalizeText(text));
  if (ids.length < 2) throw new Error(`prose loss needs at least 2 tokens of text, got ${ids.length}: check the held-out prose file`);
  if (!(Number.isInteger(windowLen) && windowLen >= 1)) throw new Error(`windowLen must be a positive integer, got \`${windowLen}\``);
  // Window w predicts ids[s+1 .. s+len] from ids[s .. s+len-1], s = w * windowLen: consecutive
  // windows share one boundary token, so each target is scored once.
  const starts: number[] = [];
  for (let s = 0; s < ids.length - 1; s += windowLen) starts.push(s);
  const pad = ChatFormat.of(tokenizer).pad;
  // When even one window's logits pass the budget (Qwen3: 1,024 × 151,936 × 4 B = 622 MB), score it
  // layer by layer with the head in vocabulary slices: an eager forward pass of a 0.6B model held
  // every layer's intermediates beside the logits, and a QLoRA run's probes peaked near 17 GB.
  const sliced = 4 * windowLen * model.config.vocabSize > logitsBudget;
  let sum = 0;
  let ntoks = 0;
  for (let b = 0; b < starts.length; b += batchSize) {
    // Each window as an example of n + 1 ids whose every target is scored (the same rows replay
    // trains on); batch.ts shifts and pads.
    const rows = starts.slice(b, b + batchSize).map((s) => proseExample(ids.slice(s, s + Math.min(windowLen, ids.length - 1 - s) + 1)));
    const batch = padAndCollate(rows, { maxSeqLen: windowLen, padId: pad });
    if (sliced) {
      sum += await slicedLossSum(model, batch);
      ntoks += batch.ntoks;
    } else {
      const logits = model.forward(batch.inputs); // [B, T, V]
      const [s, n] = maskedCrossEntropySum(logits, batch.targets, batch.mask);
      sum += s.item() as number;
      ntoks += n.item() as number;
    }
    await releaseMemory();
  }
  return { loss: sum / ntoks, ntoks, windows: starts.length, windowLen };
}
