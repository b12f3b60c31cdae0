// `bun scripts/export.ts --format course`: the written folder is read here the way the course's
// loader reads it (g2c/artifacts/baselm.py `huggingface_model_artifact_exists` and
// `load_huggingface_model_artifact`, g2c/artifacts/models.py `model_artifact_exists`, and the
// Module 13 notebook's pad/end lookups), field by field, with the course's names. No Python: what
// transformers would read is checked in the files it reads.
//   bun test test/course-export.test.ts
import { afterAll, describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel, namedParameters, saveCheckpoint } from "../lib/model/checkpoint.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { writeCourseExport } from "../lib/export/course.ts";
import { findFormat } from "../lib/export/formats.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { createRunDir } from "../lib/run/folder.ts";
import { readSummary, writeSummary, type RunSummary } from "../lib/run/summary.ts";
import { resolveRunConfig } from "../lib/sft/run-config.ts";
import { executeRun, prepareRun } from "../lib/sft/run.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

/** g2c.tokenizer.COURSE_SPECIAL_TOKENS, as the course defines it. */
const COURSE_SPECIAL_TOKENS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool_call|>", "<|tool_result|>", "<|end|>", "<|pad|>"];
const HUGGINGFACE_CAUSAL_LM_KIND = "huggingface_causal_lm";

const tmp = mkdtempSync(join(tmpdir(), "course-export-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));

// One real (tiny) run: its config.json and summary.json are what the export reads.
const base = join(tmp, "gutenberg-base");
saveCheckpoint(base, tinyModel(tinyTokenizer().vocabSize, { seed: 3 }), tinyTokenizer());
const data = join(tmp, "train.json");
writeFileSync(data, JSON.stringify([{ user: "What does the fox do?", assistant: "It jumps." }, { user: "Where does the dog sleep?", assistant: "In the sun." }]));
const cfg = resolveRunConfig({}, { base, data, evalData: data, out: join(tmp, "runs"), mixProse: 0, steps: 2, evalEvery: 1, batchSize: 2, maxSeqLen: 64, probeTokens: 0 });
const realRun = createRunDir(cfg.out, "real");
if ((await executeRun(await prepareRun(cfg), realRun)) !== 0) throw new Error("the tiny run failed");
const realSummary = readSummary(realRun)!;

/** A copy of the real run, with `summary` patched. */
function runCopy(name: string, summary: Partial<RunSummary> = {}): string {
  const dir = join(tmp, name);
  cpSync(realRun, dir, { recursive: true });
  writeSummary(dir, { ...realSummary, ...summary });
  return dir;
}

/** The course's `_artifact_path_or_model_id`: the artifact-relative path when it exists, else the string (a hub id). */
function artifactPathOrModelId(root: string, config: Record<string, unknown>, key: string): string | null {
  const value = config[key];
  if (typeof value !== "string" || !value) return null;
  return existsSync(join(root, value)) ? join(root, value) : value;
}

describe("--format course", () => {
  const run = runCopy("run-a");
  const root = join(tmp, "artifacts", "models", "BaseLM-SFT");
  let added: string[] = [];
  test("writes the folder", async () => {
    ({ added } = await writeCourseExport({ runDir: run, out: root, baseArtifact: "BaseLM" }));
    expect(added).toEqual(["<|tool_call|>", "<|tool_result|>"]); // the bundled tokenizer has no tool tokens
    expect(readdirSync(root).sort()).toEqual(["config.json", "hf_model", "hf_tokenizer", "manifest.json"]);
    expect(readdirSync(join(tmp, "artifacts", "models"))).toEqual(["BaseLM-SFT"]); // no temporary folder left
  });

  test("huggingface_model_artifact_exists: manifest.json and config.json exist, manifest kind is huggingface_causal_lm", () => {
    expect(existsSync(join(root, "manifest.json")) && existsSync(join(root, "config.json"))).toBe(true);
    expect(json(join(root, "manifest.json")).kind).toBe(HUGGINGFACE_CAUSAL_LM_KIND);
    expect(existsSync(join(root, "model.pt"))).toBe(false); // models.py then takes the Hugging Face path
  });

  test("the manifest has save_huggingface_model_artifact's fields", () => {
    expect(json(join(root, "manifest.json"))).toEqual({
      name: "BaseLM-SFT",
      display_name: "BaseLM-SFT",
      kind: HUGGINGFACE_CAUSAL_LM_KIND,
      role: "BaseLM-finetuned",
      module: "module-13",
      source: "SFT with sft-mlx (run run-a) from BaseLM",
      base_artifact: "BaseLM",
      tokenizer_artifact: null,
      steps_completed: 2,
      final_train_loss: realSummary.finalTrainLoss,
      final_val_loss: realSummary.finalEvalLoss,
      notes: expect.stringContaining("Added the course's special tokens <|tool_call|> <|tool_result|>"),
    });
  });

  test("config.json: model_path and tokenizer_path resolve inside the artifact; float32, no remote code", () => {
    const config = json(join(root, "config.json"));
    expect(config).toEqual({ kind: HUGGINGFACE_CAUSAL_LM_KIND, model_path: "hf_model", tokenizer_path: "hf_tokenizer", torch_dtype: "float32", trust_remote_code: false, base_artifact: "BaseLM" });
    expect(artifactPathOrModelId(root, config, "model_path")).toBe(join(root, "hf_model"));
    expect(artifactPathOrModelId(root, config, "tokenizer_path")).toBe(join(root, "hf_tokenizer"));
    expect(config.revision ?? null).toBeNull(); // load_kwargs drops a None revision; local_files_only needs no cache_dir
  });

  test("AutoModelForCausalLM.from_pretrained(hf_model): config and weights load, with the run's weights", () => {
    const hf = json(join(root, "hf_model", "config.json"));
    expect(hf.architectures).toEqual(["LlamaForCausalLM"]);
    expect(existsSync(join(root, "hf_model", "model.safetensors"))).toBe(true);
    const { model } = loadModel(join(root, "hf_model"));
    const original = new Map(namedParameters(loadModel(join(run, "checkpoint")).model));
    for (const [name, value] of namedParameters(model)) {
      const old = original.get(name)!;
      const same = name === "model.embed_tokens.weight" ? value.index(mx.Slice(0, old.shape[0])) : value; // two rows added
      expect({ name, equal: mx.arrayEqual(same, old).item() }).toEqual({ name, equal: true });
    }
  });

  test("AutoTokenizer.from_pretrained(hf_tokenizer) and special_to_id: every COURSE_SPECIAL_TOKEN is one id, none past the embedding", async () => {
    const tokCfg = json(join(root, "hf_tokenizer", "tokenizer_config.json"));
    expect(tokCfg.tokenizer_class).toBe("PreTrainedTokenizerFast");
    expect(tokCfg.additional_special_tokens).toEqual(COURSE_SPECIAL_TOKENS);
    const tokenizer = await Tokenizer.load(join(root, "hf_tokenizer"));
    const ids = COURSE_SPECIAL_TOKENS.map((t) => tokenizer.tokenId(t)); // convert_tokens_to_ids(token) != unk_token_id
    expect(new Set(ids).size).toBe(COURSE_SPECIAL_TOKENS.length);
    // `len(hf_tokenizer) > num_embeddings` would make the loader resize with random rows: it must not
    const rows = json(join(root, "hf_model", "config.json")).vocab_size;
    expect(tokenizer.vocabSize).toBeLessThanOrEqual(rows);
    expect(Math.max(...ids)).toBeLessThan(rows);
    // the notebook: pad_id = special_to_id.get("<|pad|>", ...), end_id = special_to_id.get(template.END, ...)
    expect(tokCfg.pad_token).toBe("<|pad|>"); // set: the loader's `pad_token = eos_token` fallback is not taken
    expect(tokCfg.eos_token).toBe("<|end|>");
    expect(json(join(root, "hf_model", "generation_config.json")).eos_token_id).toBe(tokenizer.tokenId("<|end|>"));
    expect(json(join(root, "hf_tokenizer", "special_tokens_map.json"))).toEqual({ eos_token: "<|end|>", pad_token: "<|pad|>", additional_special_tokens: COURSE_SPECIAL_TOKENS });
  });

  test("a checkpoint that has every course token (a Qwen3 run with --add-chat-tokens) is written without adding rows", async () => {
    const dir = runCopy("run-full", { status: "stopped-early" });
    const full = tinyTokenizer().withAddedTokens(COURSE_SPECIAL_TOKENS).tokenizer;
    saveCheckpoint(join(dir, "checkpoint"), tinyModel(384, { seed: 4 }), full, { replace: true });
    const out = join(tmp, "artifacts", "models", "qwen-SFT");
    const r = await findFormat("course").run({ run: dir, out }, "course");
    expect(r).toBe(out);
    expect(json(join(out, "hf_model", "config.json")).vocab_size).toBe(384);
    expect(json(join(out, "manifest.json"))).toMatchObject({ base_artifact: "gutenberg-base", steps_completed: 2 }); // the base folder's name by default
  });

  test.each([
    ["an existing --out", () => ({ runDir: run, out: root }), /already exists: an export never overwrites/],
    ["a folder without a checkpoint", () => ({ runDir: tmp, out: join(tmp, "x") }), /no checkpoint\/ there; give a run folder made by bun scripts\/train.ts/],
    ["an interrupted run", () => ({ runDir: runCopy("run-int", { status: "interrupted" }), out: join(tmp, "y") }), /status is `interrupted`, not a finished run/],
  ])("refuses %s", async (_name, opts, message) => {
    await expect(writeCourseExport(opts())).rejects.toThrow(message);
  });

  test("the format table names what it needs", async () => {
    expect(() => findFormat("onnx")).toThrow(/--format `onnx` is not known; known: trl, mlx-lm, course/);
    await expect(findFormat("course").run({ run }, "course")).rejects.toThrow(/needs --out/);
  });
});
