// The pretraining loop: packed corpus windows, AdamW with warmup + cosine, periodic held-out
// evaluation with sample continuations, resumable checkpoints, one metrics line per report window.
import { core as mx } from "@frost-beta/mlx";
import { consola } from "consola";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { configFromHF, countParameters } from "../model/config.ts";
import { LlamaModel } from "../model/llama.ts";
import { loadCheckpointArrays, loadModel, saveCheckpoint } from "../model/checkpoint.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { TrainStep, defaultOptimizerConfig } from "../train/step.ts";
import { learningRate } from "../train/schedule.ts";
import type { TrainStatus } from "../train/state.ts";
import { generate } from "../generate/generate.ts";
import { checkStream, evalBatches, tokenizeSpans, trainingBatch, type TokenStream } from "./corpus.ts";
import { formatDuration } from "../run/folder.ts";
import { appendMetrics } from "../run/metrics.ts";
import { readJSON, writeJSON } from "../io/files.ts";
import { peakRssMB, releaseMemory, rssMB } from "../mlx/memory.ts";
import { ProgressLine } from "../run/progress.ts";
import { onInterrupt } from "../util/interrupt.ts";
import { SPECIAL_TOKENS } from "../format/tokens.ts";

const log = consola.withTag("pretrain");

export interface PretrainConfig {
  preset: string;
  modelConfig: Record<string, unknown>; // Hugging Face config.json fields
  tokenizer: string; // tokenizer.json or a directory holding one
  corpus: string[]; // training spans: "path" or "path:START-END" (bytes)
  evalCorpus: string[]; // held-out spans (whole documents, never random lines)
  maxMB: number; // cap on training text read, MB
  steps: number;
  batchSize: number;
  seqLen: number;
  lr: number;
  warmup: number;
  minLrRatio: number;
  evalEvery: number;
  evalWindows: number; // held-out windows of seqLen tokens per evaluation
  saveEvery: number;
  logEvery: number;
  seed: number;
}

export const SAMPLE_PROMPTS = [
  "It was a dark and stormy night,",
  "The old man looked at the sea and",
  "What is the capital of France?",
];

/** Eval loss in nats/token over fixed held-out windows (token-weighted), through the step's compiled
 * forward (TrainStep.lossSum: no intermediate outlives its use, so evaluating does not raise the
 * resident set as the eager forward did). */
function evaluate(trainer: TrainStep, batches: ReturnType<typeof evalBatches>): number {
  let sum = 0;
  let n = 0;
  for (const b of batches) {
    sum += trainer.lossSum(b);
    n += mx.sum(b.mask).item() as number;
  }
  return sum / n;
}

function latestCheckpoint(runDir: string): string | null {
  const dir = join(runDir, "checkpoints");
  if (!existsSync(dir)) return null;
  const done = readdirSync(dir)
    .filter((d) => /^step-\d+$/.test(d) && existsSync(join(dir, d, "trainer-state.json")))
    .sort();
  return done.length ? join(dir, done[done.length - 1]) : null;
}

/** The tokenizer and the tokenized corpora of a run, checked: what `preparePretrain` returns. */
export interface PretrainData {
  tokenizer: Tokenizer;
  train: TokenStream;
  held: TokenStream;
}

/** Load the tokenizer and tokenize the training and held-out text, refusing (UsageError, naming
 * the files) text too short for one window: called before the run folder is made. */
export async function preparePretrain(cfg: PretrainConfig): Promise<PretrainData> {
  const tokenizer = await Tokenizer.load(cfg.tokenizer);
  log.start(`tokenizing ${cfg.corpus.join(", ")} (up to ${cfg.maxMB} MB)`);
  const train = await tokenizeSpans(cfg.corpus, tokenizer, { maxBytes: cfg.maxMB * 1e6 });
  checkStream(train, cfg.seqLen, "--corpus");
  const held = await tokenizeSpans(cfg.evalCorpus, tokenizer);
  checkStream(held, cfg.seqLen, "--eval-corpus");
  return { tokenizer, train, held };
}

/** Run (or resume) pretraining in `runDir` on `data` (prepared here when not given); returns the
 * summary written to summary.json. */
export async function pretrain(cfg: PretrainConfig, runDir: string, { resume = false, data }: { resume?: boolean; data?: PretrainData } = {}) {
  if (resume && existsSync(join(runDir, "checkpoint"))) {
    throw new Error(`${runDir} has already completed (its final checkpoint is in ${join(runDir, "checkpoint")}): nothing to resume`);
  }
  const { tokenizer, train, held } = data ?? (await preparePretrain(cfg));
  const resumeFrom = resume ? latestCheckpoint(runDir) : null;
  mx.random.seed(cfg.seed);
  const model = resumeFrom
    ? loadModel(resumeFrom).model
    : new LlamaModel(configFromHF({ ...cfg.modelConfig, vocab_size: tokenizer.vocabSize }, `preset ${cfg.preset}`));
  mx.eval(model.parameters());
  log.info(`model: ${(countParameters(model.config) / 1e6).toFixed(2)}M parameters, vocab ${model.config.vocabSize}, context ${cfg.seqLen}`);

  const bytesPerToken = held.bytes / held.tokens.length;
  log.info(`train: ${(train.tokens.length / 1e6).toFixed(2)}M tokens; held-out: ${(held.tokens.length / 1e6).toFixed(2)}M tokens, ${bytesPerToken.toFixed(3)} bytes/token`);
  const heldBatches = evalBatches(held.tokens, { batchSize: cfg.batchSize, seqLen: cfg.seqLen, maxWindows: cfg.evalWindows });

  const trainer = new TrainStep(model, defaultOptimizerConfig());
  let step = 0;
  let elapsed = 0; // seconds of training before this process (resume)
  if (resumeFrom) {
    const state = readJSON(join(resumeFrom, "trainer-state.json"));
    const moments = loadCheckpointArrays(resumeFrom, "optimizer.safetensors"); // checked against the digest saved with it
    const paths = trainer.flat.paths;
    trainer.setState({ m: paths.map((p) => moments[`m.${p}`]), v: paths.map((p) => moments[`v.${p}`]), t: state.step });
    step = state.step;
    elapsed = state.elapsedSec;
    log.info(`resumed from ${resumeFrom} at step ${step}`);
  }

  const interrupt = onInterrupt(() => log.warn("interrupt: finishing this step, saving a checkpoint (Ctrl-C again to abort)"));

  // Each step folder is one unit (weights, optimizer moments, trainer-state.json), written whole and
  // swapped in by saveCheckpoint; the older ones are removed only once it is in place.
  const saveState = (s: number) => {
    const name = `step-${String(s).padStart(6, "0")}`;
    const dir = join(runDir, "checkpoints", name);
    if (existsSync(dir)) return;
    const { m, v } = trainer.state();
    const named: Record<string, mx.array> = {};
    trainer.flat.paths.forEach((p, i) => {
      named[`m.${p}`] = m[i];
      named[`v.${p}`] = v[i];
    });
    const state = { step: s, elapsedSec: elapsed + (performance.now() - t0) / 1000 };
    saveCheckpoint(dir, model, tokenizer, {
      meta: { kind: "pretrain-checkpoint", step: s },
      arrays: { "optimizer.safetensors": named },
      files: { "trainer-state.json": JSON.stringify(state, null, 2) + "\n" },
    });
    const older = readdirSync(join(runDir, "checkpoints")).filter((d) => d !== name);
    for (const d of older) rmSync(join(runDir, "checkpoints", d), { recursive: true, force: true }); // keep the latest only
  };

  const sample = async (s: number) => {
    const lines = [`## step ${s}`, ""];
    for (const prompt of SAMPLE_PROMPTS) {
      const g = await generate(model, tokenizer, tokenizer.encode(prompt), { maxTokens: 48, stopIds: [tokenizer.tokenId(SPECIAL_TOKENS.doc)] });
      lines.push(`- **${prompt}**${g.text.replace(/\n/g, " ⏎ ")}`);
    }
    await Bun.write(join(runDir, "samples.md"), (existsSync(join(runDir, "samples.md")) ? await Bun.file(join(runDir, "samples.md")).text() : "") + lines.join("\n") + "\n\n");
  };

  const schedule = { lr: cfg.lr, warmup: cfg.warmup, steps: cfg.steps, minLrRatio: cfg.minLrRatio };
  const tokensPerStep = cfg.batchSize * cfg.seqLen;
  const t0 = performance.now();
  const progress = new ProgressLine(cfg.steps);
  let window = { loss: 0, n: 0, start: performance.now(), gradNorm: 0 };
  let lastEval = NaN;
  let status: TrainStatus = "completed";
  while (step < cfg.steps && !interrupt.requested) {
    const lr = learningRate(schedule, step + 1);
    const batch = trainingBatch(train.tokens, step, { batchSize: cfg.batchSize, seqLen: cfg.seqLen, seed: cfg.seed });
    const r = await trainer.step(batch, lr);
    step += 1;
    if (!Number.isFinite(r.loss)) {
      status = "failed";
      log.error(`loss is ${r.loss} at step ${step}: stopping; the last checkpoint in ${join(runDir, "checkpoints")} is good`);
      break;
    }
    window.loss += r.loss;
    window.gradNorm += r.gradNorm;
    window.n += 1;
    if (step % cfg.logEvery === 0 || step === cfg.steps) {
      const secs = (performance.now() - window.start) / 1000;
      const rec = {
        step,
        loss: window.loss / window.n,
        lr,
        gradNorm: window.gradNorm / window.n,
        tokensPerSec: (window.n * tokensPerStep) / secs,
        tokensSeen: step * tokensPerStep,
        rssMB: rssMB(),
      };
      appendMetrics(runDir, { type: "train", ...rec });
      progress.update(step, `loss ${rec.loss.toFixed(3)} | lr ${lr.toExponential(1)} | ${(rec.tokensPerSec / 1000).toFixed(2)}k tok/s | held-out ${lastEval.toFixed(3)}`);
      window = { loss: 0, n: 0, start: performance.now(), gradNorm: 0 };
    }
    if (step % cfg.evalEvery === 0 || step === cfg.steps) {
      lastEval = evaluate(trainer, heldBatches);
      const bpb = lastEval / Math.LN2 / bytesPerToken;
      appendMetrics(runDir, { type: "eval", step, evalLoss: lastEval, bitsPerByte: bpb });
      progress.log(`step ${step}: held-out loss ${lastEval.toFixed(4)} nats/token, ${bpb.toFixed(3)} bits/byte`);
      await sample(step);
      await releaseMemory();
    }
    if (step % cfg.saveEvery === 0) saveState(step);
  }
  progress.done();
  if (interrupt.requested) status = "interrupted";
  // Ctrl-C from here on does not cut a save short (lib/util/interrupt.ts).
  const release = interrupt.protect("saving the checkpoint and summary.json first", () => `the last saved step folder in ${join(runDir, "checkpoints")} is kept`);
  saveState(step);
  const evalLoss = evaluate(trainer, heldBatches);
  const wallSec = elapsed + (performance.now() - t0) / 1000;
  const summary = {
    status,
    step,
    steps: cfg.steps,
    parameters: countParameters(model.config),
    tokensSeen: step * tokensPerStep,
    trainTokensAvailable: train.tokens.length,
    heldOutTokens: held.tokens.length,
    heldOutWindows: heldBatches.reduce((n, b) => n + b.inputs.shape[0], 0),
    evalLoss,
    bitsPerByte: evalLoss / Math.LN2 / bytesPerToken,
    bytesPerToken,
    wallSec,
    wallTime: formatDuration(wallSec),
    peakRssMB: peakRssMB(),
  };
  writeJSON(join(runDir, "summary.json"), summary);
  if (status === "completed") {
    // The corpus spans travel with the base: SFT's replay (--mix-prose) defaults to them.
    saveCheckpoint(join(runDir, "checkpoint"), model, tokenizer, { meta: { kind: "base", preset: cfg.preset, corpus: cfg.corpus, ...summary } });
  }
  await release();
  interrupt.dispose();
  log.success(`${status} at step ${step}: held-out ${evalLoss.toFixed(4)} nats/token, ${summary.bitsPerByte.toFixed(3)} bits/byte, ${summary.wallTime}`);
  return summary;
}
