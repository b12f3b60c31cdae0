// Byte-level BPE trainer (GPT-2 style) that writes a Hugging Face tokenizer.json object.
// Ids: the caller's special tokens first (the chat format's six: 0..5), then the 256 bytes
// (id = specials + byte), then merges.
// Pair counts are kept incrementally (pair -> count, pair -> words that hold it) with a lazily
// invalidated max-heap, so each merge only touches the words that contain the merged pair.


/** The GPT-2 pre-tokenizer regex; identical to the one ByteLevel uses in tokenizers (Rust and JS). */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's printable stand-in character for each byte, so that byte tokens are JSON-safe strings. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let shifted = 0; // non-printable bytes map to 256, 257, ... in byte order
  for (let b = 0; b < 256; b++) table.push(String.fromCharCode(printable(b) ? b : 256 + shifted++));
  return table;
})();

/** The subset of the tokenizer.json format this trainer writes (and Tokenizer reads). */
export interface TokenizerJSON {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJSON[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[]; [k: string]: unknown };
}

/** One entry of tokenizer.json's `added_tokens`. */
export interface AddedTokenJSON {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface TrainBPEOptions {
  specialTokens: readonly string[]; // added tokens at ids 0..n-1, in this order
  vocabSize: number; // total ids, specials and bytes included
  minFrequency?: number; // stop early when the best pair occurs fewer times than this
  onProgress?: (p: { merges: number; vocabSize: number; pairCount: number }) => void;
}

const PAIR_SHIFT = 2 ** 21; // pair key = left * PAIR_SHIFT + right; exact in a double for ids < 2^21

/** Count the GPT-2 pre-tokens of every text (the "words" BPE merges within). */
export function countPreTokens(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_PATTERN)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  }
  return counts;
}

/** An addressable max-heap of pair keys ordered by (count desc, left id asc, right id asc). */
class PairHeap {
  private keys: number[] = [];
  private counts: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  // true when entry i should sit above entry j; ties go to the smaller pair key, which is what
  // makes training deterministic whatever order the words were counted in
  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!, cj = this.counts[j]!;
    return ci !== cj ? ci > cj : this.keys[i]! < this.keys[j]!;
  }

  private swap(i: number, j: number): void {
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
  }

  push(key: number, count: number): void {
    this.keys.push(key);
    this.counts.push(count);
    for (let i = this.keys.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { key: number; count: number } {
    const top = { key: this.keys[0]!, count: this.counts[0]! };
    const lastKey = this.keys.pop()!, lastCount = this.counts.pop()!;
    if (this.keys.length > 0) {
      this.keys[0] = lastKey;
      this.counts[0] = lastCount;
      for (let i = 0; ; ) {
        const l = 2 * i + 1, r = l + 1;
        let best = i;
        if (l < this.keys.length && this.above(l, best)) best = l;
        if (r < this.keys.length && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Merge every non-overlapping (left, right) in `word` left to right; returns the new word. */
function mergeWord(word: number[], left: number, right: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < word.length; i++) {
    if (i + 1 < word.length && word[i] === left && word[i + 1] === right) {
      out.push(merged);
      i++;
    } else out.push(word[i]!);
  }
  return out;
}

/**
 * Train a byte-level BPE tokenizer on `texts` and return it as a tokenizer.json object that
 * loads in @huggingface/tokenizers (JS) and in Python's tokenizers/transformers.
 */
export function trainBPE(texts: Iterable<string>, { specialTokens, vocabSize, minFrequency = 2, onProgress }: TrainBPEOptions): TokenizerJSON {
  const BYTE_OFFSET = specialTokens.length; // id of byte b is BYTE_OFFSET + b
  const minVocab = BYTE_OFFSET + 256;
  if (!Number.isInteger(vocabSize) || vocabSize < minVocab || vocabSize >= PAIR_SHIFT)
    throw new Error(`vocabSize must be an integer in [${minVocab}, ${PAIR_SHIFT}), got ${vocabSize}`);

  const idToToken: string[] = [...specialTokens, ...BYTE_TO_UNICODE];
  const tokenToId = new Map(idToToken.map((t, i) => [t, i]));

  // Words as symbol ids, sorted so that the result does not depend on the order of the corpus.
  const encoder = new TextEncoder();
  const preTokens = [...countPreTokens(texts)].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const words: number[][] = preTokens.map(([w]) => Array.from(encoder.encode(w), (b) => BYTE_OFFSET + b));
  const freqs: number[] = preTokens.map(([, n]) => n);

  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>(); // only grows: a word may no longer hold the pair
  const addPairs = (w: number, sign: 1 | -1) => {
    const word = words[w]!, f = sign * freqs[w]!;
    for (let i = 0; i + 1 < word.length; i++) {
      const key = word[i]! * PAIR_SHIFT + word[i + 1]!;
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + f);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);

  const heap = new PairHeap();
  for (const [key, count] of pairCounts) heap.push(key, count);

  const merges: [string, string][] = [];
  const mergedKeys = new Set<number>();
  while (idToToken.length < vocabSize && heap.size > 0) {
    const { key, count } = heap.pop();
    const current = pairCounts.get(key) ?? 0;
    if (current !== count) {
      // stale entry: the count dropped since it was pushed; requeue it at its true count
      if (current > 0) heap.push(key, current);
      continue;
    }
    if (count < minFrequency) break;

    const left = Math.floor(key / PAIR_SHIFT), right = key % PAIR_SHIFT;
    const token = idToToken[left]! + idToToken[right]!;
    // two different merges can spell the same string ("ab"+"c", "a"+"bc"); they share one id
    let merged = tokenToId.get(token);
    if (merged === undefined) {
      merged = idToToken.length;
      idToToken.push(token);
      tokenToId.set(token, merged);
    }
    // a pair can come back when a later merge re-creates `left`; one entry in merges suffices
    if (!mergedKeys.has(key)) merges.push([idToToken[left]!, idToToken[right]!]);
    mergedKeys.add(key);

    // Re-count only the words that hold the pair: remove their old pairs, merge, add the new ones.
    const touched = new Set<number>();
    for (const w of pairWords.get(key)!) {
      const word = words[w]!;
      let holds = false;
      for (let i = 0; i + 1 < word.length && !holds; i++) holds = word[i] === left && word[i + 1] === right;
      if (!holds) continue;
      addPairs(w, -1);
      words[w] = mergeWord(word, left, right, merged);
      addPairs(w, 1);
      const next = words[w]!;
      for (let i = 0; i + 1 < next.length; i++) {
        if (next[i] === merged || next[i + 1] === merged) touched.add(next[i]! * PAIR_SHIFT + next[i + 1]!);
      }
    }
    pairCounts.delete(key);
    pairWords.delete(key);
    // Only pairs next to the merged symbol grew and need a fresh heap entry; pairs that shrank
    // are fixed lazily when popped.
    for (const k of touched) {
      const c = pairCounts.get(k) ?? 0;
      if (c > 0) heap.push(k, c);
    }
    onProgress?.({ merges: merges.length, vocabSize: idToToken.length, pairCount: count });
  }
  return toTokenizerJSON(idToToken, specialTokens, merges);
}

/** Assemble the tokenizer.json object for a byte-level BPE vocabulary. */
function toTokenizerJSON(idToToken: string[], specialTokens: readonly string[], merges: [string, string][]): TokenizerJSON {
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specialTokens.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(idToToken.map((t, i) => [t, i])),
      // "left right" strings: byte-level tokens never contain a space, and every tokenizers
      // version (old Python ones included) reads this form
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}
