// Vocabulary growth for base checkpoints whose tokenizer lacks the chat tokens: add the course's
// special tokens (COURSE_TOKENS: `<|endoftext|>`, `<|system|>`, `<|user|>`, `<|assistant|>`,
// `<|tool_call|>`, `<|tool_result|>`, `<|end|>`, `<|pad|>`, in that order) and give each new id a row
// at the mean of the old ones, growing the embedding (and untied head) only when the new ids do not
// fit in the rows the model already has.
import { core as mx } from "@frost-beta/mlx";
import { LlamaModel } from "./llama.ts";
import { namedParameters, setNamedParameters } from "./checkpoint.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { COURSE_TOKENS } from "../format/tokens.ts";
import { seededRandom } from "../util/random.ts";

export interface GrowOptions {
  seed?: number; // seeds the noise, so the same base always grows to the same model
  noise?: number; // std of the noise added to new rows, as a fraction of the old rows' std
}

export interface GrownVocab {
  model: LlamaModel;
  tokenizer: Tokenizer;
  /** Tokens that were not special before, in order (record them in sft-mlx.json). */
  added: string[];
}

const NOISE = 1e-3; // × the rows' std: tells the new tokens apart without moving them off the mean

/**
 * Make sure the tokenizer has every one of the course's special tokens as one special id (those it
 * already has keep theirs) and the model has a row for each.
 *
 * New ids (`tokenizer.vocabSize` and up) get the mean of the tokenizer's old rows plus tiny seeded
 * noise: a new token then starts as an "average" token whose logit is an average logit, instead of a
 * random row that could dominate or vanish (the mean-resizing rule of transformers). A string that
 * already had an id (a trained vocabulary entry) keeps its row. A model with spare rows beyond its
 * tokenizer (Qwen3: 151,936 rows for ~151,669 tokens) keeps its shape: the new ids take spare rows,
 * reset to the mean. Otherwise the matrix grows to exactly the new vocabulary, not rounded up to a
 * multiple of 64 (the matmul gain is nil at this size, and every extra row is an id the model can
 * sample but the tokenizer cannot decode). Returns the inputs unchanged when nothing was missing.
 */
export function addChatTokens(
  model: LlamaModel,
  tokenizer: Tokenizer,
  { seed = 0, noise = NOISE }: GrowOptions = {},
): GrownVocab {
  const { tokenizer: grown, added } = tokenizer.withAddedTokens(COURSE_TOKENS);
  const oldIds = tokenizer.vocabSize; // rows of real tokens; new ids start here
  const newIds = grown.vocabSize;
  if (newIds === oldIds) return { model, tokenizer: grown, added };

  const config = model.config;
  if (oldIds > config.vocabSize) {
    throw new Error(`tokenizer ${tokenizer.source} has ${oldIds} ids but the model has only ${config.vocabSize} embedding rows: they do not belong together`);
  }
  const rows = Math.max(config.vocabSize, newIds);
  const rand = seededRandom(seed);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()); // Box-Muller

  // [V, D] -> [rows, D]: rows [oldIds, newIds) become mean + noise, every other row is kept as is.
  const grow = (weight: mx.array): mx.array => {
    const old = weight.index(mx.Slice(0, oldIds));
    const mean = mx.mean(old, 0, true); // [1, D]
    const scale = noise * (mx.std(old).item() as number);
    const D = weight.shape[1];
    const jitter = Array.from({ length: (newIds - oldIds) * D }, () => gaussian() * scale);
    const fresh = mx.add(mx.broadcastTo(mean, [newIds - oldIds, D]), mx.array(jitter, mx.float32).reshape([newIds - oldIds, D]));
    const parts = [old, fresh.astype(weight.dtype)];
    if (weight.shape[0] > newIds) parts.push(weight.index(mx.Slice(newIds)));
    return mx.concatenate(parts, 0); // [rows, D]
  };

  const grownModel = new LlamaModel({ ...config, vocabSize: rows });
  const grownArrays: mx.array[] = [];
  const named = namedParameters(model).map(([name, value]): [string, mx.array] => {
    if (name !== "model.embed_tokens.weight" && name !== "lm_head.weight") return [name, value];
    grownArrays.push(grow(value));
    return [name, grownArrays.at(-1)!];
  });
  setNamedParameters(grownModel, named);
  // Only the grown arrays: the others stay as they came, lazy if the checkpoint was loaded lazily
  // (QLoRA quantizes them as they are read; evaluating them all here held the whole float32 model).
  mx.eval(...grownArrays);
  return { model: grownModel, tokenizer: grown, added };
}
