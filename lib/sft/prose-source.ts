// Which plain text a run replays (--mix-prose): the user's --prose-data; else, for the bundled base,
// the sample of its own pretraining text shipped in data/prose/ (works on a fresh clone without
// ../shared); else the corpus spans a base made by scripts/pretrain.ts records in its sft-mlx.json,
// when those files are here. A base whose own text is not at hand (a downloaded Qwen3 records none)
// replays that same bundled sample in its place: public-domain English books, tokenized with the
// base's tokenizer, which keeps the plain command working; the run warns that this is not the base's
// own text, says how to change it, and config.json records it (provenance.replay).
import { createHash } from "node:crypto";
import { consola } from "consola";
import { existsSync, readFileSync } from "node:fs";
import { relative } from "node:path";
import { parseList, parseNumber, UsageError } from "../util/cli.ts";
import { DEFAULT_BASE, DEFAULT_PROSE_SAMPLE, PROJECT_ROOT } from "../util/paths.ts";
import { parseSpan } from "../tokenizer/sample-text.ts";
import { absoluteSpan, PROSE_DATA_AUTO } from "./run-config.ts";
import type { TextTokenizer } from "../tokenizer/types.ts";
import { hashCheckpoint } from "../model/checkpoint.ts";
import { loadProseStream, MAX_MIX_PROSE, proseRowsPerBatch, ProseReplay } from "../data/replay.ts";
import { defaultSFTConfig } from "../train/config.ts";

const log = consola.withTag("train");

export interface ProseSource {
  specs: string[]; // files or byte ranges ("path:START-END"), absolute
  origin: "--prose-data" | "bundled sample" | "base's pretraining corpus" | "bundled sample, not the base's own text";
  /** Set when the bundled sample stands in for the base's own text: why, and how to choose other text. */
  note?: string;
}

/** The replay text for `base` (whose sft-mlx.json is `meta`), or null when nothing is mixed in. */
export function resolveProseSource(
  { mixProse, proseData, base, isBundledBase, meta }: { mixProse: number; proseData: string; base: string; isBundledBase: boolean; meta: Record<string, unknown> },
): ProseSource | null {
  const given = proseData === PROSE_DATA_AUTO ? [] : proseData.split(",").map((s) => s.trim()).filter(Boolean);
  if (mixProse === 0) {
    if (given.length) throw new UsageError("--prose-data is the text replayed by --mix-prose, which is 0: add --mix-prose 0.25 (or drop --prose-data)");
    return null;
  }
  if (given.length) {
    const missing = given.find((s) => !existsSync(parseSpan(s).path));
    if (missing) throw new UsageError(`--prose-data \`${missing}\`: no such file; give plain-text files (or "file:START-END" byte ranges), comma-separated`);
    return { specs: given.map(absoluteSpan), origin: "--prose-data" };
  }
  if (isBundledBase) {
    if (!existsSync(DEFAULT_PROSE_SAMPLE)) throw new UsageError(`the bundled replay text ${DEFAULT_PROSE_SAMPLE} is missing: restore it (\`git checkout data/prose\`), pass --prose-data, or --mix-prose 0`);
    return { specs: [DEFAULT_PROSE_SAMPLE], origin: "bundled sample" };
  }
  const corpus = Array.isArray(meta.corpus) ? meta.corpus.filter((s): s is string => typeof s === "string") : [];
  if (corpus.length && corpus.every((s) => existsSync(parseSpan(s).path))) return { specs: corpus.map(absoluteSpan), origin: "base's pretraining corpus" };
  const why = corpus.length ? `its pretraining corpus (${corpus.join(", ")}) is not on this machine` : "it records no pretraining corpus";
  const fix = "pass --prose-data FILE[,FILE] (any plain text in the base's language, ideally like what it was trained on), or --mix-prose 0";
  const shownBase = base === DEFAULT_BASE ? "models/gutenberg-base" : base;
  if (!existsSync(DEFAULT_PROSE_SAMPLE)) throw new UsageError(`--mix-prose ${mixProse} replays plain text from the base's pretraining, but for --base ${shownBase} ${why}, and the bundled replay text ${DEFAULT_PROSE_SAMPLE} that stands in for it is missing: ${fix}`);
  return {
    specs: [DEFAULT_PROSE_SAMPLE],
    origin: "bundled sample, not the base's own text",
    note: `--mix-prose ${mixProse} replays plain text from the base's pretraining, but for --base ${shownBase} ${why}: ` +
      `replaying the bundled sample ${relative(PROJECT_ROOT, DEFAULT_PROSE_SAMPLE)} (public-domain English books) in its place; to choose, ${fix}`,
  };
}

/** The run's replay, ready for the trainer (null with --mix-prose 0): the text resolved as above,
 * read (at most MAX_PROSE_BYTES, evenly spread) and packed as the base was pretrained, with the
 * note (logged as a warning here) when the bundled sample stands in for the base's own text. Sets
 * `cfg.proseData` to what was used, so config.json says it. */
export async function prepareReplay(
  cfg: { mixProse: number; proseData: string; base: string; batchSize: number; seed: number },
  { baseHash, meta, tokenizer }: { baseHash: string; meta: Record<string, unknown>; tokenizer: TextTokenizer },
): Promise<{ replay: ProseReplay; note?: string } | null> {
  // A copy of the bundled base (same weights and tokenizer) is the bundled base.
  const isBundledBase = cfg.base === DEFAULT_BASE || (cfg.mixProse > 0 && cfg.proseData === PROSE_DATA_AUTO && existsSync(DEFAULT_BASE) && hashCheckpoint(DEFAULT_BASE) === baseHash);
  const source = resolveProseSource({ ...cfg, isBundledBase, meta });
  if (!source) return null;
  if (source.note) log.warn(source.note);
  let tokens: Int32Array;
  try {
    ({ tokens } = await loadProseStream(source.specs, tokenizer));
  } catch (e) {
    throw new UsageError(`replay text (${source.origin}): ${(e as Error).message}`);
  }
  cfg.proseData = source.specs.join(",");
  const shown = source.specs.map((s) => relative(process.cwd(), s) || s).join(", ");
  return { replay: new ProseReplay(tokens, proseRowsPerBatch(cfg.batchSize, cfg.mixProse), cfg.seed, `${source.origin} ${shown}`), note: source.note };
}

/** sha256 of the replay files (whole files, whatever byte ranges are used): `--resume` refuses text that changed. */
export function proseSha(proseData: string): string {
  const h = createHash("sha256");
  for (const spec of proseData.split(",").filter(Boolean)) {
    const { path } = parseSpan(spec);
    h.update(spec.slice(path.length)).update(readFileSync(path)); // the byte range and the contents, not where the clone is
  }
  return h.digest("hex");
}

/** The flags that mix replay windows into the batches the inspection scripts show or check
 * (scripts/inspect.ts --batch, scripts/selfcheck.ts), with train.ts's defaults. */
export const REPLAY_ARGS = {
  "batch-size": { type: "string", default: String(defaultSFTConfig().batchSize), description: "conversations per batch (as train.ts)" },
  seed: { type: "string", default: String(defaultSFTConfig().seed), description: "batch order and replay window seed (as train.ts)" },
  "mix-prose": { type: "string", default: String(defaultSFTConfig().mixProse), description: "share of each batch's rows that are replayed plain text (as train.ts; 0 = none)" },
  "prose-data": { type: "string", default: DEFAULT_PROSE_SAMPLE, description: "replay text: plain-text files or file:START-END ranges, comma-separated" },
} as const;

/** The replay REPLAY_ARGS describe (null for --mix-prose 0), read and packed as a run does. */
export async function replayFromArgs(args: { "batch-size": string; seed: string; "mix-prose": string; "prose-data": string }, tokenizer: TextTokenizer): Promise<{ replay: ProseReplay | null; batchSize: number; seed: number }> {
  const batchSize = parseNumber("batch-size", args["batch-size"], { integer: true, positive: true });
  const seed = parseNumber("seed", args.seed, { integer: true, min: 0 });
  const mix = parseNumber("mix-prose", args["mix-prose"], { min: 0, max: MAX_MIX_PROSE });
  if (mix === 0) return { replay: null, batchSize, seed };
  const specs = parseList(args["prose-data"]);
  const missing = specs.find((s) => !existsSync(parseSpan(s).path));
  if (missing || specs.length === 0) throw new UsageError(`--prose-data \`${missing ?? args["prose-data"]}\`: no such file; give plain-text files, comma-separated`);
  const { tokens } = await loadProseStream(specs, tokenizer);
  return { replay: new ProseReplay(tokens, proseRowsPerBatch(batchSize, mix), seed, specs.map((s) => relative(process.cwd(), s) || s).join(", ")), batchSize, seed };
}
