// Pins the memorisation probe (lib/probes/memorisation.ts): the longest common run on hand-made id
// sequences, the 8-token threshold at its edge, the closest training answer over every assistant
// turn, and that short or unrelated replies never count.
//   bun test test/memorisation.test.ts

import { describe, expect, test } from "bun:test";
import { isMemorised, longestCommonRun, MEMORISED_RUN, TrainingAnswers, type ClosestAnswer } from "../lib/probes/memorisation.ts";
import type { TextTokenizer } from "../lib/tokenizer/types.ts";
import type { Conversation } from "../lib/format/types.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

/** Whitespace "tokenizer": one id per word, so run lengths in the tests are word counts. */
function wordTokenizer(): TextTokenizer {
  const vocab = new Map<string, number>();
  const words: string[] = [];
  const id = (w: string) => {
    if (!vocab.has(w)) {
      vocab.set(w, words.length);
      words.push(w);
    }
    return vocab.get(w)!;
  };
  return {
    encode: (text: string) => text.split(/\s+/).filter(Boolean).map(id),
    decode: (ids: number[]) => ids.map((i) => words[i]).join(" "),
  } as unknown as TextTokenizer;
}

const chat = (...turns: string[]): Conversation => turns.map((content, i) => ({ role: i % 2 === 0 ? "user" : "assistant", content }));

describe("longestCommonRun", () => {
  test.each([
    ["empty", [], [1, 2], 0, 0],
    ["no common id", [1, 2], [3, 4], 0, 0],
    ["one id", [5, 1], [1], 1, 1],
    ["whole of a inside b", [2, 3, 4], [1, 2, 3, 4, 5], 3, 0],
    ["the longer of two runs", [1, 2, 9, 4, 5, 6], [1, 2, 0, 4, 5, 6], 3, 3],
    ["a run broken by one id is two runs", [1, 2, 3, 4], [1, 2, 7, 3, 4], 2, 0],
    ["first of equal runs", [1, 2, 8, 3, 4], [3, 4, 0, 1, 2], 2, 0],
  ])("%s", (_name, a, b, length, start) => {
    expect(longestCommonRun(a, b)).toEqual({ length, start });
  });
});

describe("TrainingAnswers", () => {
  const tok = wordTokenizer();
  const train = [
    chat("Is 12 even?", "Yes. It can be divided by 2 with nothing left over."),
    chat("Name a colour.", "Red.", "Another?", "The sky on a clear day is blue, and so is the sea."),
  ];
  const answers = new TrainingAnswers(train, tok);

  test("every assistant turn is indexed, user turns are not", () => {
    expect(answers.size).toBe(3);
  });

  test("a verbatim training answer to an unrelated prompt: memorised, closest answer and run named", () => {
    const c = answers.closest("Yes. It can be divided by 2 with nothing left over.")!;
    expect(c).toMatchObject({ conversation: 0, turn: 1, run: 11, coverage: 1, answer: train[0]![1]!.content });
    expect(isMemorised(c)).toBe(true);
  });

  test("a later turn of a multi-turn conversation is found with its message index", () => {
    const c = answers.closest("I think the sky on a clear day is blue, and so on and so on.")!;
    // "the" is not "The": ids are compared exactly, so the run starts at "sky"
    expect([c.conversation, c.turn, c.run, c.runText]).toEqual([1, 3, 9, "sky on a clear day is blue, and so"]);
  });

  // The threshold's edge: exactly MEMORISED_RUN words repeated counts, one fewer does not.
  test.each([
    [MEMORISED_RUN, true],
    [MEMORISED_RUN - 1, false],
  ])("a %d-token run inside a long, looping reply: memorised %p", (run, expected) => {
    const words = "It can be divided by 2 with nothing left over.".split(" ").slice(0, run);
    const reply = `Bees make honey. ${words.join(" ")} zzz zzz zzz zzz zzz zzz zzz zzz zzz zzz zzz zzz`;
    const c = answers.closest(reply)!;
    expect(c.run).toBe(run);
    expect(isMemorised(c)).toBe(expected);
    expect(c.coverage).toBeLessThan(0.5); // a share-of-reply rule would miss the long case
  });

  test("a short reply equal to a training answer does not count: too short to be evidence", () => {
    const c = answers.closest("Red.")!;
    expect([c.run, c.coverage, isMemorised(c)]).toEqual([1, 1, false]);
  });

  test("an empty reply has no closest answer; no answers at all, none either", () => {
    expect(answers.closest("")).toBeNull();
    expect(new TrainingAnswers([], tok).closest("anything at all")).toBeNull();
    expect(isMemorised(null)).toBe(false);
  });

  test("with a real BPE tokenizer the ids are the canonical encoding of both texts", () => {
    const bpe = tinyTokenizer();
    const a = new TrainingAnswers([chat("Where?", "The dog sleeps in the sun, and the fox runs away.")], bpe);
    const c: ClosestAnswer = a.closest("The dog sleeps in the sun, and the fox runs away.")!;
    expect(c.run).toBe(bpe.encode("The dog sleeps in the sun, and the fox runs away.").length);
    expect(c.runText).toBe("The dog sleeps in the sun, and the fox runs away.");
  });
});
