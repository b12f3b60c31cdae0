// Batching: pad, shift and collate rendered examples into [B, T] arrays, and the seeded batch order.
//
// THIS is the one place the one-token shift happens. A row is padded to T + 1 ids first and then
// shifted, as the course's pad_and_collate does:
//   padded  = ids ++ [padId] * (T + 1 - len(ids))
//   inputs  = padded[0 .. T-1]
//   targets = padded[1 .. T]
//   mask[t] = example.mask[t + 1], 0 past the row's last real target (target-aligned, by position:
//             the pad id may equal a real id)
// Unlike mlx-lm's `steps <= length` mask, a padded row is never trained to predict the first padding
// token after its last real token.

import { core as mx } from "@frost-beta/mlx";
import type { SFTExample } from "../format/types.ts";
import { SPECIAL_TOKENS } from "../format/tokens.ts";
import { seededRandom } from "../util/random.ts";

export interface CollateOptions {
  maxSeqLen: number; // tokens per row after the shift; longer examples are an error unless `truncate`
  padId: number; // filler id for inputs and targets; its mask is 0 by position
  padMultiple?: number; // round T up to a multiple of this (fewer distinct shapes), still capped at maxSeqLen
  // The course's pad_and_collate: every row padded to exactly maxSeqLen (its `max_seq_len - 1`:
  // the course counts ids before the shift, this counts targets after it), longer rows cut from the end.
  fixedLength?: boolean; // T = maxSeqLen whatever the batch holds
  truncate?: boolean; // cut rows longer than maxSeqLen targets from the end (keep the start) instead of refusing them
}

/** A collated batch as plain numbers (what tests and self-checks read). */
export interface CollatedArrays {
  inputs: number[][]; // [B, T]
  targets: number[][]; // [B, T]
  mask: number[][]; // [B, T], target-aligned, 0/1
  ntoks: number; // supervised targets in the batch: sum(mask)
  paddingFraction: number; // padded positions / (B * T)
}

/** A collated batch as MLX arrays: inputs/targets int32, mask float32. */
export interface Batch {
  inputs: mx.array; // [B, T] int32
  targets: mx.array; // [B, T] int32
  mask: mx.array; // [B, T] float32
  ntoks: number;
  paddingFraction: number;
}

/** What to do about a row of `targets` targets (after the shift) longer than `maxSeqLen`: raise
 * --max-seq-len only as far as the model's `context` allows (when known), else leave such rows out
 * with --drop-overlength or shorten them. Rows are never cut. */
export function overLengthFix(targets: number, context?: number): string {
  const drop = "pass --drop-overlength to leave such conversations out (they are counted), --truncate to cut them from the end as the course does, or shorten the conversation";
  if (context === undefined) return `raise --max-seq-len to at least ${targets} if the model's context allows it, or ${drop}`;
  if (targets <= context) return `raise --max-seq-len to at least ${targets} (the model's context is ${context}), or ${drop}`;
  return `it does not fit the model's context (${context}) at any --max-seq-len: ${drop}`;
}

/** Throw if any example cannot form a row of at most `maxSeqLen` targets (the fix names the
 * model's `context` when given). Run it on the whole dataset before training to fail fast with
 * dataset indices; `collateArrays` runs it per batch. */
export function checkLengths(examples: SFTExample[], maxSeqLen: number, context?: number): void {
  examples.forEach((ex, i) => {
    if (ex.ids.length !== ex.mask.length) {
      throw new Error(`example ${i} has ${ex.ids.length} ids but ${ex.mask.length} mask values: they must be aligned`);
    }
    if (ex.ids.length < 2) {
      throw new Error(`example ${i} has ${ex.ids.length} ids: at least 2 are needed to form one target; drop the example`);
    }
    if (ex.ids.length - 1 > maxSeqLen) {
      throw new Error(`example ${i} has length ${ex.ids.length} ids (${ex.ids.length - 1} after the shift), more than max-seq-len ${maxSeqLen}: ${overLengthFix(ex.ids.length - 1, context)}`);
    }
  });
}

/** Whether an example forms a row of at most `maxSeqLen` targets (what --drop-overlength keeps). */
export const fitsLength = (ex: SFTExample, maxSeqLen: number): boolean => ex.ids.length - 1 <= maxSeqLen;

/** What `truncateExamples` did: the rows it cut, and those whose cut removed a supervised `<|end|>`. */
export interface Truncation {
  examples: SFTExample[]; // every example, over-long ones cut to maxSeqLen + 1 ids
  cut: number[]; // indices of the examples that were cut
  endLost: number[]; // indices whose cut removed an assistant turn's `<|end|>`: that row no longer teaches stopping there
}

/** Cut examples longer than `maxSeqLen` targets from the end (the course's head-truncation: keep the
 * start), reporting which rows lost a supervised `endId` (if given). Examples that fit are returned as they are. */
export function truncateExamples(examples: SFTExample[], maxSeqLen: number, endId?: number): Truncation {
  const cut: number[] = [];
  const endLost: number[] = [];
  const out = examples.map((ex, i) => {
    if (ex.ids.length - 1 <= maxSeqLen) return ex;
    cut.push(i);
    const keep = maxSeqLen + 1; // ids for maxSeqLen targets
    if (endId !== undefined && ex.ids.some((id, t) => t >= keep && id === endId && ex.mask[t] === 1)) endLost.push(i);
    return { ids: ex.ids.slice(0, keep), mask: ex.mask.slice(0, keep) };
  });
  return { examples: out, cut, endLost };
}

/** The warnings a truncation deserves: how many rows were cut, and which lost a supervised `<|end|>`. */
export function truncationWarnings({ cut, endLost }: Truncation, total: number, what: string, maxSeqLen: number): string[] {
  const out: string[] = [];
  if (cut.length) out.push(`cut ${cut.length} of ${total} ${what} examples to max-seq-len ${maxSeqLen} targets (from the end, as the course's pad_and_collate does)`);
  if (endLost.length) {
    out.push(`the cut removed an assistant turn's ${SPECIAL_TOKENS.end} from ${what} example${endLost.length > 1 ? "s" : ""} ${endLost.join(", ")} (counted from 0): ` +
      "those rows no longer teach the model to stop there; raise --max-seq-len or shorten them");
  }
  return out;
}

/** Positions per row of a collated batch: its longest row after the shift, rounded up to
 * `padMultiple`, capped at `maxSeqLen` (exactly `maxSeqLen` with `fixedLength`). */
export function paddedLength(examples: SFTExample[], { maxSeqLen, padMultiple = 1, fixedLength = false }: Pick<CollateOptions, "maxSeqLen" | "padMultiple" | "fixedLength">): number {
  if (fixedLength) return maxSeqLen;
  const longest = Math.max(...examples.map((ex) => ex.ids.length - 1));
  return Math.min(Math.ceil(longest / padMultiple) * padMultiple, maxSeqLen);
}

/** Shift, pad to the batch's longest row (rounded up to `padMultiple`, capped at `maxSeqLen`; or to
 * exactly `maxSeqLen` with `fixedLength`) and collate, as plain number arrays. */
export function collateArrays(examples: SFTExample[], { maxSeqLen, padId, padMultiple = 1, fixedLength = false, truncate = false }: CollateOptions): CollatedArrays {
  if (examples.length === 0) throw new Error("cannot collate an empty batch");
  if (!Number.isInteger(padMultiple) || padMultiple < 1) throw new Error(`padMultiple must be a positive integer, got \`${padMultiple}\``);
  if (truncate) examples = truncateExamples(examples, maxSeqLen).examples;
  checkLengths(examples, maxSeqLen);
  const T = paddedLength(examples, { maxSeqLen, padMultiple, fixedLength });
  const inputs: number[][] = [];
  const targets: number[][] = [];
  const mask: number[][] = [];
  let ntoks = 0;
  let padded = 0;
  for (const ex of examples) {
    const n = ex.ids.length - 1; // real targets in this row
    // Pad the ids to T + 1, then shift (the course's order): a short row's last id is the input
    // whose target is the first padding, with mask 0.
    const ids = [...ex.ids, ...new Array<number>(T + 1 - ex.ids.length).fill(padId)];
    inputs.push(ids.slice(0, T));
    targets.push(ids.slice(1));
    const m = [...ex.mask.slice(1), ...new Array<number>(T - n).fill(0)];
    mask.push(m);
    ntoks += m.reduce((a, b) => a + b, 0);
    padded += T - n;
  }
  return { inputs, targets, mask, ntoks, paddingFraction: padded / (examples.length * T) };
}

/** `collateArrays` as MLX arrays, ready for the model and `maskedCrossEntropy`. */
export function padAndCollate(examples: SFTExample[], opts: CollateOptions): Batch {
  return toBatch(collateArrays(examples, opts));
}

/** Collated host arrays as MLX arrays. */
export function toBatch(c: CollatedArrays): Batch {
  return {
    inputs: mx.array(c.inputs, mx.int32),
    targets: mx.array(c.targets, mx.int32),
    mask: mx.array(c.mask, mx.float32),
    ntoks: c.ntoks,
    paddingFraction: c.paddingFraction,
  };
}

/** Batches of example indices with similar lengths (less padding): sort by length, cut into
 * batches of `batchSize` (the last may be smaller), shuffle the batch order with `seed`. */
export function groupByLength(examples: SFTExample[], batchSize: number, seed: number): number[][] {
  const order = examples.map((_, i) => i).sort((a, b) => examples[a]!.ids.length - examples[b]!.ids.length || a - b);
  return shuffle(chunk(order, batchSize), seededRandom(seed));
}

export interface IterateOptions {
  batchSize: number;
  seed: number; // the whole sequence of batches is a function of this
  groupByLength?: boolean; // true: length-grouped batches in shuffled order; false: a fresh shuffle each epoch
  epochs?: number; // stop after this many passes; default: loop forever (the trainer counts steps)
}

export interface IndexBatch {
  epoch: number; // 0-based pass over the data
  indices: number[]; // into `examples`
  examples: SFTExample[];
}

/** Deterministic batches over epochs: each epoch draws its order from (seed, epoch), so two runs
 * with the same seed see the same batches in the same order. */
export function* iterateBatches(
  examples: SFTExample[],
  { batchSize, seed, groupByLength: grouped = false, epochs = Infinity }: IterateOptions,
): Generator<IndexBatch> {
  if (examples.length === 0) throw new Error("cannot iterate over an empty dataset");
  for (let epoch = 0; epoch < epochs; epoch++) {
    const epochSeed = (Math.imul(seed, 0x9e3779b1) + epoch) >>> 0; // distinct, reproducible order per epoch
    const batches = grouped
      ? groupByLength(examples, batchSize, epochSeed)
      : chunk(shuffle(examples.map((_, i) => i), seededRandom(epochSeed)), batchSize);
    for (const indices of batches) yield { epoch, indices, examples: indices.map((i) => examples[i]!) };
  }
}

function chunk<T>(xs: T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new Error(`batchSize must be a positive integer, got \`${size}\``);
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

/** Fisher-Yates, in place. */
function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
