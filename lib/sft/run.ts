// One SFT run, end to end (the logic behind `bun scripts/train.ts`):
//   prepareRun — load and check everything (base, chat tokens, data, self-check, lengths) while no
//                run folder exists yet, so a bad argument never leaves a half-made folder;
//   executeRun — train into runs/<YYYYMMDD-HHMMSS>-<name>/ and write config.json, metrics.jsonl,
//                summary.json, checkpoint/ (last or best weights, --keep), then probe base vs SFT into summary.json,
//                samples.md and report.html;
//   resumeRun  — continue an interrupted run in its own folder.
import { onInterrupt } from "../util/interrupt.ts";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { consola } from "consola";
import { core as mx } from "@frost-beta/mlx";
import { UsageError } from "../util/cli.ts";
import { DEFAULT_BASE } from "../util/paths.ts";
import { peakRssMB, rssMB } from "../mlx/memory.ts";
import { CheckpointError, hashCheckpoint, loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { addChatTokens } from "../model/vocab.ts";
import type { LlamaModel } from "../model/llama.ts";
import { probeRun } from "../probes/compare.ts";
import { ProgressLine } from "../run/progress.ts";
import { reportHtml } from "../report/html.ts";
import { samplesMarkdown } from "../report/samples.ts";
import { appendMetrics, formatDuration, gitCommit, machineInfo, readMetrics } from "../run/folder.ts";
import { readJSON, writeFileAtomic, writeJSON } from "../io/files.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { CHAT_TOKENS } from "../format/tokens.ts";
import { loadConversations } from "../data/data.ts";
import { resolveRunConfig, sftPart, type RunConfig } from "./run-config.ts";
import { formatFailure, selfCheck } from "../data/selfcheck.ts";
import { ChatSession } from "../chat/session.ts";
import { ChatTemplate } from "../format/template.ts";
import { SFTTrainer, type History, type StepMetrics, type TrainerHooks } from "../train/trainer.ts";
import type { Conversation, SFTExample } from "../format/types.ts";

const log = consola.withTag("train");
const STATE_DIR = "trainer-state"; // in the run folder; only while a run is resumable (interrupted)

/** Everything checked and loaded before a run folder is made. */
export interface PreparedRun {
  cfg: RunConfig;
  baseHash: string;
  model: LlamaModel;
  tokenizer: Tokenizer;
  addedTokens: string[];
  evalConversations: Conversation[];
  evalExamples: SFTExample[];
  trainer: SFTTrainer;
  hooks: TrainerHooks; // filled in by executeRun: the trainer keeps this object
  dataSha256: { train: string; eval: string };
}

/** Load the base, tokenizer and data and check them; throws (UsageError for anything the user
 * fixes) before any training or any file is written. */
export async function prepareRun(cfg: RunConfig): Promise<PreparedRun> {
  if (!existsSync(cfg.base)) {
    throw new UsageError(cfg.base === DEFAULT_BASE
      ? `the bundled base ${shown(cfg.base)} is missing: restore it (\`git checkout models/\`, or rebuild it with bun scripts/pretrain.ts), or pass --base <checkpoint folder>`
      : `--base ${shown(cfg.base)}: no such directory. Give a checkpoint folder (config.json, model.safetensors, tokenizer.json), e.g. models/gutenberg-base or runs/<pretrain run>/checkpoint`);
  }
  if (cfg.probeTokens > 0 && !existsSync(cfg.probes)) throw new UsageError(`--probes ${shown(cfg.probes)}: no such file (or pass --probe-tokens 0 to skip the probes)`);
  const baseHash = hashCheckpoint(cfg.base);
  let ckpt;
  try {
    ckpt = await loadCheckpoint(cfg.base);
  } catch (e) {
    if (e instanceof CheckpointError) throw new UsageError(`--base ${shown(cfg.base)}: ${e.message}`);
    throw e;
  }
  let { model, tokenizer } = ckpt;
  const missing = CHAT_TOKENS.filter((t) => !tokenizer.hasToken(t));
  let addedTokens: string[] = [];
  if (missing.length) {
    if (!cfg.addChatTokens) {
      throw new UsageError(
        `--base ${shown(cfg.base)}: its tokenizer lacks the chat token(s) ${missing.map((t) => `\`${t}\``).join(", ")}, so the template cannot be one id per marker. ` +
          "Fix: add --add-chat-tokens (adds them as special tokens and grows the embedding; the base on disk is not changed)",
      );
    }
    ({ model, tokenizer, added: addedTokens } = addChatTokens(model, tokenizer, { seed: cfg.seed }));
    log.info(`added chat tokens ${addedTokens.map((t) => `\`${t}\``).join(", ")}: vocabulary ${tokenizer.vocabSize}`);
  }

  const train = loadConversations(cfg.data); // DataError: file, record index, line and the fix
  const evalConversations = loadConversations(cfg.evalData);
  for (const [what, convs, file] of [["training", train, cfg.data], ["eval", evalConversations, cfg.evalData]] as const) {
    // The chat REPL's own prompt builder is checked against the training render, not a copy of it.
    const chat = new ChatSession(tokenizer, { contextLength: model.config.maxPositionEmbeddings });
    const check = selfCheck({
      tokenizer,
      conversations: convs,
      maxSeqLen: cfg.maxSeqLen,
      context: model.config.maxPositionEmbeddings, // how far --max-seq-len can go
      maskMode: what === "eval" ? "assistant" : cfg.maskMode,
      renderChatPrompt: (history) => chat.promptIds(history),
    });
    // Over-length rows are the trainer's to drop when asked; every other failure stops the run.
    const failures = check.failures.filter((f) => !(cfg.dropOverlength && f.check === "length"));
    if (failures.length) {
      throw new UsageError([`self-check of the ${what} data ${shown(file)} failed (conversations counted from 0):`, ...failures.slice(0, 12).map((f) => `  ${formatFailure(f)}`)].join("\n"));
    }
    const over = check.failures.length - failures.length;
    log.info(`self-check ${what}: ${over ? `passed but for ${over} conversation(s) longer than max-seq-len ${cfg.maxSeqLen}, left out (--drop-overlength)` : check.summary}`);
  }

  const template = new ChatTemplate();
  const trainExamples = train.map((c) => template.renderWithMask(c, tokenizer, { maskMode: cfg.maskMode }));
  // Held-out loss is always on assistant tokens, whatever the training mask: it measures the
  // replies, and stays comparable between the "assistant" and "all" runs of the mask ablation.
  const evalExamples = evalConversations.map((c) => template.renderWithMask(c, tokenizer, { maskMode: "assistant" }));
  const hooks: TrainerHooks = {};
  let trainer: SFTTrainer;
  try {
    trainer = new SFTTrainer(model, tokenizer, trainExamples, sftPart(cfg), hooks);
  } catch (e) {
    throw new UsageError(`${shown(cfg.data)}: ${(e as Error).message}`);
  }
  const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
  return { cfg, baseHash, model, tokenizer, addedTokens, evalConversations, evalExamples, trainer, hooks, dataSha256: { train: sha(cfg.data), eval: sha(cfg.evalData) } };
}

/** Train in `runDir` (made by createRunDir, or an interrupted run's folder when `resumed`) and
 * write everything the run leaves behind. Returns the process exit code. */
export async function executeRun(p: PreparedRun, runDir: string, { resumed = false, priorSec = 0 } = {}): Promise<number> {
  const { cfg, trainer, hooks } = p;
  const t0 = performance.now();
  if (!resumed) writeJSON(join(runDir, "config.json"), { ...cfg, provenance: provenance(p, runDir) });
  log.info(`run folder: ${shown(runDir)}`);
  log.info(`base ${shown(cfg.base)} · ${(trainer.history.droppedExamples ? `${trainer.history.droppedExamples} over-length dropped · ` : "")}` +
    `steps ${cfg.steps} · lr ${cfg.lr} · batch ${cfg.batchSize} · mask ${cfg.maskMode} · seed ${cfg.seed}`);

  const progress = new ProgressLine(cfg.steps);
  const tty = Boolean(process.stderr.isTTY);
  const interrupt = onInterrupt(() =>
    progress.log("interrupt: finishing this step, then saving the checkpoint and a resumable state (Ctrl-C again to abort)"),
  );
  hooks.shouldStop = () => interrupt.requested;
  hooks.onReport = (m: StepMetrics) => {
    const rec = { type: "train", step: m.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokensPerSec: m.tokensPerSec, ntoks: m.ntoks, tokens: m.tokens, paddingFraction: m.paddingFraction, rssMB: rssMB() };
    appendMetrics(runDir, rec);
    const elapsed = formatDuration(priorSec + (performance.now() - t0) / 1000);
    const line = `step ${String(m.step).padStart(5, "0")} (${((100 * m.step) / cfg.steps).toFixed(1)}%) | loss ${m.loss.toFixed(3)} | lr ${m.lr.toExponential(1)} | ` +
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
  interrupt.dispose();
  const trainSec = (performance.now() - t0) / 1000;

  // The resumable state exists only while the run can be resumed.
  const stateDir = join(runDir, STATE_DIR);
  if (h.status === "interrupted") trainer.saveState(stateDir);
  else rmSync(stateDir, { recursive: true, force: true });
  const ckptDir = join(runDir, "checkpoint");
  rmSync(ckptDir, { recursive: true, force: true }); // an interrupted attempt's best weights, now superseded
  saveCheckpoint(ckptDir, p.model, p.tokenizer, {
    meta: { kind: "sft", base: cfg.base, baseHash: p.baseHash, runDir, status: h.status, bestStep: h.bestStep, bestEvalLoss: finite(h.bestEvalLoss), addedTokens: p.addedTokens, config: cfg },
  });
  const baseHashAfter = hashCheckpoint(cfg.base);
  if (baseHashAfter !== p.baseHash) log.error(`the base checkpoint ${shown(cfg.base)} changed during the run (hash ${p.baseHash.slice(0, 12)} → ${baseHashAfter.slice(0, 12)}): something else wrote to it`);

  const trainPeakMemMB = peakRssMB();
  const summary: Record<string, unknown> = {
    ...runSummary(h, cfg, trainer.step),
    wallSec: priorSec + trainSec,
    wallTime: formatDuration(priorSec + trainSec),
    peakMemMB: trainPeakMemMB, // the probes update it to the whole run's
    trainPeakMemMB,
    base: { path: cfg.base, hashBefore: p.baseHash, hashAfter: baseHashAfter, unchanged: baseHashAfter === p.baseHash },
    checkpoint: "checkpoint",
    probes: null,
  };
  writeJSON(join(runDir, "summary.json"), summary);
  const last = h.eval.at(-1);
  const msg = `${h.status}${h.reason ? ` (${h.reason})` : ""} at step ${trainer.step}: best held-out ${fmt(h.bestEvalLoss)} at step ${h.bestStep}, final ${fmt(last?.evalLoss)}, ${formatDuration(priorSec + trainSec)}`;
  if (h.status === "failed") log.error(msg);
  else log.success(msg);

  if (h.status === "interrupted") {
    log.info(`resume with: bun scripts/train.ts --resume ${shown(runDir)}`);
    return 130;
  }
  const probed = cfg.probeTokens > 0 && !crashed;
  if (probed) await probe(p, runDir, summary, t0, priorSec);
  log.info(`outputs in ${shown(runDir)}: ${["config.json", "metrics.jsonl", "summary.json", "checkpoint/", ...(probed ? ["samples.md", "report.html"] : [])].join(", ")}`);
  return h.status === "failed" ? 1 : 0;
}

/** Probe the base (a second, untouched load) against the fine-tuned model, then write the probe
 * numbers into summary.json and the samples and report pages. */
async function probe(p: PreparedRun, runDir: string, summary: Record<string, unknown>, t0: number, priorSec: number): Promise<void> {
  const { cfg } = p;
  const onSigint = () => {
    log.warn("interrupted during the probes: the checkpoint and summary.json (without probes) are written");
    process.exit(130);
  };
  process.on("SIGINT", onSigint);
  let { model: base, tokenizer } = await loadCheckpoint(cfg.base);
  if (p.addedTokens.length) ({ model: base, tokenizer } = addChatTokens(base, tokenizer, { seed: cfg.seed })); // the same growth as the SFT model's start
  log.start(`probing base vs SFT (${cfg.probeTokens} tokens per reply)`);
  const tp = performance.now();
  const report = await probeRun({
    base, sft: p.model, tokenizer, probesPath: cfg.probes, evalConversations: p.evalConversations, seed: cfg.seed, maxTokens: cfg.probeTokens,
    onProgress: (m) => process.stderr.isTTY && process.stderr.write(`\r\x1b[2K[probes] ${m}`),
  });
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
  process.off("SIGINT", onSigint);
  const wallSec = priorSec + (performance.now() - t0) / 1000;
  Object.assign(summary, { probes: report, probeSec: (performance.now() - tp) / 1000, wallSec, wallTime: formatDuration(wallSec), peakMemMB: peakRssMB() });
  writeJSON(join(runDir, "summary.json"), summary);
  writeFileAtomic(join(runDir, "samples.md"), samplesMarkdown(report));
  const config = readJSON(join(runDir, "config.json"));
  writeFileAtomic(join(runDir, "report.html"), reportHtml({ runDir, config: { ...config, base: shown(cfg.base) }, summary, metrics: readMetrics(runDir), probes: report }));
  const { base: b, sft: s } = report;
  log.success(`probes: stop rate ${pct(b.stopRate)} → ${pct(s.stopRate)}, role leakage ${pct(s.roleLeakage)}, prose continued ${s.continued}/${s.proseProbes}, prose loss vs base ${(100 * report.prose.relative).toFixed(1)}%`);
  log.info(report.verdict);
}

/** Continue the interrupted run in `runDir` with its own config.json. */
export async function resumeRun(runDir: string): Promise<number> {
  const configPath = join(runDir, "config.json");
  if (!existsSync(configPath)) throw new UsageError(`--resume ${shown(runDir)}: no config.json there; give a folder made by scripts/train.ts`);
  const stateDir = join(runDir, STATE_DIR);
  const prior = existsSync(join(runDir, "summary.json")) ? readJSON(join(runDir, "summary.json")) : {};
  if (!existsSync(join(stateDir, "trainer-state.json"))) {
    throw new UsageError(`--resume ${shown(runDir)}: nothing to resume (status \`${prior.status ?? "unknown"}\`, no ${STATE_DIR}/); only an interrupted run can be resumed`);
  }
  const { provenance: recorded, ...saved } = readJSON(configPath);
  const p = await prepareRun(resolveRunConfig(saved, {}));
  if (p.baseHash !== recorded.baseHash) throw new UsageError(`--resume: the base ${shown(p.cfg.base)} is not the one this run started from (hash ${p.baseHash.slice(0, 12)}, recorded ${String(recorded.baseHash).slice(0, 12)})`);
  for (const k of ["train", "eval"] as const) {
    if (p.dataSha256[k] !== recorded.dataSha256?.[k]) throw new UsageError(`--resume: the ${k} data file changed since this run started: resuming would train on different data; start a new run instead`);
  }
  p.trainer.loadState(stateDir);
  log.info(`resuming ${shown(runDir)} at step ${p.trainer.step} of ${p.cfg.steps}`);
  return executeRun(p, runDir, { resumed: true, priorSec: typeof prior.wallSec === "number" ? prior.wallSec : 0 });
}

function provenance(p: PreparedRun, runDir: string): Record<string, unknown> {
  return {
    baseHash: p.baseHash,
    addedTokens: p.addedTokens,
    dataSha256: p.dataSha256,
    evalMask: "assistant", // held-out loss is on assistant tokens whatever maskMode is
    git: gitCommit(),
    machine: machineInfo(String(mx.defaultDevice())),
    command: ["bun", shown(process.argv[1] ?? ""), ...process.argv.slice(2)].join(" "),
    runDir,
    createdAt: new Date().toISOString(),
  };
}

/** The training part of summary.json, from the trainer's history. */
function runSummary(h: History, cfg: RunConfig, step: number): Record<string, unknown> {
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
  };
}

const finite = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x : null);
const fmt = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x.toFixed(4) : "n/a");
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
/** A path relative to the working directory when it is inside it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}
