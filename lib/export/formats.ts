// The export formats, one row each: `bun scripts/export.ts --format <name>` looks its name up here.
// A format gets the parsed options and returns the folder it wrote (always a new one).
import { UsageError } from "../util/cli.ts";
import { writeCourseExport } from "./course.ts";

export interface ExportOptions {
  run?: string; // a run folder (runs/<dir>)
  out?: string; // the new folder to write
  baseArtifact?: string; // course: the manifest's base_artifact
}

export interface ExportFormat {
  description: string;
  run(opts: ExportOptions, format: string): Promise<string>; // the folder written
}

export const EXPORT_FORMATS: Record<string, ExportFormat> = {
  course: {
    description: "the course's artifact layout (manifest.json, config.json, hf_model/, hf_tokenizer/) for its Modules 13B-15",
    async run({ run, out, baseArtifact }) {
      if (!run) throw new UsageError("--format course needs --run runs/<dir> (a finished SFT run)");
      if (!out) throw new UsageError("--format course needs --out <course repo>/artifacts/models/<name> (e.g. BaseLM-SFT), a folder that does not exist yet");
      return (await writeCourseExport({ runDir: run, out, baseArtifact })).dir;
    },
  },
};

export function findFormat(name: string | undefined): ExportFormat {
  const known = Object.keys(EXPORT_FORMATS).join(", ");
  if (!name) throw new UsageError(`--format is required: one of ${known}`);
  const format = EXPORT_FORMATS[name];
  if (!format) throw new UsageError(`--format \`${name}\` is not known; known: ${known}`);
  return format;
}
