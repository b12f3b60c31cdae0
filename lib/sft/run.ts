// One SFT run, end to end (the logic behind `bun scripts/train.ts`):
//   prepareRun — load and check everything (base, chat tokens, data, self-check, lengths) while no
//                run folder exists yet, so a bad argument never leaves a half-made folder;
//   executeRun — train into runs/<YYYYMMDD-HHMMSS>-<name>/ and write config.json, metrics.jsonl,
//                summary.json, checkpoint/ (last or best weights, --keep), then probe base vs SFT into summary.json,
//                samples.md and report.html;
//   resumeRun  — continue an interrupted run in its own folder, or run the probes it has not run
//                (lib/sft/resume.ts).
import { onInterrupt } from "../util/interrupt.ts";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { consola } from "consola";
import { core as mx } from "@frost-beta/mlx";
import { UsageError } from "../util/cli.ts";
import { DEFAULT_BASE } from "../util/paths.ts";
import { peakRssMB, releaseMemory, rssMB } from "../mlx/memory.ts";
import { CheckpointError, hashCheckpoint, loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { addChatTokens } from "../model/vocab.ts";
import type { LlamaModel } from "../model/llama.ts";
import { probeRun, type ProbeModel } from "../probes/compare.ts";
import { ProgressLine } from "../run/progress.ts";
import { reportHtml } from "../report/html.ts";
import { samplesMarkdown } from "../report/samples.ts";
import { formatDuration, gitCommit, machineInfo } from "../run/folder.ts";
import { appendMetrics, readMetrics } from "../run/metrics.ts";
import { writeSummary, type KindLoss, type ProbeStatus, type RunSummary } from "../run/summary.ts";
import { FileError, writeFileAtomic } from "../io/files.ts";
import { readConfigFile, writeConfigFile, type Provenance } from "./config-file.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { ChatFormat } from "../format/chat-format.ts";
import { loadLabeled, type LabeledConversation } from "../data/data.ts";
import { courseSplit } from "../data/split.ts";
import { truncateExamples } from "../data/batch.ts";
import { sftPart, type RunConfig } from "./run-config.ts";
import { prepareReplay, proseSha } from "./prose-source.ts";
import { checkStepMemory, largestStep } from "./memory-check.ts";
import type { ProseReplay } from "../data/replay.ts";
import { formatFailure, selfCheck } from "../data/selfcheck.ts";
import { ChatSession } from "../chat/session.ts";
import { ChatTemplate } from "../format/template.ts";
import { SFTTrainer, type History, type StepMetrics, type TrainerHooks } from "../train/trainer.ts";
import { probeSides, saveRunAdapter, setUpAdapter, type AdapterSetup } from "./lora.ts";
import type { Conversation, SFTExample } from "../format/types.ts";

const log = consola.withTag("train");
export const STATE_DIR = "trainer-state"; // in the run folder; only while a run is resumable (interrupted)

/** The base (with the chat tokens it needs) and the data of a run, loaded, self-checked and
 * rendered: what the trainer gets, and what an export hands to another engine. */
export interface RunInputs {
  cfg: RunConfig;
  baseHash: string;
  model: LlamaModel;
  tokenizer: Tokenizer;
  addedTokens: string[];
  trainConversations: Conversation[]; // the memorisation probe compares replies with their answers
  evalConversations: Conversation[];
  evalKinds: (string | undefined)[]; // each eval conversation's "kind" in its data file, if any
  trainExamples: SFTExample[];
  evalExamples: SFTExample[];
  replay: ProseReplay | null; // pretraining replay (--mix-prose): the text, packed
  replayNote?: string; // set when the bundled sample stands in for the base's own text (why, how to choose)
  dataSha256: { train: string; eval: string; prose?: string };
}

/** Everything checked and loaded before a run folder is made. */
export interface PreparedRun extends RunInputs {
  adapter: AdapterSetup | null; // --lora: what was added to the base (the model holds it)
  trainer: SFTTrainer;
  hooks: TrainerHooks; // filled in by executeRun: the trainer keeps this object
}

/** Load the base, tokenizer and data and check them; throws (UsageError for anything the user
 * fixes) before any training or any file is written. */
export async function prepareRun(cfg: RunConfig): Promise<PreparedRun> {
  const inputs = await loadRunInputs(cfg);
  // --lora (--quantize): the base is adapted in memory here, not in loadRunInputs, whose model an
  // export ships as the starting checkpoint
  const adapter = cfg.lora ? await setUpAdapter(inputs.model, inputs.tokenizer, inputs.addedTokens, sftPart(cfg)) : null;
  const hooks: TrainerHooks = {};
  let trainer: SFTTrainer;
  try {
    trainer = new SFTTrainer(inputs.model, inputs.tokenizer, inputs.trainExamples, sftPart(cfg), hooks, { replay: inputs.replay });
  } catch (e) {
    throw new UsageError(`${shown(cfg.data)}: ${(e as Error).message}`);
  }
  cfg.steps = trainer.cfg.steps; // derived from --epochs when given: config.json records both
  const { replay } = inputs;
  if (!adapter) { // full fine-tuning: checked before the optimizer state exists (a frozen base's adapter holds a fraction)
    const shape = largestStep(inputs.trainExamples, { ...cfg, replayRows: replay?.rows ?? 0 });
    const est = checkStepMemory(inputs.model.config, shape, { ...cfg, base: shown(cfg.base) });
    log.info(`memory: about ${(est.totalMB / 1024).toFixed(1)} GB at the largest step (${shape.rows} × ${shape.seqLen}), ${(est.parameters / 1e6).toFixed(0)}M parameters`);
  }
  if (replay) log.info(`replay: ${replay.rows} prose rows with every ${cfg.batchSize} conversations (mix ${cfg.mixProse}), ${replay.tokens.length} tokens of ${replay.source}`);
  if (cfg.neftuneAlpha > 0) log.info(`NEFTune: noise α ${cfg.neftuneAlpha} on the input embeddings while training`);
  return { ...inputs, adapter, trainer, hooks };
}

/** The base (grown by the chat tokens when asked), the data self-checked and rendered with the
 * run's mask; the base on disk is only read. */
export async function loadRunInputs(cfg: RunConfig, { withReplay = true }: { withReplay?: boolean } = {}): Promise<RunInputs> {
  if (!existsSync(cfg.base)) {
    throw new UsageError(cfg.base === DEFAULT_BASE
      ? `the bundled base ${shown(cfg.base)} is missing: restore it (\`git checkout models/\`, or rebuild it with bun scripts/pretrain.ts), or pass --base <checkpoint folder>`
      : `--base ${shown(cfg.base)}: no such directory. Give a checkpoint folder (config.json, model.safetensors, tokenizer.json), e.g. models/gutenberg-base or runs/<pretrain run>/checkpoint`);
  }
  if (cfg.probeTokens > 0 && !existsSync(cfg.probes)) throw new UsageError(`--probes ${shown(cfg.probes)}: no such file (or pass --probe-tokens 0 to skip the probes)`);
  const baseHash = hashCheckpoint(cfg.base);
  let ckpt;
  try {
    // QLoRA: the arrays stay lazy until setUpAdapter quantizes them layer by layer, so the float32
    // model is never resident whole (2.4 GB for a 0.6B base)
    ckpt = await loadCheckpoint(cfg.base, { lazy: cfg.lora && cfg.quantize > 0 });
  } catch (e) {
    if (e instanceof CheckpointError) throw new UsageError(`--base ${shown(cfg.base)}: ${e.message}`);
    throw e;
  }
  let { model, tokenizer } = ckpt;
  // Before the vocabulary grows (the same text either way); an export, which never trains, skips it.
  const prepared = withReplay ? await prepareReplay(cfg, { baseHash, meta: ckpt.meta, tokenizer }) : null;
  const replay = prepared?.replay ?? null;
  const missing = ChatFormat.missingTokens(tokenizer);
  let addedTokens: string[] = [];
  if (missing.length) {
    if (!cfg.addChatTokens) {
      throw new UsageError(
        `--base ${shown(cfg.base)}: its tokenizer lacks the chat token(s) ${missing.map((t) => `\`${t}\``).join(", ")}, so the template cannot be one id per marker. ` +
          "Fix: add --add-chat-tokens (adds them, with the rest of the course's special tokens, and grows the embedding if their ids do not fit; the base on disk is not changed)",
      );
    }
    ({ model, tokenizer, added: addedTokens } = addChatTokens(model, tokenizer, { seed: cfg.seed }));
    log.info(`added the course's special tokens ${addedTokens.map((t) => `\`${t}\``).join(", ")}: vocabulary ${tokenizer.vocabSize}, embedding rows ${model.config.vocabSize}`);
  }

  const data = loadRunData(cfg);
  const train = data.train.map((c) => c.messages);
  const evalConversations = data.eval.map((c) => c.messages);
  const evalKinds = data.eval.map((c) => c.kind);
  for (const [what, convs, file] of [["training", train, cfg.data], ["eval", evalConversations, data.evalFile]] as const) {
    // The chat REPL's own prompt builder is checked against the training render, not a copy of it.
    const chat = new ChatSession(tokenizer, { contextLength: model.config.maxPositionEmbeddings });
    const check = selfCheck({
      tokenizer,
      conversations: convs,
      maxSeqLen: cfg.maxSeqLen,
      context: model.config.maxPositionEmbeddings, // how far --max-seq-len can go
      maskMode: what === "eval" ? "assistant" : cfg.maskMode,
      renderChatPrompt: (history) => chat.promptIds(history),
      replay: what === "training" ? replay : null,
    });
    // Over-length rows are the trainer's to drop or cut when asked; every other failure stops the run.
    const failures = check.failures.filter((f) => !((cfg.dropOverlength || cfg.truncate) && f.check === "length"));
    if (failures.length) {
      throw new UsageError([`self-check of the ${what} data ${shown(file)} failed (conversations counted from 0):`, ...failures.slice(0, 12).map((f) => `  ${formatFailure(f)}`)].join("\n"));
    }
    const over = check.failures.length - failures.length;
    log.info(`self-check ${what}: ${over ? `passed but for ${over} conversation(s) longer than max-seq-len ${cfg.maxSeqLen}, ${cfg.truncate ? "cut from the end (--truncate)" : "left out (--drop-overlength)"}` : check.summary}`);
  }

  const template = new ChatTemplate();
  const trainExamples = train.map((c) => template.renderWithMask(c, tokenizer, { maskMode: cfg.maskMode }));
  // Held-out loss is always on assistant tokens, whatever the training mask: it measures the
  // replies, and stays comparable between the "assistant" and "all" runs of the mask ablation.
  const evalExamples = evalConversations.map((c) => template.renderWithMask(c, tokenizer, { maskMode: "assistant" }));
  const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
  return { cfg, baseHash, model, tokenizer, addedTokens, trainConversations: train, evalConversations, evalKinds, trainExamples, evalExamples, replay, replayNote: prepared?.note,
    dataSha256: { train: sha(cfg.data), eval: sha(data.evalFile), ...(replay ? { prose: proseSha(cfg.proseData) } : {}) } };
}

/** A run's training and held-out conversations with their kinds: `data` and `evalData`, or with
 * `courseSplit` the course notebook's split of `data` (`evalFile` is the file the held-out set came
 * from). DataError for a bad file, UsageError for a split that cannot be made. */
export function loadRunData(cfg: RunConfig): { train: LabeledConversation[]; eval: LabeledConversation[]; evalFile: string } {
  const train = loadLabeled(cfg.data);
  if (!cfg.courseSplit) return { train, eval: loadLabeled(cfg.evalData), evalFile: cfg.evalData };
  try {
    const split = courseSplit(train, cfg.splitSeed);
    log.info(`course split of ${shown(cfg.data)} (seed ${cfg.splitSeed}): ${split.train.length} training, ${split.eval.length} held out; --eval-data is not read`);
    return { ...split, evalFile: cfg.data };
  } catch (e) {
    throw new UsageError(`--course-split of ${shown(cfg.data)}: ${(e as Error).message}`);
  }
}

/** Train in `runDir` (made by createRunDir, or an interrupted run's folder when `resumed`) and
 * write everything the run leaves behind. Returns the process exit code. */
export async function executeRun(p: PreparedRun, runDir: string, { resumed = false, priorSec = 0 } = {}): Promise<number> {
  const { cfg, trainer, hooks, replay } = p;
  const t0 = performance.now();
  if (!resumed) writeConfigFile(runDir, cfg, provenance(p, runDir));
  log.info(`run folder: ${shown(runDir)}`);
  const { droppedExamples: dropped, truncatedExamples: cut } = trainer.history;
  log.info(`base ${shown(cfg.base)} · ${dropped ? `${dropped} over-length dropped · ` : ""}${cut ? `${cut} over-length cut · ` : ""}` +
    `steps ${cfg.steps}${cfg.epochs ? ` (${cfg.epochs} epochs)` : ""} · lr ${cfg.lr} · batch ${cfg.batchSize}${cfg.gradAccum > 1 ? ` × ${cfg.gradAccum} accumulated` : ""} · mask ${cfg.maskMode} · mix-prose ${cfg.mixProse} · neftune ${cfg.neftuneAlpha} · seed ${cfg.seed}` +
    `${cfg.lora ? ` · LoRA r ${cfg.loraRank}${cfg.quantize ? ` on a ${cfg.quantize}-bit base` : ""}` : ""}`);

  const progress = new ProgressLine(cfg.steps);
  const tty = Boolean(process.stderr.isTTY);
  const interrupt = onInterrupt(
    () => progress.log("interrupt: finishing this step, then saving the checkpoint and a resumable state (Ctrl-C again to abort)"),
    { onAbort: () => progress.log(`interrupt: aborted during training: ${resumed ? `the state saved at the last interruption is kept (resume again with bun scripts/train.ts --resume ${shown(runDir)})` : "nothing of this run's training is saved"}`) },
  );
  hooks.shouldStop = () => interrupt.requested;
  hooks.onReport = (m: StepMetrics) => {
    // `loss` is the conversations' (SFT) loss; with replay, `proseLoss` is the plain-text rows' apart.
    const prose = m.proseNtoks ? { proseLoss: m.proseLoss, proseNtoks: m.proseNtoks } : {};
    appendMetrics(runDir, { type: "train", step: m.step, loss: m.loss, ...prose, lr: m.lr, gradNorm: m.gradNorm, tokensPerSec: m.tokensPerSec, ntoks: m.ntoks, tokens: m.tokens, paddingFraction: m.paddingFraction, rssMB: rssMB() });
    const elapsed = formatDuration(priorSec + (performance.now() - t0) / 1000);
    const line = `step ${String(m.step).padStart(5, "0")} (${((100 * m.step) / cfg.steps).toFixed(1)}%) | loss ${m.loss.toFixed(3)}${m.proseLoss !== undefined ? ` | prose ${m.proseLoss.toFixed(3)}` : ""} | lr ${m.lr.toExponential(1)} | ` +
      `${(m.tokensPerSec / 1000).toFixed(2)}k tok/s | pad ${(100 * m.paddingFraction).toFixed(0)}% | ${elapsed}`;
    progress.log(line);
    if (tty) progress.update(m.step, `loss ${m.loss.toFixed(3)} | lr ${m.lr.toExponential(1)} | ${(m.tokensPerSec / 1000).toFixed(2)}k tok/s`);
  };
  hooks.onEval = (e, isBest) => {
    appendMetrics(runDir, { type: "eval", step: e.step, evalLoss: e.evalLoss, ntoks: e.ntoks, best: isBest });
    progress.log(`step ${String(e.step).padStart(5, "0")} | held-out loss ${e.evalLoss.toFixed(4)} over ${e.ntoks} tokens${isBest ? " (best)" : ""}`);
  };

  let h: History;
  let crashed = false; // an exception, not a NaN: the weights may be mid-update, so no probes
  try {
    h = await trainer.train(p.evalExamples);
  } catch (e) {
    // Still leave a summary (and the best weights so far) behind: a sweep reads the reason from it.
    h = Object.assign(trainer.history, { status: "failed" as const, reason: `error at step ${trainer.step}: ${(e as Error).message}` });
    trainer.restoreBest();
    crashed = true;
    log.error((e as Error).stack ?? String(e));
  }
  progress.done();
  const trainSec = (performance.now() - t0) / 1000;
  const probeStatus: ProbeStatus = cfg.probeTokens > 0 && !crashed ? "pending" : "skipped";

  // Saving: Ctrl-C no longer stops anything half-way (see lib/util/interrupt.ts). Order matters:
  // the new state (if any) and the new checkpoint are each swapped in whole, the summary follows,
  // and an earlier state is removed only after all of them are on disk.
  const stateDir = join(runDir, STATE_DIR);
  // A full fine-tune leaves checkpoint/; a LoRA run its adapter/ (PEFT's layout, the base not copied).
  const weightsDir = p.adapter ? "adapter" : "checkpoint";
  const ckptDir = join(runDir, weightsDir);
  // Saves are synchronous, so a press is handled once the saving below has ended: what it loses
  // is known by then.
  let afterSave = "the save did not complete (see the error above)";
  const release = interrupt.protect(`saving ${h.status === "interrupted" ? "the resumable state, " : ""}the checkpoint and summary.json first`, () => afterSave);
  let summary: RunSummary;
  const baseHashAfter = hashCheckpoint(cfg.base);
  // Held-out loss per kind goes into the summary written below (a few batches: it only reads the model).
  const byKind = !crashed && h.status !== "interrupted" ? await evalLossByKind(p) : null;
  if (byKind) log.info(`held-out loss by kind: ${Object.entries(byKind).map(([k, v]) => `${k} ${v.loss.toFixed(3)}`).join(", ")}`);
  try {
    if (h.status === "interrupted") {
      trainer.saveState(stateDir);
    }
    const meta = { base: cfg.base, baseHash: p.baseHash, runDir, status: h.status, bestStep: h.bestStep, bestEvalLoss: finite(h.bestEvalLoss), addedTokens: p.addedTokens, growSeed: cfg.seed, config: cfg };
    // replace: this run's own weights (an earlier attempt's best, now superseded), never the base
    if (p.adapter) saveRunAdapter(ckptDir, p.model, p.tokenizer, p.adapter, { base: cfg.base, meta, replace: true });
    else saveCheckpoint(ckptDir, p.model, p.tokenizer, { replace: true, meta: { kind: "sft", ...meta } });
    const trainPeakMemMB = peakRssMB();
    summary = {
      ...runSummary(h, cfg, trainer.step),
      epochs: trainer.epochsDone, // passes over the training conversations
      ...(replay ? { replay: { source: replay.source, tokens: replay.tokens.length, rowsPerBatch: replay.rows, finalTrainProseLoss: finite(h.train.filter((m) => !m.skipped).at(-1)?.proseLoss) } } : {}),
      wallSec: priorSec + trainSec,
      wallTime: formatDuration(priorSec + trainSec),
      peakMemMB: trainPeakMemMB, // the probes update it to the whole run's
      trainPeakMemMB,
      base: { path: cfg.base, hashBefore: p.baseHash, hashAfter: baseHashAfter, unchanged: baseHashAfter === p.baseHash },
      checkpoint: weightsDir,
      probes: null,
      probeStatus,
      ...(byKind ? { evalLossByKind: byKind } : {}),
    };
    writeSummary(runDir, summary);
    if (h.status !== "interrupted") rmSync(stateDir, { recursive: true, force: true }); // only now: the new checkpoint is in place
    afterSave = `everything is saved${probeStatus === "pending" ? `; the probes did not run: \`bun scripts/train.ts --resume ${shown(runDir)}\` runs them` : ""}`;
  } catch (e) {
    if (!(e instanceof FileError)) throw e;
    await release();
    interrupt.dispose();
    const kept = existsSync(join(stateDir, "trainer-state.json"))
      ? ` The resumable state in ${shown(stateDir)} is kept: make room and resume with bun scripts/train.ts --resume ${shown(runDir)}.`
      : "";
    log.error(`could not save the run: ${e.message}.${kept}`);
    return 1;
  }
  await release();
  interrupt.dispose();
  if (baseHashAfter !== p.baseHash) log.error(`the base checkpoint ${shown(cfg.base)} changed during the run (hash ${p.baseHash.slice(0, 12)} → ${baseHashAfter.slice(0, 12)}): something else wrote to it`);

  const last = h.eval.at(-1);
  const msg = `${h.status}${h.reason ? ` (${h.reason})` : ""} at step ${trainer.step}: best held-out ${fmt(h.bestEvalLoss)} at step ${h.bestStep}, final ${fmt(last?.evalLoss)}, ${formatDuration(priorSec + trainSec)}`;
  if (h.status === "failed") log.error(msg);
  else log.success(msg);

  if (h.status === "interrupted") {
    log.info(`resume with: bun scripts/train.ts --resume ${shown(runDir)}`);
    return 130;
  }
  if (interrupt.requested && probeStatus === "pending") {
    // Ctrl-C while saving: the user wants to stop; the probes can run later.
    log.info(`the probes did not run: bun scripts/train.ts --resume ${shown(runDir)} runs them`);
    return 130;
  }
  if (probeStatus === "pending") {
    trainer.releaseTrainingState(); // saved above: the probes need only the weights
    await releaseMemory({ toSystem: true });
    const code = await probe({ cfg, ...probeSides(p.model, p.adapter), tokenizer: p.tokenizer, addedTokens: p.addedTokens, trainConversations: p.trainConversations, evalConversations: p.evalConversations, evalKinds: p.evalKinds }, runDir, summary, t0, priorSec);
    if (code !== 0) return code;
  }
  const probed = probeStatus === "pending";
  log.info(`outputs in ${shown(runDir)}: ${["config.json", "metrics.jsonl", "summary.json", `${weightsDir}/`, ...(probed ? ["samples.md", "report.html"] : [])].join(", ")}`);
  return h.status === "failed" ? 1 : 0;
}

/** What the probes compare: the fine-tuned model (in memory, or loaded from the run's checkpoint)
 * and the base, grown the same way if chat tokens were added; each may be given as a function that
 * makes it when its side runs, so that one model is held at a time (probeRun). */
export interface ProbeInput {
  cfg: RunConfig;
  sft: ProbeModel;
  base?: ProbeModel; // default: cfg.base loaded again once the fine-tuned side is done, grown as the run's start was
  tokenizer: Tokenizer; // the run's (with the chat tokens it added)
  addedTokens: string[];
  trainConversations: Conversation[]; // the memorisation probe compares replies with their answers
  evalConversations: Conversation[];
  evalKinds: (string | undefined)[];
}

/** Held-out loss per data "kind" (token-weighted within each kind) on the weights the run ends with,
 * over-length rows handled as in training; null when the eval data has no kinds. */
async function evalLossByKind({ cfg, trainer, evalExamples, evalKinds }: PreparedRun): Promise<Record<string, KindLoss> | null> {
  const groups = new Map<string, SFTExample[]>();
  evalExamples.forEach((ex, i) => {
    const kind = evalKinds[i];
    if (kind === undefined) return;
    const fitted = ex.ids.length - 1 <= cfg.maxSeqLen ? ex : cfg.truncate ? truncateExamples([ex], cfg.maxSeqLen).examples[0]! : null; // null: dropped
    if (fitted) groups.set(kind, [...(groups.get(kind) ?? []), fitted]);
  });
  const out: Record<string, KindLoss> = {};
  for (const [kind, examples] of groups) {
    const ntoks = examples.reduce((n, ex) => n + ex.mask.slice(1).reduce((a, b) => a + b, 0), 0);
    if (ntoks > 0) out[kind] = { loss: await trainer.evaluate(examples), ntoks, conversations: examples.length };
  }
  return Object.keys(out).length ? out : null;
}

/** Probe the base against the fine-tuned model, then write the probe
 * numbers into summary.json and the samples and report pages. summary.json says the probes are
 * pending until then, so Ctrl-C here loses nothing: `--resume` runs them. Returns the exit code. */
export async function probe(input: ProbeInput, runDir: string, summary: RunSummary, t0: number, priorSec: number): Promise<number> {
  const { cfg } = input;
  const onSigint = () => {
    log.warn(`interrupted during the probes: the checkpoint and summary.json are saved; run the probes with bun scripts/train.ts --resume ${shown(runDir)}`);
    process.exit(130); // nothing is being written until the probes end
  };
  process.on("SIGINT", onSigint);
  try {
    const base = input.base ?? (() => loadProbeBase(cfg, input.addedTokens));
    log.start(`probing base vs SFT (${cfg.probeTokens} tokens per reply)`);
    const tp = performance.now();
    const report = await probeRun({
      base, sft: input.sft, tokenizer: input.tokenizer, probesPath: cfg.probes, evalConversations: input.evalConversations, evalKinds: input.evalKinds, trainConversations: input.trainConversations, seed: cfg.seed, maxTokens: cfg.probeTokens,
      onProgress: (m) => process.stderr.isTTY && process.stderr.write(`\r\x1b[2K[probes] ${m}`),
    });
    if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
    const wallSec = priorSec + (performance.now() - t0) / 1000;
    Object.assign(summary, { probes: report, probeStatus: "done", probeSec: (performance.now() - tp) / 1000, wallSec, wallTime: formatDuration(wallSec), peakMemMB: peakRssMB() });
    writeFileAtomic(join(runDir, "samples.md"), samplesMarkdown(report, summary.evalLossByKind));
    const config = readConfigFile(runDir);
    const metrics = readMetrics(runDir, { warn: (m) => log.warn(m) });
    writeFileAtomic(join(runDir, "report.html"), reportHtml({ runDir, config: { ...config, base: shown(cfg.base) }, summary, metrics, probes: report }));
    writeSummary(runDir, summary); // last: "done" only once the pages exist
    const { base: b, sft: s } = report;
    log.success(`probes: stop rate ${pct(b.stopRate)} → ${pct(s.stopRate)}, role leakage ${pct(s.roleLeakage)}, prose continued ${s.continued}/${s.proseProbes}, prose loss vs base ${(100 * report.prose.relative).toFixed(1)}%`);
    log.info(report.verdict);
    return 0;
  } catch (e) {
    if (!(e instanceof FileError)) throw e;
    log.error(`the probes could not be saved: ${e.message}; the checkpoint and summary.json are saved: run the probes later with bun scripts/train.ts --resume ${shown(runDir)}`);
    return 1;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** The base as the run started from it: an untouched load of `cfg.base`, grown with the chat tokens
 * the run added (the same rows: addChatTokens draws them from the run's seed). */
async function loadProbeBase(cfg: RunConfig, addedTokens: string[]): Promise<LlamaModel> {
  const { model, tokenizer } = await loadCheckpoint(cfg.base);
  return addedTokens.length ? addChatTokens(model, tokenizer, { seed: cfg.seed }).model : model;
}

function provenance(p: PreparedRun, runDir: string): Provenance {
  return {
    baseHash: p.baseHash,
    addedTokens: p.addedTokens,
    ...(p.adapter ? { lora: { ...p.adapter.summary, tokenIndices: p.adapter.tokenIndices }, quantization: p.adapter.quantization as Record<string, unknown> | null } : {}),
    dataSha256: p.dataSha256,
    ...(p.replay ? { replay: { source: p.replay.source, ...(p.replayNote ? { note: p.replayNote } : {}) } } : {}),
    evalMask: "assistant", // held-out loss is on assistant tokens whatever maskMode is
    git: gitCommit(),
    machine: machineInfo(String(mx.defaultDevice())),
    command: ["bun", shown(process.argv[1] ?? ""), ...process.argv.slice(2)].join(" "),
    runDir,
    createdAt: new Date().toISOString(),
  };
}

/** The training part of summary.json, from the trainer's history. */
function runSummary(h: History, cfg: RunConfig, step: number) {
  const stepped = h.train.filter((m) => !m.skipped);
  const tokens = stepped.reduce((a, m) => a + m.tokens, 0);
  const stepSec = stepped.reduce((a, m) => a + m.tokens / m.tokensPerSec, 0);
  const evalAt = (s: number) => h.eval.find((e) => e.step === s)?.evalLoss;
  return {
    status: h.status,
    ...(h.reason ? { reason: h.reason } : {}),
    step,
    steps: cfg.steps,
    bestStep: h.bestStep,
    bestEvalLoss: finite(h.bestEvalLoss),
    finalEvalLoss: finite(h.eval.at(-1)?.evalLoss),
    initialEvalLoss: finite(evalAt(0)),
    finalTrainLoss: finite(stepped.at(-1)?.loss),
    evals: h.eval.length,
    tokens, // positions stepped on, padding included
    supervisedTokens: stepped.reduce((a, m) => a + m.ntoks, 0),
    paddingFraction: tokens ? stepped.reduce((a, m) => a + m.paddingFraction * m.tokens, 0) / tokens : null,
    tokensPerSec: stepSec ? tokens / stepSec : null,
    stepSec, // seconds spent in optimizer steps (evaluations excluded)
    skippedBatches: h.skippedBatches,
    droppedExamples: h.droppedExamples,
    truncatedExamples: h.truncatedExamples,
  };
}

const finite = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x : null);
const fmt = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x.toFixed(4) : "n/a");
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
/** A path relative to the working directory when it is inside it. */
export function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}
