// Exports of a run for TRL + Accelerate and mlx-lm, on a tiny base written to a temporary folder:
// every mapped hyperparameter in the generated files, the data round-tripping to the same
// conversations, the project's batches and rows, unknown config keys refused, nothing overwritten.
// (scripts/trl-parity.py runs the generated job itself; it needs Python and is not run here.)
//   bun test test/export.test.ts
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHAT_TEMPLATE_JINJA, ChatTemplate } from "../lib/format/template.ts";
import { hashCheckpoint, loadCheckpoint, saveCheckpoint } from "../lib/model/checkpoint.ts";
import { parseConversations } from "../lib/data/data.ts";
import { iterateBatches } from "../lib/data/batch.ts";
import { learningRate } from "../lib/train/schedule.ts";
import { resolveRunConfig, type RunConfig } from "../lib/sft/run-config.ts";
import { messagesJsonl } from "../lib/export/job.ts";
import { mapSettings, pyLiteral, yamlLiteral } from "../lib/export/mapping.ts";
import { fixedTrlSettings, TRL_TABLE, trlScript } from "../lib/export/trl.ts";
import { lastTurnOnly, MLX_LM_TABLE, mlxLmConfig } from "../lib/export/mlx-lm.ts";
import { EXPORT_FORMATS, findFormat } from "../lib/export/formats.ts";
import { core as mx } from "@frost-beta/mlx";
import { loraLayers } from "../lib/model/lora.ts";
import { prepareRun } from "../lib/sft/run.ts";
import { CHAT_TOKENS } from "../lib/format/tokens.ts";
import type { Conversation } from "../lib/format/types.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tmp = mkdtempSync(join(tmpdir(), "sft-export-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tok = tinyTokenizer();
const base = join(tmp, "base");
saveCheckpoint(base, tinyModel(tok.vocabSize, { seed: 1 }), tok, { meta: { kind: "test-base" } });
const u = (content: string) => ({ role: "user" as const, content });
const a = (content: string) => ({ role: "assistant" as const, content });
const train: Conversation[] = [
  [u("What is the capital of France?"), a("The capital of France is Paris.")],
  [u("How many legs does a spider have?"), a("Eight."), u("And an ant?"), a("Six legs.")],
  [u("Write one sentence about the sea."), a("The sea is wide, deep and always moving.")],
  [u("Who was tired?"), a("Alice was.")],
  [u("Say \"hi\" with a tab\tand ünïcode 🎉"), a("hi\t🎉")],
];
const evalConvs: Conversation[] = [[u("Where does the dog sleep?"), a("The dog sleeps in the sun.")]];
const write = (name: string, text: string) => (writeFileSync(join(tmp, name), text), join(tmp, name));
const data = write("train.jsonl", messagesJsonl(train));
const evalData = write("eval.jsonl", messagesJsonl(evalConvs));

/** Every setting away from its default, so a value in the output cannot come from a default. */
const odd: Partial<RunConfig> = {
  steps: 7, lr: 0.00123, warmup: 3, minLrRatio: 0.2, batchSize: 2, maxSeqLen: 64, padMultiple: 8, evalEvery: 3, patience: 2,
  minDelta: 0.01, gradClip: 0.5, weightDecay: 0.05, seed: 11, maskMode: "all", keep: "best", groupByLength: false,
  dropOverlength: true, logEvery: 2, name: "odd-run", mixProse: 0, base, data, evalData,
};
const oddCfg = resolveRunConfig({}, odd);

describe("export: trl script", () => {
  const script = trlScript(oddCfg, "a test");
  const { settings } = mapSettings(oddCfg, TRL_TABLE, "TRL");

  test("the script holds each mapped hyperparameter, with this run's value", () => {
    const expected = {
      STEPS: "7", LR: "0.00123", WARMUP: "3", MIN_LR_RATIO: "0.2", BATCH: "2", MAX_SEQ_LEN: "64", PAD_MULTIPLE: "8", EVAL_EVERY: "3",
      PATIENCE: "2", MIN_DELTA: "0.01", GRAD_CLIP: "0.5", WEIGHT_DECAY: "0.05", SEED: "11", ASSISTANT_ONLY_LOSS: "False", KEEP: '"best"',
      GROUP_BY_LENGTH: "False", DROP_OVERLENGTH: "True", LOG_EVERY: "2", RUN_NAME: '"odd-run"', START: '"start"',
      TRAIN_FILE: '"data/train.jsonl"', EVAL_FILE: '"data/eval.jsonl"', ADAM_BETA1: "0.9", ADAM_BETA2: "0.95", ADAM_EPS: "1e-8",
      EOS_TOKEN: '"<|end|>"', PAD_TOKEN: '"<|pad|>"', PEFT_CONFIG: "None", GRAD_CHECKPOINT: "False",
    };
    for (const [name, value] of Object.entries(expected)) expect(script).toContain(`\n${name} = ${value}  # `);
    expect(settings.map((s) => s.name).sort()).toEqual(Object.keys(expected).filter((n) => !fixedTrlSettings().some((f) => f.name === n)).sort());
  });

  test("every setting is read by the script's code, not only defined", () => {
    const code = script.split("\n").filter((l) => !/^[A-Z_0-9]+ = /.test(l)).join("\n");
    for (const { name } of [...settings, ...fixedTrlSettings()]) expect(code).toMatch(new RegExp(`\\b${name}\\b`));
  });

  test("TRL defaults that would change the job are set explicitly", () => {
    for (const line of ["bf16=False", "fp16=False", "tf32=False", "gradient_checkpointing=GRAD_CHECKPOINT", "packing=False", "max_length=None",
      "average_tokens_across_devices=True", "optim=\"adamw_torch\"", "def create_scheduler", "def get_train_dataloader", "def get_decay_parameter_names"]) {
      expect(script).toContain(line);
    }
    expect(script).not.toContain("# @SETTINGS@");
  });

  test.each([
    ["TRL", TRL_TABLE],
    ["mlx-lm", MLX_LM_TABLE],
  ] as const)("a config key without a %s mapping is refused, not dropped", (engine, table) => {
    const withNew = { ...oddCfg, someNewOption: 1 } as unknown as RunConfig;
    expect(() => mapSettings(withNew, table, engine)).toThrow(new RegExp(`\`someNewOption\` have no ${engine} mapping`));
  });

  test("a LoRA run: PEFT_CONFIG for TRL and lora_parameters for mlx-lm; a QLoRA run is refused for TRL", () => {
    const lora = resolveRunConfig({}, { ...odd, lora: true, loraRank: 4, loraAlpha: 16, loraTargets: "v_proj,q_proj", gradCheckpoint: true });
    expect(trlScript(lora, "a test")).toContain(`\nPEFT_CONFIG = {"task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 16, "lora_dropout": 0, "target_modules": ["q_proj", "v_proj"], "trainable_tokens": ["<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"]}  # `);
    expect(trlScript(lora, "a test")).toContain("\nGRAD_CHECKPOINT = True  # ");
    const yaml = mlxLmConfig({ ...lora, loraTokens: "none" }, "a test");
    for (const line of ['fine_tune_type: "lora"', "num_layers: -1", "  rank: 4", "  scale: 4", '  keys: ["self_attn.q_proj", "self_attn.v_proj"]', "grad_checkpoint: true"]) expect(yaml).toContain(line);
    expect(() => mlxLmConfig(lora, "a test")).toThrow(/mlx-lm's LoRA cannot/); // the chat tokens' rows: --lora-tokens chat
    expect(() => trlScript({ ...lora, quantize: 4 }, "a test")).toThrow(/--quantize 0/);
    expect(() => mlxLmConfig({ ...lora, loraTokens: "none", quantize: 4 }, "a test")).toThrow(/--quantize 0/);
  });

  test.each([
    ["TRL", TRL_TABLE],
    ["mlx-lm", MLX_LM_TABLE],
  ] as const)("a run that cut over-long rows (--truncate) is refused for %s: the job would train the whole rows", (engine, table) => {
    expect(() => mapSettings({ ...oddCfg, truncate: true, dropOverlength: false }, table, engine)).toThrow(/--truncate/);
    const { outside } = mapSettings({ ...oddCfg, truncate: false }, table, engine);
    expect(outside.map(([k]) => k)).toContain("truncate");
  });

  test("literals: Python and YAML", () => {
    expect([pyLiteral(null), pyLiteral(true), pyLiteral(1e-8), pyLiteral("a\"b"), pyLiteral({ r: [1, 2] })]).toEqual(["None", "True", "1e-8", '"a\\"b"', '{"r": [1, 2]}']);
    expect([yamlLiteral(1e-8), yamlLiteral(3e-4), yamlLiteral(8), yamlLiteral(2e21), yamlLiteral([0.9, 0.95])]).toEqual(["1.0e-8", "0.0003", "8", "2.0e+21", "[0.9, 0.95]"]);
  });
});

describe("export: data", () => {
  test("chat JSONL round-trips to the same conversations", () => {
    expect(parseConversations(messagesJsonl(train), "x.jsonl")).toEqual(train);
  });
});

describe("export: mlx-lm config", () => {
  test("the YAML holds each mapped setting, and marks what mlx-lm trains differently", () => {
    const yaml = mlxLmConfig(resolveRunConfig({}, { ...odd, maskMode: "assistant" }), "a test");
    for (const line of ["iters: 7 #", "learning_rate: 0.00123 #", "batch_size: 2 #", "max_seq_length: 65 #", "steps_per_eval: 3 #",
      "seed: 11 #", "mask_prompt: true #", "steps_per_report: 2 #", 'model: "start" #', 'data: "data" #', "  warmup: 2", "  warmup_init: 0.00041",
      "  arguments: [0.00123, 4, 0.000246]", "    betas: [0.9, 0.95]", "    eps: 1.0e-8", "    weight_decay: 0.05", "    bias_correction: true"]) {
      expect(yaml).toContain(line);
    }
    expect(yaml).toMatch(/# grad_clip: 0\.5 # DIFFERS: mlx-lm does not clip/);
    expect(yaml).toMatch(/# patience: 2 # DIFFERS: mlx-lm has no early stopping/);
    expect(yaml).toMatch(/mask_prompt: true # DIFFERS on multi-turn rows: only the last assistant turn/);
  });

  test("mlx-lm's schedule (build_schedule) gives every step the project's lr (warmup 1: the cosine one step ahead)", () => {
    for (const cfg of [{ lr: 3e-4, warmup: 20, steps: 500, minLrRatio: 0.1 }, { lr: 1e-3, warmup: 1, steps: 30, minLrRatio: 0 }, { lr: 2e-4, warmup: 5, steps: 9, minLrRatio: 0.5 }]) {
      const schedule = mlxLmConfig(resolveRunConfig({}, { ...odd, ...cfg }), "t").match(/lr_schedule:.*\n((?:  .*\n)+)/)![1]!;
      const num = (key: string) => Number(schedule.match(new RegExp(`  ${key}: (.*)`))![1]);
      const [init, decaySteps, end] = JSON.parse(schedule.match(/arguments: (\[.*\])/)![1]!.replace(/(\d)\.0e/g, "$1e"));
      const W = num("warmup");
      const warm = num("warmup_init");
      // mlx.optimizers: linear_schedule, cosine_decay, join_schedules([warmup, cosine], [W + 1]); update u runs at s = u - 1
      const mlx = (s: number) => (W > 0 && s < W + 1 ? warm + ((init - warm) * Math.min(s, W)) / W
        : end + 0.5 * (init - end) * (1 + Math.cos((Math.PI * Math.min(s - (W > 0 ? W + 1 : 0), decaySteps)) / decaySteps)));
      const project = (k: number) => learningRate(cfg, k);
      for (let k = 1; k <= cfg.steps; k++) {
        const want = cfg.warmup === 1 && k > 1 ? project(k + 1) : project(k);
        expect(Math.abs(mlx(k - 1) - want)).toBeLessThan(1e-12);
      }
    }
  });

  test("lastTurnOnly keeps the last assistant turn's supervised run", () => {
    expect(lastTurnOnly({ ids: [1, 2, 3, 4, 5, 6, 7], mask: [0, 1, 1, 0, 0, 1, 1] }).mask).toEqual([0, 0, 0, 0, 0, 1, 1]);
  });
});

describe("export: folders", () => {
  const opts = { data, evalData, base };
  // mixProse 0: a job with pretraining replay is not exportable (see the test below)
  const runConfig = (over: Partial<RunConfig>) => write(`cfg-${Object.keys(over).join("-")}.json`, JSON.stringify({ mixProse: 0, ...over }));

  test("trl: a self-contained folder with the start checkpoint, the data, the project's batches and rows; the base untouched", async () => {
    const before = hashCheckpoint(base);
    const out = join(tmp, "trl");
    const cfgFile = runConfig({ steps: 9, batchSize: 2, seed: 3, maxSeqLen: 64 });
    await findFormat("trl").run({ ...opts, config: cfgFile, out }, "trl");
    expect(hashCheckpoint(base)).toBe(before);
    expect(readdirSync(out).sort()).toEqual(["README.md", "accelerate.yaml", "batches.jsonl", "data", "export.json", "reference", "start", "train_trl.py"]);
    expect(readdirSync(tmp).filter((f) => f.includes(".tmp-"))).toEqual([]);

    const read = (f: string) => readFileSync(join(out, f), "utf8");
    expect(parseConversations(read("data/train.jsonl"), "train.jsonl")).toEqual(train);
    expect(parseConversations(read("data/eval.jsonl"), "eval.jsonl")).toEqual(evalConvs);

    const start = await loadCheckpoint(join(out, "start"));
    expect(JSON.parse(read("start/tokenizer_config.json")).chat_template).toBe(CHAT_TEMPLATE_JINJA);
    const template = new ChatTemplate();
    const rows = read("reference/train_rows.jsonl").trim().split("\n").map((l) => JSON.parse(l));
    expect(rows).toEqual(train.map((c) => template.renderWithMask(c, start.tokenizer, { maskMode: "assistant" })));

    const batches = read("batches.jsonl").trim().split("\n").map((l) => JSON.parse(l));
    const it = iterateBatches(rows, { batchSize: 2, seed: 3, groupByLength: true });
    expect(batches).toEqual(Array.from({ length: 9 }, () => it.next().value!.indices));

    const manifest = JSON.parse(read("export.json"));
    expect(manifest.supervisedTargets.train).toBe(rows.reduce((n: number, r: { mask: number[] }) => n + r.mask.slice(1).reduce((x, y) => x + y, 0), 0));
    expect(read("README.md")).toContain("accelerate launch --config_file accelerate.yaml --num_processes N train_trl.py");
    expect(read("train_trl.py")).toContain("\nSTEPS = 9  # ");
  });

  test("mlx-lm: train.jsonl and valid.jsonl in the chat format, the YAML, and the README's note on mask_prompt", async () => {
    const out = join(tmp, "mlx");
    await EXPORT_FORMATS["mlx-lm"]!.run({ ...opts, config: runConfig({}), out }, "mlx-lm");
    const read = (f: string) => readFileSync(join(out, f), "utf8");
    expect(parseConversations(read("data/train.jsonl"), "train.jsonl")).toEqual(train);
    expect(parseConversations(read("data/valid.jsonl"), "valid.jsonl")).toEqual(evalConvs);
    expect(read("mlx-lm.yaml")).toContain('fine_tune_type: "full"');
    const readme = read("README.md");
    expect(readme).toContain("`ChatDataset.process`");
    expect(readme).toContain("`default_loss`");
    expect(readme).toMatch(/Here 1 of 5 training conversations have more than one exchange/);
  });

  test("a LoRA run: trl's start-adapter/ (PEFT's layout) and mlx-lm's start-adapter.safetensors hold the run's adapter at step 0", async () => {
    const over = { steps: 4, batchSize: 2, seed: 5, maxSeqLen: 64, lora: true, loraRank: 4, loraAlpha: 8, loraTargets: "q_proj,v_proj" };
    // the adapter a run with these settings starts from
    const run = await prepareRun(resolveRunConfig({}, { ...opts, mixProse: 0, probeTokens: 0, ...over }));
    const layers = loraLayers(run.model);
    const chatIds = CHAT_TOKENS.map((t) => run.tokenizer.tokenId(t));

    const trl = join(tmp, "trl-lora");
    await findFormat("trl").run({ ...opts, config: runConfig(over), out: trl }, "trl");
    expect(readdirSync(trl)).toContain("start-adapter");
    const peft = JSON.parse(readFileSync(join(trl, "start-adapter", "adapter_config.json"), "utf8"));
    expect([peft.r, peft.lora_alpha, peft.target_modules, peft.trainable_token_indices.embed_tokens]).toEqual([4, 8, ["q_proj", "v_proj"], chatIds]);
    const peftArrays = mx.load(join(trl, "start-adapter", "adapter_model.safetensors")) as unknown as Record<string, mx.array>;
    expect(layers.length).toBe(4); // q and v in 2 layers
    for (const [name, layer] of layers) {
      expect(mx.arrayEqual(peftArrays[`base_model.model.${name}.lora_A.weight`]!, layer.loraA).item()).toBe(true);
      expect(mx.arrayEqual(peftArrays[`base_model.model.${name}.lora_B.weight`]!, mx.zerosLike(layer.loraB)).item()).toBe(true);
    }
    expect(readFileSync(join(trl, "train_trl.py"), "utf8")).toContain('\nSTART_ADAPTER = "start-adapter"  # ');

    const mlxOver = { ...over, loraTokens: "none" as const };
    await expect(findFormat("mlx-lm").run({ ...opts, config: runConfig(over), out: join(tmp, "mlx-lora-tokens") }, "mlx-lm")).rejects.toThrow(/--lora-tokens none for mlx-lm/);
    const mlxLm = join(tmp, "mlx-lora");
    await findFormat("mlx-lm").run({ ...opts, config: runConfig(mlxOver), out: mlxLm }, "mlx-lm");
    expect(readFileSync(join(mlxLm, "mlx-lm.yaml"), "utf8")).toContain('resume_adapter_file: "start-adapter.safetensors"');
    const mlxArrays = mx.load(join(mlxLm, "start-adapter.safetensors")) as unknown as Record<string, mx.array>;
    expect(Object.keys(mlxArrays).length).toBe(2 * layers.length);
    for (const [name, layer] of layers) {
      expect(mx.arrayEqual(mlxArrays[`${name}.lora_a`]!, layer.loraA.T).item()).toBe(true); // [in, r]
      expect(mlxArrays[`${name}.lora_b`]!.shape).toEqual([4, layer.loraB.shape[0]!]); // [r, out], zero
    }
  });

  test.each(["trl", "mlx-lm"])("%s: a run with pretraining replay or NEFTune is refused, saying why", async (format) => {
    await expect(findFormat(format).run({ ...opts, out: join(tmp, `replay-${format}`) }, format)).rejects.toThrow(/mixes pretraining replay rows into its batches \(--mix-prose\), which the exported job would not/);
    await expect(findFormat(format).run({ ...opts, config: runConfig({ neftuneAlpha: 5 }), out: join(tmp, `noise-${format}`) }, format)).rejects.toThrow(/NEFTune noise/);
    expect(existsSync(join(tmp, `replay-${format}`))).toBe(false);
  });

  test("an existing folder is never written into", async () => {
    const out = join(tmp, "taken");
    mkdirSync(out);
    writeFileSync(join(out, "mine.txt"), "keep me");
    await expect(findFormat("trl").run({ ...opts, out }, "trl")).rejects.toThrow(/already exists: exports are never overwritten/);
    expect(readdirSync(out)).toEqual(["mine.txt"]);
    expect(readdirSync(tmp).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  test("--run: the run's config.json, the export inside the run folder; an unknown key in it is refused", async () => {
    const run = join(tmp, "runs", "20990101-000000-x");
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, "config.json"), JSON.stringify({ ...resolveRunConfig({}, { ...opts, steps: 4, batchSize: 2, mixProse: 0 }), provenance: { git: "abc" } }));
    const out = await findFormat("trl").run({ run }, "trl");
    expect(out).toBe(join(run, "export-trl"));
    expect(readFileSync(join(out, "train_trl.py"), "utf8")).toContain("\nSTEPS = 4  # ");
    expect(existsSync(join(out, "start", "model.safetensors"))).toBe(true);

    writeFileSync(join(run, "config.json"), JSON.stringify({ ...resolveRunConfig({}, opts), someNewOption: { rank: 8 } }));
    await expect(findFormat("trl").run({ run, out: join(tmp, "never") }, "trl")).rejects.toThrow(/unknown option `someNewOption`/);
    expect(existsSync(join(tmp, "never"))).toBe(false);
  });

  test.each([
    [undefined, /--format is required: one of trl, mlx-lm, course/],
    ["onnx", /--format `onnx` is not known; known: trl, mlx-lm, course/],
  ])("--format %p is refused with the known formats", (name, message) => {
    expect(() => findFormat(name)).toThrow(message);
  });

  test("without --run, --out is required", async () => {
    await expect(findFormat("trl").run({ ...opts }, "trl")).rejects.toThrow(/--out <new folder> is needed without --run/);
  });
});
