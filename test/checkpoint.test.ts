// Checkpoints: save → load is bit-exact (tied, untied, GQA, qwen2 attention bias); saving never
// touches an existing directory and leaves no temp dir when it fails; loading names every
// mismatched tensor; config errors name the key and value; tokenizer_config.json carries the chat
// template; hashCheckpoint sees weight changes.
//   bun test test/checkpoint.test.ts

import { afterAll, describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, configFromHF } from "../lib/model/config.ts";
import {
  CheckpointError,
  hashCheckpoint,
  loadCheckpoint,
  loadModel,
  namedParameters,
  saveCheckpoint,
  tokenizerConfig,
} from "../lib/model/checkpoint.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import type { LlamaModel } from "../lib/model/llama.ts";
import { CHAT_TEMPLATE_JINJA } from "../lib/format/template.ts";
import { SPECIAL_TOKENS } from "../lib/format/tokens.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { tinyConfigJSON, tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const ROOT = mkdtempSync(join(tmpdir(), "sft-mlx-ckpt-"));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));
let counter = 0;
const fresh = (name: string) => join(ROOT, `${name}-${counter++}`);

/** Every parameter of `b` equals the one of the same name in `a`, bit for bit. */
function expectSameWeights(a: LlamaModel, b: LlamaModel): void {
  const left = namedParameters(a);
  const right = new Map(namedParameters(b));
  expect([...right.keys()].sort()).toEqual(left.map(([k]) => k).sort());
  for (const [name, value] of left) {
    const other = right.get(name)!;
    expect({ name, shape: other.shape, dtype: String(other.dtype) }).toEqual({ name, shape: value.shape, dtype: String(value.dtype) });
    expect({ name, equal: mx.arrayEqual(value, other).item() }).toEqual({ name, equal: true });
  }
}

const BASE_HF = tinyConfigJSON(360);

describe("save → load round trip", () => {
  test.each([
    ["tied, GQA 4/2", { tied: true }],
    ["untied, GQA 4/2", { tied: false }],
    ["untied, no GQA (4/4)", { tied: false, overrides: { num_key_value_heads: 4 } }],
    ["qwen2 attention bias, tied", { tied: true, overrides: { model_type: "qwen2" } }],
    ["qwen3 q/k norms, head_dim 16, tied", { tied: true, overrides: { model_type: "qwen3", head_dim: 16 } }],
    ["qwen3 attention bias, untied", { tied: false, overrides: { model_type: "qwen3", head_dim: 8, attention_bias: true } }],
    ["llama attention and MLP biases", { tied: false, overrides: { attention_bias: true, mlp_bias: true } }],
    ["llama3 RoPE scaling", { tied: true, overrides: { rope_parameters: { rope_type: "llama3", rope_theta: 5e5, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } } }],
    ["linear RoPE scaling", { tied: true, overrides: { rope_scaling: { type: "linear", factor: 2 } } }],
  ] as const)("%s: every tensor bit-exact, config equal", async (_name, opts) => {
    const model = tinyModel(360, { seed: 3, ...opts });
    const dir = fresh("rt");
    saveCheckpoint(dir, model, tinyTokenizer(), { meta: { base: "test" } });
    const ckpt = await loadCheckpoint(dir);
    expectSameWeights(model, ckpt.model);
    expect(ckpt.config).toEqual({ ...model.config, eosTokenId: 4, padTokenId: 0 });
    expect(ckpt.meta).toEqual({ base: "test" });
    expect(ckpt.tokenizer.toJSON()).toEqual(tinyTokenizer().toJSON());
    const ids = mx.array([[1, 2, 3, 4]], mx.int32);
    expect(mx.arrayEqual(model.forward(ids), ckpt.model.forward(ids)).item()).toBe(true);
  });

  test("qwen2 saves q/k/v biases and no o_proj bias", () => {
    const model = tinyModel(360, { overrides: { model_type: "qwen2" } });
    const names = namedParameters(model).map(([k]) => k);
    expect(names).toContain("model.layers.0.self_attn.q_proj.bias");
    expect(names).toContain("model.layers.1.self_attn.v_proj.bias");
    expect(names).not.toContain("model.layers.0.self_attn.o_proj.bias");
  });

  test("names are the Hugging Face ones; a tied model has no lm_head.weight", () => {
    const names = (tied: boolean) => namedParameters(tinyModel(360, { tied })).map(([k]) => k);
    expect(names(true)).toContain("model.embed_tokens.weight");
    expect(names(true)).toContain("model.layers.0.self_attn.q_proj.weight");
    expect(names(true)).toContain("model.layers.1.mlp.gate_proj.weight");
    expect(names(true)).toContain("model.layers.1.post_attention_layernorm.weight");
    expect(names(true)).not.toContain("lm_head.weight");
    expect(names(false)).toContain("lm_head.weight");
  });
});

describe("saving is atomic and never overwrites", () => {
  test("an existing directory is refused and left untouched", () => {
    const dir = fresh("existing");
    mkdirSync(dir);
    writeFileSync(join(dir, "config.json"), "precious");
    expect(() => saveCheckpoint(dir, tinyModel(360), tinyTokenizer())).toThrow(/already exists/);
    expect(readdirSync(dir)).toEqual(["config.json"]);
    expect(readFileSync(join(dir, "config.json"), "utf8")).toBe("precious");
  });

  test("a save that fails part-way leaves neither the checkpoint nor a temp dir", () => {
    const parent = fresh("failing");
    mkdirSync(parent);
    const dir = join(parent, "ckpt");
    // An extra file in a subdirectory that does not exist: fails after the weights were written.
    const files = { "no-such-dir/notes.txt": "x" };
    expect(() => saveCheckpoint(dir, tinyModel(360), tinyTokenizer(), { files })).toThrow();
    expect(readdirSync(parent)).toEqual([]);
  });

  test("a successful save leaves only the checkpoint in the parent", () => {
    const parent = fresh("ok");
    saveCheckpoint(join(parent, "ckpt"), tinyModel(360), tinyTokenizer(), { files: { "README.md": "hi" } });
    expect(readdirSync(parent)).toEqual(["ckpt"]);
    expect(readdirSync(join(parent, "ckpt")).sort()).toEqual(
      ["README.md", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"].sort(),
    );
  });
});

describe("loading reports every mismatch by name", () => {
  /** A checkpoint of the tiny model whose safetensors file is replaced by `edit(weights)`. */
  function withWeights(edit: (w: Record<string, mx.array>) => void): string {
    const dir = fresh("bad");
    saveCheckpoint(dir, tinyModel(360, { tied: true }), tinyTokenizer());
    const weights = Object.fromEntries(namedParameters(tinyModel(360, { tied: true })));
    edit(weights);
    rmSync(join(dir, "model.safetensors"));
    mx.saveSafetensors(join(dir, "model.safetensors"), weights, { format: "pt" });
    return dir;
  }

  test("missing, unexpected and wrongly shaped tensors are all listed in one error", () => {
    const dir = withWeights((w) => {
      delete w["model.layers.1.mlp.up_proj.weight"];
      delete w["model.norm.weight"];
      w["model.layers.0.self_attn.rotary_extra"] = mx.zeros([3]);
      w["model.layers.0.self_attn.k_proj.weight"] = mx.zeros([32, 32]); // should be [16, 32] (2 kv heads)
    });
    let message = "";
    try {
      loadModel(dir);
    } catch (e) {
      expect(e).toBeInstanceOf(CheckpointError);
      message = (e as Error).message;
    }
    expect(message).toContain("missing tensor model.layers.1.mlp.up_proj.weight");
    expect(message).toContain("missing tensor model.norm.weight");
    expect(message).toContain("unexpected tensor model.layers.0.self_attn.rotary_extra [3]");
    expect(message).toContain("model.layers.0.self_attn.k_proj.weight: shape [32,32] in the file, [16,32] from config.json");
    expect(message.split("\n")).toHaveLength(5); // the header and exactly the four problems
  });

  test("qwen3 without its q_norm: the tensor and the config field that wants it are named", () => {
    const dir = fresh("qwen3-no-qnorm");
    const model = tinyModel(360, { overrides: { model_type: "qwen3", head_dim: 8 } });
    saveCheckpoint(dir, model, tinyTokenizer());
    const weights = Object.fromEntries(namedParameters(model));
    delete weights["model.layers.0.self_attn.q_norm.weight"];
    rmSync(join(dir, "model.safetensors"));
    mx.saveSafetensors(join(dir, "model.safetensors"), weights, { format: "pt" });
    expect(() => loadModel(dir)).toThrow(
      `${join(dir, "model.safetensors")} does not match ${join(dir, "config.json")}:\n  missing tensor model.layers.0.self_attn.q_norm.weight (config.json: model_type "qwen3"; q_norm and k_norm are qwen3's)`,
    );
  });

  test("a head_dim that does not match the projections: each is named with the fields that shape it", () => {
    const dir = fresh("head-dim");
    saveCheckpoint(dir, tinyModel(360, { overrides: { model_type: "qwen3", head_dim: 16 } }), tinyTokenizer());
    const hf = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...hf, head_dim: 8 }));
    let message = "";
    try {
      loadModel(dir);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("model.layers.0.self_attn.q_proj.weight: shape [64,32] in the file, [32,32] from config.json (config.json: num_attention_heads 4 × head_dim 8, hidden_size 32)");
    expect(message).toContain("model.layers.1.self_attn.k_proj.weight: shape [32,32] in the file, [16,32] from config.json (config.json: num_key_value_heads 2 × head_dim 8, hidden_size 32)");
    expect(message).toContain("model.layers.0.self_attn.q_norm.weight: shape [16] in the file, [8] from config.json");
  });

  test("an unused lm_head copy in a tied checkpoint and rotary inv_freq buffers are ignored", () => {
    const dir = withWeights((w) => {
      w["lm_head.weight"] = w["model.embed_tokens.weight"];
      w["model.layers.0.self_attn.rotary_emb.inv_freq"] = mx.ones([4]);
    });
    expect(() => loadModel(dir)).not.toThrow();
  });

  test.each([
    ["float16", mx.float16],
    ["bfloat16 (as Qwen3-0.6B-Base is published)", mx.bfloat16],
  ] as const)("%s weights load as float32, with their values", (_name, dtype) => {
    let saved: Record<string, mx.array> = {};
    const dir = withWeights((w) => {
      for (const k of Object.keys(w)) w[k] = w[k].astype(dtype);
      saved = { ...w };
    });
    const { model } = loadModel(dir);
    const params = namedParameters(model);
    expect(params.every(([, v]) => v.dtype === mx.float32)).toBe(true);
    for (const [name, v] of params) expect(mx.arrayEqual(v, saved[name]!.astype(mx.float32)).item()).toBe(true);
  });

  test("a missing directory, config.json or tokenizer.json is named", async () => {
    expect(() => loadModel(join(ROOT, "nope"))).toThrow(/nope does not exist/);
    const dir = fresh("partial");
    saveCheckpoint(dir, tinyModel(360), tinyTokenizer());
    rmSync(join(dir, "tokenizer.json"));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/tokenizer\.json is missing/);
    rmSync(join(dir, "config.json"));
    expect(() => loadModel(dir)).toThrow(/config\.json is missing/);
  });

  test("a tokenizer with more ids than vocab_size is refused", async () => {
    const dir = fresh("small-vocab");
    saveCheckpoint(dir, tinyModel(300), tinyTokenizer());
    await expect(loadCheckpoint(dir)).rejects.toThrow(/tokenizer has 360 ids but config.json vocab_size is 300/);
  });
});

describe("config errors name the key and the value", () => {
  test.each([
    ["unsupported model_type", { model_type: "gpt2" }, /model_type "gpt2" is not supported/],
    ["rope_scaling of an unsupported type", { rope_scaling: { type: "dynamic", factor: 2 } }, /rope_scaling\.type "dynamic" is not supported; supported: default, linear, llama3/],
    ["rope_parameters of an unsupported type", { rope_parameters: { rope_type: "yarn", rope_theta: 1e6, factor: 4 } }, /rope_parameters\.rope_type "yarn" is not supported; supported: default, linear, llama3/],
    ["llama3 scaling without low_freq_factor", { rope_parameters: { rope_type: "llama3", rope_theta: 5e5, factor: 8, high_freq_factor: 4 } }, /rope_parameters\.low_freq_factor must be a positive number for rope_type "llama3", got undefined/],
    ["llama3 scaling with high <= low", { rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 4, high_freq_factor: 1 } }, /rope_scaling\.high_freq_factor \(1\) must be greater than rope_scaling\.low_freq_factor \(4\)/],
    ["partial rotary embeddings", { partial_rotary_factor: 0.5 }, /partial_rotary_factor=0\.5 is not supported/],
    ["RoPE per layer type with sliding layers", { rope_parameters: { full_attention: { rope_theta: 1e4 }, sliding_attention: { rope_theta: 1e4 } } }, /rope_parameters\.sliding_attention is not supported/],
    ["qwen3 sliding window switched on", { model_type: "qwen3", sliding_window: 64, use_sliding_window: true }, /sliding_window=64 is not supported/],
    ["mistral's default window (4096) shorter than the context", { model_type: "mistral", max_position_embeddings: 8192 }, /sliding_window=4096 is not supported/],
    ["attention dropout", { attention_dropout: 0.1 }, /attention_dropout=0\.1 is not supported/],
    ["a quantized checkpoint", { quantization_config: { bits: 4 } }, /quantization_config=\{"bits":4\} is not supported/],
    ["a non-boolean tie_word_embeddings", { tie_word_embeddings: "yes" }, /tie_word_embeddings must be true or false, got "yes"/],
    ["sliding window shorter than the context", { sliding_window: 64 }, /sliding_window=64 is not supported/],
    ["qwen2 sliding window switched on", { model_type: "qwen2", sliding_window: 64, use_sliding_window: true }, /sliding_window=64/],
    ["heads not divisible by kv heads", { num_key_value_heads: 3 }, /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/],
    ["hidden not divisible by heads", { hidden_size: 30 }, /hidden_size \(30\) must be a multiple of num_attention_heads \(4\)/],
    ["odd head_dim", { head_dim: 7 }, /head_dim must be even for rotary embeddings, got 7/],
    ["non-integer vocab", { vocab_size: 12.5 }, /vocab_size must be a positive integer, got 12.5/],
    ["missing hidden_size", { hidden_size: undefined }, /hidden_size must be a positive integer, got undefined/],
    ["activation", { hidden_act: "gelu" }, /hidden_act "gelu" is not supported/],
  ])("%s", (_name, patch, pattern) => {
    const json = { ...BASE_HF, ...patch };
    expect(() => configFromHF(json, "x/config.json")).toThrow(ConfigError);
    expect(() => configFromHF(json, "x/config.json")).toThrow(pattern);
    expect(() => configFromHF(json, "x/config.json")).toThrow(/^x\/config\.json: /);
  });

  test.each([
    ["rope_scaling null (transformers writes it)", { rope_scaling: null }],
    ["rope_scaling of the default type", { rope_scaling: { rope_type: "default" } }],
    ["a sliding window as long as the context", { sliding_window: 128 }],
    ["qwen2's unused sliding window", { model_type: "qwen2", sliding_window: 32, use_sliding_window: false }],
    ["qwen3's unused sliding window", { model_type: "qwen3", sliding_window: 32, use_sliding_window: false, head_dim: 8 }],
  ])("accepted: %s", (_name, patch) => {
    expect(configFromHF({ ...BASE_HF, ...patch }).hiddenSize).toBe(32);
  });
});

describe("config fields that change the computation are read", () => {
  const parse = (patch: Record<string, unknown>) => configFromHF({ ...BASE_HF, ...patch });
  const llama3 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
  const llama3Scaling = { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 };

  test.each([
    ["transformers 5's rope_parameters (theta)", { rope_parameters: { rope_theta: 5e5, rope_type: "default" } }, { theta: 5e5, scaling: null }],
    ["the older top-level rope_theta", { rope_theta: 5e5, rope_scaling: null }, { theta: 5e5, scaling: null }],
    ["no RoPE keys: theta 10000", {}, { theta: 10000, scaling: null }],
    ["llama3 in rope_parameters", { rope_parameters: { rope_theta: 5e5, rope_type: "llama3", ...llama3 } }, { theta: 5e5, scaling: llama3Scaling }],
    ["llama3 in rope_scaling, theta beside it", { rope_theta: 5e5, rope_scaling: { rope_type: "llama3", ...llama3 } }, { theta: 5e5, scaling: llama3Scaling }],
    ["llama3 without original_max_position_embeddings: the context", { rope_parameters: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, { theta: 10000, scaling: { ...llama3Scaling, originalMaxPositionEmbeddings: 128 } }],
    ["llama3: a top-level original_max_position_embeddings is not read (as in transformers 5)", { original_max_position_embeddings: 32, rope_parameters: { rope_type: "llama3", rope_theta: 5e5, factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, { theta: 5e5, scaling: { ...llama3Scaling, originalMaxPositionEmbeddings: 128 } }],
    ["linear, legacy `type` key", { rope_scaling: { type: "linear", factor: 2 } }, { theta: 10000, scaling: { type: "linear", factor: 2 } }],
    ["linear in rope_parameters", { rope_parameters: { rope_type: "linear", factor: 2, rope_theta: 1e4 } }, { theta: 10000, scaling: { type: "linear", factor: 2 } }],
    ["rope_scaling wins over rope_parameters (as in transformers)", { rope_theta: 3e4, rope_scaling: { type: "linear", factor: 2 }, rope_parameters: { rope_theta: 1e6 } }, { theta: 3e4, scaling: { type: "linear", factor: 2 } }],
    ["nested per layer type, all full attention", { rope_parameters: { full_attention: { rope_theta: 1e6, rope_type: "default" } } }, { theta: 1e6, scaling: null }],
  ])("RoPE: %s", (_name, patch, rope) => {
    expect(parse(patch).rope).toEqual(rope as any);
  });

  test.each([
    // transformers' class defaults for keys a config.json leaves out
    ["llama: one key/value head per query head, context 2048", { model_type: "llama", num_key_value_heads: undefined, max_position_embeddings: undefined }, 4, 2048],
    ["mistral: 8 key/value heads, context 131072 (window 4096 then refused, so given as null)", { model_type: "mistral", num_attention_heads: 8, head_dim: 4, num_key_value_heads: undefined, max_position_embeddings: undefined, sliding_window: null }, 8, 131072],
    ["qwen3: 32 key/value heads, context 32768", { model_type: "qwen3", num_attention_heads: 32, head_dim: 8, num_key_value_heads: undefined, max_position_embeddings: undefined }, 32, 32768],
    ["num_key_value_heads null: one per query head", { model_type: "qwen2", num_key_value_heads: null }, 4, 128],
  ] as const)("defaults: %s", (_name, patch, kvHeads, context) => {
    const c = parse(patch);
    expect([c.numKeyValueHeads, c.maxPositionEmbeddings]).toEqual([kvHeads, context]);
  });

  test.each([
    // [patch, q/k/v bias, o_proj bias, MLP bias, q/k norm, head_dim]
    ["llama", {}, false, false, false, false, 8],
    ["llama attention_bias: q/k/v and o", { attention_bias: true }, true, true, false, false, 8],
    ["llama mlp_bias", { mlp_bias: true }, false, false, true, false, 8],
    ["qwen2: q/k/v bias always", { model_type: "qwen2" }, true, false, false, false, 8],
    ["qwen2 ignores attention_bias and mlp_bias (as transformers)", { model_type: "qwen2", attention_bias: false, mlp_bias: true }, true, false, false, false, 8],
    ["mistral: no biases", { model_type: "mistral", sliding_window: null, attention_bias: true }, false, false, false, false, 8],
    ["qwen3: q/k norm, head_dim 128 when absent", { model_type: "qwen3" }, false, false, false, true, 128],
    ["qwen3 with head_dim", { model_type: "qwen3", head_dim: 16 }, false, false, false, true, 16],
    ["qwen3 attention_bias: q/k/v and o", { model_type: "qwen3", head_dim: 16, attention_bias: true }, true, true, false, true, 16],
  ] as const)("%s", (_name, patch, qkv, o, mlp, qkNorm, headDim) => {
    const c = parse(patch);
    expect([c.attentionBias, c.outputBias, c.mlpBias, c.qkNorm, c.headDim]).toEqual([qkv, o, mlp, qkNorm, headDim]);
  });
});

describe("checkpoint files", () => {
  test("tokenizer_config.json holds the Jinja chat template and the special tokens", () => {
    const dir = fresh("tokcfg");
    saveCheckpoint(dir, tinyModel(360), tinyTokenizer());
    const cfg = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    expect(cfg.chat_template).toBe(CHAT_TEMPLATE_JINJA);
    expect(cfg.eos_token).toBe(SPECIAL_TOKENS.end);
    expect(cfg.pad_token).toBe(SPECIAL_TOKENS.pad);
    // The course's tokens this tokenizer has, in the course's order (it has no tool tokens)
    expect(cfg.additional_special_tokens).toEqual(["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"]);
    expect(cfg.model_max_length).toBe(128);
    const gen = JSON.parse(readFileSync(join(dir, "generation_config.json"), "utf8"));
    expect(gen.eos_token_id).toBe(4);
    expect(gen.pad_token_id).toBe(0);
    const hf = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(hf.architectures).toEqual(["LlamaForCausalLM"]);
    expect(hf.eos_token_id).toBe(4);
  });

  test("the bundled base's tokenizer_config.json is the one a checkpoint save writes, byte for byte (one chat template)", async () => {
    const base = join(import.meta.dir, "../models/gutenberg-base");
    const maxLength = JSON.parse(readFileSync(join(base, "config.json"), "utf8")).max_position_embeddings;
    const written = JSON.stringify(tokenizerConfig(await Tokenizer.load(base), maxLength), null, 2) + "\n";
    expect(readFileSync(join(base, "tokenizer_config.json"), "utf8")).toBe(written);
    const saved = fresh("tokcfg-base");
    saveCheckpoint(saved, tinyModel(360), tinyTokenizer());
    expect(JSON.parse(readFileSync(join(saved, "tokenizer_config.json"), "utf8")).chat_template).toBe(JSON.parse(written).chat_template);
  });

  test("hashCheckpoint is stable and changes when one weight changes", () => {
    const model = tinyModel(360, { seed: 5 });
    const a = fresh("hash");
    const b = fresh("hash");
    saveCheckpoint(a, model, tinyTokenizer());
    saveCheckpoint(b, model, tinyTokenizer());
    expect(hashCheckpoint(a)).toBe(hashCheckpoint(b));
    const norm = model.model.norm;
    norm.weight = mx.add(norm.weight, mx.array(1e-3, mx.float32));
    const c = fresh("hash");
    saveCheckpoint(c, model, tinyTokenizer());
    expect(hashCheckpoint(c)).not.toBe(hashCheckpoint(a));
  });

  test("hashCheckpoint streams the files and gives the digest of their whole contents (as recorded by earlier runs)", () => {
    const dir = fresh("hash-stream");
    mkdirSync(dir);
    const weights = new Uint8Array(9 * 2 ** 20 + 7); // over two 4 MiB read chunks and a ragged tail
    for (let i = 0; i < weights.length; i++) weights[i] = (i * 2654435761) >>> 24;
    const files: [string, Uint8Array | string][] = [["config.json", '{"model_type":"llama"}'], ["model.safetensors", weights], ["tokenizer.json", "{}"]];
    for (const [name, data] of files) writeFileSync(join(dir, name), data);
    const whole = createHash("sha256");
    for (const [name, data] of files) whole.update(name).update(data);
    expect(hashCheckpoint(dir)).toBe(whole.digest("hex"));
  });

  test("writing sft-mlx.json only when meta is given", () => {
    const dir = fresh("nometa");
    saveCheckpoint(dir, tinyModel(360), tinyTokenizer());
    expect(existsSync(join(dir, "sft-mlx.json"))).toBe(false);
  });
});
