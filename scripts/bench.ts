// Benchmark: training-step throughput, MFU and memory; generation speed and memory; the wall time
// of a default SFT run. One JSON line per case on stdout (progress on stderr).
//   bun scripts/bench.ts                  # all cases
//   bun scripts/bench.ts --case train-ref # one case: sgemm, train-ref, train-base, train-sft, generate, sft-run
//   bun scripts/bench.ts --case base-shape --base /tmp/qwen3-0.6b-shape
//                                         # a real-size base alone: load, decode, one full fine-tuning step
//   bun scripts/bench.ts --case base-decode --base /tmp/qwen3-0.6b-shape
//                                         # the same without the training step: seconds and ~5 GB, not minutes and ~13 GB
//   bun scripts/bench.ts --case decode-context --base /tmp/qwen3-0.6b-shape
//                                         # one decode step, compiled and eager, at positions up to 8,192
//   bun scripts/bench.ts --torch          # also run the PyTorch peer (../shared/bench/peers) for the ratio:
//                                         # eager runs interleaved with ours, then 3 compiled runs
//   bun scripts/bench.ts --torch --python /path/to/venv/bin/python   # a Python that has torch
//   bun scripts/bench.ts --trl --python /path/to/venv/bin/python --runs 3
//                                         # the course's SFT job against TRL's SFTTrainer
//                                         # (../shared/bench/trl), interleaved; alone unless --case is given
//   bun scripts/bench.ts --case lora --torch --python /tmp/tv/bin/python   # LoRA/QLoRA on the Qwen3-0.6B shapes
//                                         # (not in the default cases: ~10 GB for full fine-tuning, minutes per step),
//                                         # each variant in its own process, the PyTorch + PEFT peer after each
import { defineCommand } from "citty";
import { consola } from "consola";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { core as mx } from "@frost-beta/mlx";
import { configFromHF, countParameters } from "../lib/model/config.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { loadCheckpoint } from "../lib/model/checkpoint.ts";
import { benchGenerate, benchTrainStep, matmulPeakGflops, sgemmPerCpuSecond } from "../lib/bench/measure.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import { padAndCollate, iterateBatches } from "../lib/data/batch.ts";
import { loadConversations } from "../lib/data/data.ts";
import { DEFAULT_BASE, DEFAULT_TRAIN_DATA, PROJECT_ROOT } from "../lib/util/paths.ts";
import { readJSON } from "../lib/io/files.ts";
import { parseList, parseNumber, runStrict, UsageError } from "../lib/util/cli.ts";
import { activeAllocator } from "../lib/mlx/allocator.ts";
import { peakRssMB, rssMB } from "../lib/mlx/memory.ts";
import { computeStreams } from "../lib/mlx/parallel.ts";
import { estimateStepMemory } from "../lib/train/footprint.ts";
import { blasRecord, prepareProcess } from "../lib/mlx/startup.ts";
import { checkPeer, interleavedRatio, PEER_SCRIPT, PeerError, runPeer, type PeerRun } from "../lib/bench/peer.ts";
import { checkTrl, compareWithTrl, interleave, projectRowsForTrl, runOurJob, runTrlJob, TRL_SCRIPT, type JobRun } from "../lib/bench/trl.ts";
import { ChatFormat } from "../lib/format/chat-format.ts";
import { benchDecodeContext } from "../lib/bench/decode.ts";
import { benchLoRAStep, LORA_VARIANTS, PEER_LORA_SCRIPT, type LoRAVariant } from "../lib/bench/lora.ts";
import { defaultChatParams } from "../lib/chat/params.ts";

const log = consola.create({ stdout: process.stderr }).withTag("bench"); // stdout carries only the JSON lines
const CASES = ["sgemm", "train-ref", "base-shape", "train-base", "train-sft", "generate", "sft-run"];
// asked for by name only; lora-step is one variant of lora, in a child process; base-decode is
// base-shape without its training step; decode-context times single decode steps at long positions
const OPT_IN = ["lora", "lora-step", "base-decode", "decode-context"];
/** The lora case's runs: variant, gradient checkpointing, and whether the PyTorch + PEFT peer has it. */
const LORA_RUNS: [LoRAVariant, boolean, boolean][] = [
  ["full", false, true], ["lora-qv", false, true], ["lora-qv", true, true], ["lora-all", false, true], ["qlora4", false, false], ["qlora4", true, false],
];

/** The issue's reference model: the same math as ../shared/bench/peers/torch_train.py. */
const REFERENCE = { model_type: "llama", vocab_size: 4096, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 6, num_attention_heads: 8, num_key_value_heads: 8, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true };
const REF_BATCH = 16; // sequences
const REF_SEQ = 256; // tokens
const SHAPE_BATCH = [4, 128] as const; // base-shape's training step: rows x positions, the course's batch
const SHAPE_DECODE_TOKENS = 32; // base-shape's decode: a 0.6B model decodes a few tokens per second here
const PROSE_PROMPT = "It was a bright cold day in April, and the clocks were striking thirteen.";

function emit(record: Record<string, unknown>) {
  const round = (v: unknown): unknown => (Array.isArray(v) ? v.map(round) : typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(4)) : v);
  console.log(JSON.stringify(Object.fromEntries(Object.entries(record).map(([k, v]) => [k, round(v)]))));
}

function randomBatch(vocab: number, seed: number, [rows, seq]: readonly [number, number] = [REF_BATCH, REF_SEQ]) {
  mx.random.seed(seed);
  const data = mx.random.randint(0, vocab, [rows, seq + 1]).astype(mx.int32);
  const batch = { inputs: data.index(mx.Slice(), mx.Slice(0, seq)), targets: data.index(mx.Slice(), mx.Slice(1)), mask: mx.ones([rows, seq]) };
  mx.eval(batch.inputs, batch.targets, batch.mask);
  return batch;
}

/** The run with the median tokens/s. */
function medianRun(runs: PeerRun[]): PeerRun {
  return [...runs].sort((a, b) => a.tokens_per_sec - b.tokens_per_sec)[Math.floor(runs.length / 2)]!;
}

const command = defineCommand({
  meta: { name: "bench", description: "Measure training and generation speed and memory" },
  args: {
    case: { type: "string", description: `cases: ${CASES.join(", ")} (default: all, or none with --trl)` },
    base: { type: "string", default: DEFAULT_BASE, description: "the bundled base model (or another checkpoint)" },
    steps: { type: "string", default: "20", description: "measured steps per run of a training case (after warm-up)" },
    runs: { type: "string", default: "3", description: "runs per training case; tokens/s is the median run's (with --torch, also the interleaved peer runs)" },
    python: { type: "string", default: "python3", description: "the Python with torch (--torch) or torch, transformers and trl (--trl)" },
    "batch-size": { type: "string", default: "8", description: "SFT batch size for train-sft" },
    torch: { type: "boolean", default: false, description: "also run the PyTorch peer (needs torch)" },
    variant: { type: "string", description: `lora: the variants to run (comma-separated; default all), lora-step: the one to run; of ${Object.keys(LORA_VARIANTS).join(", ")}` },
    "grad-checkpoint": { type: "boolean", default: false, description: "lora-step: recompute layers in the backward pass" },
    trl: { type: "boolean", default: false, description: "the course's SFT job (--preset course) against TRL's SFTTrainer, --runs interleaved pairs (needs torch, transformers, trl)" },
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, BLAS kernels, kernel flags: lib/mlx/startup.ts
    const cases = args.case !== undefined ? parseList(args.case) : args.trl ? [] : CASES;
    for (const c of cases) if (![...CASES, ...OPT_IN].includes(c)) throw new UsageError(`--case: unknown case \`${c}\`; cases: ${[...CASES, ...OPT_IN].join(", ")}`);
    const steps = parseNumber("steps", args.steps, { integer: true, positive: true });
    if (cases.includes("lora-step")) {
      const variant = args.variant as LoRAVariant;
      if (!(variant in LORA_VARIANTS)) throw new UsageError(`--variant expects one of ${Object.keys(LORA_VARIANTS).join(", ")}, got \`${args.variant}\``);
      const base = process.argv.includes("--base") ? args.base : undefined; // default: random init, Qwen3-0.6B shapes
      emit({ case: "lora-step", ...(await benchLoRAStep(variant, { base, steps, gradCheckpoint: args["grad-checkpoint"] })) });
      return;
    }
    if (cases.includes("lora")) {
      const only = args.variant === undefined ? undefined : parseList(args.variant);
      for (const v of only ?? []) if (!(v in LORA_VARIANTS)) throw new UsageError(`--variant expects some of ${Object.keys(LORA_VARIANTS).join(", ")}, got \`${v}\``);
      await loraCase({ steps: process.argv.includes("--steps") ? steps : 2, torch: args.torch, python: args.python, base: process.argv.includes("--base") ? args.base : undefined, only });
      if (cases.length === 1) return;
    }
    const runs = parseNumber("runs", args.runs, { integer: true, positive: true });
    try {
      if (args.torch) checkPeer(args.python);
      if (args.trl) checkTrl(args.python);
    } catch (e) {
      if (!(e instanceof PeerError)) throw e;
      log.error(e.message); // before any long case: what is missing and how to install it
      process.exit(2);
    }
    // The peak is the best of 10 matmuls; on a shared machine a busy moment lowers all 10, so it is
    // measured again before each training case and MFU uses the highest seen (never above 100%).
    let peakGflops = matmulPeakGflops();
    const remeasurePeak = () => (peakGflops = Math.max(peakGflops, matmulPeakGflops()));
    let refTokensPerSec = 0; // the reference step's tokens/s, for the ratio to the PyTorch peer
    const eagerPeer: PeerRun[] = []; // with --torch: one eager peer run after each train-ref run
    emit({ case: "matmul-peak", gflops: peakGflops, device: String(mx.defaultDevice()), cpu: cpus()[0]?.model, allocator: activeAllocator(), blas: blasRecord() });
    const needsBase = cases.some((c) => c !== "train-ref" && c !== "sgemm");
    if (needsBase && !existsSync(join(args.base, "config.json"))) throw new UsageError(`--base ${args.base}: no checkpoint there (see README: the bundled base model)`);
    const tLoad = performance.now();
    const base = needsBase ? await loadCheckpoint(args.base) : null;
    const loaded = { loadSec: (performance.now() - tLoad) / 1000, rssAfterLoadMB: rssMB(), loadPeakRssMB: peakRssMB() };

    if (cases.includes("sgemm")) {
      log.start("sgemm: one BLAS thread at training shapes, GFLOP per CPU-second");
      emit({ case: "sgemm", note: "GFLOP per second of CPU time, one thread", ...sgemmPerCpuSecond() });
    }
    if (cases.includes("train-ref")) {
      log.start("train-ref: reference model, 16 x 256 random tokens");
      const model = new LlamaModel(configFromHF(REFERENCE));
      mx.eval(model.parameters());
      const batch = randomBatch(4096, 0);
      remeasurePeak();
      const afterRun = args.torch ? () => void eagerPeer.push(runPeer(args.python)) : undefined; // interleaved (lib/bench/peer.ts)
      const r = await benchTrainStep(model, () => ({ batch, tokens: REF_BATCH * REF_SEQ, paddingFraction: 0 }), { steps, runs, peakGflops, afterRun });
      emit({ case: "train-ref", model: "reference-5.8M", batch: `${REF_BATCH}x${REF_SEQ}`, ...r, peakGflops });
      refTokensPerSec = r.tokensPerSec;
      if (args.torch) {
        const peer = eagerPeer.map((p) => p.tokens_per_sec);
        const mid = medianRun(eagerPeer);
        emit({ case: "torch-eager", ...mid, runsTokensPerSec: peer, interleaved: true });
        emit({ case: "ratio-vs-torch-eager", reference: r.tokensPerSec, peer: mid.tokens_per_sec, ...interleavedRatio(r.runsTokensPerSec, peer) });
      }
    }
    if ((cases.includes("base-shape") || cases.includes("base-decode")) && base) {
      // What a user of this base lives with. Decode first: the training step's optimizer state would
      // otherwise sit under the decode's memory. Peaks are the process's (run this case alone).
      const train = cases.includes("base-shape");
      log.start(`${train ? "base-shape" : "base-decode"}: ${args.base}: load, decode at batch 1${train ? `, one full fine-tuning step at ${SHAPE_BATCH.join(" x ")}` : ""}`);
      const c = base.config;
      const g = await benchGenerate(base.model, base.tokenizer, PROSE_PROMPT, SHAPE_DECODE_TOKENS);
      const decodePeakRssMB = peakRssMB();
      const decoded = {
        model: args.base, modelType: c.modelType, parameters: countParameters(c), ...loaded,
        decodeTokensPerSec: g.decodeTokensPerSec, timeToFirstTokenMs: g.timeToFirstTokenMs, decodeTokens: g.generatedTokens, decodePeakRssMB,
      };
      if (!train) {
        emit({ case: "base-decode", ...decoded, loadavg: loadavg(), cpu: cpus()[0]?.model });
      } else {
        const [rows, seq] = SHAPE_BATCH;
        const estimate = estimateStepMemory(c, { rows, seqLen: seq });
        remeasurePeak();
        const batch = randomBatch(c.vocabSize, 0, SHAPE_BATCH);
        const r = await benchTrainStep(base.model, () => ({ batch, tokens: rows * seq, paddingFraction: 0 }), { warmup: 1, steps: 2, runs: 1, peakGflops, sparseHead: true });
        emit({
          case: "base-shape", ...decoded,
          trainBatch: SHAPE_BATCH.join("x"), firstStepSec: r.firstStepMs / 1000, stepSec: r.stepMs / 1000, trainTokensPerSec: r.tokensPerSec, trainPeakRssMB: r.peakRssMB,
          estimatedStepMB: estimate.totalMB, streams: computeStreams().length, loadavg: loadavg(), cpu: cpus()[0]?.model,
        });
      }
    }
    if (cases.includes("train-base") && base) {
      log.start("train-base: bundled base model, 16 x 256 random tokens");
      const batch = randomBatch(base.config.vocabSize, 0);
      remeasurePeak();
      const r = await benchTrainStep(base.model, () => ({ batch, tokens: REF_BATCH * REF_SEQ, paddingFraction: 0 }), { steps, runs, peakGflops });
      emit({ case: "train-base", model: args.base, batch: `${REF_BATCH}x${REF_SEQ}`, ...r, peakGflops });
    }
    if (cases.includes("train-sft") && base) {
      log.start("train-sft: bundled base model, real SFT batches");
      const fresh = await loadCheckpoint(args.base);
      const template = new ChatTemplate();
      const examples = loadConversations(DEFAULT_TRAIN_DATA).map((c) => template.renderWithMask(c, fresh.tokenizer));
      const batchSize = parseNumber("batch-size", args["batch-size"], { integer: true, positive: true });
      const it = iterateBatches(examples, { batchSize, seed: 0, groupByLength: true });
      const padId = ChatFormat.of(fresh.tokenizer).pad;
      remeasurePeak();
      const r = await benchTrainStep(fresh.model, () => {
        const b = padAndCollate(it.next().value!.examples, { maxSeqLen: fresh.config.maxPositionEmbeddings, padId, padMultiple: 16 });
        return { batch: b, tokens: b.inputs.shape[0] * b.inputs.shape[1], paddingFraction: b.paddingFraction };
      }, { steps: steps * 3, runs, peakGflops, sparseHead: true }); // as the SFT trainer runs it
      emit({ case: "train-sft", model: args.base, batchSize, sparseHead: true, note: "tokens/s counts padded positions", ...r, peakGflops });
    }
    if (cases.includes("generate") && base) {
      log.start("generate: batch 1, greedy");
      const r = await benchGenerate(base.model, base.tokenizer, PROSE_PROMPT);
      emit({ case: "generate", model: args.base, ...r });
      // chat.ts's defaults draw each token on the host from the whole row: what its stats line shows
      const { temperature, topK, topP } = defaultChatParams();
      log.start(`generate: batch 1, sampled as chat.ts samples (temperature ${temperature}, top-p ${topP})`);
      const s = await benchGenerate(base.model, base.tokenizer, PROSE_PROMPT, undefined, { temperature, topK, topP });
      emit({ case: "generate-sampled", model: args.base, temperature, topK, topP, ...s });
    }
    if (cases.includes("decode-context") && base) {
      log.start(`decode-context: ${args.base}: one decode step, compiled over its bucket and eager, past half of each bucket`);
      for await (const r of benchDecodeContext(base.model)) emit({ case: "decode-context", ...r, loadavg: loadavg() });
    }
    if (cases.includes("sft-run")) {
      // The course's recipe (500 steps, no replay): the run the README's earlier wall times measured,
      // and one any base can do (replay needs the base's pretraining text).
      log.start("sft-run: the course's SFT run (bun scripts/train.ts --preset course --name bench-sft)");
      const t = performance.now();
      const proc = Bun.spawnSync(["bun", "scripts/train.ts", "--preset", "course", "--name", "bench-sft", "--base", args.base], { cwd: PROJECT_ROOT, stdout: "pipe", stderr: "pipe" });
      const wallSec = (performance.now() - t) / 1000;
      const out = proc.stderr.toString() + proc.stdout.toString();
      const runDir = /runs\/[\w.-]*bench-sft[\w.-]*/.exec(out)?.[0];
      const summary = runDir && existsSync(join(PROJECT_ROOT, runDir, "summary.json")) ? readJSON(join(PROJECT_ROOT, runDir, "summary.json")) : {};
      emit({ case: "sft-run", exitCode: proc.exitCode, wallSec, runDir, runWallSec: summary.wallSec, peakRssMB: summary.peakMemMB, trainPeakRssMB: summary.trainPeakMemMB, status: summary.status });
    }
    if (args.trl) {
      log.start(`trl: the course's SFT job, ours (bun scripts/train.ts --preset course) and TRL's SFTTrainer (${TRL_SCRIPT}), ${runs} interleaved pairs`);
      const rowsDir = mkdtempSync(join(tmpdir(), "bench-trl-rows-"));
      const rows = await projectRowsForTrl(rowsDir); // TRL's ids and supervised targets are checked against these
      // each run's line as soon as it ends: a pair takes minutes, more on a busy machine
      const emitted = (name: string, pair: number, r: JobRun) => (emit({ case: name, pair, ...r }), r);
      const pairs = await interleave(runs, (i) => emitted("sft-job", i, runOurJob()), (i) => emitted("trl-sft-job", i, runTrlJob(args.python, rows)));
      rmSync(rowsDir, { recursive: true, force: true });
      emit({ case: "ratio-vs-trl", note: "training tokens/s: non-padding positions per second of steps + evaluations", ...compareWithTrl(pairs.ours, pairs.peer) });
    }
    if (args.torch) {
      // eager already ran interleaved with train-ref; otherwise here, like compiled: 3 runs, the median
      for (const flags of cases.includes("train-ref") ? [["--compile"]] : [[], ["--compile"]]) {
        const name = `torch${flags.length ? "-compiled" : "-eager"}`;
        log.start(`${name}: ${PEER_SCRIPT} ${flags.join(" ")} (3 runs)`);
        const results = Array.from({ length: 3 }, () => runPeer(args.python, flags));
        const mid = medianRun(results);
        emit({ case: name, ...mid, runsTokensPerSec: results.map((x) => x.tokens_per_sec) });
        if (refTokensPerSec) emit({ case: `ratio-vs-${name}`, reference: refTokensPerSec, peer: mid.tokens_per_sec, ratio: refTokensPerSec / mid.tokens_per_sec });
      }
    }
  },
});

/** The lora case: each variant in a child process (its own peak memory), the peer after each. */
async function loraCase({ steps, torch, python, base, only }: { steps: number; torch: boolean; python: string; base?: string; only?: string[] }) {
  const cpu = /^Model name:\s*(.*)$/m.exec(Bun.spawnSync(["lscpu"]).stdout.toString())?.[1]?.trim();
  emit({ case: "lora-setup", cpu, cores: navigator.hardwareConcurrency, model: base ?? "random init, Qwen3-0.6B shapes as llama", batch: "4x128", steps, note: "shared machine: other jobs ran meanwhile" });
  const lastJSON = (out: string) => JSON.parse(out.trim().split("\n").filter((l) => l.startsWith("{")).pop() ?? "null");
  for (const [variant, ckpt, peer] of LORA_RUNS.filter(([v]) => !only || only.includes(v))) {
    log.start(`lora: ${variant}${ckpt ? " + grad-checkpoint" : ""}`);
    const ours = Bun.spawnSync(["bun", "scripts/bench.ts", "--case", "lora-step", "--variant", variant, "--steps", String(steps), ...(ckpt ? ["--grad-checkpoint"] : []), ...(base ? ["--base", base] : [])], { cwd: PROJECT_ROOT, stdout: "pipe", stderr: "pipe" });
    const mine = ours.exitCode === 0 ? lastJSON(ours.stdout.toString()) : { error: ours.stderr.toString().slice(-400) };
    emit({ case: "lora", stack: "sft-mlx", ...mine, variant, gradCheckpoint: ckpt });
    if (!torch || !peer) continue;
    const p = Bun.spawnSync([python, PEER_LORA_SCRIPT, "--variant", variant, "--steps", String(steps), ...(ckpt ? ["--grad-checkpoint"] : [])], { env: process.env, stdout: "pipe", stderr: "pipe" });
    const theirs = p.exitCode === 0 ? lastJSON(p.stdout.toString()) : { error: p.stderr.toString().slice(-400) };
    emit({ case: "lora-peer", ...theirs });
    if (mine.tokensPerSec && theirs.tokensPerSec) emit({ case: "lora-ratio", variant, gradCheckpoint: ckpt, ratio: mine.tokensPerSec / theirs.tokensPerSec, peakRatio: mine.stepPeakRssMB / theirs.stepPeakRssMB });
  }
}

runStrict(command);
