// A tiny random Llama model for hermetic tests, sized to the tiny test tokenizer.
import { core as mx } from "@frost-beta/mlx";
import { configFromHF } from "../../lib/model/config.ts";
import { LlamaModel } from "../../lib/model/llama.ts";

/** The tiny model's Hugging Face config.json: d32, 2 layers, 4 heads (2 key/value heads: GQA), context 128. */
export function tinyConfigJSON(vocabSize: number): Record<string, unknown> {
  return {
    model_type: "llama",
    vocab_size: vocabSize,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 128,
  };
}

/** A seeded random model with `tinyConfigJSON`'s shape. */
export function tinyModel(vocabSize: number, { seed = 0, tied = true, overrides = {} }: { seed?: number; tied?: boolean; overrides?: Record<string, unknown> } = {}): LlamaModel {
  mx.random.seed(seed);
  const config = configFromHF({ ...tinyConfigJSON(vocabSize), tie_word_embeddings: tied, ...overrides });
  const model = new LlamaModel(config);
  mx.eval(model.parameters());
  return model;
}
