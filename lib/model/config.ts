// Llama-family model configuration: Hugging Face `config.json` (snake_case) in, a typed camelCase
// config with defaults out, validated once so that every error names the file, the key and the value.
// Every key that changes what a model computes is either implemented or refused, as transformers 5
// reads it for that model_type (models/<type>/configuration_<type>.py and modeling_<type>.py); RoPE
// settings are read in both spellings (ropeFromHF).
import type { RopeConfig, RopeScaling } from "./rope.ts";

/** What each architecture reads, as transformers builds it; `headDim`, `context` and `kvHeads` are its
 * defaults for head_dim, max_position_embeddings and num_key_value_heads when the key is absent (null:
 * derived from the heads). All share the Llama layout (RMSNorm, RoPE rotate-half, grouped-query
 * attention, SwiGLU). */
const FAMILIES = {
  // attention_bias: q/k/v/o; mlp_bias: gate/up/down
  llama: { architecture: "LlamaForCausalLM", qkvBias: "attention_bias", oBias: "attention_bias", mlpBias: "mlp_bias", qkNorm: false, window: "refused", headDim: null, context: 2048, kvHeads: null },
  // no biases; one sliding window for every layer unless sliding_window is null (absent: 4096)
  mistral: { architecture: "MistralForCausalLM", qkvBias: false, oBias: false, mlpBias: false, qkNorm: false, window: "mistral", headDim: null, context: 131072, kvHeads: 8 },
  // q/k/v bias always; a sliding window only with use_sliding_window
  qwen2: { architecture: "Qwen2ForCausalLM", qkvBias: true, oBias: false, mlpBias: false, qkNorm: false, window: "qwen", headDim: null, context: 32768, kvHeads: 32 },
  // per-head RMSNorm of q and k; attention_bias on q/k/v/o; head_dim 128 when absent
  qwen3: { architecture: "Qwen3ForCausalLM", qkvBias: "attention_bias", oBias: "attention_bias", mlpBias: false, qkNorm: true, window: "qwen", headDim: 128, context: 32768, kvHeads: 32 },
} as const;
export type ModelType = keyof typeof FAMILIES;
const SUPPORTED_MODEL_TYPES = Object.keys(FAMILIES) as ModelType[];

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
  rope: RopeConfig; // theta and frequency scaling
  tieWordEmbeddings: boolean;
  attentionBias: boolean; // bias on q/k/v (qwen2, or attention_bias)
  outputBias: boolean; // bias on o_proj (llama's and qwen3's attention_bias)
  mlpBias: boolean;
  qkNorm: boolean; // per-head RMSNorm of queries and keys before RoPE (qwen3)
  slidingWindow: number | null; // kept only when it cuts nothing off within the context (written back as read)
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const json1 = (v: unknown) => JSON.stringify(v);

/** Convert and validate a Hugging Face config.json object. `source` names the file in errors. */
export function configFromHF(json: Record<string, any>, source = "config.json"): LlamaConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${source}: ${msg}`);
  };
  const modelType = json.model_type as ModelType;
  if (!SUPPORTED_MODEL_TYPES.includes(modelType)) {
    fail(`model_type ${json1(json.model_type)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`);
  }
  const family = FAMILIES[modelType]; // transformers picks the class by model_type, not by architectures
  for (const key of ["quantization", "quantization_config"]) {
    if (json[key] != null) fail(`${key}=${json1(json[key])} is not supported: load a float checkpoint (float32, float16 or bfloat16)`);
  }
  if (json.hidden_act !== undefined && json.hidden_act !== "silu") {
    fail(`hidden_act ${json1(json.hidden_act)} is not supported (only "silu", i.e. SwiGLU)`);
  }
  if (json.attention_dropout != null && json.attention_dropout !== 0) {
    fail(`attention_dropout=${json1(json.attention_dropout)} is not supported: this project trains without dropout; set it to 0.0`);
  }
  // pretraining_tp (llama) only splits the same products into slices in transformers 4, and is unused in 5
  const int = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (!Number.isInteger(v) || v <= 0) fail(`${key} must be a positive integer, got ${json1(v)}`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !(v > 0)) fail(`${key} must be a positive number, got ${json1(v)}`);
    return v;
  };
  const flag = (key: string | boolean): boolean => {
    if (typeof key === "boolean") return key;
    const v = json[key] ?? false;
    if (typeof v !== "boolean") fail(`${key} must be true or false, got ${json1(v)}`);
    return v;
  };
  const hiddenSize = int("hidden_size");
  const numAttentionHeads = int("num_attention_heads");
  const numHiddenLayers = int("num_hidden_layers");
  // absent: the family's default; null: one per query head (transformers' __post_init__)
  const numKeyValueHeads = json.num_key_value_heads === null ? numAttentionHeads : int("num_key_value_heads", family.kvHeads ?? numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(`num_attention_heads (${numAttentionHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`);
  }
  if (json.head_dim == null && family.headDim === null && hiddenSize % numAttentionHeads !== 0) {
    fail(`hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numAttentionHeads}), or head_dim given`);
  }
  const headDim = int("head_dim", family.headDim ?? hiddenSize / numAttentionHeads);
  if (headDim % 2 !== 0) fail(`head_dim must be even for rotary embeddings, got ${headDim}`);
  const maxPositionEmbeddings = int("max_position_embeddings", family.context);
  return {
    modelType,
    vocabSize: int("vocab_size"),
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    maxPositionEmbeddings,
    rmsNormEps: num("rms_norm_eps", 1e-6),
    rope: ropeFromHF(json, maxPositionEmbeddings, fail),
    tieWordEmbeddings: flag("tie_word_embeddings"), // transformers defaults to untied
    attentionBias: flag(family.qkvBias),
    outputBias: flag(family.oBias),
    mlpBias: flag(family.mlpBias),
    qkNorm: family.qkNorm,
    slidingWindow: slidingWindowFromHF(json, family.window, maxPositionEmbeddings, fail),
    bosTokenId: json.bos_token_id ?? undefined,
    eosTokenId: json.eos_token_id ?? undefined,
    padTokenId: json.pad_token_id ?? undefined,
  };
}

const ROPE_TYPES = ["default", "linear", "llama3"];

/** RoPE settings in either spelling: transformers 5's `rope_parameters: {rope_theta, rope_type, ...}`,
 * or the older top-level `rope_theta` and `rope_scaling: {rope_type | type, ...}` (which wins when
 * both are present, as in transformers). */
function ropeFromHF(json: Record<string, any>, maxPositionEmbeddings: number, fail: (msg: string) => never): RopeConfig {
  const legacy = json.rope_scaling != null && Object.keys(json.rope_scaling).length > 0;
  const key = legacy ? "rope_scaling" : "rope_parameters";
  let params = json[key] ?? {};
  if (typeof params !== "object" || Array.isArray(params)) fail(`${key} must be an object, got ${json1(params)}`);
  // nested per layer type ({"full_attention": {...}}): every layer here is full attention
  if (params.full_attention != null || params.sliding_attention != null) {
    if (params.sliding_attention != null) fail(`${key}.sliding_attention is not supported: sliding-window layers are not implemented`);
    params = params.full_attention;
  }
  const field = (name: string) => `${key}.${name}`;
  const partial = params.partial_rotary_factor ?? json.partial_rotary_factor ?? 1;
  if (partial !== 1) fail(`${json.partial_rotary_factor != null ? "partial_rotary_factor" : field("partial_rotary_factor")}=${json1(partial)} is not supported: only full rotary embeddings (1.0)`);
  const theta = params.rope_theta ?? json.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0)) fail(`${params.rope_theta != null ? field("rope_theta") : "rope_theta"} must be a positive number, got ${json1(theta)}`);
  const type = params.rope_type ?? params.type ?? "default";
  const typeField = field(params.rope_type != null ? "rope_type" : "type");
  const positive = (name: string, fallback?: number): number => {
    const v = params[name] ?? fallback;
    if (typeof v !== "number" || !(v > 0)) fail(`${field(name)} must be a positive number for rope_type "${type}", got ${json1(v)}`);
    return v;
  };
  let scaling: RopeScaling | null;
  if (type === "default") scaling = null;
  else if (type === "linear") scaling = { type, factor: positive("factor") };
  else if (type === "llama3") {
    scaling = {
      type,
      factor: positive("factor"),
      lowFreqFactor: positive("low_freq_factor"),
      highFreqFactor: positive("high_freq_factor"),
      // absent: the context length, as transformers 5 does (which reads no top-level key for it here)
      originalMaxPositionEmbeddings: positive("original_max_position_embeddings", maxPositionEmbeddings),
    };
    if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) {
      fail(`${field("high_freq_factor")} (${scaling.highFreqFactor}) must be greater than ${field("low_freq_factor")} (${scaling.lowFreqFactor})`);
    }
  } else {
    return fail(`${typeField} ${json1(type)} is not supported; supported: ${ROPE_TYPES.join(", ")}`);
  }
  return { theta, scaling };
}

/** The sliding window, refused wherever it would cut off keys within the context. */
function slidingWindowFromHF(json: Record<string, any>, window: "refused" | "mistral" | "qwen", maxPositionEmbeddings: number, fail: (msg: string) => never): number | null {
  // mistral: one window for every layer, 4096 when the key is absent. qwen: a window only with
  // use_sliding_window (transformers then also asks max_window_layers or layer_types which layers
  // slide; refused here whichever they are).
  let size: unknown = json.sliding_window;
  if (window === "mistral" && size === undefined) size = 4096;
  if (window === "qwen" && json.use_sliding_window !== true) size = null;
  if (size == null) return null;
  if (!Number.isInteger(size) || (size as number) <= 0) fail(`sliding_window must be a positive integer or null, got ${json1(size)}`);
  // a window as long as the context never cuts anything off
  if ((size as number) < maxPositionEmbeddings) {
    fail(`sliding_window=${size} is not supported: sliding-window attention is not implemented (it matters here because it is shorter than max_position_embeddings ${maxPositionEmbeddings})`);
  }
  return window === "refused" ? null : (size as number); // llama: transformers has no window; this one cut nothing
}

/** The Hugging Face config.json for a config: what transformers (4 and 5) and mlx-lm read, with RoPE
 * in the older spelling (top-level rope_theta and rope_scaling), which both read alike. */
export function configToHF(c: LlamaConfig): Record<string, unknown> {
  const family = FAMILIES[c.modelType];
  const s = c.rope.scaling;
  const ropeScaling =
    s === null
      ? null
      : s.type === "linear"
        ? { rope_type: "linear", factor: s.factor }
        : {
            rope_type: "llama3",
            factor: s.factor,
            low_freq_factor: s.lowFreqFactor,
            high_freq_factor: s.highFreqFactor,
            original_max_position_embeddings: s.originalMaxPositionEmbeddings,
          };
  return {
    architectures: [family.architecture],
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
    rope_theta: c.rope.theta,
    rope_scaling: ropeScaling,
    tie_word_embeddings: c.tieWordEmbeddings,
    ...(family.qkvBias === "attention_bias" && { attention_bias: c.attentionBias }),
    ...(family.mlpBias === "mlp_bias" && { mlp_bias: c.mlpBias }),
    ...(family.window !== "refused" && { sliding_window: c.slidingWindow }),
    ...(family.window === "qwen" && { use_sliding_window: c.slidingWindow !== null, ...(c.slidingWindow !== null && { max_window_layers: 0 }) }), // a kept window: every layer
    attention_dropout: 0.0,
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
  const attn =
    d * qDim + 2 * d * kvDim + qDim * d + (c.attentionBias ? qDim + 2 * kvDim : 0) + (c.outputBias ? d : 0) + (c.qkNorm ? 2 * c.headDim : 0);
  const mlp = 3 * d * c.intermediateSize + (c.mlpBias ? 2 * c.intermediateSize + d : 0);
  const layer = attn + mlp + 2 * d;
  const embed = c.vocabSize * d;
  return embed * (c.tieWordEmbeddings ? 1 : 2) + c.numHiddenLayers * layer + d;
}
