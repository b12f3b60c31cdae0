// Pins the probes: metric definitions on hand-made outputs (exact numbers), the prompt list, the
// verdict following the numbers, prose loss and candidate log-likelihood against a direct
// computation on a tiny model, and probeRun end to end on a tiny model (plain JSON out).
//   bun test test/probes.test.ts

import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { fileWriter } from "./helpers/tiny-run.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { core as mx } from "@frost-beta/mlx";
import type { LlamaModel } from "../lib/model/llama.ts";
import { mergeLoRA } from "../lib/model/lora.ts";
import { DEFAULT_NOISE } from "../lib/util/paths.ts";
import { loadNoiseTemplates } from "../lib/data/data.ts";
import { loadProbes, probePrompts, promptIds } from "../lib/probes/generation.ts";
import { ChatTemplate } from "../lib/format/template.ts";
import { categoryMetrics, describeOutput, generationMetrics, hasRoleMarker, proseOutcome, repeatedNgramShare, type ChatIds } from "../lib/probes/metrics.ts";
import { MAX_PROSE_WINDOW, proseLoss } from "../lib/probes/prose.ts";
import { candidateLogLikelihood, scoreItem } from "../lib/probes/retention.ts";
import { verdictText } from "../lib/probes/verdict.ts";
import { probeRun } from "../lib/probes/compare.ts";
import type { GenerationMetrics, ProbeOutput, ProbeReport } from "../lib/probes/types.ts";
import { tinyTokenizer } from "./helpers/tiny.ts";
import { tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const tok = tinyTokenizer();
const CHAT: ChatIds = { user: 2, assistant: 3, end: 4 };
const { detectors } = loadNoiseTemplates(DEFAULT_NOISE);

/** Log-softmax of one row of logits, in float64 on the host. */
function logSoftmax(row: number[]): number[] {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
  return row.map((x) => x - lse);
}

/** Per-position log-probabilities of ids[t + 1] given ids[0..t], from one forward pass. */
function directLogProbs(model: LlamaModel, ids: number[]): number[] {
  const logits = model.forward(mx.array([ids.slice(0, -1)], mx.int32)).astype(mx.float32).tolist() as number[][][];
  return logits[0]!.map((row, t) => logSoftmax(row)[ids[t + 1]!]!);
}

describe("generation metrics", () => {
  test.each([
    ["no ids", [], 0],
    ["shorter than n", [1, 2], 0],
    ["one trigram", [1, 2, 3], 0],
    ["a b c a b c: 1 of 4 trigrams repeats", [1, 2, 3, 1, 2, 3], 1 / 4],
    ["a a a a a: 2 of 3 repeat", [7, 7, 7, 7, 7], 2 / 3],
    ["all distinct", [1, 2, 3, 4, 5, 6], 0],
  ])("repeatedNgramShare: %s", (_name, ids, expected) => {
    expect(repeatedNgramShare(ids)).toBeCloseTo(expected, 12);
  });

  test.each([
    ["user id", [10, 2, 11], "", true],
    ["assistant id", [3], "", true],
    ["literal <|user|> spelled with ordinary tokens", [10, 11], "ok <|user|> hi", true],
    ["literal <|assistant|>", [10], "<|assistant|>", true],
    ["<|end|> is not a role marker", [10, 4], "x<|end|>", false],
    ["plain text", [10, 11], "Paris.", false],
  ])("hasRoleMarker: %s", (_name, ids, text, expected) => {
    expect(hasRoleMarker(ids, text, CHAT)).toBe(expected);
  });

  const ordinary = (n: number) => Array.from({ length: n }, (_, i) => 10 + i);
  test.each([
    ["16 ordinary ids", ordinary(16), "continued"],
    ["96 ordinary ids", ordinary(96), "continued"],
    ["<|end|> at 3", [10, 11, 12, 4], "answered"],
    ["role id at 15 (inside the first 16)", [...ordinary(15), 2, ...ordinary(5)], "answered"],
    ["<|end|> at 17 (after 16 clean ids)", [...ordinary(16), 4], "continued"],
    ["5 ids, context ran out", ordinary(5), "short"],
  ])("proseOutcome: %s", (_name, ids, expected) => {
    expect(proseOutcome(ids, CHAT) as string).toBe(expected);
  });

  test("describeOutput drops the stop id from the reply and flags filler", () => {
    const out = describeOutput({ ids: [10, 11, 12, 4], text: "Great question! Paris.", stopReason: "end-token" }, "chat", CHAT, detectors);
    expect(out).toEqual({ text: "Great question! Paris.", stopReason: "end-token", tokens: 3, leaked: false, repetition: 0, offPattern: true });
    const raw = describeOutput({ ids: [10, 4], text: "Yes", stopReason: "end-token" }, "raw", CHAT, detectors);
    expect(raw.outcome).toBe("answered");
    expect(raw.tokens).toBe(1);
  });

  const o = (p: Partial<ProbeOutput>): ProbeOutput => ({ text: "", stopReason: "max-tokens", tokens: 0, leaked: false, repetition: 0, offPattern: false, ...p });

  test("generationMetrics on hand-made replies: exact numbers", () => {
    const replies = [
      { mode: "chat" as const, output: o({ text: "Paris.", stopReason: "end-token", tokens: 2 }) },
      { mode: "chat" as const, output: o({ text: "Sure! It is 12.", stopReason: "end-token", tokens: 6, repetition: 0.5 }) },
      { mode: "chat" as const, output: o({ text: "x <|user|> y", tokens: 96, leaked: true, repetition: 0.25 }) },
      { mode: "chat" as const, output: o({ text: "Hope this helps!", tokens: 8, memorised: true }) },
      { mode: "raw" as const, output: o({ tokens: 96, outcome: "continued", memorised: true }) }, // raw replies never count
      { mode: "raw" as const, output: o({ tokens: 3, stopReason: "end-token", outcome: "answered" }) },
      { mode: "raw" as const, output: o({ tokens: 96, outcome: "continued" }) },
    ];
    expect(generationMetrics(replies, detectors)).toEqual({
      chatProbes: 4,
      stops: 2,
      stopRate: 0.5,
      leaks: 1,
      roleLeakage: 0.25,
      meanLength: (2 + 6 + 96 + 8) / 4,
      repetition: (0 + 0.5 + 0.25 + 0) / 4,
      offPattern: 2, // "Sure!" opener and "Hope this helps" closer
      offPatternRate: 0.5,
      memorised: 1,
      memorisedRate: 0.25,
      proseProbes: 3,
      continued: 2,
      continuationRate: 2 / 3,
      answered: 1,
      answeredRate: 1 / 3,
      prefillProbes: 0,
      prefillCompleted: 0,
      prefillCompletedRate: 0,
    });
  });

  test("prefilled replies: completed = went on 2+ tokens, no role marker, closed with <|end|>", () => {
    const replies = [
      { mode: "prefill" as const, output: o({ tokens: 9, stopReason: "end-token" }) }, // continued and stopped
      { mode: "prefill" as const, output: o({ tokens: 1, stopReason: "end-token" }) }, // stopped too quickly
      { mode: "prefill" as const, output: o({ tokens: 12, stopReason: "end-token", leaked: true }) }, // veered into a new turn
      { mode: "prefill" as const, output: o({ tokens: 96 }) }, // never stopped
    ];
    const m = generationMetrics(replies, detectors);
    expect([m.prefillProbes, m.prefillCompleted, m.prefillCompletedRate]).toEqual([4, 1, 0.25]);
    expect([m.chatProbes, m.stops]).toEqual([0, 0]); // prefilled replies stay out of the chat numbers
  });

  test("per category: chat numbers of the held-out prompts grouped by their data kind, in first-seen order", () => {
    const sample = (category: string | undefined, sftStops: boolean, leaked = false) => ({
      id: "x", kind: "eval" as const, prompt: "p", mode: "chat" as const, ...(category ? { category } : {}),
      base: o({ tokens: 96 }),
      sft: o({ tokens: 4, stopReason: sftStops ? "end-token" : "max-tokens", leaked }),
    });
    const cats = categoryMetrics([sample("format", true), sample("grounded_qa", false, true), sample("format", false), sample(undefined, true)]);
    expect(cats.map((c) => [c.category, c.prompts, c.sft.stops, c.sft.stopRate, c.sft.leaks, c.base.stopRate])).toEqual([
      ["format", 2, 1, 0.5, 0, 0],
      ["grounded_qa", 1, 0, 0, 1, 0],
    ]);
    expect(categoryMetrics([sample(undefined, true)])).toEqual([]);
  });

  test("no replies: zeros, not NaN", () => {
    const m = generationMetrics([], detectors);
    expect(Object.values(m).every((v) => v === 0)).toBe(true);
  });
});

describe("probe prompts", () => {
  const dir = mkdtempSync(join(tmpdir(), "probes-"));
  const file = (name: string, value: unknown) => {
    const p = join(dir, name);
    writeFileSync(p, typeof value === "string" ? value : JSON.stringify(value));
    return p;
  };

  test("probe file prompts first, then eval prompts not already probed", () => {
    const probes = loadProbes(file("ok.json", [
      { id: "q1", kind: "question", prompt: "What is the capital of France?" },
      { id: "p1", kind: "prose", prompt: "Once upon a time" },
    ]));
    const evalConvs = [
      [{ role: "user" as const, content: "what is the capital  of France?" }, { role: "assistant" as const, content: "Paris." }],
      [{ role: "user" as const, content: "Name a colour." }, { role: "assistant" as const, content: "Red." }],
    ];
    expect(probePrompts(probes, evalConvs)).toEqual([
      { id: "q1", kind: "question", prompt: "What is the capital of France?", mode: "chat" },
      { id: "p1", kind: "prose", prompt: "Once upon a time", mode: "raw" },
      { id: "eval-1", kind: "eval", prompt: "Name a colour.", mode: "chat" },
    ]);
  });

  test("a prefill probe keeps its reply start; eval prompts carry their data kind as category", () => {
    const probes = loadProbes(file("prefill.json", [{ id: "f-stars", kind: "prefill", prompt: "Continue this poem:", prefill: "The stars above shine bright at night," }]));
    const evalConvs = [[{ role: "user" as const, content: "Return exactly one color." }, { role: "assistant" as const, content: "Blue." }]];
    expect(probePrompts(probes, evalConvs, ["format"])).toEqual([
      { id: "f-stars", kind: "prefill", prompt: "Continue this poem:", prefill: "The stars above shine bright at night,", mode: "prefill" },
      { id: "eval-0", kind: "eval", prompt: "Return exactly one color.", mode: "chat", category: "format" },
    ]);
  });

  test("a prefill prompt's ids end inside the assistant turn: the generation prompt, then the reply's start", () => {
    const [p] = probePrompts(loadProbes(file("prefill2.json", [{ id: "f", kind: "prefill", prompt: "Continue this poem:", prefill: "The stars above shine bright at night," }])), []);
    const template = new ChatTemplate();
    const head = template.renderPromptIds([{ role: "user", content: "Continue this poem:" }], tok);
    const ids = promptIds(p!, tok, template);
    expect(ids).toEqual([...head, ...tok.encode("The stars above shine bright at night,")]);
    expect(tok.decode(ids)).toBe("<|user|>\nContinue this poem:\n<|assistant|>\nThe stars above shine bright at night,");
    // and it is the start of the training render of that reply: nothing between the header and the text
    const full = template.renderWithMask([{ role: "user", content: "Continue this poem:" }, { role: "assistant", content: "The stars above shine bright at night," }], tok).ids;
    expect(full.slice(0, ids.length)).toEqual(ids);
  });

  test.each([
    ["not an array", { id: "x" }, /expected a JSON array/],
    ["missing id", [{ kind: "prose", prompt: "x" }], /probe 0 has no string "id"/],
    ["duplicate id", [{ id: "a", kind: "prose", prompt: "x" }, { id: "a", kind: "prose", prompt: "y" }], /probe 1 repeats the id `a`/],
    ["bad kind", [{ id: "a", kind: "poem", prompt: "x" }], /kind `poem`, expected one of question, instruction, prose, prefill/],
    ["prefill without its start", [{ id: "a", kind: "prefill", prompt: "Continue this poem:" }], /`a`\) is a prefill probe without "prefill": add the start of the assistant's reply/],
    ["empty prompt", [{ id: "a", kind: "question", prompt: " " }], /empty or missing "prompt"/],
    ["not JSON", "[{", /cannot read the probe file/],
  ])("loadProbes rejects %s with its index and the fix", (name, value, message) => {
    expect(() => loadProbes(file(`${name}.json`, value))).toThrow(message);
  });
});

describe("verdict", () => {
  const gm = (p: Partial<GenerationMetrics>): GenerationMetrics => ({
    chatProbes: 24, stops: 0, stopRate: 0, leaks: 0, roleLeakage: 0, meanLength: 96, repetition: 0.1, offPattern: 0, offPatternRate: 0,
    memorised: 0, memorisedRate: 0, proseProbes: 8, continued: 8, continuationRate: 1, answered: 0, answeredRate: 0, prefillProbes: 0, prefillCompleted: 0, prefillCompletedRate: 0, ...p,
  });
  const score = (correct: number) => ({ correct, total: 30, accuracy: correct / 30, meanMargin: 0.5 });
  const prose = (baseLoss: number, sftLoss: number) => ({ baseLoss, sftLoss, delta: sftLoss - baseLoss, relative: (sftLoss - baseLoss) / baseLoss, ntoks: 1000, windows: 4, windowLen: 256 });

  test("a good run: every number appears, format moved, facts kept", () => {
    const v = verdictText({
      base: gm({ stops: 0 }),
      sft: gm({ stops: 22, stopRate: 22 / 24, meanLength: 18, continued: 5, answered: 3 }),
      prose: prose(3.0, 3.12),
      retention: { base: score(19), sft: score(18), items: [] },
    });
    expect(v).toContain("stops with <|end|> on 22 of 24 chat prompts (base: 0): it has learned to end its turn");
    expect(v).toContain("it still answers 3 of them instead of continuing (base: 0)");
    expect(v).toContain("rose 4.0% (3.000 → 3.120 nats/token): mild forgetting");
    expect(v).toContain("18/30 against 19/30 for the base");
    expect(v).toContain("SFT moved format, not facts");
    expect(v).toContain("No reply holds a role marker");
  });

  test.each([
    [0, 0, null],
    [2, 0, "2 of 24 replies reproduce a training answer verbatim (base: 0)."],
    [11, 1, "11 of 24 replies reproduce a training answer verbatim (base: 1): it recites its training data instead of answering."],
  ])("memorised replies %d (base %d) in the verdict", (n, b, sentence) => {
    const v = verdictText({
      base: gm({ memorised: b, memorisedRate: b / 24 }),
      sft: gm({ stops: 24, stopRate: 1, memorised: n, memorisedRate: n / 24 }),
      prose: prose(3.0, 3.0),
      retention: { base: score(19), sft: score(19), items: [] },
    });
    if (sentence === null) expect(v).not.toContain("training answer");
    else expect(v).toContain(sentence);
  });

  test("a bad run reads differently from the same template", () => {
    const v = verdictText({
      base: gm({}),
      sft: gm({ stops: 3, stopRate: 3 / 24, leaks: 5, roleLeakage: 5 / 24, repetition: 0.4, offPattern: 6 }),
      prose: prose(3.0, 3.6),
      retention: { base: score(19), sft: score(12), items: [] },
    });
    expect(v).toContain("it rarely ends its turn");
    expect(v).toContain("role marker inside 5 of 24 replies");
    expect(v).toContain("many replies loop on a phrase");
    expect(v).toContain("6 of 24 replies use chat filler");
    expect(v).toContain("clear forgetting");
    expect(v).toContain("SFT cost facts without teaching the format");
  });
});

describe("likelihood probes on a tiny model", () => {
  const model = tinyModel(tok.vocabSize, { seed: 3 });
  const text = "The quick brown fox jumps over the lazy dog. Alice was beginning to get very tired of sitting by her sister.";
  const ids = tok.encode(text);

  test("prose loss in one window equals the mean of direct log-probabilities", async () => {
    const direct = -directLogProbs(model, ids).reduce((a, b) => a + b, 0) / (ids.length - 1);
    const r = await proseLoss(model, tok, text);
    expect(r).toMatchObject({ ntoks: ids.length - 1, windows: 1, windowLen: 128 });
    expect(r.loss).toBeCloseTo(direct, 4);
  });

  test("a long-context model scores windows of at most MAX_PROSE_WINDOW tokens, the same loss as explicit windows", async () => {
    const long = tinyModel(tok.vocabSize, { seed: 3, overrides: { max_position_embeddings: 4096 } });
    const book = Array.from({ length: 60 }, () => text).join(" "); // ~1,400 tokens: more than one window
    const r = await proseLoss(long, tok, book);
    expect(r.windowLen).toBe(MAX_PROSE_WINDOW);
    expect(r.windows).toBe(Math.ceil((tok.encode(book).length - 1) / MAX_PROSE_WINDOW));
    expect(r.loss).toBeCloseTo((await proseLoss(long, tok, book, { windowLen: MAX_PROSE_WINDOW, batchSize: 1 })).loss, 4); // batched vs one by one: float sums differ by ~1e-5
  });

  test("past the logits budget, windows are scored layer by layer with the head in vocabulary slices: the same loss", async () => {
    const long = tinyModel(tok.vocabSize, { seed: 3, overrides: { max_position_embeddings: 4096 } });
    const book = Array.from({ length: 10 }, () => text).join(" ");
    const whole = await proseLoss(long, tok, book, { windowLen: 64 });
    const sliced = await proseLoss(long, tok, book, { windowLen: 64, logitsBudget: 1 }); // one window's logits pass 1 byte
    expect(sliced.ntoks).toBe(whole.ntoks);
    expect(sliced.loss).toBeCloseTo(whole.loss, 4);
  });

  test.each([[5, 1], [7, 2], [7, 4]])("windows of %p tokens (batch %p): token-weighted over windows, each target once", async (windowLen, batchSize) => {
    let sum = 0;
    let n = 0;
    for (let s = 0; s < ids.length - 1; s += windowLen) {
      const lp = directLogProbs(model, ids.slice(s, s + windowLen + 1));
      sum -= lp.reduce((a, b) => a + b, 0);
      n += lp.length;
    }
    const r = await proseLoss(model, tok, text, { windowLen, batchSize });
    expect(r.ntoks).toBe(ids.length - 1);
    expect(n).toBe(ids.length - 1);
    expect(r.windows).toBe(Math.ceil((ids.length - 1) / windowLen));
    expect(r.loss).toBeCloseTo(sum / n, 4);
  });

  test("candidate log-likelihood equals the direct sum over the candidate's tokens", () => {
    const prompt = tok.encode("Alice was beginning to get very tired of sitting by her");
    const cand = tok.encode(" sister and the dog");
    const lp = directLogProbs(model, [...prompt, ...cand]);
    const direct = lp.slice(prompt.length - 1).reduce((a, b) => a + b, 0);
    expect(candidateLogLikelihood(model, prompt, cand)).toBeCloseTo(direct, 4);
  });

  test("retention picks the model's own argmax continuation, and misses when it is a distractor", () => {
    const prompt = "The quick brown fox jumps over the";
    const pIds = tok.encode(prompt);
    const row = model.forward(mx.array([pIds], mx.int32)).index(0, -1).astype(mx.float32).tolist() as number[];
    // Single-token candidates that round-trip through decode/encode, ranked by the model.
    const single = [...row.keys()].filter((id) => !tok.specialIds.has(id) && tok.encode(tok.decode([id])).join() === String(id));
    single.sort((a, b) => row[b]! - row[a]!);
    const [best, ...others] = single.map((id) => tok.decode([id]));
    const right = scoreItem(model, tok, { id: "forced", prompt, answer: best!, distractors: others.slice(0, 3) });
    expect(right.correct).toBe(true);
    expect(right.pick).toBe(best!);
    expect(right.margin).toBeCloseTo(right.logLikelihoods[0]! - Math.max(...right.logLikelihoods.slice(1)), 9);
    expect(right.margin).toBeGreaterThan(0);
    const wrong = scoreItem(model, tok, { id: "forced", prompt, answer: others[5]!, distractors: [best!, others[6]!] });
    expect(wrong.correct).toBe(false);
    expect(wrong.pick).toBe(best!);
    expect(wrong.margin).toBeLessThan(0);
  });
});

describe("probeRun on a tiny model", () => {
  const dir = mkdtempSync(join(tmpdir(), "probe-run-"));
  const write = fileWriter(dir);
  const probesPath = write("probes.json", [
    { id: "q-fox", kind: "question", prompt: "What does the fox do?" },
    { id: "i-sea", kind: "instruction", prompt: "Write one sentence about the sea." },
    { id: "p-alice", kind: "prose", prompt: "Alice was beginning to get very tired" },
    { id: "f-sea", kind: "prefill", prompt: "Write one sentence about the sea.", prefill: "The sea is" },
  ]);
  const prosePath = write("prose.txt", "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.");
  const retentionPath = write("retention.json", [
    { id: "alice-sister", prompt: "sitting by her", answer: " sister", distractors: [" mother", " dog"] },
    { id: "fox-dog", prompt: "jumps over the lazy", answer: " dog", distractors: [" fox", " sea"] },
  ]);
  const evalConversations = [[{ role: "user" as const, content: "How many legs does a spider have?" }, { role: "assistant" as const, content: "Eight." }]];

  test("same model as base and SFT: identical sides, zero deltas, plain JSON", async () => {
    const model = tinyModel(tok.vocabSize, { seed: 5 });
    const progress: string[] = [];
    const report: ProbeReport = await probeRun({ base: model, sft: model, tokenizer: tok, probesPath, evalConversations, evalKinds: ["arithmetic"], trainConversations: evalConversations, seed: 0, maxTokens: 20, prosePath, retentionPath, onProgress: (m) => progress.push(m) });
    expect(report.samples.map((s) => [s.id, s.mode])).toEqual([["q-fox", "chat"], ["i-sea", "chat"], ["p-alice", "raw"], ["f-sea", "prefill"], ["eval-0", "chat"]]);
    expect(report.settings).toMatchObject({ maxTokens: 20, temperature: 0, seed: 0, stopToken: "<|end|>", probePrompts: 4, evalPrompts: 1 });
    expect(report.base.prefillProbes).toBe(1);
    expect(report.categories).toEqual([{ category: "arithmetic", prompts: 1, base: report.categories![0]!.sft, sft: report.categories![0]!.base }]);
    expect(report.sft).toEqual(report.base);
    expect(report.base.chatProbes).toBe(3);
    expect(report.base.proseProbes).toBe(1);
    for (const s of report.samples) expect(s.sft).toEqual(s.base);
    expect(report.prose.delta).toBe(0);
    expect(report.retention.items.map((i) => i.id)).toEqual(["alice-sister", "fox-dog"]);
    expect(report.retention.sft).toEqual(report.retention.base);
    expect(report.verdict).toContain(`on ${report.sft.stops} of 3 chat prompts`);
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
    expect(progress[0]).toBe("sft: generate 1/5: q-fox");
  });

  test("one model at a time: the fine-tuned side runs whole, is let go, and only then is the base made; the report is the same", async () => {
    const models = { base: tinyModel(tok.vocabSize, { seed: 5 }), sft: tinyModel(tok.vocabSize, { seed: 6 }) };
    const opts = { tokenizer: tok, probesPath, evalConversations, trainConversations: evalConversations, seed: 0, maxTokens: 8, prosePath, retentionPath };
    const given = await probeRun({ ...opts, base: models.base, sft: models.sft });
    const events: string[] = [];
    let sftRef: WeakRef<LlamaModel> | null = null;
    const made = await probeRun({
      ...opts,
      sft: () => {
        events.push("make sft");
        const m = mergeLoRA(models.sft); // a new model object sharing the arrays, as a LoRA run's merge is
        sftRef = new WeakRef(m);
        return m;
      },
      base: async () => {
        Bun.gc(true);
        events.push(`make base (sft model ${sftRef!.deref() ? "still held" : "freed"})`);
        return models.base;
      },
      onProgress: (m) => events.push(m.replace(/ \d+\/\d+:.*/, "")),
    });
    expect([...new Set(events)]).toEqual(["make sft", "sft: generate", "sft: prose loss", "sft: retention, 2 cloze items", "make base (sft model freed)", "base: generate", "base: prose loss", "base: retention, 2 cloze items"]);
    expect(made).toEqual(given);
    expect(made.prose.delta).not.toBe(0); // two different models
  });

  test("a bad path fails before any model runs", async () => {
    const model = tinyModel(tok.vocabSize, { seed: 5 });
    await expect(probeRun({ base: model, sft: model, tokenizer: tok, probesPath: join(dir, "missing.json"), evalConversations: [], trainConversations: [], seed: 0 })).rejects.toThrow(/missing\.json: cannot read the probe file/);
  });
});
