// Checkpoints in the Hugging Face layout: config.json, model.safetensors (HF tensor names),
// tokenizer.json, tokenizer_config.json (chat template + special tokens), generation_config.json.
// Loading checks the weights file before MLX reads it (whole, well-formed, and the sha256 recorded in
// sft-mlx.json when there is one) and every tensor name and shape; saving writes the whole folder
// beside its destination, checks what reached the disk, and swaps it in. An existing folder is never
// written into, and replaced only when asked (a run's own checkpoint/), so a base checkpoint can
// never be overwritten.
import { core as mx, nn } from "@frost-beta/mlx";
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { configFromHF, configToHF, type LlamaConfig } from "./config.ts";
import { LlamaModel } from "./llama.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { flattenParams } from "../mlx/autodiff.ts";
import { loadArrays, saveArrays } from "../mlx/arrays-file.ts";
import { FileError, readJSON as readFileJSON, writeDirWhole, writeFileChecked } from "../io/files.ts";
import { hashFileInto, SafetensorsError, type FileDigest } from "../io/safetensors.ts";
import { int, object, optional, record, string, type Schema } from "../util/schema.ts";
import { CHAT_TEMPLATE_JINJA } from "../format/template.ts";
import { COURSE_TOKENS, SPECIAL_TOKENS } from "../format/tokens.ts";
import { ChatFormat } from "../format/chat-format.ts";

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

/** Tensors some exporters write that carry no weights of their own. */
const IGNORED_TENSORS = [/\.rotary_emb\.inv_freq$/];

const camelToSnake = (path: string) => path.replace(/[A-Z]/g, (ch) => "_" + ch.toLowerCase());

/** The model's parameters as [Hugging Face name, array] pairs, in a fixed order. */
export function namedParameters(model: nn.Module): [string, mx.array][] {
  return flattenParams(model.parameters()).map(([k, v]) => [camelToSnake(k), v]);
}

/** Set parameters from [Hugging Face name, array] pairs (names as given by namedParameters). */
export function setNamedParameters(model: nn.Module, named: [string, mx.array][]): void {
  const byName = new Map(named);
  const nested: Record<string, any> = {};
  for (const [camel] of flattenParams(model.parameters())) {
    const value = byName.get(camelToSnake(camel));
    if (!value) continue;
    const parts = camel.split(".");
    let node: any = nested;
    parts.slice(0, -1).forEach((p, i) => {
      const nextIsIndex = /^\d+$/.test(parts[i + 1]);
      node[p] ??= nextIsIndex ? [] : {};
      node = node[p];
    });
    node[parts[parts.length - 1]] = value;
  }
  model.update(nested);
}

/** A JSON file of a checkpoint; a damaged one is a CheckpointError naming it. */
function readJSON(path: string): any {
  try {
    return readFileJSON(path);
  } catch (e) {
    if (e instanceof FileError) throw new CheckpointError(e.message);
    throw e;
  }
}

/** What sft-mlx.json records about the files beside it, written at save time and checked at load. */
interface RecordedFiles {
  files?: Record<string, FileDigest>;
}
const DIGESTS: Schema<RecordedFiles> = object<RecordedFiles>({ files: optional(record(object<FileDigest>({ bytes: int(0), sha256: string() }))) });

/** The digests recorded in `dir`'s sft-mlx.json (none for checkpoints made elsewhere). */
function recordedDigests(dir: string): Record<string, FileDigest> {
  const metaPath = join(dir, "sft-mlx.json");
  if (!existsSync(metaPath)) return {};
  try {
    return DIGESTS.parse(readJSON(metaPath)).files ?? {};
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`${metaPath}: its \`files\` record is damaged (${(e as Error).message}): restore the file, or remove its \`files\` key to load without the check`);
  }
}

/** Load a safetensors file of a checkpoint (the weights, or an extra array file such as pretraining's
 * optimizer state) after checking it: whole, well-formed, and matching its recorded digest. */
export function loadCheckpointArrays(dir: string, name: string): Record<string, mx.array> {
  try {
    return loadArrays(join(dir, name), recordedDigests(dir)[name]);
  } catch (e) {
    if (e instanceof SafetensorsError || e instanceof FileError) throw new CheckpointError(e.message);
    throw e;
  }
}

/** Build a model from a checkpoint directory's config.json and model.safetensors (float32). With
 * `lazy` its arrays are left unevaluated: MLX reads each from the file when it is first evaluated,
 * so a caller that quantizes layer by layer (QLoRA, lib/model/quantize.ts) never holds the whole
 * float32 model. */
export function loadModel(dir: string, { lazy = false }: { lazy?: boolean } = {}): { model: LlamaModel; config: LlamaConfig } {
  const configPath = join(dir, "config.json");
  const weightsPath = join(dir, "model.safetensors");
  if (!existsSync(dir)) throw new CheckpointError(`checkpoint directory ${dir} does not exist`);
  for (const p of [configPath, weightsPath]) {
    if (!existsSync(p)) {
      const sharded = readdirSync(dir).some((f) => /^model-\d+-of-\d+\.safetensors$/.test(f));
      throw new CheckpointError(
        `${p} is missing` + (sharded ? " (sharded checkpoints are not supported: merge the shards into one model.safetensors)" : ""),
      );
    }
  }
  const config = configFromHF(readJSON(configPath), configPath);
  const model = new LlamaModel(config);
  const loaded = loadCheckpointArrays(dir, "model.safetensors");
  const expected = new Map(namedParameters(model).map(([k, v]) => [k, v.shape]));
  const problems: string[] = [];
  const named: [string, mx.array][] = [];
  for (const [name, array] of Object.entries(loaded)) {
    if (IGNORED_TENSORS.some((re) => re.test(name))) continue;
    // A tied model may still carry a copy of the embedding as lm_head.weight: it is not used.
    if (name === "lm_head.weight" && config.tieWordEmbeddings) continue;
    const shape = expected.get(name);
    if (!shape) problems.push(`unexpected tensor ${name} ${JSON.stringify(array.shape)}${configFields(config, name)}`);
    else if (JSON.stringify(shape) !== JSON.stringify(array.shape)) {
      problems.push(`${name}: shape ${JSON.stringify(array.shape)} in the file, ${JSON.stringify(shape)} from config.json${configFields(config, name)}`);
    } else named.push([name, array.dtype === mx.float32 ? array : array.astype(mx.float32)]);
  }
  for (const name of expected.keys()) if (!(name in loaded)) problems.push(`missing tensor ${name}${configFields(config, name)}`);
  if (problems.length) {
    throw new CheckpointError(`${weightsPath} does not match ${configPath}:\n  ${problems.join("\n  ")}`);
  }
  setNamedParameters(model, named);
  if (!lazy) mx.eval(model.parameters());
  return { model, config };
}

/** Which config.json fields decide a tensor's presence or shape, for the error that lists it: the
 * attention heads and head_dim for the projections, model_type for the per-head norms, the bias flags. */
function configFields(c: LlamaConfig, name: string): string {
  const proj = /self_attn\.([qkvo])_proj\.weight$/.exec(name)?.[1];
  if (proj) {
    const heads = proj === "q" || proj === "o" ? `num_attention_heads ${c.numAttentionHeads}` : `num_key_value_heads ${c.numKeyValueHeads}`;
    return ` (config.json: ${heads} × head_dim ${c.headDim}, hidden_size ${c.hiddenSize})`;
  }
  if (/[qk]_norm\.weight$/.test(name)) return ` (config.json: model_type "${c.modelType}"; q_norm and k_norm are qwen3's)`;
  if (/_proj\.bias$/.test(name)) return ` (config.json: model_type "${c.modelType}", attention_bias, mlp_bias)`;
  return "";
}

export interface Checkpoint {
  dir: string;
  model: LlamaModel;
  config: LlamaConfig;
  tokenizer: Tokenizer;
  /** The checkpoint's sft-mlx.json (provenance), if it has one. */
  meta: Record<string, unknown>;
}

/** Load a full checkpoint: model and tokenizer (`lazy`: see loadModel). */
export async function loadCheckpoint(dir: string, { lazy = false }: { lazy?: boolean } = {}): Promise<Checkpoint> {
  const { model, config } = loadModel(dir, { lazy });
  if (!existsSync(join(dir, "tokenizer.json"))) {
    throw new CheckpointError(`${join(dir, "tokenizer.json")} is missing: a checkpoint needs its tokenizer`);
  }
  const tokenizer = await Tokenizer.load(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new CheckpointError(
      `${dir}: tokenizer has ${tokenizer.vocabSize} ids but config.json vocab_size is ${config.vocabSize}`,
    );
  }
  const metaPath = join(dir, "sft-mlx.json");
  // `files` is the integrity record checked above, not provenance
  const { files: _digests, ...meta } = existsSync(metaPath) ? readJSON(metaPath) : {};
  return { dir, model, config, tokenizer, meta };
}

export interface SaveOptions {
  /** Provenance written to sft-mlx.json (base checkpoint, run, added tokens, ...), with the size
   * and sha256 of every array file, checked when the checkpoint is loaded. */
  meta?: Record<string, unknown>;
  /** Extra files (name → contents) written into the checkpoint. */
  files?: Record<string, string>;
  /** Extra array files (name → arrays), e.g. pretraining's optimizer state, saved and checked like
   * the weights, so the folder is one unit. */
  arrays?: Record<string, Record<string, mx.array>>;
  /** Replace an existing folder (a run's own checkpoint/ after resuming): the old one is removed
   * only once the new one is in place. Without it an existing folder is refused. */
  replace?: boolean;
}

/** The tokenizer_config.json that tells transformers and mlx-lm about the chat format. */
export function tokenizerConfig(tokenizer: Tokenizer, maxLength: number): Record<string, unknown> {
  const has = (t: string) => (tokenizer.hasToken(t) ? t : null);
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    chat_template: CHAT_TEMPLATE_JINJA,
    bos_token: null,
    eos_token: has(SPECIAL_TOKENS.end),
    pad_token: has(SPECIAL_TOKENS.pad),
    unk_token: null,
    // The course's whole set, in its order, as its setup registers them: its later modules look each
    // one up by string (`convert_tokens_to_ids`).
    additional_special_tokens: COURSE_TOKENS.filter((t) => tokenizer.hasToken(t)),
    model_max_length: maxLength,
    clean_up_tokenization_spaces: false,
  };
}

/** Write a checkpoint whole into a temporary sibling folder, check every file on disk (size, and the
 * weights' safetensors structure), then swap it in with one rename. Refuses to write over a folder
 * that exists unless `replace`. */
export function saveCheckpoint(
  dir: string,
  model: LlamaModel,
  tokenizer: Tokenizer,
  { meta, files = {}, arrays = {}, replace = false }: SaveOptions = {},
): void {
  dir = resolve(dir);
  if (existsSync(dir) && !replace) throw new CheckpointError(`${dir} already exists: checkpoints are never overwritten`);
  writeDirWhole(dir, "checkpoint", (tmp) => {
    const config = model.config;
    const eosId = tokenizer.hasToken(SPECIAL_TOKENS.end) ? tokenizer.tokenId(SPECIAL_TOKENS.end) : config.eosTokenId;
    const padId = tokenizer.hasToken(SPECIAL_TOKENS.pad) ? tokenizer.tokenId(SPECIAL_TOKENS.pad) : config.padTokenId;
    const hfConfig = { ...configToHF(config), eos_token_id: eosId, pad_token_id: padId };
    const digests: Record<string, FileDigest> = {
      "model.safetensors": saveArrays(join(tmp, "model.safetensors"), Object.fromEntries(namedParameters(model)), { metadata: { format: "pt" }, shown: join(dir, "model.safetensors") }),
    };
    for (const [name, named] of Object.entries(arrays)) digests[name] = saveArrays(join(tmp, name), named, { shown: join(dir, name) });
    const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";
    const put = (name: string, text: string) => writeFileChecked(join(tmp, name), text, join(dir, name)); // errors name the destination
    put("config.json", json(hfConfig));
    put("tokenizer.json", JSON.stringify(tokenizer.toJSON()));
    put("tokenizer_config.json", json(tokenizerConfig(tokenizer, config.maxPositionEmbeddings)));
    put("generation_config.json", json({ eos_token_id: eosId, pad_token_id: padId, max_new_tokens: 256, do_sample: false }));
    if (meta) put("sft-mlx.json", json({ ...meta, files: digests }));
    for (const [name, text] of Object.entries(files)) put(name, text);
  });
}

/** sha256 of a checkpoint's weights, config and tokenizer: proves a base was not modified. */
export function hashCheckpoint(dir: string): string {
  const h = createHash("sha256");
  for (const name of ["config.json", "model.safetensors", "tokenizer.json"]) {
    const p = join(dir, name);
    if (existsSync(p)) hashFileInto(h.update(name), p); // streamed: the same digest as hashing the whole file
  }
  return h.digest("hex");
}
