// Default locations, relative to the project root (where the scripts are run from).
import { resolve } from "node:path";

export const PROJECT_ROOT = resolve(import.meta.dir, "../..");
const here = (p: string) => resolve(PROJECT_ROOT, p);

export const DEFAULT_BASE = here("models/gutenberg-base"); // the bundled pretrained base model
export const DEFAULT_TRAIN_DATA = here("data/sft/instructions.json");
export const DEFAULT_EVAL_DATA = here("data/sft/eval.json");
export const DEFAULT_PROBES = here("data/sft/probes.json");
export const DEFAULT_NOISE = here("data/sft/noise.json");
export const RETENTION_ITEMS = here("data/probes/retention.json");
/** Prose from the books held out of pretraining: the forgetting probe's plain-text loss. */
export const HELDOUT_PROSE = here("data/probes/heldout-prose.txt");
/** The bundled base's own pretraining text, sampled (data/prose/README.md): what replay mixes in for it. */
export const DEFAULT_PROSE_SAMPLE = here("data/prose/gutenberg-sample.txt");
export const RUNS_DIR = here("runs");
