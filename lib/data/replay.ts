// Pretraining replay: plain-text windows mixed into SFT batches and trained with the ordinary
// next-token loss on every token, so fine-tuning keeps rehearsing what the base was pretrained on.
//
// A window is an SFTExample like any conversation ({ids, mask}, mask 1 on every id after the
// first), so it goes through the one shift in batch.ts with the conversations. Each batch keeps
// its `batchSize` conversations (the SFT schedule, epochs and batch order do not depend on the mix)
// and gets `proseRowsPerBatch` windows on top, so that `mix` of its rows are prose. A window has as
// many targets as the batch's conversations are padded to: it adds rows, never padding, and costs
// in proportion to the mix. Windows start at seeded offsets drawn from (seed, batch index): a
// resumed run replays exactly the windows it would have seen.
import { core as mx } from "@frost-beta/mlx";
import type { SFTExample } from "../format/types.ts";
import { SPECIAL_TOKENS } from "../format/tokens.ts";
import type { TextTokenizer } from "../tokenizer/types.ts";
import { normalizeText } from "../tokenizer/normalize.ts";
import { parseSpan, sampleSpans } from "../tokenizer/sample-text.ts";
import { seededRandom } from "../util/random.ts";
import { collateArrays, paddedLength, toBatch, type Batch, type CollateOptions } from "./batch.ts";

export const MAX_MIX_PROSE = 0.75; // at most 3 prose rows per conversation: beyond that SFT is the side dish
export const MAX_PROSE_BYTES = 4_000_000; // text read from a recorded corpus (evenly spread 1 MiB chunks): plenty of windows
const ENCODE_CHUNK = 1 << 16; // characters per encode call; cut at paragraph breaks

/** Documents tokenized into one packed stream with the document separator after each, as the base
 * was pretrained (lib/pretrain/corpus.ts packs its corpus with this too); a tokenizer without
 * `<|endoftext|>` gets the documents back to back. Texts are normalised here, like the corpus. */
export function packDocuments(texts: string[], tokenizer: TextTokenizer, onProgress?: (bytes: number) => void): { tokens: Int32Array; bytes: number } {
  const sep = tokenizer.hasToken(SPECIAL_TOKENS.doc) ? [tokenizer.tokenId(SPECIAL_TOKENS.doc)] : [];
  const parts: number[][] = [];
  let bytes = 0;
  for (const raw of texts) {
    const text = normalizeText(raw);
    for (let i = 0; i < text.length; ) {
      let j = Math.min(text.length, i + ENCODE_CHUNK);
      if (j < text.length) {
        const para = text.lastIndexOf("\n\n", j);
        if (para > i) j = para + 2;
      }
      const piece = text.slice(i, j);
      parts.push(tokenizer.encode(piece));
      bytes += Buffer.byteLength(piece);
      onProgress?.(bytes);
      i = j;
    }
    parts.push(sep);
  }
  const tokens = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    tokens.set(p, at);
    at += p.length;
  }
  return { tokens, bytes };
}

/** A stretch of plain text as a training example: every id after the first is a supervised target. */
export function proseExample(ids: ArrayLike<number>): SFTExample {
  const out = Array.from(ids);
  return { ids: out, mask: out.map((_, i) => (i === 0 ? 0 : 1)) };
}

/** Prose rows added to `batchSize` conversations so that a share `mix` of the batch's rows are prose
 * (0 for no replay; at least 1 for any mix > 0). */
export function proseRowsPerBatch(batchSize: number, mix: number): number {
  if (!(mix >= 0 && mix <= MAX_MIX_PROSE)) throw new Error(`mixProse must be in [0, ${MAX_MIX_PROSE}], got \`${mix}\``);
  return mix === 0 ? 0 : Math.max(1, Math.round((batchSize * mix) / (1 - mix)));
}

/** A token stream to replay, and how many windows each batch draws from it. */
export class ProseReplay {
  constructor(
    readonly tokens: Int32Array,
    readonly rows: number, // windows per batch
    readonly seed: number,
    readonly source: string, // what the text is, for the log and config.json
  ) {
    if (!(Number.isInteger(rows) && rows >= 1)) throw new Error(`replay rows per batch must be a positive integer, got \`${rows}\``);
  }

  /** The windows of batch `index` (0-based, in the order the trainer draws batches), each `len` + 1
   * ids, i.e. `len` targets. */
  windows(index: number, len: number): { starts: number[]; examples: SFTExample[] } {
    if (this.tokens.length < len + 1) {
      throw new Error(`the replay text (${this.source}) has ${this.tokens.length} tokens, fewer than one window of ${len + 1}: give more text with --prose-data`);
    }
    const rand = seededRandom(this.seed * 1_000_003 + index);
    const starts = Array.from({ length: this.rows }, () => Math.floor(rand() * (this.tokens.length - len)));
    return { starts, examples: starts.map((s) => proseExample(this.tokens.subarray(s, s + len + 1))) };
  }
}

/** A batch's rows: its conversations first, then the replay windows cut to the conversations'
 * padded length (what `collateArrays` will pad them to), so the windows add no padding. */
export function mixRows(sft: SFTExample[], replay: ProseReplay | null, index: number, opts: Pick<CollateOptions, "maxSeqLen" | "padMultiple">): { examples: SFTExample[]; sftRows: number; starts: number[] } {
  if (!replay) return { examples: sft, sftRows: sft.length, starts: [] };
  const { starts, examples } = replay.windows(index, paddedLength(sft, opts));
  return { examples: [...sft, ...examples], sftRows: sft.length, starts };
}

/** A collated mixed batch: `prose` [B, T] is the mask on the replay rows only (their loss is logged
 * apart), `proseNtoks` its sum; `ntoks` counts every supervised target. */
export interface MixedBatch extends Batch {
  prose: mx.array;
  proseNtoks: number;
  sftRows: number;
  starts: number[]; // replay windows' offsets in the token stream
}

/** `mixRows`, shifted and padded by batch.ts, as MLX arrays. */
export function collateMixed(sft: SFTExample[], replay: ProseReplay | null, index: number, opts: CollateOptions): MixedBatch {
  const { examples, sftRows, starts } = mixRows(sft, replay, index, opts);
  const c = collateArrays(examples, opts);
  const prose = c.mask.map((row, r) => (r < sftRows ? row.map(() => 0) : row));
  return {
    ...toBatch(c),
    prose: mx.array(prose, mx.float32),
    proseNtoks: prose.reduce((n, row) => n + row.reduce((a, b) => a + b, 0), 0),
    sftRows,
    starts,
  };
}

/** Read and pack replay text: files or byte ranges (`path`, `path:START-END`), at most `maxBytes`
 * in evenly spread chunks when they are larger. */
export async function loadProseStream(specs: string[], tokenizer: TextTokenizer, maxBytes = MAX_PROSE_BYTES): Promise<{ tokens: Int32Array; bytes: number }> {
  if (specs.length === 0) throw new Error("no replay text given");
  const spans = specs.map(parseSpan);
  for (const s of spans) {
    if (!(await Bun.file(s.path).exists())) throw new Error(`replay text \`${s.path}\` not found: give plain-text files with --prose-data`);
  }
  return packDocuments(await sampleSpans(spans, maxBytes), tokenizer);
}
