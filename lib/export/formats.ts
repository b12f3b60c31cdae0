// The export formats, one row each: `bun scripts/export.ts --format <name>` looks its name up here.
// A format gets the resolved options and returns the folder it wrote; where the folder goes by
// default (inside the run folder, `export-<name>/`) and the never-overwrite rule are shared.
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import { UsageError } from "../util/cli.ts";
import { loadExportJob, resolveExportConfig, type ExportSource } from "./job.ts";
import { writeTrlExport } from "./trl.ts";
import { writeMlxLmExport } from "./mlx-lm.ts";
import { writeCourseExport } from "./course.ts";

export interface ExportOptions extends ExportSource {
  out?: string; // the new folder; default <run>/export-<format>/ (with --run), else required
  baseArtifact?: string; // course: the manifest's base_artifact
}

export interface ExportFormat {
  description: string;
  run(opts: ExportOptions, format: string): Promise<string>; // the folder written
}

/** A format that hands the run's SFT job to another engine. */
const jobFormat = (description: string, write: typeof writeTrlExport): ExportFormat => ({
  description,
  async run(opts, format) {
    const { cfg, runDir } = resolveExportConfig(opts);
    const out = exportDir(opts, format, runDir);
    if (existsSync(out)) throw new UsageError(`${out} already exists: exports are never overwritten; remove it or pass --out <new folder>`); // before any loading
    const job = await loadExportJob(cfg, runDir);
    const source = runDir ? `the run ${shown(runDir)}` : opts.config ? `the config ${shown(opts.config)}` : "the default job (bun scripts/train.ts)";
    return write(job, out, source);
  },
});

export const EXPORT_FORMATS: Record<string, ExportFormat> = {
  trl: jobFormat("Hugging Face TRL SFTTrainer + Accelerate (multi-GPU), the same loss and batches", writeTrlExport),
  "mlx-lm": jobFormat("mlx-lm (mlx_lm.lora, full fine-tuning) chat JSONL and YAML config", writeMlxLmExport),
  course: {
    description: "the course's artifact layout (manifest.json, config.json, hf_model/, hf_tokenizer/) for its Modules 13B-15",
    async run({ run, out, baseArtifact }) {
      if (!run) throw new UsageError("--format course needs --run runs/<dir> (a finished SFT run)");
      if (!out) throw new UsageError("--format course needs --out <course repo>/artifacts/models/<name> (e.g. BaseLM-SFT), a folder that does not exist yet");
      return (await writeCourseExport({ runDir: run, out, baseArtifact })).dir;
    },
  },
};

/** The folder to write: --out, or export-<format>/ inside the run folder. */
export function exportDir(opts: ExportOptions, format: string, runDir?: string): string {
  if (opts.out) return opts.out;
  if (runDir) return join(runDir, `export-${format}`);
  throw new UsageError(`--out <new folder> is needed without --run (with --run the export goes to <run>/export-${format}/)`);
}

export function findFormat(name: string | undefined): ExportFormat {
  const known = Object.keys(EXPORT_FORMATS).join(", ");
  if (!name) throw new UsageError(`--format is required: one of ${known}`);
  const format = EXPORT_FORMATS[name];
  if (!format) throw new UsageError(`--format \`${name}\` is not known; known: ${known}`);
  return format;
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}
