// The SFT trainer: batches from iterateBatches → padAndCollate → one compiled TrainStep, warmup +
// cosine learning rate, token-weighted held-out evaluation, early stopping with the best weights
// kept, and resumable state. Data comes in already rendered (SFTExample: ids + mask), so the
// trainer never sees the chat template; the run (lib/sft/run.ts) renders with `maskMode`.
import { core as mx } from "@frost-beta/mlx";
import { consola } from "consola";
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { LlamaModel } from "../model/llama.ts";
import { readJSON, writeJSON } from "../runs.ts";
import type { TextTokenizer } from "../tokenizer/types.ts";
import { SPECIAL_TOKENS } from "../tokenizer/types.ts";
import { learningRate } from "../train/schedule.ts";
import { defaultOptimizerConfig, TrainStep } from "../train/step.ts";
import { checkLengths, iterateBatches, padAndCollate, type IndexBatch } from "./batch.ts";
import { maskedCrossEntropySum } from "./loss.ts";
import type { MaskMode } from "./template.ts";
import type { SFTExample } from "./types.ts";

const log = consola.withTag("sft");

export interface SFTConfig {
  steps: number;
  lr: number;
  warmup: number;
  minLrRatio: number;
  batchSize: number;
  maxSeqLen: number;
  padMultiple: number;
  evalEvery: number;
  patience: number;
  minDelta: number;
  gradClip: number;
  weightDecay: number;
  seed: number;
  maskMode: MaskMode;
  groupByLength: boolean;
  dropOverlength: boolean;
  logEvery: number;
}

/** The course's defaults for a ~6M-parameter base and a few hundred conversations. */
export function defaultSFTConfig(): SFTConfig {
  return {
    steps: 500, // optimizer steps (the course's number); early stopping may end sooner
    lr: 3e-4, // peak; ~0.1x the base's pretraining lr (3e-3): adapt the model, don't overwrite it
    warmup: 20, // steps of linear warmup: Adam's second-moment estimate is noisy for the first steps
    minLrRatio: 0.1, // the cosine ends at 0.1x the peak
    batchSize: 8, // conversations per step: ~20 steps per pass over 154 conversations
    maxSeqLen: 256, // targets per row: the base's context; longer examples are refused, never cut
    padMultiple: 16, // round the batch length up to a multiple of this so compiled shapes repeat
    evalEvery: 50, // steps between held-out evaluations (also one at step 0 and one at the end)
    patience: 3, // evaluations without improvement before stopping early; 0 = never stop early
    minDelta: 1e-3, // nats/token an evaluation must beat the best by to count as an improvement
    gradClip: 1.0, // max global gradient norm
    // No decay: a few hundred steps on a few hundred examples. Decoupled decay pulls every matrix
    // toward zero, i.e. away from the pretrained base, which is what SFT should stay close to
    // (mlx-lm's fine-tuning uses plain Adam too).
    weightDecay: 0,
    seed: 0, // batch order; the same seed gives bit-identical losses
    maskMode: "assistant", // supervise assistant replies and their <|end|>; "all" is the ablation
    groupByLength: true, // batch conversations of similar length: less padding
    dropOverlength: false, // refuse examples longer than maxSeqLen (true: drop and count them)
    logEvery: 10, // steps per report window
  };
}

export class SFTConfigError extends Error {
  override name = "SFTConfigError";
}

type Rule = { kind: "int" | "number" | "bool" | "mask"; min?: number; max?: number; positive?: boolean };
const RULES: Record<keyof SFTConfig, Rule> = {
  steps: { kind: "int", positive: true },
  lr: { kind: "number", positive: true },
  warmup: { kind: "int", min: 0 },
  minLrRatio: { kind: "number", min: 0, max: 1 },
  batchSize: { kind: "int", positive: true },
  maxSeqLen: { kind: "int", min: 2 },
  padMultiple: { kind: "int", positive: true },
  evalEvery: { kind: "int", positive: true },
  patience: { kind: "int", min: 0 },
  minDelta: { kind: "number", min: 0 },
  gradClip: { kind: "number", min: 0 },
  weightDecay: { kind: "number", min: 0 },
  seed: { kind: "int", min: 0 },
  maskMode: { kind: "mask" },
  groupByLength: { kind: "bool" },
  dropOverlength: { kind: "bool" },
  logEvery: { kind: "int", positive: true },
};

/** Defaults overlaid with `partial`, validated: an unknown key or a bad value throws an
 * SFTConfigError naming the key and the value. */
export function resolveSFTConfig(partial: Partial<SFTConfig>): SFTConfig {
  const cfg: Record<string, unknown> = { ...defaultSFTConfig() };
  for (const [key, value] of Object.entries(partial)) {
    const rule = RULES[key as keyof SFTConfig];
    if (!rule) throw new SFTConfigError(`unknown SFT config key \`${key}\`; known keys: ${Object.keys(RULES).join(", ")}`);
    if (value === undefined) continue;
    const bad = (want: string) => new SFTConfigError(`${key} must be ${want}, got \`${JSON.stringify(value)}\``);
    if (rule.kind === "mask") {
      if (value !== "assistant" && value !== "all") throw bad(`"assistant" or "all"`);
    } else if (rule.kind === "bool") {
      if (typeof value !== "boolean") throw bad("true or false");
    } else {
      const want = [rule.kind === "int" ? "an integer" : "a number", rule.positive ? "> 0" : "",
        rule.min !== undefined ? `>= ${rule.min}` : "", rule.max !== undefined ? `<= ${rule.max}` : ""].filter(Boolean).join(" ");
      const n = value as number;
      if (typeof value !== "number" || !Number.isFinite(n) || (rule.kind === "int" && !Number.isInteger(n)) ||
        (rule.positive && !(n > 0)) || (rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max)) {
        throw bad(want);
      }
    }
    cfg[key] = value;
  }
  return cfg as unknown as SFTConfig;
}

export interface StepMetrics {
  step: number; // optimizer steps taken so far (a skipped batch does not take one)
  loss: number; // mean CE over supervised targets, nats/token (token-weighted over a window)
  lr: number;
  gradNorm: number; // global norm before clipping
  ntoks: number; // supervised targets
  tokens: number; // positions in the batch, padding included
  paddingFraction: number;
  tokensPerSec: number; // tokens (padding included) per second of stepping
  skipped: boolean; // the batch had no supervised targets and was not stepped on
}

export interface EvalRecord {
  step: number;
  evalLoss: number; // nats/token, token-weighted over the whole eval set
  ntoks: number;
}

export interface History {
  train: StepMetrics[]; // one per batch drawn, skipped ones included
  eval: EvalRecord[];
  bestStep: number; // step of the best evaluation; -1 before any
  bestEvalLoss: number; // Infinity before any evaluation
  status: "completed" | "stopped-early" | "interrupted" | "failed";
  reason?: string;
  skippedBatches: number;
  droppedExamples: number;
}

export interface TrainerHooks {
  onReport?(m: StepMetrics): void; // one per report window: the window's averages
  onEval?(e: EvalRecord, isBest: boolean): void;
  shouldStop?(): boolean; // polled before every step (Ctrl-C)
}

/** Trainer state files written by saveState: arrays first, the JSON last (its presence marks a
 * complete state). */
const STATE_ARRAYS = "trainer-state.safetensors";
const STATE_JSON = "trainer-state.json";

export class SFTTrainer {
  readonly history: History;
  private readonly stepper: TrainStep;
  private readonly examples: SFTExample[];
  private readonly padId: number;
  private batches: Generator<IndexBatch>;
  private batchesDrawn = 0; // resume replays the deterministic batch order up to here
  private evalsSinceBest = 0;
  private best: mx.array[] | null = null; // references: MLX arrays are immutable values
  private trained: mx.array[] | null = null; // where training left off, before restoreBest()
  private readonly trainDropped: number;

  constructor(
    readonly model: LlamaModel,
    readonly tokenizer: TextTokenizer,
    train: SFTExample[],
    readonly cfg: SFTConfig,
    private readonly hooks: TrainerHooks = {},
  ) {
    const context = model.config.maxPositionEmbeddings;
    if (cfg.maxSeqLen > context) {
      throw new SFTConfigError(`maxSeqLen ${cfg.maxSeqLen} is longer than the model's context (${context}): use --max-seq-len ${context} or less`);
    }
    this.history = { train: [], eval: [], bestStep: -1, bestEvalLoss: Infinity, status: "completed", skippedBatches: 0, droppedExamples: 0 };
    const fitted = this.fit(train, "training");
    this.examples = fitted.kept;
    this.trainDropped = this.history.droppedExamples = fitted.dropped;
    if (this.examples.every((ex) => ex.mask.slice(1).every((m) => m === 0))) {
      throw new Error(`none of the ${this.examples.length} training examples has a supervised target: check the loss mask (maskMode \`${cfg.maskMode}\`)`);
    }
    this.padId = tokenizer.hasToken(SPECIAL_TOKENS.pad) ? tokenizer.tokenId(SPECIAL_TOKENS.pad) : 0; // mask is 0 there by position anyway
    // weightDecay comes from the SFT config (0 unless set), not the pretraining default.
    this.stepper = new TrainStep(model, { ...defaultOptimizerConfig(), weightDecay: cfg.weightDecay, gradClip: cfg.gradClip });
    this.batches = this.newBatchIterator();
  }

  /** Optimizer steps taken. */
  get step(): number {
    return this.stepper.stepCount;
  }

  /** Learning rate at optimizer step `step` (1-based; default: the next step). */
  lr(step = this.step + 1): number {
    const { lr, warmup, steps, minLrRatio } = this.cfg;
    return learningRate({ lr, warmup, steps, minLrRatio }, step);
  }

  /** One batch: draw, collate, step. A batch without supervised targets is skipped (warned and
   * counted) rather than stepped on: its loss would be 0 with a zero gradient, but Adam's moments
   * would still decay and the step counter advance, so it would silently shorten the schedule. */
  async trainStep(): Promise<StepMetrics> {
    this.trained = null;
    const { indices, examples } = this.batches.next().value as IndexBatch;
    this.batchesDrawn += 1;
    const t0 = performance.now();
    const batch = padAndCollate(examples, { maxSeqLen: this.cfg.maxSeqLen, padId: this.padId, padMultiple: this.cfg.padMultiple });
    const tokens = batch.inputs.shape[0]! * batch.inputs.shape[1]!; // [B, T]
    const base = { ntoks: batch.ntoks, tokens, paddingFraction: batch.paddingFraction };
    let m: StepMetrics;
    if (batch.ntoks === 0) {
      this.history.skippedBatches += 1;
      log.warn(`skipping a batch with no supervised tokens (examples ${indices.join(", ")}) at step ${this.step}`);
      m = { step: this.step, loss: 0, lr: this.lr(), gradNorm: 0, ...base, tokensPerSec: 0, skipped: true };
    } else {
      const lr = this.lr();
      const { loss, gradNorm } = await this.stepper.step(batch, lr);
      const secs = (performance.now() - t0) / 1000;
      m = { step: this.step, loss, lr, gradNorm, ...base, tokensPerSec: tokens / secs, skipped: false };
    }
    this.history.train.push(m);
    return m;
  }

  /** Held-out loss in nats/token: sum of CE over every supervised target of every example, divided
   * once by their count (never a mean of batch means). */
  evaluate(examples: SFTExample[]): number {
    const order = examples.map((_, i) => i).sort((a, b) => examples[a]!.ids.length - examples[b]!.ids.length);
    let sum = 0;
    let ntoks = 0;
    for (let i = 0; i < order.length; i += this.cfg.batchSize) {
      const rows = order.slice(i, i + this.cfg.batchSize).map((j) => examples[j]!);
      const b = padAndCollate(rows, { maxSeqLen: this.cfg.maxSeqLen, padId: this.padId, padMultiple: this.cfg.padMultiple });
      const [s] = maskedCrossEntropySum(this.model.forward(b.inputs), b.targets, b.mask);
      sum += s.item() as number;
      ntoks += b.ntoks;
    }
    if (ntoks === 0) throw new Error(`the ${examples.length} eval examples have no supervised targets: nothing to evaluate`);
    return sum / ntoks;
  }

  /** Train until `cfg.steps`, early stopping, NaN, or `shouldStop`. Evaluates at step 0, every
   * `evalEvery` steps and at the end; leaves the model holding the best evaluated weights. */
  async train(evalExamples?: SFTExample[]): Promise<History> {
    const h = this.history;
    h.status = "completed";
    delete h.reason;
    let evalSet: SFTExample[] | null = null;
    if (evalExamples?.length) {
      const fitted = this.fit(evalExamples, "eval");
      evalSet = fitted.kept;
      h.droppedExamples = this.trainDropped + fitted.dropped;
    }
    const runEval = () => {
      const rec = { step: this.step, evalLoss: this.evaluate(evalSet!), ntoks: this.countTargets(evalSet!) };
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
    if (evalSet && !evaluated()) runEval();

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
        this.stepper.flat.write(lastGood); // this step's update is poisoned; best weights are restored below
        h.status = "failed";
        h.reason = `loss ${m.loss} (grad norm ${m.gradNorm}) at step ${m.step}, lr ${m.lr.toExponential(2)}: lower --lr or raise --warmup`;
        log.error(h.reason);
        break;
      }
      window.push(m);
      if (this.step % this.cfg.logEvery === 0 || this.step === this.cfg.steps) {
        this.hooks.onReport?.(averageWindow(window));
        window = [];
      }
      if (evalSet && (this.step % this.cfg.evalEvery === 0 || this.step === this.cfg.steps)) {
        runEval();
        if (this.cfg.patience > 0 && this.evalsSinceBest >= this.cfg.patience) {
          h.status = "stopped-early";
          h.reason = `held-out loss did not improve by ${this.cfg.minDelta} for ${this.evalsSinceBest} evaluations (best ${h.bestEvalLoss.toFixed(4)} at step ${h.bestStep})`;
          break;
        }
      }
    }
    if (window.length) this.hooks.onReport?.(averageWindow(window));
    if (evalSet && h.status !== "failed" && !evaluated()) runEval();
    this.trained = this.stepper.flat.read();
    this.restoreBest();
    return h;
  }

  /** Put the best evaluated weights back into the model (a no-op before any evaluation). */
  restoreBest(): void {
    if (this.best) this.stepper.flat.write(this.best);
  }

  /** Everything `--resume` needs: weights where training left off, best weights, Adam moments,
   * step, batch position and history. Overwrites an earlier state in `dir`. */
  saveState(dir: string): void {
    mkdirSync(dir, { recursive: true });
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
    const tmp = join(dir, `tmp-${process.pid}.safetensors`);
    mx.saveSafetensors(tmp, arrays);
    renameSync(tmp, join(dir, STATE_ARRAYS));
    writeJSON(join(dir, STATE_JSON), {
      step: t, batchesDrawn: this.batchesDrawn, evalsSinceBest: this.evalsSinceBest, paths, cfg: this.cfg,
      history: { ...this.history, bestEvalLoss: Number.isFinite(this.history.bestEvalLoss) ? this.history.bestEvalLoss : null },
    });
  }

  /** Continue from a state written by `saveState` (same model architecture, data and config). */
  loadState(dir: string): void {
    if (!existsSync(join(dir, STATE_JSON)) || !existsSync(join(dir, STATE_ARRAYS))) {
      throw new Error(`${dir} holds no complete trainer state (${STATE_JSON} and ${STATE_ARRAYS}): it cannot be resumed`);
    }
    const state = readJSON(join(dir, STATE_JSON));
    const paths = this.stepper.flat.paths;
    if (JSON.stringify(state.paths) !== JSON.stringify(paths)) {
      throw new Error(`${dir}: the saved parameters do not match this model's (${state.paths.length} vs ${paths.length}): resume with the same --base`);
    }
    const arrays = mx.load(join(dir, STATE_ARRAYS)) as unknown as Record<string, mx.array>;
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

  /** Over-length examples: refused with their index (checkLengths), or dropped and counted. */
  private fit(examples: SFTExample[], what: string): { kept: SFTExample[]; dropped: number } {
    if (examples.length === 0) throw new Error(`no ${what} examples`);
    if (!this.cfg.dropOverlength) {
      try {
        checkLengths(examples, this.cfg.maxSeqLen);
      } catch (e) {
        throw new Error(`${what} ${(e as Error).message} (or set dropOverlength / --drop-overlength to drop such examples)`);
      }
      return { kept: examples, dropped: 0 };
    }
    const kept = examples.filter((ex) => ex.ids.length - 1 <= this.cfg.maxSeqLen);
    const dropped = examples.length - kept.length;
    if (dropped) log.warn(`dropped ${dropped} of ${examples.length} ${what} examples longer than maxSeqLen ${this.cfg.maxSeqLen}`);
    if (kept.length === 0) throw new Error(`every ${what} example is longer than maxSeqLen ${this.cfg.maxSeqLen}: raise --max-seq-len`);
    checkLengths(kept, this.cfg.maxSeqLen);
    return { kept, dropped };
  }

  private countTargets(examples: SFTExample[]): number {
    return examples.reduce((n, ex) => n + ex.mask.slice(1).reduce((a, b) => a + b, 0), 0);
  }
}

/** A report window's metrics: loss token-weighted, throughput over the window's stepping time. */
function averageWindow(window: StepMetrics[]): StepMetrics {
  const sum = (f: (m: StepMetrics) => number) => window.reduce((a, m) => a + f(m), 0);
  const ntoks = sum((m) => m.ntoks);
  const tokens = sum((m) => m.tokens);
  const last = window[window.length - 1]!;
  return {
    step: last.step,
    loss: sum((m) => m.loss * m.ntoks) / ntoks,
    lr: last.lr,
    gradNorm: sum((m) => m.gradNorm) / window.length,
    ntoks,
    tokens,
    paddingFraction: sum((m) => m.paddingFraction * m.tokens) / tokens,
    tokensPerSec: tokens / sum((m) => m.tokens / m.tokensPerSec),
    skipped: false,
  };
}
