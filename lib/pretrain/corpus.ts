// Pretraining text: corpus spans (files or byte ranges, each a document: a book or a file) are
// tokenized and packed into one stream with the document separator between documents. Training
// batches are windows of context length + 1 at seeded offsets; evaluation uses fixed windows.
import { core as mx } from "@frost-beta/mlx";
import { parseSpan, readSpan, type TextSpan } from "../tokenizer/sample-text.ts";
import type { TextTokenizer } from "../tokenizer/types.ts";
import { packDocuments } from "../data/replay.ts";
import { seededRandom } from "../util/random.ts";
import { normalizeText } from "../tokenizer/normalize.ts";
import { UsageError } from "../util/cli.ts";

export interface TokenStream {
  tokens: Int32Array;
  bytes: number; // UTF-8 bytes of the text behind the tokens (for bits per byte)
  spans: TextSpan[];
}

/** Tokenize spans ("path" or "path:START-END") into one packed stream, separator between spans
 * (packDocuments, shared with SFT's pretraining replay). `maxBytes` caps how much text is read in
 * total (evenly across spans). */
export async function tokenizeSpans(
  specs: string[],
  tokenizer: TextTokenizer,
  { maxBytes = Infinity, onProgress }: { maxBytes?: number; onProgress?: (bytes: number) => void } = {},
): Promise<TokenStream> {
  const spans = specs.map(parseSpan);
  const perSpan = maxBytes / spans.length;
  const texts: string[] = [];
  for (const span of spans) {
    let text = normalizeText(await readSpan(span));
    if (Number.isFinite(perSpan) && Buffer.byteLength(text) > perSpan) text = text.slice(0, perSpan);
    texts.push(text);
  }
  const { tokens, bytes } = packDocuments(texts, tokenizer, onProgress);
  return { tokens, bytes, spans };
}

/** Refuse a stream that cannot give one window of `seqLen` + 1 tokens (training draws windows at
 * offsets up to `length - seqLen - 1`, which would go negative; evaluation would average over
 * nothing), naming the files and what to change. `flag` is the corpus's command-line flag. */
export function checkStream(stream: TokenStream, seqLen: number, flag: string): void {
  const files = stream.spans.map((s) => `\`${s.path}${s.start > 0 || Number.isFinite(s.end) ? `:${s.start}-${Number.isFinite(s.end) ? s.end : ""}` : ""}\``).join(", ");
  if (stream.bytes === 0) throw new UsageError(`${flag} ${files}: no text (the file or byte range is empty): give a file with text in it`);
  const need = seqLen + 1; // one window: seqLen inputs and their seqLen targets, shifted by one
  if (stream.tokens.length < need) {
    throw new UsageError(`${flag} ${files}: ${stream.tokens.length} tokens (${stream.bytes} bytes of text), fewer than one window of ${need} (--seq-len ${seqLen} + 1): give more text or a shorter --seq-len`);
  }
}

/** A training batch of `batchSize` windows at offsets drawn from (seed, step): the same step always
 * gets the same batch, so a resumed run sees exactly the data it would have seen. */
export function trainingBatch(stream: Int32Array, step: number, { batchSize, seqLen, seed }: { batchSize: number; seqLen: number; seed: number }) {
  const rand = seededRandom(seed * 1_000_003 + step);
  const rows = new Int32Array(batchSize * (seqLen + 1));
  for (let b = 0; b < batchSize; b++) {
    const start = Math.floor(rand() * (stream.length - seqLen - 1));
    rows.set(stream.subarray(start, start + seqLen + 1), b * (seqLen + 1));
  }
  return windowsToBatch(rows, batchSize, seqLen);
}

/** Evaluation windows: consecutive, non-overlapping, up to `maxWindows`. */
export function evalBatches(stream: Int32Array, { batchSize, seqLen, maxWindows }: { batchSize: number; seqLen: number; maxWindows: number }) {
  const n = Math.min(maxWindows, Math.floor((stream.length - 1) / seqLen));
  const batches = [];
  for (let w = 0; w < n; w += batchSize) {
    const count = Math.min(batchSize, n - w);
    const rows = new Int32Array(count * (seqLen + 1));
    for (let b = 0; b < count; b++) rows.set(stream.subarray((w + b) * seqLen, (w + b) * seqLen + seqLen + 1), b * (seqLen + 1));
    batches.push(windowsToBatch(rows, count, seqLen));
  }
  return batches;
}

function windowsToBatch(rows: Int32Array, batchSize: number, seqLen: number) {
  const all = mx.array(Array.from(rows), mx.int32).reshape([batchSize, seqLen + 1]);
  // The one-token shift of pretraining: every position predicts the next token.
  return {
    inputs: all.index(mx.Slice(), mx.Slice(0, seqLen)),
    targets: all.index(mx.Slice(), mx.Slice(1)),
    mask: mx.ones([batchSize, seqLen], mx.float32),
  };
}
