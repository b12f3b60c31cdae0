// Size presets for pretraining a base model, mirroring the classic small models. Each gives the
// architecture (a Hugging Face config.json object) and a sensible context length.

export interface Preset {
  description: string;
  config: Record<string, unknown>; // Hugging Face config.json fields (vocab_size is filled in)
  seqLen: number; // context length in tokens
  lr: number; // peak pretraining learning rate
  batchSize: number; // sequences per step
}

// Heads are kept few and wide: on MLX's CPU backend the attention softmax (B·H·T² exps per layer)
// costs more than the matmuls, so 4 heads of 64 train ~1.4x faster than 8 of 32 at this size.
const llama = (d: number, layers: number, heads: number, ffn: number, ctx: number) => ({
  model_type: "llama",
  hidden_size: d,
  intermediate_size: ffn,
  num_hidden_layers: layers,
  num_attention_heads: heads,
  num_key_value_heads: heads,
  max_position_embeddings: ctx,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true, // at this size the embedding is a large share of the parameters
  hidden_act: "silu",
});

export const PRESETS: Record<string, Preset> = {
  tiny: { description: "~1.3M params (4096 vocab): d128, 4 layers, 4 heads, ctx 128", config: llama(128, 4, 4, 352, 128), seqLen: 128, lr: 3e-3, batchSize: 32 },
  small: { description: "~5.8M params (4096 vocab): d256, 6 layers, 4 heads of 64, ctx 256", config: llama(256, 6, 4, 688, 256), seqLen: 256, lr: 3e-3, batchSize: 16 },
  medium: { description: "~19M params (4096 vocab): d384, 10 layers, 6 heads, ctx 512", config: llama(384, 10, 6, 1024, 512), seqLen: 512, lr: 1.5e-3, batchSize: 16 },
};
