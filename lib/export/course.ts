// A run's fine-tuned checkpoint in the course's artifact layout, so the course's later modules (13B
// LoRA, 14 DPO, 15 evaluation) load it as they load their own BaseLM-SFT: the layout that g2c's
// `save_huggingface_model_artifact` writes and `load_huggingface_model_artifact` reads.
//   <out>/manifest.json   {"kind": "huggingface_causal_lm", "role": "BaseLM-finetuned", ...}
//   <out>/config.json     {"kind": ..., "model_path": "hf_model", "tokenizer_path": "hf_tokenizer", ...}
//   <out>/hf_model/       config.json, model.safetensors, generation_config.json
//   <out>/hf_tokenizer/   tokenizer.json, tokenizer_config.json, special_tokens_map.json
// The course's loader looks every one of its special tokens up by string, so tokens the checkpoint
// lacks (the bundled base has no tool tokens) are added first, their rows at the mean embedding.
// A LoRA run (adapter/, no checkpoint/) is exported merged into its base, as scripts/fuse.ts merges
// it: the course's loader reads a full model, not an adapter.
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { UsageError } from "../util/cli.ts";
import { FileError, writeJSON } from "../io/files.ts";
import { FINISHED, readSummary } from "../run/summary.ts";
import { readConfigFile } from "../sft/config-file.ts";
import { CheckpointError, loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { AdapterError, loadForDecoding } from "../model/adapter.ts";
import { addChatTokens } from "../model/vocab.ts";
import { COURSE_TOKENS, SPECIAL_TOKENS } from "../format/tokens.ts";

/** The course's `HUGGINGFACE_CAUSAL_LM_KIND`: the manifest "kind" its loader checks. */
export const COURSE_KIND = "huggingface_causal_lm";
export const MODEL_DIR = "hf_model"; // the course's model_path
export const TOKENIZER_DIR = "hf_tokenizer"; // the course's tokenizer_path
const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"];

export interface CourseExportOptions {
  runDir: string; // a finished run folder: checkpoint/ (or a LoRA run's adapter/), config.json, summary.json
  out: string; // the artifact folder to create, e.g. <course repo>/artifacts/models/BaseLM-SFT
  baseArtifact?: string; // the manifest's base_artifact (default: the base folder's name)
}

export interface CourseExport {
  dir: string;
  added: string[]; // course tokens the checkpoint lacked, added before writing
}

/** Write the run's checkpoint as a course artifact. Refuses an existing `out`; the folder appears
 * whole (built in a temporary sibling, then renamed). */
export async function writeCourseExport({ runDir, out, baseArtifact }: CourseExportOptions): Promise<CourseExport> {
  runDir = resolve(runDir);
  out = resolve(out);
  const adapterDir = join(runDir, "adapter");
  const lora = !existsSync(join(runDir, "checkpoint")) && existsSync(adapterDir);
  const ckptDir = lora ? adapterDir : join(runDir, "checkpoint");
  for (const [path, what] of [[ckptDir, "checkpoint/"], [join(runDir, "config.json"), "config.json"], [join(runDir, "summary.json"), "summary.json"]] as const) {
    if (!existsSync(path)) throw new UsageError(`--run ${runDir}: no ${what} there; give a run folder made by bun scripts/train.ts (runs/<time>-<name>)`);
  }
  if (existsSync(out)) throw new UsageError(`--out ${out} already exists: an export never overwrites; pick a new folder (the course loads artifacts/models/<name>/)`);
  const runConfig = readConfigFile(runDir); // UsageError naming the file if it is damaged
  let summary;
  try {
    summary = readSummary(runDir);
  } catch (e) {
    if (e instanceof FileError) throw new UsageError(`--run ${runDir}: ${e.message}`);
    throw e;
  }
  if (!summary || !FINISHED.includes(summary.status)) {
    throw new UsageError(`--run ${runDir}: its status is \`${summary?.status ?? "unknown (no summary.json)"}\`, not a finished run; finish it (bun scripts/train.ts --resume) or export another run`);
  }

  let ckpt;
  try {
    ckpt = lora ? await loadForDecoding(adapterDir) : await loadCheckpoint(ckptDir); // the adapter merged into its base
  } catch (e) {
    if (e instanceof CheckpointError || e instanceof AdapterError) throw new UsageError(`--run ${runDir}: ${e.message}`);
    throw e;
  }
  const { model, tokenizer, added } = addChatTokens(ckpt.model, ckpt.tokenizer);

  const name = basename(out);
  mkdirSync(dirname(out), { recursive: true });
  const tmp = join(dirname(out), `.${name}.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmp);
  try {
    // The model folder as transformers' save_pretrained leaves it; the tokenizer files move to their own folder.
    saveCheckpoint(join(tmp, MODEL_DIR), model, tokenizer, { meta: { ...ckpt.meta, courseExport: { run: runDir, addedTokens: added, ...(lora ? { mergedAdapter: adapterDir } : {}) } } });
    mkdirSync(join(tmp, TOKENIZER_DIR));
    for (const file of TOKENIZER_FILES) renameSync(join(tmp, MODEL_DIR, file), join(tmp, TOKENIZER_DIR, file));
    writeJSON(join(tmp, TOKENIZER_DIR, "special_tokens_map.json"), {
      eos_token: SPECIAL_TOKENS.end,
      pad_token: SPECIAL_TOKENS.pad,
      additional_special_tokens: COURSE_TOKENS,
    });
    const base = runConfig.base;
    const baseName = baseArtifact ?? basename(base);
    // The fields g2c's save_huggingface_model_artifact writes, with the same names and values.
    writeJSON(join(tmp, "config.json"), {
      kind: COURSE_KIND,
      model_path: MODEL_DIR,
      tokenizer_path: TOKENIZER_DIR,
      torch_dtype: "float32",
      trust_remote_code: false,
      base_artifact: baseName,
    });
    const finite = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : null);
    writeJSON(join(tmp, "manifest.json"), {
      name,
      display_name: name,
      kind: COURSE_KIND,
      role: "BaseLM-finetuned",
      module: "module-13",
      source: `SFT with sft-mlx (run ${basename(runDir)}) from ${baseName}`,
      base_artifact: baseName,
      tokenizer_artifact: null,
      steps_completed: summary.step,
      final_train_loss: finite(summary.finalTrainLoss),
      final_val_loss: finite(summary.finalEvalLoss),
      notes: `Instruction-tuned with sft-mlx: base ${base}, run ${runDir}.` + (lora ? " A LoRA adapter, merged into the base." : "") +
        (added.length ? ` Added the course's special tokens ${added.join(" ")} (rows at the mean embedding).` : ""),
    });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: out, added };
}
