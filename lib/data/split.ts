// Which conversations train and which are held out: the project's seeded split, nested subsets for
// the data-size sweep, and the course notebook's own split reproduced exactly (`--course-split`).

import { shuffled } from "../util/random.ts";
import { torchRandperm } from "../util/randperm.ts";

export const COURSE_SPLIT_SEED = 13; // the course notebook's DATA_SPLIT_SEED

export interface SplitOptions {
  evalFraction: number; // in [0, 1): share of conversations held out for evaluation
  seed: number;         // the split is a function of this
}

/** A seeded train/eval split. With `evalFraction > 0` and at least two conversations, both sides
 * get at least one. */
export function splitConversations<T>(convs: T[], { evalFraction, seed }: SplitOptions): { train: T[]; eval: T[] } {
  if (!(evalFraction >= 0 && evalFraction < 1)) throw new Error(`evalFraction must be in [0, 1), got \`${evalFraction}\``);
  let nEval = Math.round(evalFraction * convs.length);
  if (evalFraction > 0 && convs.length >= 2) nEval = Math.min(Math.max(nEval, 1), convs.length - 1);
  const order = shuffled(convs, seed);
  return { eval: order.slice(0, nEval), train: order.slice(nEval) };
}

/** The first `n` conversations of one seeded shuffle: for a fixed seed, the subset of 10 is inside
 * the subset of 25, which is inside the subset of 50, so data-size sweeps only ever add data. */
export function subsetConversations<T>(convs: T[], n: number, seed: number): T[] {
  if (!Number.isInteger(n) || n < 0 || n > convs.length) {
    throw new Error(`subset size must be an integer in [0, ${convs.length}] (the number of conversations), got \`${n}\``);
  }
  return shuffled(convs, seed).slice(0, n);
}

/**
 * The course notebook's split, to the index: `perm = torch.randperm(n, generator=
 * torch.Generator().manual_seed(seed))`, `val_count = max(1, n // 5)`, the first `val_count` of `perm`
 * held out; both sides keep the file's order (the notebook filters `enumerate(encoded_examples)`).
 */
export function courseSplit<T>(convs: T[], seed = COURSE_SPLIT_SEED): { train: T[]; eval: T[] } {
  if (convs.length < 2) throw new Error(`the course's split needs at least 2 conversations (one to train on, one held out), got ${convs.length}`);
  const valCount = Math.max(1, Math.floor(convs.length / 5));
  const held = new Set(torchRandperm(convs.length, seed).slice(0, valCount));
  return { train: convs.filter((_, i) => !held.has(i)), eval: convs.filter((_, i) => held.has(i)) };
}
