// The SFT trainer: batches from iterateBatches → padAndCollate → one compiled TrainStep, warmup +
// cosine learning rate, token-weighted held-out evaluation, early stopping with the best weights
// kept, and resumable state. Data comes in already rendered (SFTExample: ids + mask), so the
// trainer never sees the chat template; the run (lib/sft/run.ts) renders with `maskMode`.
import { core as mx } from "@frost-beta/mlx";
import { consola } from "consola";
import type { LlamaModel } from "../model/llama.ts";
import type { TextTokenizer } from "../tokenizer/types.ts";
import { learningRate } from "./schedule.ts";
import { defaultOptimizerConfig, gatherSupervised, TrainStep, type StepBatch } from "./step.ts";
import { slicedCrossEntropy } from "./head-loss.ts";
import { hiddenByLayer } from "./recompute.ts";
import { releaseMemory } from "../mlx/memory.ts";
import { checkLengths, fitsLength, iterateBatches, padAndCollate, truncateExamples, truncationWarnings, type IndexBatch } from "../data/batch.ts";
import { collateMixed, type ProseReplay } from "../data/replay.ts";
import { SFTConfigError, stepsForEpochs, type SFTConfig } from "./config.ts";
import { neftuneNoise } from "./neftune.ts";
import type { SFTExample } from "../format/types.ts";
import { readState, writeState, type EvalRecord, type History, type StepMetrics } from "./state.ts";
import { ChatFormat } from "../format/chat-format.ts";
import { collapseReason } from "./collapse.ts";

export { defaultSFTConfig, resolveSFTConfig, SFTConfigError, stepsForEpochs, type SFTConfig } from "./config.ts";
export { TRAIN_STATUSES, type EvalRecord, type History, type StepMetrics, type TrainStatus } from "./state.ts";

const log = consola.withTag("sft");

export interface TrainerHooks {
  onReport?(m: StepMetrics): void; // one per report window: the window's averages
  onEval?(e: EvalRecord, isBest: boolean): void;
  shouldStop?(): boolean; // polled before every step (Ctrl-C)
}

/** What the trainer may mix into its batches besides the conversations. */
export interface TrainerExtras {
  replay?: ProseReplay | null; // plain-text windows, `cfg.mixProse` of each batch's rows (lib/data/replay.ts)
}

export class SFTTrainer {
  readonly history: History;
  readonly cfg: SFTConfig; // as given, with `steps` derived from `epochs` when that is set
  readonly replay: ProseReplay | null;
  private readonly stepper: TrainStep;
  private readonly examples: SFTExample[];
  private readonly padId: number;
  private batches: Generator<IndexBatch>;
  private batchesDrawn = 0; // resume replays the deterministic batch order up to here
  private evalsSinceBest = 0;
  private best: mx.array[] | null = null; // references: MLX arrays are immutable values
  private trained: mx.array[] | null = null; // where training left off, before restoreBest()
  private finished = false; // releaseTrainingState() was called
  private readonly trainDropped: number;
  private readonly trainTruncated: number;

  constructor(
    readonly model: LlamaModel,
    readonly tokenizer: TextTokenizer,
    train: SFTExample[],
    cfg: SFTConfig,
    private readonly hooks: TrainerHooks = {},
    { replay = null }: TrainerExtras = {},
  ) {
    this.cfg = cfg;
    const context = model.config.maxPositionEmbeddings;
    if (cfg.maxSeqLen > context) {
      throw new SFTConfigError(`maxSeqLen ${cfg.maxSeqLen} is longer than the model's context (${context}): use --max-seq-len ${context} or less`);
    }
    this.history = { train: [], eval: [], bestStep: -1, bestEvalLoss: Infinity, status: "completed", skippedBatches: 0, droppedExamples: 0, truncatedExamples: 0 };
    const fitted = this.fit(train, "training");
    this.examples = fitted.kept;
    this.trainDropped = this.history.droppedExamples = fitted.dropped;
    this.trainTruncated = this.history.truncatedExamples = fitted.truncated;
    if (this.examples.every((ex) => ex.mask.slice(1).every((m) => m === 0))) {
      throw new Error(`none of the ${this.examples.length} training examples has a supervised target: check the loss mask (maskMode \`${cfg.maskMode}\`)`);
    }
    if (cfg.epochs > 0) this.cfg = { ...cfg, steps: stepsForEpochs(cfg.epochs, this.examples.length, cfg.batchSize, cfg.gradAccum) };
    if ((cfg.mixProse > 0) !== (replay !== null)) {
      throw new SFTConfigError(cfg.mixProse > 0 ? `mixProse ${cfg.mixProse} needs replay text (--prose-data) to mix in` : "replay text was given but mixProse is 0: set --mix-prose");
    }
    this.replay = replay;
    this.padId = ChatFormat.of(tokenizer).pad; // weight 0 there by position anyway
    // weightDecay comes from the SFT config (0 unless set), not the pretraining default.
    // sparseHead: the output head and the softmax run only at supervised targets (about 60% of the
    // positions on the bundled data): same losses to the last digit, ~9% less time per step.
    this.stepper = new TrainStep(model, { ...defaultOptimizerConfig(), weightDecay: cfg.weightDecay, gradClip: cfg.gradClip }, { sparseHead: true, embedNoise: cfg.neftuneAlpha > 0, seed: cfg.seed, recompute: cfg.gradCheckpoint });
    this.batches = this.newBatchIterator();
  }

  /** Optimizer steps taken. */
  get step(): number {
    return this.stepper.stepCount;
  }

  /** Passes over the training conversations so far (batches drawn / batches per pass). */
  get epochsDone(): number {
    return this.batchesDrawn / Math.ceil(this.examples.length / this.cfg.batchSize);
  }

  /** Learning rate at optimizer step `step` (1-based; default: the next step). */
  lr(step = this.step + 1): number {
    const { lr, warmup, steps, minLrRatio } = this.cfg;
    return learningRate({ lr, warmup, steps, minLrRatio }, step);
  }

  /** One optimizer step: draw `gradAccum` batches, mix the replay rows into each, collate, add
   * NEFTune noise, step on them together. A step whose conversations have no supervised targets is
   * skipped (warned and counted) rather than stepped on: its loss would be 0 with a zero gradient,
   * but Adam's moments would still decay and the step counter advance, so it would silently shorten
   * the schedule. */
  async trainStep(): Promise<StepMetrics> {
    if (this.finished) throw new Error("this trainer's optimizer state was released (releaseTrainingState): it cannot train again");
    this.trained = null;
    const t0 = performance.now();
    const drawn: number[] = [];
    const batches = Array.from({ length: this.cfg.gradAccum }, () => {
      const { indices, examples } = this.batches.next().value as IndexBatch;
      const index = this.batchesDrawn; // replay windows are a function of it: resume replays the same ones
      this.batchesDrawn += 1;
      drawn.push(...indices);
      return collateMixed(examples, this.replay, index, { maxSeqLen: this.cfg.maxSeqLen, padId: this.padId, padMultiple: this.cfg.padMultiple });
    });
    const sizes = batches.map((b) => b.inputs.shape[0]! * b.inputs.shape[1]!); // [B, T] each
    const tokens = sizes.reduce((a, b) => a + b, 0);
    const ntoks = batches.reduce((a, b) => a + b.ntoks, 0);
    const proseNtoks = batches.reduce((a, b) => a + b.proseNtoks, 0);
    const sftNtoks = ntoks - proseNtoks;
    const paddingFraction = batches.reduce((a, b, i) => a + b.paddingFraction * sizes[i]!, 0) / tokens;
    const base = { ntoks: sftNtoks, proseNtoks, tokens, paddingFraction };
    let m: StepMetrics;
    if (sftNtoks === 0) {
      this.history.skippedBatches += 1;
      log.warn(`skipping a batch with no supervised tokens (examples ${drawn.join(", ")}) at step ${this.step}`);
      m = { step: this.step, loss: 0, lr: this.lr(), gradNorm: 0, ...base, tokensPerSec: 0, skipped: true };
    } else {
      const lr = this.lr();
      // micro-batches with no targets add nothing to the sums: left out
      const steps = batches.flatMap((batch, j) => {
        if (batch.ntoks === 0) return [];
        const [B, T] = batch.inputs.shape as [number, number];
        const alpha = this.cfg.neftuneAlpha;
        return [alpha > 0 ? { ...batch, noise: neftuneNoise([B, T, this.model.config.hiddenSize], alpha, this.cfg.seed, this.step + 1, j) } : batch];
      });
      const { loss, gradNorm, proseSum } = await this.stepper.step(steps.length === 1 ? steps[0]! : steps, lr);
      const secs = (performance.now() - t0) / 1000;
      // The step's loss is over every target; the conversations' part is what eval loss compares with.
      const sftLoss = proseNtoks ? (loss * ntoks - proseSum) / sftNtoks : loss;
      const prose = proseNtoks ? { proseLoss: proseSum / proseNtoks } : {};
      m = { step: this.step, loss: sftLoss, ...prose, lr, gradNorm, ...base, tokensPerSec: tokens / secs, skipped: false };
    }
    this.history.train.push(m);
    return m;
  }

  /** Held-out loss in nats/token: sum of CE over every supervised target of every example, divided
   * once by their count (never a mean of batch means). The head runs only at supervised positions,
   * in one compiled graph per batch (TrainStep.lossSum: no intermediate outlives its use), so
   * evaluating needs less memory than a training step and does not raise resident memory; with
   * --grad-checkpoint (the memory-saving mode) over the vocabulary in slices, as the step does. */
  async evaluate(examples: SFTExample[]): Promise<number> {
    const order = examples.map((_, i) => i).sort((a, b) => examples[a]!.ids.length - examples[b]!.ids.length);
    this.model.eval(); // no LoRA dropout while measuring
    let sum = 0;
    let ntoks = 0;
    for (let i = 0; i < order.length; i += this.cfg.batchSize) {
      const rows = order.slice(i, i + this.cfg.batchSize).map((j) => examples[j]!);
      const b = padAndCollate(rows, { maxSeqLen: this.cfg.maxSeqLen, padId: this.padId, padMultiple: this.cfg.padMultiple });
      sum += this.cfg.gradCheckpoint ? await slicedLossSum(this.model, b) : this.stepper.lossSum(b);
      ntoks += b.ntoks;
      await releaseMemory();
    }
    this.model.train();
    if (ntoks === 0) throw new Error(`the ${examples.length} eval examples have no supervised targets: nothing to evaluate`);
    return sum / ntoks;
  }

  /** Train until `cfg.steps`, early stopping, a diverged or collapsed model (NaN, or the rule of
   * lib/train/collapse.ts: status `failed`), or `shouldStop`. Evaluates at step 0, every
   * `evalEvery` steps and at the last step; leaves the model holding the weights `keep` asks for,
   * and after a failure the best evaluated ones. */
  async train(evalExamples?: SFTExample[]): Promise<History> {
    const h = this.history;
    h.status = "completed";
    delete h.reason;
    let evalSet: SFTExample[] | null = null;
    if (evalExamples?.length) {
      const fitted = this.fit(evalExamples, "eval");
      evalSet = fitted.kept;
      h.droppedExamples = this.trainDropped + fitted.dropped;
      h.truncatedExamples = this.trainTruncated + fitted.truncated;
    }
    const runEval = async () => {
      const rec = { step: this.step, evalLoss: await this.evaluate(evalSet!), ntoks: this.countTargets(evalSet!) };
      const isBest = rec.evalLoss < h.bestEvalLoss - this.cfg.minDelta;
      if (isBest) {
        h.bestEvalLoss = rec.evalLoss;
        h.bestStep = rec.step;
        this.best = this.stepper.flat.read();
        this.evalsSinceBest = 0;
      } else this.evalsSinceBest += 1;
      h.eval.push(rec);
      this.hooks.onEval?.(rec, isBest);
    };
    const evaluated = () => h.eval.at(-1)?.step === this.step;
    if (evalSet && this.step === 0 && !evaluated()) await runEval(); // the starting point (a resumed run has it)

    let window: StepMetrics[] = [];
    while (this.step < this.cfg.steps) {
      if (this.hooks.shouldStop?.()) {
        h.status = "interrupted";
        h.reason = `stopped at step ${this.step} of ${this.cfg.steps}`;
        break;
      }
      const lastGood = this.stepper.flat.read();
      const m = await this.trainStep();
      if (m.skipped) continue; // cannot repeat forever: the constructor made sure some example has targets
      if (!Number.isFinite(m.loss) || !Number.isFinite(m.gradNorm)) {
        this.stepper.flat.write(lastGood); // this step's update is poisoned; the best weights are restored below
        h.status = "failed";
        const what = Number.isFinite(m.loss) ? `gradient norm ${m.gradNorm}` : `loss ${m.loss}`;
        h.reason = `${what} at step ${m.step} (lr ${m.lr.toExponential(2)}): training diverged; lower --lr or raise --warmup`;
        break;
      }
      window.push(m);
      // The last step: what follows (evaluation, saving, probes) needs a fraction of a step's peak,
      // which the allocator would otherwise keep for the rest of the run (lib/mlx/allocator.ts).
      if (this.step === this.cfg.steps) await releaseMemory({ toSystem: true });
      if (this.step % this.cfg.logEvery === 0 || this.step === this.cfg.steps) {
        this.hooks.onReport?.(averageWindow(window));
        window = [];
      }
      if (evalSet && (this.step % this.cfg.evalEvery === 0 || this.step === this.cfg.steps)) {
        await runEval();
        const collapsed = this.collapsed();
        if (collapsed) {
          h.status = "failed";
          h.reason = collapsed;
          break;
        }
        if (this.cfg.patience > 0 && this.evalsSinceBest >= this.cfg.patience) {
          h.status = "stopped-early";
          h.reason = `held-out loss did not improve by ${this.cfg.minDelta} for ${this.evalsSinceBest} evaluations (best ${h.bestEvalLoss.toFixed(4)} at step ${h.bestStep})`;
          break;
        }
      }
    }
    if (window.length) this.hooks.onReport?.(averageWindow(window));
    // Not after an interruption: an extra evaluation would change the best/patience bookkeeping,
    // and a resumed run must match one that was never interrupted.
    if (evalSet && h.status === "completed" && !evaluated()) {
      await runEval();
      const collapsed = this.collapsed();
      if (collapsed) Object.assign(h, { status: "failed", reason: collapsed });
    }
    this.trained = this.stepper.flat.read();
    // keep "last" (e.g. the steps sweep, to see over-training) ends with the weights training
    // reached; a failed run always ends with its best, never with the weights that diverged.
    if (this.cfg.keep === "best" || h.status === "failed") this.restoreBest();
    if (h.status === "failed" && h.bestStep >= 0) h.reason += `; kept the best weights (step ${h.bestStep}, held-out loss ${h.bestEvalLoss.toFixed(4)})`;
    return h;
  }

  /** Why the last evaluation shows a collapsed model (lib/train/collapse.ts), or null; the step-0
   * evaluation is the base it is measured against. */
  private collapsed(): string | null {
    const base = this.history.eval.find((e) => e.step === 0);
    const last = this.history.eval.at(-1);
    if (!base || !last || last.step === 0) return null;
    return collapseReason(last.evalLoss, base.evalLoss, this.model.config.vocabSize, last.step, this.lr(last.step));
  }

  /** Drop what only more training or saveState would read (AdamW's moments, the best and last
   * weights kept aside), once the run is saved: a 0.6B base's probes then run beside 4.5 GB less. */
  releaseTrainingState(): void {
    this.stepper.setState({ m: [], v: [], t: this.stepper.stepCount });
    this.best = null;
    this.trained = null;
    this.finished = true;
  }

  /** Put the best evaluated weights back into the model (a no-op before any evaluation). */
  restoreBest(): void {
    if (this.best) this.stepper.flat.write(this.best);
  }

  /** Everything `--resume` needs: weights where training left off, best weights, Adam moments,
   * step, batch position and history, as one folder swapped in whole (lib/train/state.ts); an
   * earlier state in `dir` is replaced only once the new one is complete on disk. */
  saveState(dir: string): void {
    const paths = this.stepper.flat.paths;
    const { m, v, t } = this.stepper.state();
    const weights = this.trained ?? this.stepper.flat.read();
    const arrays: Record<string, mx.array> = {};
    paths.forEach((p, i) => {
      arrays[`weights.${p}`] = weights[i]!;
      arrays[`m.${p}`] = m[i]!;
      arrays[`v.${p}`] = v[i]!;
      if (this.best) arrays[`best.${p}`] = this.best[i]!;
    });
    writeState(dir, arrays, {
      step: t, batchesDrawn: this.batchesDrawn, evalsSinceBest: this.evalsSinceBest, paths, cfg: this.cfg,
      history: { ...this.history, bestEvalLoss: Number.isFinite(this.history.bestEvalLoss) ? this.history.bestEvalLoss : null },
    });
  }

  /** Continue from a state written by `saveState` (same model architecture, data and config); the
   * state is checked whole first (FileError naming the file otherwise). */
  loadState(dir: string): void {
    const paths = this.stepper.flat.paths;
    const { state, arrays } = readState(dir, { paths, shapes: this.stepper.flat.read().map((a) => a.shape) });
    const pick = (prefix: string) => paths.map((p) => arrays[`${prefix}.${p}`]!);
    this.stepper.flat.write(pick("weights"));
    this.stepper.setState({ m: pick("m"), v: pick("v"), t: state.step });
    this.best = `best.${paths[0]}` in arrays ? pick("best") : null;
    Object.assign(this.history, state.history, { bestEvalLoss: state.history.bestEvalLoss ?? Infinity });
    this.evalsSinceBest = state.evalsSinceBest;
    this.batches = this.newBatchIterator();
    for (let i = 0; i < state.batchesDrawn; i++) this.batches.next(); // the order is a function of the seed
    this.batchesDrawn = state.batchesDrawn;
    this.trained = null;
  }

  private newBatchIterator(): Generator<IndexBatch> {
    return iterateBatches(this.examples, { batchSize: this.cfg.batchSize, seed: this.cfg.seed, groupByLength: this.cfg.groupByLength });
  }

  /** Over-length examples: refused with their index (checkLengths), dropped and counted, or cut from
   * the end and counted (warning by index where the cut removed an assistant turn's `<|end|>`). */
  private fit(examples: SFTExample[], what: string): { kept: SFTExample[]; dropped: number; truncated: number } {
    if (examples.length === 0) throw new Error(`no ${what} examples`);
    const context = this.model.config.maxPositionEmbeddings;
    if (this.cfg.truncate) {
      const t = truncateExamples(examples, this.cfg.maxSeqLen, ChatFormat.of(this.tokenizer).end);
      for (const warning of truncationWarnings(t, examples.length, what, this.cfg.maxSeqLen)) log.warn(warning);
      checkLengths(t.examples, this.cfg.maxSeqLen, context);
      return { kept: t.examples, dropped: 0, truncated: t.cut.length };
    }
    if (!this.cfg.dropOverlength) {
      try {
        checkLengths(examples, this.cfg.maxSeqLen, context);
      } catch (e) {
        throw new Error(`${what} ${(e as Error).message}`);
      }
      return { kept: examples, dropped: 0, truncated: 0 };
    }
    const kept = examples.filter((ex) => fitsLength(ex, this.cfg.maxSeqLen));
    const dropped = examples.length - kept.length;
    if (dropped) log.warn(`dropped ${dropped} of ${examples.length} ${what} examples longer than maxSeqLen ${this.cfg.maxSeqLen}`);
    if (kept.length === 0) {
      const shortest = Math.min(...examples.map((ex) => ex.ids.length - 1));
      const fix = shortest <= context ? `raise --max-seq-len to at least ${shortest} (the model's context is ${context})` : `they are all longer than the model's context (${context}): shorten them`;
      throw new Error(`every ${what} example is longer than maxSeqLen ${this.cfg.maxSeqLen}, so --drop-overlength leaves none: ${fix}`);
    }
    checkLengths(kept, this.cfg.maxSeqLen, context);
    return { kept, dropped, truncated: 0 };
  }

  private countTargets(examples: SFTExample[]): number {
    return examples.reduce((n, ex) => n + ex.mask.slice(1).reduce((a, b) => a + b, 0), 0);
  }
}

/** Sum of masked cross-entropy over a batch, layer by layer, the head over the vocabulary in slices at
 * the supervised positions (lib/train/head-loss.ts): no [N, V] logits, nor a quantized embedding's
 * dequantized copy, nor every layer's intermediates at once. The held-out evaluation of a
 * gradient-checkpointed run and the prose probe of a large-vocabulary base use it. */
export async function slicedLossSum(model: LlamaModel, batch: StepBatch): Promise<number> {
  const h = await hiddenByLayer(model, batch.inputs); // [B, T, D]
  const [B, T, D] = h.shape as [number, number, number];
  const { positions, targets, weights } = gatherSupervised(batch);
  const rows = mx.take(h.reshape([B * T, D]), positions, 0); // [N, D]
  mx.eval(rows);
  await releaseMemory(); // the forward pass's activations
  const { ce } = await slicedCrossEntropy(model, rows, targets, weights, null);
  return mx.sum(mx.multiply(ce, weights)).item() as number;
}

/** A report window's metrics: loss token-weighted, throughput over the window's stepping time. */
function averageWindow(window: StepMetrics[]): StepMetrics {
  const sum = (f: (m: StepMetrics) => number) => window.reduce((a, m) => a + f(m), 0);
  const ntoks = sum((m) => m.ntoks);
  const proseNtoks = sum((m) => m.proseNtoks);
  const tokens = sum((m) => m.tokens);
  const last = window[window.length - 1]!;
  return {
    step: last.step,
    loss: sum((m) => m.loss * m.ntoks) / ntoks,
    ...(proseNtoks ? { proseLoss: sum((m) => (m.proseLoss ?? 0) * m.proseNtoks) / proseNtoks } : {}),
    lr: last.lr,
    gradNorm: sum((m) => m.gradNorm) / window.length,
    ntoks,
    proseNtoks,
    tokens,
    paddingFraction: sum((m) => m.paddingFraction * m.tokens) / tokens,
    tokensPerSec: tokens / sum((m) => m.tokens / m.tokensPerSec),
    skipped: false,
  };
}
