// LoRA and QLoRA SFT runs end to end: a base without the chat tokens (the transformers llama fixture,
// untied head) grown with --add-chat-tokens and trained with --lora (with pretraining replay, and in
// the first run NEFTune, grad accumulation and gradient checkpointing too), interrupted and resumed; what the
// run folder holds (adapter/ in PEFT's layout, no checkpoint/), reading the adapter back for chat and
// fusing it into a checkpoint; and a 4-bit run on a base with a 688-wide MLP.
//   bun test test/lora-run.test.ts
import { afterAll, describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashCheckpoint, loadCheckpoint, loadModel, saveCheckpoint } from "../lib/model/checkpoint.ts";
import { writeCourseExport } from "../lib/export/course.ts";
import { fuseAdapter, loadForDecoding } from "../lib/model/adapter.ts";
import { mergeLoRA } from "../lib/model/lora.ts";
import { addChatTokens } from "../lib/model/vocab.ts";
import { namedParameters } from "../lib/model/checkpoint.ts";
import { createRunDir } from "../lib/run/folder.ts";
import { readJSON } from "../lib/io/files.ts";
import { resolveRunConfig, type RunConfig } from "../lib/sft/run-config.ts";
import { executeRun, loadRunData, prepareRun } from "../lib/sft/run.ts";
import { readConfigFile } from "../lib/sft/config-file.ts";
import { probeRun } from "../lib/probes/compare.ts";
import { resumeRun } from "../lib/sft/resume.ts";
import { readRun } from "../lib/chat/select.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { TINY_TEXT, tinyTokenizer } from "./helpers/tiny.ts";
import { chat, fileWriter, interruptAfterFirstEval } from "./helpers/tiny-run.ts";
import { CHAT_TOKENS } from "../lib/format/tokens.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tmp = mkdtempSync(join(tmpdir(), "lora-run-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const LLAMA = join(import.meta.dir, "fixtures/hf/llama"); // 344 tokens, 384 rows, untied, no chat tokens
const write = fileWriter(tmp);
const data = write("train.json", [
  chat("What is the quick fox?", "The quick brown fox jumps over the lazy dog."),
  chat("Where was the cat?", "The little cat sat on the warm mat in the sun."),
  chat("What did the baker make?", "The baker made bread in the morning."),
  chat("What is in the river?", "The fish in the river were small and quick."),
]);
const evalData = write("eval.json", [chat("Who ran to the ball?", "The dog got there first.")]);
const proseData = join(tmp, "prose.txt"); // the replayed text (--mix-prose's default 0.25)
writeFileSync(proseData, TINY_TEXT.repeat(3));
const out = join(tmp, "runs");
const config = (over: Partial<RunConfig> = {}) =>
  resolveRunConfig({}, {
    base: LLAMA, data, evalData, proseData, out, steps: 6, evalEvery: 3, batchSize: 2, maxSeqLen: 64, logEvery: 2, lr: 1e-2, probeTokens: 2,
    lora: true, loraTargets: "all-linear", addChatTokens: true, ...over,
  });
const ids = mx.array([[5, 40, 344, 120, 345, 346, 9, 349, 350]], mx.int32); // added tokens from 344 on

describe("lora run", () => {
  let runDir = "";

  test("--lora on a base without chat tokens: adapter/ with the added tokens' rows, the base untouched", async () => {
    const hash = hashCheckpoint(LLAMA);
    const cfg = config({ gradAccum: 2, neftuneAlpha: 5, gradCheckpoint: true });
    const p = await prepareRun(cfg);
    runDir = createRunDir(cfg.out, cfg.name);
    expect(await executeRun(p, runDir)).toBe(0);
    expect(readdirSync(runDir).sort()).toEqual(["adapter", "config.json", "metrics.jsonl", "report.html", "samples.md", "summary.json"]);
    expect(readdirSync(join(runDir, "adapter")).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors", "sft-mlx.json", "tokenizer.json", "tokenizer_config.json"]);
    const recorded = readJSON(join(runDir, "config.json"));
    expect([recorded.lora, recorded.loraRank, recorded.loraAlpha, recorded.loraTargets, recorded.gradAccum]).toEqual([true, 8, 8, "all-linear", 2]);
    // replay rows trained with the adapter: their loss is logged apart
    const train = readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.type === "train");
    expect(train.length > 0 && train.every((r) => r.proseLoss > 0 && r.proseNtoks > 0)).toBe(true);
    // --add-chat-tokens adds the course's tokens (344.. here); the chat tokens' rows train (--lora-tokens chat)
    const chatIds = CHAT_TOKENS.map((t) => p.tokenizer.tokenId(t));
    expect(Math.min(...chatIds)).toBeGreaterThanOrEqual(344);
    expect(recorded.provenance.lora.tokenIndices).toEqual(chatIds);
    const peft = readJSON(join(runDir, "adapter", "adapter_config.json"));
    expect(peft.trainable_token_indices).toEqual({ embed_tokens: chatIds, lm_head: chatIds });
    expect([peft.r, peft.lora_alpha, peft.target_modules.length]).toEqual([8, 8, 7]);
    expect(readJSON(join(runDir, "summary.json")).checkpoint).toBe("adapter");
    expect(hashCheckpoint(LLAMA)).toBe(hash);

    // read back for chat: base + grown vocabulary + adapter, merged; the same logits as the run's model
    const loaded = await loadForDecoding(join(runDir, "adapter"));
    expect(loaded.tokenizer.vocabSize).toBe(p.tokenizer.vocabSize);
    const trained = mergeLoRA(p.model);
    expect(mx.max(mx.abs(mx.subtract(loaded.model.forward(ids), trained.forward(ids)))).item()).toBeLessThan(1e-5);
    // every embedding and head row but the chat tokens' is the (grown) base's, bit for bit
    const base = await loadCheckpoint(LLAMA);
    const grown = new Map(namedParameters(addChatTokens(base.model, base.tokenizer).model));
    const others = mx.array(Array.from({ length: 384 }, (_, i) => i).filter((i) => !chatIds.includes(i)), mx.int32);
    for (const [name, w] of namedParameters(loaded.model)) {
      if (name !== "model.embed_tokens.weight" && name !== "lm_head.weight") continue;
      expect(mx.arrayEqual(mx.take(w, others, 0), mx.take(grown.get(name)!, others, 0)).item()).toBe(true);
    }
    expect(readRun(runDir).checkpoint).toBe(join(runDir, "adapter")); // what chat --run opens
  });

  test("the probes: the base side is the base as loaded again, the report the one a fresh base and the saved adapter give", async () => {
    // The run probed its frozen base in memory (no second load) and a merge sharing the base's arrays;
    // the probes as they ran before that: the base read from disk and grown again, the adapter merged onto it.
    const { provenance: _, ...cfg } = readConfigFile(runDir);
    const data = loadRunData(cfg);
    const base = await loadCheckpoint(LLAMA);
    const grown = addChatTokens(base.model, base.tokenizer, { seed: cfg.seed });
    const fresh = await probeRun({
      base: grown.model, sft: (await loadForDecoding(join(runDir, "adapter"))).model, tokenizer: grown.tokenizer, probesPath: cfg.probes,
      evalConversations: data.eval.map((c) => c.messages), evalKinds: data.eval.map((c) => c.kind), trainConversations: data.train.map((c) => c.messages), seed: cfg.seed, maxTokens: cfg.probeTokens,
    });
    const probes = readJSON(join(runDir, "summary.json")).probes;
    expect(probes.samples.length).toBeGreaterThan(20);
    expect(probes).toEqual(JSON.parse(JSON.stringify(fresh)));

    // --resume of a run whose probes did not run: the adapter merged onto a new load, handed over, then the base
    const again = join(tmp, "probes-pending");
    cpSync(runDir, again, { recursive: true });
    rmSync(join(again, "samples.md"));
    const summary = readJSON(join(again, "summary.json"));
    writeFileSync(join(again, "summary.json"), JSON.stringify({ ...summary, probes: null, probeStatus: "pending" }));
    expect(await resumeRun(again)).toBe(0);
    expect(readJSON(join(again, "summary.json")).probes).toEqual(probes);
  });

  test("fuse: the merged checkpoint computes what base + adapter compute", async () => {
    const fused = join(runDir, "fused");
    await fuseAdapter(join(runDir, "adapter"), fused);
    const a = (await loadCheckpoint(fused)).model.forward(ids);
    const b = (await loadForDecoding(join(runDir, "adapter"))).model.forward(ids);
    expect(mx.arrayEqual(a, b).item()).toBe(true);
    await expect(fuseAdapter(join(runDir, "adapter"), fused)).rejects.toThrow(/already exists/);
  });

  test("export --format course: the adapter merged into its base, the model the run trained", async () => {
    const out = join(tmp, "course-artifact");
    await writeCourseExport({ runDir, out });
    const exported = loadModel(join(out, "hf_model")).model;
    const trained = (await loadForDecoding(join(runDir, "adapter"))).model;
    const V = trained.config.vocabSize; // the export may add course tokens: columns after these
    const a = exported.forward(ids).index(mx.Slice(), mx.Slice(), mx.Slice(0, V));
    expect(mx.arrayEqual(a, trained.forward(ids)).item()).toBe(true);
    expect(readJSON(join(out, "manifest.json")).notes).toContain("A LoRA adapter, merged into the base.");
  });

  test("Ctrl-C and --resume: the LoRA run ends where an uninterrupted one does", async () => {
    const straight = config({ name: "straight", probeTokens: 0 });
    const sDir = createRunDir(straight.out, straight.name);
    expect(await executeRun(await prepareRun(straight), sDir)).toBe(0);

    const cfg = config({ name: "interrupt", probeTokens: 0 });
    const p = await prepareRun(cfg);
    const dir = createRunDir(cfg.out, cfg.name);
    expect(await interruptAfterFirstEval(p, dir)).toBe(130);
    expect(readJSON(join(dir, "summary.json")).status).toBe("interrupted");
    expect(existsSync(join(dir, "adapter", "adapter_model.safetensors"))).toBe(true);
    expect(await resumeRun(dir)).toBe(0);
    const [x, y] = [readJSON(join(dir, "summary.json")), readJSON(join(sDir, "summary.json"))];
    expect([x.status, x.step]).toEqual(["completed", 6]);
    expect(x.finalEvalLoss).toBeCloseTo(y.finalEvalLoss, 5);
  });

  test("--quantize 4: the base held in 4 bits, down_proj (688 inputs) kept and recorded, training runs", async () => {
    const tok = tinyTokenizer();
    const wide = join(tmp, "wide-base");
    saveCheckpoint(wide, tinyModel(tok.vocabSize, { seed: 2, overrides: { hidden_size: 256, intermediate_size: 688, num_hidden_layers: 1 } }), tok);
    const cfg = config({ base: wide, name: "qlora", quantize: 4, addChatTokens: false, loraTargets: "q_proj,v_proj", probeTokens: 2 });
    const p = await prepareRun(cfg);
    const dir = createRunDir(cfg.out, cfg.name);
    expect(await executeRun(p, dir)).toBe(0);
    const q = readJSON(join(dir, "config.json")).provenance.quantization;
    expect([q.bits, q.groupSize, q.kept]).toEqual([4, 64, { down_proj: "input dimension 688 is not a multiple of the group size 64" }]);
    expect(q.quantized).toContain("q_proj");
    const s = readJSON(join(dir, "summary.json"));
    expect(s.finalEvalLoss).toBeLessThan(s.initialEvalLoss);
    expect((await loadForDecoding(join(dir, "adapter"))).model.config.hiddenSize).toBe(256); // loads onto the float base
  });
});
