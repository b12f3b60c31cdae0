// The chat format's ids for one tokenizer: markers, pad and stop ids, looked up once. Everyone who
// needs "the pad id" or "which ids end a reply" asks here, so the choice is made in one place.
import type { TextTokenizer } from "../tokenizer/types.ts";
import { CHAT_TOKENS, SPECIAL_TOKENS } from "./tokens.ts";

export class ChatFormat {
  readonly user: number;
  readonly assistant: number;
  readonly end: number; // closes an assistant turn: the trained stop
  readonly pad: number; // padding; never supervised (weight 0 by position)
  readonly doc: number | undefined; // document separator, when the tokenizer has one

  private constructor(tokenizer: TextTokenizer) {
    this.user = tokenizer.tokenId(SPECIAL_TOKENS.user);
    this.assistant = tokenizer.tokenId(SPECIAL_TOKENS.assistant);
    this.end = tokenizer.tokenId(SPECIAL_TOKENS.end);
    this.pad = tokenizer.tokenId(SPECIAL_TOKENS.pad);
    this.doc = tokenizer.hasToken(SPECIAL_TOKENS.doc) ? tokenizer.tokenId(SPECIAL_TOKENS.doc) : undefined;
  }

  /** The format's ids in `tokenizer`; an error naming the missing tokens and the fix if it lacks any. */
  static of(tokenizer: TextTokenizer): ChatFormat {
    const missing = ChatFormat.missingTokens(tokenizer);
    if (missing.length) {
      throw new Error(`the tokenizer has no ${missing.join(", ")}: it is not a chat tokenizer (train with --add-chat-tokens to add them)`);
    }
    return new ChatFormat(tokenizer);
  }

  /** The chat tokens `tokenizer` lacks (none for a chat tokenizer). */
  static missingTokens(tokenizer: TextTokenizer): string[] {
    return CHAT_TOKENS.filter((t) => !tokenizer.hasToken(t));
  }

  /** Ids that end a probe reply: only the trained stop, so the probes measure whether the model
   * learned to emit it (a reply that runs into `<|user|>` counts as role leakage, not a stop). */
  get trainedStopIds(): number[] {
    return [this.end];
  }

  /** Ids that end a chat reply: the trained stop, and also a new `<|user|>` turn or a document break,
   * so a model that has not learned the stop still hands the turn back. */
  get chatStopIds(): number[] {
    return [this.end, this.user, ...(this.doc === undefined ? [] : [this.doc])];
  }
}

/** Ids that end a raw continuation of a base model: a document break, when the tokenizer has one. */
export function rawStopIds(tokenizer: TextTokenizer): number[] {
  return tokenizer.hasToken(SPECIAL_TOKENS.doc) ? [tokenizer.tokenId(SPECIAL_TOKENS.doc)] : [];
}
