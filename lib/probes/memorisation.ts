// The memorisation probe: does a chat reply reproduce one of the training answers?
//
// Definition: a reply REPRODUCES a training answer when the two share a contiguous run of at least
// MEMORISED_RUN tokens. Both sides are compared as canonical token ids (the reply's text and every
// assistant turn of the training data re-encoded by the same tokenizer), so a reply generated with
// an unusual split of a word still matches. Why a run, and why 8:
//  - A run, not a share of the reply: the failure this probe exists for is a training sentence given
//    as the answer to an unrelated prompt ("What do bees make?" → "Yes. It can be divided by 2 with
//    nothing left over."), often followed by more text. A 96-token reply that loops after a
//    verbatim 20-token training sentence is memorised although only a fifth of it matches; a share
//    rule (≥ 80% of the reply) would miss it.
//  - 8 tokens is about 26 bytes, five or six words, with the bundled tokenizer (3.27 bytes/token):
//    longer than the set phrases many answers share ("The capital of", "It is a"), short enough to
//    catch a reproduced clause. A reply shorter than 8 tokens never counts: "Yes, it is." equal to
//    a training answer is no evidence of memorising it.
//  - The base model, which has never seen the data, is measured with the same rule in every report:
//    its rate is the rule's false-positive rate on this data.
// The closest training answer is the one with the longest common run (ties: the first in file
// order); it is shown beside every chat sample whether or not the reply counts as memorised.

import type { TextTokenizer } from "../tokenizer/types.ts";
import type { Conversation } from "../format/types.ts";

export const MEMORISED_RUN = 8; // tokens of one training answer a reply must repeat verbatim to count

/** The training answer closest to a reply, and how much of it the reply repeats. */
export interface ClosestAnswer {
  conversation: number; // index into the training data, from 0
  turn: number; // message index inside that conversation
  answer: string; // the training answer's text
  run: number; // longest common run, tokens
  runText: string; // that run, decoded
  coverage: number; // run / reply tokens: the share of the reply that is the run
}

interface IndexedAnswer {
  conversation: number;
  turn: number;
  text: string;
  ids: number[];
}

/** Longest common contiguous run of two id sequences: its length and where it starts in `a`.
 * Dynamic programming over one row (O(|a|·|b|) time): replies and answers are a few dozen tokens. */
export function longestCommonRun(a: readonly number[], b: readonly number[]): { length: number; start: number } {
  let best = { length: 0, start: 0 };
  let prev = new Uint16Array(b.length + 1);
  let row = new Uint16Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      row[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : 0;
      if (row[j]! > best.length) best = { length: row[j]!, start: i - row[j]! };
    }
    [prev, row] = [row, prev];
  }
  return best;
}

/** Every assistant turn of the training data, encoded once, to compare replies against. */
export class TrainingAnswers {
  private readonly answers: IndexedAnswer[];

  constructor(conversations: Conversation[], private readonly tokenizer: TextTokenizer) {
    this.answers = conversations.flatMap((conv, c) =>
      conv.flatMap((m, turn) => (m.role === "assistant" ? [{ conversation: c, turn, text: m.content, ids: tokenizer.encode(m.content) }] : [])),
    );
  }

  get size(): number {
    return this.answers.length;
  }

  /** The training answer sharing the longest run with `reply` (null for an empty reply or no answers). */
  closest(reply: string): ClosestAnswer | null {
    const ids = this.tokenizer.encode(reply);
    if (ids.length === 0) return null;
    let best: { a: IndexedAnswer; length: number; start: number } | null = null;
    for (const a of this.answers) {
      const r = longestCommonRun(ids, a.ids);
      if (!best || r.length > best.length) best = { a, ...r };
    }
    if (!best) return null;
    const { a, length, start } = best;
    return {
      conversation: a.conversation,
      turn: a.turn,
      answer: a.text,
      run: length,
      runText: this.tokenizer.decode(ids.slice(start, start + length)),
      coverage: length / ids.length,
    };
  }
}

/** Whether a reply with this closest answer reproduces a training answer (see the header). */
export function isMemorised(closest: ClosestAnswer | null | undefined): boolean {
  return closest != null && closest.run >= MEMORISED_RUN;
}
