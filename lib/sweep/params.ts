// What a sweep can vary: each parameter's default values, how a value is checked and named, how it
// reaches train.ts (a flag, or a data file the sweep writes), and what its plots and tables should
// be read for. The course's exercises are these parameters plus the presets below.

import { parseList, parseNumber, UsageError } from "../util/cli.ts";
import { flagOf, parseOptionFlag, type OptionSpec } from "../util/options.ts";
import { TRAIN_OPTIONS, type RunConfig } from "../sft/run-config.ts";

export const PARAM_NAMES = ["lr", "steps", "epochs", "data-size", "mask", "noise", "mix-prose", "neftune", "lora-rank"] as const;
export type ParamName = (typeof PARAM_NAMES)[number];

/** How a parameter's values are laid out on a plot's x axis. */
export type AxisKind = "log" | "linear" | "category";

export interface SweepParam {
  name: ParamName;
  defaults: string[];
  axis: AxisKind;
  unit: string; // shown in axis labels and table headers
  /** The train.ts flag set to the value; data-size and noise instead write a data file and pass `--data`. */
  trainFlag?: string;
  /** train.ts flags this sweep needs unless the user sets them (added to the pass-through flags;
   * "" adds a boolean flag alone). */
  implied?: Record<string, string>;
  /** Check one value and return its canonical label (also used in the run name). Throws a UsageError. */
  check(value: string): string;
  /** What to look at in this sweep's table and plots, for summary.md and the README. */
  lookAt: string;
}

/** A parameter that is train.ts's option `key`: its flag, and each value checked by the option's
 * entry in the table of options, as train.ts will check it. The label keeps the user's spelling
 * (3e-4, not 0.0003). */
const trainOption = (key: keyof RunConfig) => {
  const spec = TRAIN_OPTIONS[key] as OptionSpec;
  return {
    trainFlag: flagOf(key, spec),
    check: (value: string) => {
      parseOptionFlag("values", spec, value);
      return value;
    },
  };
};

const number = (rule: Parameters<typeof parseNumber>[2]) => (value: string) => {
  parseNumber("values", value, rule);
  return value;
};

export const PARAMS: Record<ParamName, SweepParam> = {
  lr: {
    name: "lr",
    // The base was pretrained at a peak lr of 3e-3: 3e-4 is 10% of it, and 1.5e-4..6e-4 is the
    // course's 5-20% band; 3e-5 barely moves the model, 3e-3 retrains it at the pretraining rate.
    defaults: ["3e-5", "1e-4", "3e-4", "6e-4", "1e-3", "3e-3"],
    axis: "log",
    unit: "peak learning rate",
    ...trainOption("lr"),
    lookAt: "Expect the lowest held-out loss in or near the 1.5e-4..6e-4 band (5-20% of the pretraining lr). Too low and little changes: the stop rate stays near the base's. Too high and the loss curve turns up or spikes (or the run fails with a NaN), the prose-loss change vs base grows and retention drops (forgetting).",
  },
  steps: {
    name: "steps",
    defaults: ["100", "250", "500", "1000"], // from under one pass over 154 conversations to many
    axis: "log",
    unit: "training steps",
    ...trainOption("steps"),
    // Early stopping would end the long runs at the same step as the short ones: train every step,
    // and probe the weights of the last step, so over-training shows in the probes too.
    implied: { patience: "0", keep: "last" },
    lookAt: "The held-out loss curves reach a minimum and then rise (over-fitting) while train loss keeps falling; the final held-out loss moves away from the best. The probes measure each run's last-step weights (`--keep last`): the stop rate saturates early, and more steps bring a larger prose-loss change vs base, lower retention, and more prose openings answered instead of continued (format collapse).",
  },
  epochs: {
    name: "epochs",
    defaults: ["3", "6", "12", "25"], // 25 passes is the course's 500 steps over 154 conversations in batches of 8
    axis: "log",
    unit: "passes over the training data",
    trainFlag: "epochs",
    implied: { patience: "0", keep: "last" }, // as for steps: every run trains to its end and is probed there
    check: number({ integer: true, positive: true }),
    lookAt: "The steps sweep in passes over the data (steps = epochs × ceil(conversations / batch size)). Watch the final held-out loss against the best (over-fitting), memorised replies (training answers given to unrelated prompts) and prose loss vs base rise with the epochs, and the stop rate saturate early.",
  },
  "data-size": {
    name: "data-size",
    defaults: ["10", "25", "50", "all"], // nested subsets: each adds data to the previous one
    axis: "log",
    unit: "training conversations",
    check: (value) => {
      if (value === "all") return value;
      parseNumber("values", value, { integer: true, positive: true });
      return value;
    },
    lookAt: "The stop rate climbs with data (a few dozen conversations may already teach the format); the best held-out loss improves with more data. With 10 conversations and the same number of steps the model memorises them: its held-out loss curve bottoms out early and turns up.",
  },
  mask: {
    name: "mask",
    defaults: ["assistant", "all"],
    axis: "category",
    unit: "loss mask",
    ...trainOption("maskMode"),
    lookAt: "Held-out loss is measured on assistant tokens in both runs, so the two are comparable. With `all` part of every gradient goes to user text: the model also learns to write the user's side, which shows as role leakage (a `<|user|>` turn invented inside a reply) and usually a higher held-out loss for the same steps. `assistant` spends every gradient on the replies.",
  },
  noise: {
    name: "noise",
    defaults: ["0", "10", "25", "50"], // percent of training answers given chat filler
    axis: "linear",
    unit: "noisy answers, %",
    check: number({ min: 0, max: 100 }),
    lookAt: "The off-pattern rate (replies with \"Sure, let me help you with that!\"-style filler on the probe prompts) is 0 for the clean run and rises with the share of noisy training answers; it can exceed that share, because a fixed opener is easier to learn than the answers it precedes. Held-out loss (on the clean eval set) rises a little with the noise.",
  },
  "mix-prose": {
    name: "mix-prose",
    defaults: ["0", "0.25", "0.5"], // share of each batch's rows that are replayed pretraining text
    axis: "linear",
    unit: "replayed prose, share of rows",
    trainFlag: "mix-prose",
    check: number({ min: 0, max: 0.75 }),
    lookAt: "Pretraining replay: plain-text windows of the base's own pretraining text ride along in every batch. Read prose loss vs base, prose continued and retention (the base's skills kept) against the stop rate and memorised replies (the format learned, the data not recited). The held-out SFT loss is on conversations only; the replayed rows dilute the SFT gradient, so a larger mix may want a higher lr or more steps.",
  },
  neftune: {
    name: "neftune",
    defaults: ["0", "5", "10"], // α values of the NEFTune paper (5, 10, 15)
    axis: "linear",
    unit: "NEFTune α",
    trainFlag: "neftune-alpha",
    check: number({ min: 0 }),
    lookAt: "NEFTune: uniform noise of half-width α/√(length·width) on the input embeddings while training, never when evaluating or generating. Its claim is less over-fitting to the exact training answers: read memorised replies and the final-vs-best held-out loss, with the stop rate and prose loss kept.",
  },
  "lora-rank": {
    name: "lora-rank",
    defaults: ["1", "2", "4", "8", "16"], // the course's exercise compares rank 1 with its default 8
    axis: "log",
    unit: "LoRA rank r",
    trainFlag: "lora-rank",
    implied: { lora: "" },
    check: number({ integer: true, positive: true }),
    lookAt: "Trainable parameters grow linearly with the rank (see each run's config.json, provenance.lora.trainable) while the held-out loss and the stop rate barely move past a small rank: learning the chat format is a low-rank change. Keep alpha fixed (--lora-alpha) and the scale alpha/r shrinks as r grows, so a higher rank may also want a higher lr; rank 1 already teaching the format is the course's point.",
  },
};

/** A preset: one of the course's exercises expressed as a parameter sweep with a headline metric. */
export interface SweepPreset {
  param: ParamName;
  values?: string[];
  /** train.ts flags the exercise sets unless the user sets them (after the parameter's own). */
  implied?: Record<string, string>;
  headline: string; // the table column to read first
  lookAt: string;
}

/** The course's exercises run on the course's recipe (train.ts --preset course: 500 steps, lr 3e-4,
 * no replay, no noise), which is what they are about; a flag given to the sweep still wins. */
const COURSE = { preset: "course" };

export const PRESETS: Record<string, SweepPreset> = {
  "format-collapse": {
    param: "steps",
    implied: COURSE, // the course's recipe: these exercises show what it does
    headline: "prose answered",
    lookAt: "Format collapse: on raw prose openings (a poem, a passage, no chat template) the base model continues the text. Read `prose answered` (the share of openings the model ends or turns into a chat within 16 tokens) against the steps: it rises as SFT trains longer, i.e. the model answers where it should continue. The probes measure each run's best checkpoint (the `@step` of its best held-out loss), so runs whose best step is the same show the same probe numbers.",
  },
  "prose-loss": {
    param: "lr",
    implied: COURSE, // the course's recipe: these exercises show what it does
    headline: "prose loss vs base",
    lookAt: "Pretraining loss after SFT: `prose loss vs base` is the fine-tuned model's loss on held-out Gutenberg prose minus the base model's (nats/token, relative change in brackets). Expect it near zero for small lr and rising with lr; retention of corpus facts falls as it rises.",
  },
  // The course's Module 13 notebook exercises (notebooks/clean/13-sft.ipynb), one preset each.
  "unmasked-loss": {
    param: "mask",
    values: ["assistant", "all"],
    implied: COURSE, // the course's recipe: these exercises show what it does
    headline: "role leakage",
    lookAt: "The course's exercise 3, the loss-masking ablation: `all` trains on every token (the user turns too), `assistant` only on the replies and their `<|end|>`. Held-out loss is on assistant tokens in both runs, so the two are comparable (the course's two loss curves are not: its ablation's loss averages over user text too). Read `role leakage`: without the mask the model also learns to write the user's side, and invents `<|user|>` turns inside its replies; the stop rate should stay high in both.",
  },
  "data-size-10-50": {
    param: "data-size",
    values: ["10", "50"],
    implied: { preset: "course", steps: "300" }, // the course's recipe; its run_sft_subset(n, max_steps=300)
    headline: "stop rate",
    lookAt: "The course's exercise 5, the data-size sweep: 10 vs 50 training conversations, 300 steps each (the course takes the first n pairs; here a seeded subset, the 10 inside the 50). Read `stop rate` for the format and the held-out loss for the answers: the format (stopping with `<|end|>`) shows up first, already with 10 conversations, while the held-out loss is lower with 50; the 10-conversation run over-fits (its held-out curve turns up early).",
  },
  "plain-text-ce": {
    param: "steps",
    values: ["100", "500"],
    implied: COURSE, // the course's recipe: these exercises show what it does
    headline: "prose loss",
    lookAt: "The course's exercise 6, base loss after SFT: cross-entropy on held-out plain prose (no template) before SFT (the base row) and after it (each run). Read `prose loss`: it rises after SFT (behaviour shaping costs plain next-token prediction), more with more steps; `prose loss vs base` is the change.",
  },
  "prefilled-turn": {
    param: "steps",
    values: ["100", "500"],
    implied: COURSE, // the course's recipe: these exercises show what it does
    headline: "prefill completed",
    lookAt: "The course's exercise 4, format collapse with a prefilled reply: prompts that end inside an assistant turn (the course's \"Continue this poem:\" with \"The stars above shine bright at night,\" already written, data/sft/probes.json kind `prefill`). A model that learned the format continues the reply in the assistant's voice and closes it with `<|end|>`; the base never closes it. Read `prefill completed` (the share continued for 2+ tokens, without a role marker, and closed with `<|end|>`) against the base row, and the samples of the `f-` probes in each run's samples.md: one-sentence training answers make the model stop early.",
  },
};

/** Resolve the sweep's parameter and values from `--param`, `--preset` and `--values`. */
export function resolveParam(
  { param, preset, values }: { param?: string; preset?: string; values?: string },
): { param: SweepParam; values: string[]; preset?: string } {
  let name = param;
  let presetValues: string[] | undefined;
  if (preset !== undefined) {
    const p = PRESETS[preset];
    if (!p) throw new UsageError(`--preset expects one of ${Object.keys(PRESETS).join(", ")}, got \`${preset}\``);
    if (name !== undefined && name !== p.param) throw new UsageError(`--preset ${preset} sweeps \`${p.param}\`, but --param says \`${name}\`: drop one of them`);
    name = p.param;
    presetValues = p.values;
  }
  if (name === undefined) throw new UsageError(`say what to vary: --param ${PARAM_NAMES.join("|")} (or --preset ${Object.keys(PRESETS).join("|")})`);
  if (!(PARAM_NAMES as readonly string[]).includes(name)) throw new UsageError(`--param expects one of ${PARAM_NAMES.join(", ")}, got \`${name}\``);
  const spec = PARAMS[name as ParamName];
  const list = values !== undefined ? parseList(values) : (presetValues ?? spec.defaults);
  if (list.length === 0) throw new UsageError(`--values is empty: give comma-separated values, e.g. --values ${spec.defaults.slice(0, 2).join(",")}`);
  const labels = list.map((v) => spec.check(v));
  const dup = labels.find((v, i) => labels.indexOf(v) !== i);
  if (dup !== undefined) throw new UsageError(`--values lists \`${dup}\` twice: each value is one run`);
  return { param: spec, values: labels, ...(preset !== undefined ? { preset } : {}) };
}

/** The x coordinate of a value: its number, "all" as the full data size, a category as its index. */
export function xOf(param: SweepParam, value: string, index: number, fullSize?: number): number {
  if (param.axis === "category") return index;
  if (value === "all") return fullSize ?? NaN;
  return Number(value);
}
