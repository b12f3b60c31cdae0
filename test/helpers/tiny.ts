// A tiny byte-level BPE tokenizer for tests: trained in-process (a few ms) on the fixed text
// below, with the six special tokens at ids 0..5. Use: `const tok = tinyTokenizer();`

import { trainBPE } from "../../lib/tokenizer/bpe-train.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { SPECIAL_TOKENS } from "../../lib/format/tokens.ts";

const TINY_VOCAB_SIZE = 360; // 6 specials + 256 bytes + ~100 merges

/** Fixed English training text: enough repeats for common words to merge. */
export const TINY_TEXT = `
The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, and the fox runs away.
Alice was beginning to get very tired of sitting by her sister on the bank, and of having
nothing to do. Once or twice she had peeped into the book her sister was reading, but it had no
pictures or conversations in it. "And what is the use of a book," thought Alice, "without
pictures or conversations?"
User: What is the capital of France?
Assistant: The capital of France is Paris.
User: How many legs does a spider have?
Assistant: A spider has eight legs.
User: Write one sentence about the sea.
Assistant: The sea is wide, deep and always moving.
It is a truth universally acknowledged, that a single man in possession of a good fortune,
must be in want of a wife. There were 12 apples, 7 pears and 100 grapes in the basket in 1999.
`;

let cached: Tokenizer | undefined;

/** The shared tiny tokenizer (vocab 360, specials at 0..5); built once per test process. */
export function tinyTokenizer(): Tokenizer {
  cached ??= Tokenizer.fromJSON(trainBPE([TINY_TEXT], { specialTokens: Object.values(SPECIAL_TOKENS), vocabSize: TINY_VOCAB_SIZE, minFrequency: 1 }), "tinyTokenizer()");
  return cached;
}
