// Checkpoints in the Hugging Face layout: config.json, model.safetensors (HF tensor names),
// tokenizer.json, tokenizer_config.json (chat template + special tokens), generation_config.json.
// Loading validates every tensor name and shape; saving is atomic and never writes into an
// existing directory, so a base checkpoint can never be overwritten.
import { core as mx, nn } from "@frost-beta/mlx";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { configFromHF, configToHF, type LlamaConfig } from "./config.ts";
import { LlamaModel } from "./llama.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { flattenParams } from "../mlx/autodiff.ts";
import { CHAT_TEMPLATE_JINJA } from "../format/template.ts";
import { SPECIAL_TOKENS } from "../format/tokens.ts";
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

function readJSON(path: string): any {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new CheckpointError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Build a model from a checkpoint directory's config.json and model.safetensors (float32). */
export function loadModel(dir: string): { model: LlamaModel; config: LlamaConfig } {
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
  const loaded = mx.load(weightsPath) as unknown as Record<string, mx.array>;
  const expected = new Map(namedParameters(model).map(([k, v]) => [k, v.shape]));
  const problems: string[] = [];
  const named: [string, mx.array][] = [];
  for (const [name, array] of Object.entries(loaded)) {
    if (IGNORED_TENSORS.some((re) => re.test(name))) continue;
    // A tied model may still carry a copy of the embedding as lm_head.weight: it is not used.
    if (name === "lm_head.weight" && config.tieWordEmbeddings) continue;
    const shape = expected.get(name);
    if (!shape) problems.push(`unexpected tensor ${name} ${JSON.stringify(array.shape)}`);
    else if (JSON.stringify(shape) !== JSON.stringify(array.shape)) {
      problems.push(`${name}: shape ${JSON.stringify(array.shape)} in the file, ${JSON.stringify(shape)} from config.json`);
    } else named.push([name, array.dtype === mx.float32 ? array : array.astype(mx.float32)]);
  }
  for (const name of expected.keys()) if (!(name in loaded)) problems.push(`missing tensor ${name}`);
  if (problems.length) {
    throw new CheckpointError(`${weightsPath} does not match ${configPath}:\n  ${problems.join("\n  ")}`);
  }
  setNamedParameters(model, named);
  mx.eval(model.parameters());
  return { model, config };
}

export interface Checkpoint {
  dir: string;
  model: LlamaModel;
  config: LlamaConfig;
  tokenizer: Tokenizer;
  /** The checkpoint's sft-mlx.json (provenance), if it has one. */
  meta: Record<string, unknown>;
}

/** Load a full checkpoint: model and tokenizer. */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const { model, config } = loadModel(dir);
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
  const meta = existsSync(metaPath) ? readJSON(metaPath) : {};
  return { dir, model, config, tokenizer, meta };
}

export interface SaveOptions {
  /** Provenance written to sft-mlx.json (base checkpoint, run, added tokens, ...). */
  meta?: Record<string, unknown>;
  /** Extra files (name → contents) written into the checkpoint. */
  files?: Record<string, string>;
}

/** The tokenizer_config.json that tells transformers and mlx-lm about the chat format. */
function tokenizerConfig(tokenizer: Tokenizer, maxLength: number): Record<string, unknown> {
  const has = (t: string) => (tokenizer.hasToken(t) ? t : null);
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    chat_template: CHAT_TEMPLATE_JINJA,
    bos_token: null,
    eos_token: has(SPECIAL_TOKENS.end),
    pad_token: has(SPECIAL_TOKENS.pad),
    unk_token: null,
    additional_special_tokens: [SPECIAL_TOKENS.user, SPECIAL_TOKENS.assistant].filter((t) => tokenizer.hasToken(t)),
    model_max_length: maxLength,
    clean_up_tokenization_spaces: false,
  };
}

/** Write a checkpoint atomically: into a temporary sibling directory, then renamed into place.
 * Refuses to write into a directory that already exists. */
export function saveCheckpoint(
  dir: string,
  model: LlamaModel,
  tokenizer: Tokenizer,
  { meta, files = {} }: SaveOptions = {},
): void {
  dir = resolve(dir);
  if (existsSync(dir)) throw new CheckpointError(`${dir} already exists: checkpoints are never overwritten`);
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmp);
  try {
    const config = model.config;
    // A chat checkpoint ends on <|end|> and pads with <|pad|>; a base keeps the ids its config had.
    const chat = ChatFormat.missingTokens(tokenizer).length === 0 ? ChatFormat.of(tokenizer) : undefined;
    const eosId = chat?.end ?? config.eosTokenId;
    const padId = chat?.pad ?? config.padTokenId;
    const hfConfig = { ...configToHF(config), eos_token_id: eosId, pad_token_id: padId };
    const weights = Object.fromEntries(namedParameters(model));
    mx.saveSafetensors(join(tmp, "model.safetensors"), weights, { format: "pt" });
    writeFileSync(join(tmp, "config.json"), JSON.stringify(hfConfig, null, 2) + "\n");
    writeFileSync(join(tmp, "tokenizer.json"), JSON.stringify(tokenizer.toJSON()));
    const tokConfig = tokenizerConfig(tokenizer, config.maxPositionEmbeddings);
    writeFileSync(join(tmp, "tokenizer_config.json"), JSON.stringify(tokConfig, null, 2) + "\n");
    const genConfig = { eos_token_id: eosId, pad_token_id: padId, max_new_tokens: 256, do_sample: false };
    writeFileSync(join(tmp, "generation_config.json"), JSON.stringify(genConfig, null, 2) + "\n");
    if (meta) writeFileSync(join(tmp, "sft-mlx.json"), JSON.stringify(meta, null, 2) + "\n");
    for (const [name, text] of Object.entries(files)) writeFileSync(join(tmp, name), text);
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** sha256 of a checkpoint's weights, config and tokenizer: proves a base was not modified. */
export function hashCheckpoint(dir: string): string {
  const h = createHash("sha256");
  for (const name of ["config.json", "model.safetensors", "tokenizer.json"]) {
    const p = join(dir, name);
    if (existsSync(p)) h.update(name).update(readFileSync(p));
  }
  return h.digest("hex");
}
