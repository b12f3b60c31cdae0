// LoRA adapters in PEFT's layout, so that `PeftModel.from_pretrained(base, dir)` loads what this
// project trains and this project loads what PEFT trains:
//   adapter_config.json        LoraConfig: r, lora_alpha, lora_dropout, target_modules, and
//                              trainable_token_indices when the chat tokens' rows were trained
//   adapter_model.safetensors  base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight [r, in],
//                              ….lora_B.weight [out, r], base_model.model.model.embed_tokens.
//                              token_adapter.trainable_tokens_delta [n, D] (the rows' values), and
//                              base_model.model.lm_head.token_adapter.… for an untied head
// The update is (lora_alpha / r)·B·A, as in PEFT without rsLoRA. A run's adapter/ also holds the
// tokenizer (with the chat tokens and template) and sft-mlx.json: which base and how it was grown.
import { core as mx } from "@frost-beta/mlx";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { LlamaModel } from "./llama.ts";
import { applyLoRA, loraLayers, mergeLoRA, tokenLayers } from "./lora.ts";
import { LINEAR_MODULES, type LinearModule, type LoRASettings } from "./lora-config.ts";
import { CheckpointError, loadCheckpoint, loadCheckpointArrays, namedParameters, saveCheckpoint, setNamedParameters, tokenizerConfig, type Checkpoint } from "./checkpoint.ts";
import { saveArrays } from "../mlx/arrays-file.ts";
import { writeDirWhole, writeFileChecked } from "../io/files.ts";
import { addChatTokens } from "./vocab.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
const PREFIX = "base_model.model."; // PeftModelForCausalLM → the transformers model
const TOKEN_MODULES = { embed_tokens: "model.embed_tokens", lm_head: "lm_head" } as const;
type TokenModule = keyof typeof TOKEN_MODULES;

export class AdapterError extends Error {
  override name = "AdapterError";
}

/** An adapter's values, by Hugging Face module path, independent of any model. */
export interface Adapter {
  settings: LoRASettings;
  lora: Record<string, { a: mx.array; b: mx.array }>; // "model.layers.0.self_attn.q_proj" → A [r, in], B [out, r]
  tokens: Partial<Record<TokenModule, { indices: number[]; rows: mx.array }>>;
}

/** The adapter of a model made by applyLoRA (its current values). */
export function adapterOf(model: LlamaModel, settings: LoRASettings): Adapter {
  const lora: Adapter["lora"] = {};
  for (const [path, layer] of loraLayers(model)) lora[path] = { a: layer.loraA, b: layer.loraB };
  const tokens: Adapter["tokens"] = {};
  for (const [name, layer] of tokenLayers(model)) tokens[name as TokenModule] = { indices: layer.indices, rows: layer.rows };
  return { settings, lora, tokens };
}

/** Add `adapter` to a plain model (in place): applyLoRA with its settings, then its values. */
export function attachAdapter(model: LlamaModel, adapter: Adapter): void {
  const indices = adapter.tokens.embed_tokens?.indices ?? adapter.tokens.lm_head?.indices ?? [];
  for (const [name, t] of Object.entries(adapter.tokens)) {
    if (JSON.stringify(t.indices) !== JSON.stringify(indices)) throw new AdapterError(`trainable tokens of ${name} (${t.indices}) differ from the embedding's (${indices}): not supported`);
  }
  if (adapter.tokens.lm_head && !model.lmHead) throw new AdapterError("the adapter trains lm_head rows but the base ties its head to the embedding");
  if (model.lmHead && indices.length && !adapter.tokens.lm_head) throw new AdapterError("the adapter trains embedding rows but not the untied head's: not supported");
  applyLoRA(model, adapter.settings, { tokenIndices: indices });
  const layers = new Map(loraLayers(model));
  for (const [path, { a, b }] of Object.entries(adapter.lora)) {
    const layer = layers.get(path);
    if (!layer) throw new AdapterError(`the adapter has ${path} but the model has no such layer`);
    expectShape(`${path}.lora_A`, a, layer.loraA.shape);
    expectShape(`${path}.lora_B`, b, layer.loraB.shape);
    layer.loraA = a;
    layer.loraB = b;
  }
  for (const [path] of layers) if (!adapter.lora[path]) throw new AdapterError(`the adapter has no weights for ${path}`);
  for (const [name, layer] of tokenLayers(model)) {
    const rows = adapter.tokens[name as TokenModule]!.rows;
    expectShape(`${name} rows`, rows, layer.rows.shape);
    layer.rows = rows;
  }
  mx.eval(model.parameters());
}

function expectShape(what: string, a: mx.array, shape: number[]): void {
  if (JSON.stringify(a.shape) !== JSON.stringify(shape)) throw new AdapterError(`${what}: shape ${JSON.stringify(a.shape)} in the adapter, ${JSON.stringify(shape)} in the model`);
}

/** PEFT's adapter_config.json for an adapter (LoraConfig's fields, PEFT 0.21). */
export function peftConfig(adapter: Adapter, baseModel: string): Record<string, unknown> {
  const { rank, alpha, dropout, targets } = adapter.settings;
  const tokens = Object.fromEntries(Object.entries(adapter.tokens).map(([k, t]) => [k, t.indices]));
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: rank,
    lora_alpha: alpha,
    lora_dropout: dropout,
    target_modules: [...targets],
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    trainable_token_indices: Object.keys(tokens).length ? tokens : null,
    inference_mode: true,
    revision: null,
  };
}

/** The adapter's tensors under PEFT's names. */
export function peftTensors(adapter: Adapter): Record<string, mx.array> {
  const out: Record<string, mx.array> = {};
  for (const [path, { a, b }] of Object.entries(adapter.lora)) {
    out[`${PREFIX}${path}.lora_A.weight`] = a;
    out[`${PREFIX}${path}.lora_B.weight`] = b;
  }
  for (const [name, t] of Object.entries(adapter.tokens)) out[`${PREFIX}${TOKEN_MODULES[name as TokenModule]}.token_adapter.trainable_tokens_delta`] = t.rows;
  return out;
}

export interface SaveAdapterOptions {
  baseModel: string; // adapter_config.json's base_model_name_or_path
  tokenizer?: Tokenizer; // written with the chat template, so the adapter folder is self-contained
  contextLength?: number; // tokenizer_config.json's model_max_length
  meta?: Record<string, unknown>; // sft-mlx.json: provenance, how to rebuild the base (added tokens), the weights' digest
  replace?: boolean; // an earlier version of this run's own adapter may be replaced
}

/** Write an adapter folder whole (a temporary sibling, checked and synced, swapped in with one
 * rename, as checkpoints are); never over an existing folder unless `replace`. */
export function saveAdapter(dir: string, adapter: Adapter, { baseModel, tokenizer, contextLength = 2048, meta, replace = false }: SaveAdapterOptions): void {
  dir = resolve(dir);
  if (existsSync(dir) && !replace) throw new AdapterError(`${dir} already exists: adapters are never overwritten`);
  writeDirWhole(dir, "adapter", (tmp) => {
    const digest = saveArrays(join(tmp, ADAPTER_WEIGHTS), peftTensors(adapter), { metadata: { format: "pt" }, shown: join(dir, ADAPTER_WEIGHTS) });
    const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";
    const put = (name: string, text: string) => writeFileChecked(join(tmp, name), text, join(dir, name));
    put(ADAPTER_CONFIG, json(peftConfig(adapter, baseModel)));
    if (tokenizer) {
      put("tokenizer.json", JSON.stringify(tokenizer.toJSON()));
      put("tokenizer_config.json", json(tokenizerConfig(tokenizer, contextLength)));
    }
    put("sft-mlx.json", json({ ...meta, files: { [ADAPTER_WEIGHTS]: digest } }));
  });
}

/** Settings of adapter_config.json that change what the adapter computes and that this project
 * does not implement: refused with the key and value rather than loaded into something else. */
const UNSUPPORTED: [string, (v: any) => boolean][] = [
  ["use_dora", (v) => v === true],
  ["use_rslora", (v) => v === true],
  ["fan_in_fan_out", (v) => v === true],
  ["bias", (v) => v !== undefined && v !== "none"],
  ["modules_to_save", (v) => Array.isArray(v) && v.length > 0],
  ["rank_pattern", (v) => v && Object.keys(v).length > 0],
  ["alpha_pattern", (v) => v && Object.keys(v).length > 0],
  ["layers_to_transform", (v) => v != null],
];

/** Read a PEFT LoRA adapter folder (ours or PEFT's); tensors come back as float32. */
export function readAdapter(dir: string): Adapter {
  const configPath = join(dir, ADAPTER_CONFIG);
  const weightsPath = join(dir, ADAPTER_WEIGHTS);
  for (const p of [configPath, weightsPath]) {
    if (!existsSync(p)) throw new AdapterError(`${p} is missing: an adapter folder holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS} (PEFT's save_pretrained)`);
  }
  let cfg: Record<string, any>;
  try {
    cfg = JSON.parse(readFileSync(configPath, "utf8"));
  } catch (e) {
    throw new AdapterError(`${configPath}: not valid JSON (${(e as Error).message})`);
  }
  const fail = (msg: string): never => {
    throw new AdapterError(`${configPath}: ${msg}`);
  };
  if (cfg.peft_type !== "LORA") fail(`peft_type ${JSON.stringify(cfg.peft_type)} is not supported (only "LORA")`);
  for (const [key, isSet] of UNSUPPORTED) if (isSet(cfg[key])) fail(`${key}=${JSON.stringify(cfg[key])} is not supported by this project's LoRA`);
  const rank = cfg.r;
  if (!Number.isInteger(rank) || rank < 1) fail(`r must be a positive integer, got ${JSON.stringify(rank)}`);
  const alpha = cfg.lora_alpha ?? 8; // PEFT's default
  if (typeof alpha !== "number" || !(alpha > 0)) fail(`lora_alpha must be a positive number, got ${JSON.stringify(alpha)}`);

  // A bf16 adapter (trained on a GPU) computes in float32 here: the CPU has no low-precision matmul.
  let loaded: Record<string, mx.array>;
  try {
    loaded = loadCheckpointArrays(dir, ADAPTER_WEIGHTS); // checked first: whole, and its recorded digest if ours
  } catch (e) {
    if (e instanceof CheckpointError) throw new AdapterError(e.message);
    throw e;
  }
  const f32 = (a: mx.array) => (a.dtype === mx.float32 ? a : a.astype(mx.float32));
  const lora: Adapter["lora"] = {};
  const tokens: Adapter["tokens"] = {};
  const targets = new Set<LinearModule>();
  const tokenConfig: Record<string, number[]> = cfg.trainable_token_indices == null ? {}
    : Array.isArray(cfg.trainable_token_indices) ? { embed_tokens: cfg.trainable_token_indices } : cfg.trainable_token_indices;
  for (const [name, array] of Object.entries(loaded)) {
    const m = /^base_model\.model\.(model\.layers\.\d+\.(?:self_attn|mlp)\.(\w+))\.lora_([AB])\.weight$/.exec(name);
    const t = /^base_model\.model\.(model\.embed_tokens|lm_head)\.token_adapter\.trainable_tokens_delta$/.exec(name);
    if (m) {
      const [, path, module, which] = m as unknown as [string, string, string, "A" | "B"];
      if (!(module in LINEAR_MODULES)) fail(`${name}: ${module} is not a linear module of a Llama decoder layer`);
      targets.add(module as LinearModule);
      (lora[path] ??= {} as { a: mx.array; b: mx.array })[which === "A" ? "a" : "b"] = f32(array);
    } else if (t) {
      const key = t[1] === "lm_head" ? "lm_head" : "embed_tokens";
      const indices = tokenConfig[key];
      if (!Array.isArray(indices)) fail(`${ADAPTER_WEIGHTS} has ${name} but trainable_token_indices names no ${key}`);
      if (array.shape[0] !== indices!.length) fail(`${name} has ${array.shape[0]} rows for ${indices!.length} trainable_token_indices`);
      tokens[key] = { indices: indices!, rows: f32(array) };
    } else fail(`${ADAPTER_WEIGHTS} holds ${name}, which is neither a LoRA weight of a decoder layer nor trainable token rows`);
  }
  for (const [path, ab] of Object.entries(lora)) {
    if (!ab.a || !ab.b) fail(`${ADAPTER_WEIGHTS} has only one of ${path}.lora_A and lora_B`);
    if (ab.a.shape[0] !== rank || ab.b.shape[1] !== rank) fail(`${path}: lora_A ${JSON.stringify(ab.a.shape)} and lora_B ${JSON.stringify(ab.b.shape)} do not have rank r=${rank}`);
  }
  if (targets.size === 0) fail(`${ADAPTER_WEIGHTS} holds no LoRA weights`);
  const order = Object.keys(LINEAR_MODULES) as LinearModule[];
  return { settings: { rank, alpha, dropout: cfg.lora_dropout ?? 0, targets: order.filter((n) => targets.has(n)) }, lora, tokens };
}

/** Subtract an adapter's LoRA updates from a merged model's weights (in place): merge followed by
 * this gives the original weights back to float32 rounding. Trainable token rows replace the base's
 * rows and cannot be taken out again (PEFT keeps the originals only in memory). */
export function unmergeAdapter(model: LlamaModel, adapter: Adapter): void {
  if (Object.keys(adapter.tokens).length) throw new AdapterError("cannot unmerge trainable token rows: the rows they replaced are not part of an adapter");
  const scale = adapter.settings.alpha / adapter.settings.rank;
  const named = namedParameters(model).map(([name, w]): [string, mx.array] => {
    const ab = adapter.lora[name.replace(/\.weight$/, "")];
    return ab && name.endsWith(".weight") ? [name, mx.subtract(w, mx.multiply(mx.matmul(ab.b, ab.a), scale))] : [name, w];
  });
  setNamedParameters(model, named);
  mx.eval(model.parameters());
}

/** What a run's adapter/sft-mlx.json records to rebuild its starting model from the base. */
interface AdapterMeta {
  base?: string;
  addedTokens?: string[];
  growSeed?: number; // addChatTokens' seed: the new rows the adapter's rows start from
}

/**
 * Load base + adapter as one model: the base checkpoint (`base`, else the adapter's recorded base),
 * grown with the chat tokens when the adapter's tokenizer has them and the base's has not, and the
 * adapter attached. The model keeps its LoRA layers: mergeLoRA(model) gives a plain one to decode with.
 */
export async function loadAdapterCheckpoint(dir: string, { base }: { base?: string } = {}): Promise<Checkpoint & { adapter: Adapter }> {
  const adapter = readAdapter(dir);
  const metaPath = join(dir, "sft-mlx.json");
  const meta: AdapterMeta & Record<string, unknown> = existsSync(metaPath) ? JSON.parse(readFileSync(metaPath, "utf8")) : {};
  const cfg = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), "utf8"));
  // The recorded base as given, else relative to the adapter folder (a fixture's "../hf/llama")
  const recorded = base ?? meta.base ?? cfg.base_model_name_or_path;
  const baseDir = [recorded, recorded && join(dir, recorded)].find((d): d is string => typeof d === "string" && existsSync(join(d, "config.json")));
  if (!baseDir) {
    throw new AdapterError(`${dir}: its base ${JSON.stringify(recorded ?? null)} is not a checkpoint folder here: pass the base the adapter was trained on (--base <dir>)`);
  }
  let ckpt = await loadCheckpoint(baseDir);
  if (existsSync(join(dir, "tokenizer.json"))) {
    const wanted = await Tokenizer.load(dir);
    let { model, tokenizer } = ckpt;
    if (wanted.vocabSize > tokenizer.vocabSize) ({ model, tokenizer } = addChatTokens(model, tokenizer, { seed: meta.growSeed ?? 0 }));
    if (JSON.stringify(tokenizer.toJSON().model) !== JSON.stringify(wanted.toJSON().model) || tokenizer.vocabSize !== wanted.vocabSize) {
      throw new AdapterError(`${dir}/tokenizer.json does not match the base ${baseDir} (grown with the chat tokens: ${tokenizer.vocabSize} ids, the adapter's ${wanted.vocabSize}): pass the base the adapter was trained on (--base)`);
    }
    ckpt = { ...ckpt, model, config: model.config, tokenizer: wanted };
  }
  attachAdapter(ckpt.model, adapter);
  return { ...ckpt, dir, meta: { ...ckpt.meta, ...meta, base: resolve(baseDir) }, adapter };
}

/** A checkpoint folder as it is, or an adapter folder as its base + adapter merged into a plain
 * model: what decoding runs on (mergeLoRA says why). */
export async function loadForDecoding(dir: string, { base }: { base?: string } = {}): Promise<Checkpoint> {
  if (!existsSync(join(dir, ADAPTER_CONFIG))) return loadCheckpoint(dir);
  const { adapter: _, ...ckpt } = await loadAdapterCheckpoint(dir, { base });
  const model = mergeLoRA(ckpt.model);
  return { ...ckpt, model, config: model.config };
}

/** Merge an adapter into its base and write the result as a full Hugging Face checkpoint at `out`
 * (atomically; never over an existing folder). Returns the merged checkpoint. */
export async function fuseAdapter(dir: string, out: string, { base }: { base?: string } = {}): Promise<Checkpoint> {
  const ckpt = await loadForDecoding(dir, { base });
  const baseDir = ckpt.meta.base as string | undefined;
  saveCheckpoint(out, ckpt.model, ckpt.tokenizer, {
    meta: { ...ckpt.meta, kind: "sft", fusedFrom: { adapter: resolve(dir), base: baseDir ?? null } },
  });
  return { ...ckpt, dir: resolve(out) };
}
