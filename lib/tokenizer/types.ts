// The tokenizer contract the rest of the project codes against. The implementation lives in
// lib/tokenizer/tokenizer.ts (tokenizer.json via @huggingface/tokenizers); tests may build tiny ones.

export interface TextTokenizer {
  /** Number of ids (the embedding rows a model needs). */
  readonly vocabSize: number;
  /** Encode ordinary text. Strings that look like special tokens (`<|end|>`) are encoded as
   * ordinary text here, never as the special ids: that is what keeps message text from injecting. */
  encode(text: string): number[];
  /** Decode ids to text. Special tokens are rendered as their strings unless `skipSpecial`. */
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
  /** The id of a special (added) token; throws a clear error if the tokenizer lacks it. */
  tokenId(token: string): number;
  /** Whether the tokenizer has this special (added) token. */
  hasToken(token: string): boolean;
  /** Ids of all special (added) tokens. */
  readonly specialIds: ReadonlySet<number>;
}
