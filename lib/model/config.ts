// Llama-family model configuration: Hugging Face `config.json` (snake_case) in, a typed camelCase
// config with defaults out, validated once so that every error names the key and the value.

/** The architectures this project builds. All share the Llama layout (RMSNorm, RoPE rotate-half,
 * grouped-query attention, SwiGLU); qwen2 adds a bias on the q/k/v projections. */
const SUPPORTED_MODEL_TYPES = ["llama", "mistral", "qwen2"] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

export interface LlamaConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number; // hiddenSize / numAttentionHeads unless config.json says otherwise
  maxPositionEmbeddings: number; // the context length the model was trained for
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean; // bias on q/k/v (qwen2, or llama's attention_bias)
  mlpBias: boolean;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Keys of config.json that change the architecture and that this project does not implement. */
const UNSUPPORTED_KEYS: Record<string, (v: unknown, json: Record<string, any>) => boolean> = {
  // linear/dynamic/llama3 scaling: not implemented; {"rope_type": "default"} is plain RoPE
  rope_scaling: (v: any) => v != null && (v.rope_type ?? v.type) !== "default",
  // qwen2 ships sliding_window with use_sliding_window=false (then transformers ignores it), and a
  // window as long as the context never cuts anything off
  sliding_window: (v, json) =>
    typeof v === "number" &&
    v < (json.max_position_embeddings ?? Infinity) &&
    (json.model_type !== "qwen2" || json.use_sliding_window === true),
  quantization: (v) => v != null,
  quantization_config: (v) => v != null,
};

/** Convert and validate a Hugging Face config.json object. `source` names the file in errors. */
export function configFromHF(json: Record<string, any>, source = "config.json"): LlamaConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${source}: ${msg}`);
  };
  const modelType = json.model_type;
  if (!SUPPORTED_MODEL_TYPES.includes(modelType)) {
    fail(`model_type ${JSON.stringify(modelType)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`);
  }
  for (const [key, isSet] of Object.entries(UNSUPPORTED_KEYS)) {
    if (isSet(json[key], json)) fail(`${key}=${JSON.stringify(json[key])} is not supported by this project's Llama implementation`);
  }
  if (json.hidden_act !== undefined && json.hidden_act !== "silu") {
    fail(`hidden_act ${JSON.stringify(json.hidden_act)} is not supported (only "silu", i.e. SwiGLU)`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (!Number.isInteger(v) || v <= 0) fail(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !(v > 0)) fail(`${key} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const hiddenSize = int("hidden_size");
  const numAttentionHeads = int("num_attention_heads");
  const numKeyValueHeads = int("num_key_value_heads", numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(`num_attention_heads (${numAttentionHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`);
  }
  if (json.head_dim == null && hiddenSize % numAttentionHeads !== 0) {
    fail(`hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numAttentionHeads})`);
  }
  const headDim = int("head_dim", hiddenSize / numAttentionHeads);
  if (headDim % 2 !== 0) fail(`head_dim must be even for rotary embeddings, got ${headDim}`);
  return {
    modelType,
    vocabSize: int("vocab_size"),
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numHiddenLayers: int("num_hidden_layers"),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    maxPositionEmbeddings: int("max_position_embeddings", 2048),
    rmsNormEps: num("rms_norm_eps", 1e-6),
    ropeTheta: num("rope_theta", 10000),
    tieWordEmbeddings: json.tie_word_embeddings === true, // transformers defaults to untied
    attentionBias: modelType === "qwen2" || json.attention_bias === true,
    mlpBias: json.mlp_bias === true,
    bosTokenId: json.bos_token_id ?? undefined,
    eosTokenId: json.eos_token_id ?? undefined,
    padTokenId: json.pad_token_id ?? undefined,
  };
}

/** The Hugging Face config.json for a config (what transformers and mlx-lm read). */
export function configToHF(c: LlamaConfig): Record<string, unknown> {
  const archs: Record<ModelType, string> = {
    llama: "LlamaForCausalLM",
    mistral: "MistralForCausalLM",
    qwen2: "Qwen2ForCausalLM",
  };
  return {
    architectures: [archs[c.modelType]],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tieWordEmbeddings,
    attention_bias: c.attentionBias,
    mlp_bias: c.mlpBias,
    hidden_act: "silu",
    torch_dtype: "float32",
    ...(c.bosTokenId !== undefined && { bos_token_id: c.bosTokenId }),
    ...(c.eosTokenId !== undefined && { eos_token_id: c.eosTokenId }),
    ...(c.padTokenId !== undefined && { pad_token_id: c.padTokenId }),
  };
}

/** Parameter count of a config (embedding counted once when tied). */
export function countParameters(c: LlamaConfig): number {
  const d = c.hiddenSize;
  const qDim = c.numAttentionHeads * c.headDim;
  const kvDim = c.numKeyValueHeads * c.headDim;
  const attn = d * qDim + 2 * d * kvDim + qDim * d + (c.attentionBias ? qDim + 2 * kvDim : 0);
  const mlp = 3 * d * c.intermediateSize;
  const layer = attn + mlp + 2 * d;
  const embed = c.vocabSize * d;
  return embed * (c.tieWordEmbeddings ? 1 : 2) + c.numHiddenLayers * layer + d;
}
