// LoRA, trainable token rows, QLoRA's quantization and gradient accumulation, pinned exactly: the
// model unchanged at step 0, the adapter's gradient against finite differences, only the adapter
// (and the chosen rows) moving, k micro-batches equal to one batch of their rows, merge then unmerge
// giving the weights back, MLX's quantization limits, and bf16 refused on the CPU before it aborts.
//   bun test test/lora.test.ts
import { describe, expect, test } from "bun:test";
import { core as mx, nn } from "@frost-beta/mlx";
import { applyLoRA, mergeLoRA, tokenLayers, loraLayers, unadapted } from "../lib/model/lora.ts";
import { formatTargets, parseTargets, type LoRASettings } from "../lib/model/lora-config.ts";
import { minInputDim, notQuantizable, QuantizedLinear, quantizeModel } from "../lib/model/quantize.ts";
import { adapterOf, unmergeAdapter } from "../lib/model/adapter.ts";
import { namedParameters } from "../lib/model/checkpoint.ts";
import type { LlamaModel } from "../lib/model/llama.ts";
import { FlatParams, flatValueAndGrad, flattenParams } from "../lib/mlx/autodiff.ts";
import { batchLoss, defaultOptimizerConfig, TrainStep, type StepBatch } from "../lib/train/step.ts";
import { padAndCollate } from "../lib/data/batch.ts";
import { LORA_EPOCHS, LORA_LR, resolveSFTConfig } from "../lib/train/config.ts";
import { seededRandom } from "../lib/util/random.ts";
import { lossWithBump } from "./helpers/finite-diff.ts";
import { tinyConfigJSON, tinyModel } from "./helpers/tiny-model.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";
import { reorderBound } from "./helpers/tolerance.ts";

useSuiteTimeout();

const V = 64;
const QV: LoRASettings = { rank: 4, alpha: 8, dropout: 0, targets: ["q_proj", "v_proj"] };
const ALL: LoRASettings = { ...QV, targets: parseTargets("all-linear") };
const TOKENS = [60, 61, 62]; // rows that train, as the added chat tokens' would
/** hidden 256 so that MLX can quantize it (>= 256 inputs at 4 bits); intermediate 688 like the bundled base */
const WIDE = { hidden_size: 256, intermediate_size: 688, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2 };

const ids = mx.array([[1, 2, 60, 3, 61, 4, 5, 62]], mx.int32);
const maxAbsDiff = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;
const equal = (a: mx.array, b: mx.array) => mx.arrayEqual(a, b).item() as boolean;

/** Random rows of ids < V with a mask that leaves the first target of each row unsupervised. */
function examples(n: number, seed: number): { ids: number[]; mask: number[] }[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = 6 + ((i * 5) % 9);
    const row = Array.from({ length: len }, () => 6 + Math.floor(rand() * (V - 6)));
    return { ids: row, mask: row.map((_, t) => (t < 2 ? 0 : 1)) };
  });
}
const collate = (rows: { ids: number[]; mask: number[] }[]): StepBatch => padAndCollate(rows, { maxSeqLen: 64, padId: 0 });

/** Give every LoRA B (zero at init) and the token rows random values, so gradients reach A. */
function perturb(model: LlamaModel, seed = 7): void {
  mx.random.seed(seed);
  for (const [, l] of loraLayers(model)) l.loraB = mx.multiply(mx.random.normal(l.loraB.shape), 0.2);
  for (const [, t] of tokenLayers(model)) t.rows = mx.multiply(mx.random.normal(t.rows.shape), 0.5);
  mx.eval(model.parameters());
}

describe("lora", () => {
  test.each([
    ["q/v, tied head", true, QV, []],
    ["all-linear, untied head", false, ALL, []],
    ["q/v + token rows, tied (the head through the embedding's rows)", true, QV, TOKENS],
    ["all-linear + token rows, untied (embedding and head rows)", false, ALL, TOKENS],
  ] as const)("no-op at step 0 (%s): logits bit-identical", (_name, tied, settings, tokens) => {
    const model = tinyModel(V, { seed: 1, tied });
    const before = model.forward(ids);
    applyLoRA(model, settings, { tokenIndices: [...tokens] });
    expect(equal(model.forward(ids), before)).toBe(true);
  });

  test("no-op at step 0 on a 4-bit base: LoRA adds exactly nothing to the quantized model", async () => {
    const model = tinyModel(V, { seed: 1, tied: false, overrides: WIDE });
    await quantizeModel(model, { bits: 4, groupSize: 64 });
    const before = model.forward(ids);
    applyLoRA(model, ALL, { tokenIndices: TOKENS });
    expect(equal(model.forward(ids), before)).toBe(true);
  });

  test("only the adapter is trainable: A, B per target and the token rows, PEFT's shapes", () => {
    const model = tinyModel(V, { seed: 1, tied: false });
    const summary = applyLoRA(model, QV, { tokenIndices: TOKENS });
    const paths = new FlatParams(model).paths;
    expect(paths).toEqual([
      "model.embedTokens.rows",
      ...[0, 1].flatMap((i) => ["qProj", "vProj"].flatMap((p) => [`model.layers.${i}.selfAttn.${p}.loraA`, `model.layers.${i}.selfAttn.${p}.loraB`])),
      "lmHead.rows",
    ]);
    const shapes = Object.fromEntries(flattenParams(model.trainableParameters()).map(([k, v]) => [k, v.shape]));
    expect(shapes["model.layers.0.selfAttn.qProj.loraA"]).toEqual([4, 32]); // [r, in]
    expect(shapes["model.layers.0.selfAttn.vProj.loraB"]).toEqual([16, 4]); // [out, r]: 2 kv heads × 8
    expect(summary.trainable).toBe(2 * (4 * 32 + 32 * 4 + 4 * 32 + 16 * 4) + 2 * 3 * 32);
  });

  test.each([
    ["untied: the embedding's and the head's rows apart", false],
    ["tied: one set of rows read by the lookup and the head", true],
  ] as const)("at init the gradient reaches B but not A (B = 0), and it matches central finite differences once B is not zero (%s)", (_name, tied) => {
    const model = tinyModel(V, { seed: 2, tied });
    applyLoRA(model, QV, { tokenIndices: TOKENS });
    const flat = new FlatParams(model);
    const b = collate(examples(3, 1));
    const loss = (...a: mx.array[]) => batchLoss(model, a[0]!, a[1]!, a[2]!);
    const vg = flatValueAndGrad(flat, loss);
    const a0 = flat.paths.indexOf("model.layers.0.selfAttn.qProj.loraA");
    const b0 = flat.paths.indexOf("model.layers.0.selfAttn.qProj.loraB");
    let [, grads] = vg(flat.read(), b.inputs, b.targets, b.mask);
    expect(mx.max(mx.abs(grads[a0]!)).item()).toBe(0);
    expect(mx.max(mx.abs(grads[b0]!)).item()).toBeGreaterThan(0);

    perturb(model);
    const params = flat.read();
    [, grads] = vg(params, b.inputs, b.targets, b.mask);
    const eps = 1e-2;
    const lossAt = (i: number, k: number, delta: number) => lossWithBump(flat, params, () => loss(b.inputs, b.targets, b.mask).item() as number, i, k, delta);
    let checked = 0;
    params.forEach((p, i) => {
      const g = grads[i]!.reshape([-1]).tolist() as number[];
      // the two ends and the largest entry of every trainable array (rows: a token that is in the batch's targets)
      const big = g.reduce((best, x, k) => (Math.abs(x) > Math.abs(g[best]!) ? k : best), 0);
      for (const k of [0, p.size - 1, big]) {
        const fd = (lossAt(i, k, eps) - lossAt(i, k, -eps)) / (2 * eps);
        expect(Math.abs(fd - g[k]!)).toBeLessThan(2e-3 + 2e-2 * Math.abs(g[k]!));
        checked += 1;
      }
    });
    expect(checked).toBe(3 * params.length);
  });

  test("training moves only the adapter: frozen weights and the other embedding and head rows stay bit-identical", async () => {
    const model = tinyModel(V, { seed: 3, tied: false });
    const base = mergeLoRA(model); // a plain copy of the starting weights
    applyLoRA(model, QV, { tokenIndices: TOKENS });
    const frozenBefore = flattenParams(model.parameters()).filter(([k]) => !/lora[AB]$|\.rows$/.test(k));
    const step = new TrainStep(model, undefined, { sparseHead: true });
    const b = collate(examples(4, 2).map((e, i) => (i === 0 ? { ids: [...e.ids, 60, 61, 62], mask: [...e.mask, 1, 1, 1] } : e)));
    for (let i = 0; i < 3; i++) await step.step(b, 1e-2);
    const frozenAfter = new Map(flattenParams(model.parameters()));
    for (const [k, v] of frozenBefore) expect([k, equal(frozenAfter.get(k)!, v)]).toEqual([k, true]);
    const merged = new Map(namedParameters(mergeLoRA(model)));
    for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) {
      const [was, now] = [new Map(namedParameters(base)).get(name)!, merged.get(name)!];
      const others = mx.array(Array.from({ length: V }, (_, i) => i).filter((i) => !TOKENS.includes(i)), mx.int32);
      expect(equal(mx.take(now, others, 0), mx.take(was, others, 0))).toBe(true);
      expect(maxAbsDiff(mx.take(now, mx.array(TOKENS, mx.int32), 0), mx.take(was, mx.array(TOKENS, mx.int32), 0))).toBeGreaterThan(1e-3);
    }
    expect(maxAbsDiff(merged.get("model.layers.0.self_attn.q_proj.weight")!, new Map(namedParameters(base)).get("model.layers.0.self_attn.q_proj.weight")!)).toBeGreaterThan(1e-4);
  });

  test("merge then unmerge gives the original weights back (float32 rounding)", () => {
    const model = tinyModel(V, { seed: 4, tied: true });
    const original = namedParameters(model);
    applyLoRA(model, ALL);
    perturb(model);
    const merged = mergeLoRA(model);
    expect(maxAbsDiff(merged.forward(ids), model.forward(ids))).toBeLessThan(1e-4); // the merged model computes the same
    const changed = Math.max(...namedParameters(merged).map(([, w], i) => maxAbsDiff(w, original[i]![1])));
    expect(changed).toBeGreaterThan(1e-2);
    unmergeAdapter(merged, adapterOf(model, ALL));
    const after = namedParameters(merged);
    expect(after.map(([k]) => k)).toEqual(original.map(([k]) => k));
    for (const [i, [, w]] of after.entries()) expect(maxAbsDiff(w, original[i]![1])).toBeLessThan(1e-6);
  });

  test.each([true, false])("the probes' sides of a LoRA run: the base is the frozen base itself, the merge copies only what the adapter changes (tied head: %p)", (tied) => {
    const model = tinyModel(V, { seed: 6, tied });
    const fresh = tinyModel(V, { seed: 6, tied }); // the base as loading it again gives it
    applyLoRA(model, QV, { tokenIndices: TOKENS });
    perturb(model); // a trained adapter: B and the token rows away from their start
    const held = new Set(flattenParams(model.parameters()).map(([, a]) => a)); // every array the adapted model holds
    const base = unadapted(model);
    const freshNamed = new Map(namedParameters(fresh));
    for (const [name, w] of namedParameters(base)) expect([name, held.has(w), equal(w, freshNamed.get(name)!)]).toEqual([name, true, true]);
    expect(equal(base.forward(ids), fresh.forward(ids))).toBe(true);
    const merged = mergeLoRA(model);
    expect(maxAbsDiff(merged.forward(ids), base.forward(ids))).toBeGreaterThan(1e-3); // the adapter is on
    const copied = namedParameters(merged).filter(([, w]) => !held.has(w)).map(([name]) => name);
    const adapted = [0, 1].flatMap((i) => ["q_proj", "v_proj"].map((t) => `model.layers.${i}.self_attn.${t}.weight`));
    expect(copied.sort()).toEqual([...adapted, "model.embed_tokens.weight", ...(tied ? [] : ["lm_head.weight"])].sort());
    // the merge wrote into copies: the base it shares arrays with is still the base
    expect(equal(unadapted(model).forward(ids), fresh.forward(ids))).toBe(true);
  });

  test("a quantized base has no unadapted twin: its values are not the checkpoint's", async () => {
    const model = tinyModel(V, { seed: 1, overrides: WIDE });
    await quantizeModel(model, { bits: 4, groupSize: 64 });
    applyLoRA(model, QV);
    expect(() => unadapted(model)).toThrow(/quantized.*load the base checkpoint/);
  });

  test.each([false, true])("grad-accum: 2 micro-batches give the step of one batch holding their 4 rows (compiled: %p)", async (compile) => {
    const rows = examples(4, 5);
    // Adam with ε = 1 is Lipschitz in the gradient: u = m̂/(√v̂ + 1) moves by at most 2δ when every
    // gradient moves by δ (|m̂| ≤ √v̂ for t ≤ 2), so the two runs' weights differ by at most
    // 2·lr·δ per step. With ε = 1e-8 a gradient near 0 can flip its update's sign (2·lr) from
    // rounding alone, and no bound below that holds for every BLAS.
    const opt = { ...defaultOptimizerConfig(), eps: 1 };
    const run = async (batches: StepBatch | StepBatch[]) => {
      const model = tinyModel(V, { seed: 6, tied: false });
      applyLoRA(model, QV, { tokenIndices: TOKENS, seed: 1 });
      perturb(model); // so that A's gradient is not zero either
      const step = new TrainStep(model, opt, { compile, sparseHead: true });
      const results = [await step.step(batches, 1e-2), await step.step(batches, 1e-2)];
      return { results, params: step.flat.read() };
    };
    const one = await run(collate(rows));
    const two = await run([collate(rows.slice(0, 2)), collate(rows.slice(2))]); // padded to their own lengths
    // δ: each gradient element sums over the batch's positions, through reductions along the
    // model (per layer forward and back: attention over T, the D- and I-wide projections; the
    // V-wide softmax), every term within the gradient's norm: n = B·T + 2·L·(2D + I + T) + V.
    const { hidden_size: D, intermediate_size: I, num_hidden_layers: L } = tinyConfigJSON(V) as Record<string, number>;
    const [B, T] = [rows.length, Math.max(...rows.map((r) => r.ids.length))];
    const n = B * T + 2 * L * (2 * D + I + T) + V;
    const G = Math.max(...one.results.map((r) => r.gradNorm), ...two.results.map((r) => r.gradNorm));
    const delta = reorderBound(n, G);
    for (const [i, r] of one.results.entries()) {
      expect(Math.abs(two.results[i]!.loss - r.loss)).toBeLessThanOrEqual(reorderBound(n, Math.abs(r.loss)));
      expect(Math.abs(two.results[i]!.gradNorm - r.gradNorm)).toBeLessThanOrEqual(delta);
    }
    const bound = 2 * 1e-2 * delta * one.results.length; // 2·lr·δ per step
    for (const [i, p] of one.params.entries()) expect(maxAbsDiff(two.params[i]!, p)).toBeLessThanOrEqual(bound);
  });

  test("dropout: a key per step, the same key compiled or not, none in eval mode", async () => {
    const model = tinyModel(V, { seed: 8 });
    applyLoRA(model, { ...QV, dropout: 0.5 });
    perturb(model);
    model.eval();
    const plain = tinyModel(V, { seed: 8 });
    applyLoRA(plain, QV);
    perturb(plain);
    expect(equal(model.forward(ids), plain.forward(ids))).toBe(true); // eval mode: no dropout
    model.train();
    const b = collate(examples(2, 9));
    const lossAt = async (compile: boolean, t: number) => {
      const step = new TrainStep(model, undefined, { compile, seed: 3 });
      const init = step.flat.read();
      step.setState({ ...step.state(), t });
      const r = await step.step(b, 0);
      step.flat.write(init);
      return r.loss;
    };
    const [a, c, d] = [await lossAt(true, 0), await lossAt(false, 0), await lossAt(true, 1)];
    expect(a).toBeCloseTo(c, 5); // the key reaches the compiled graph
    expect(Math.abs(a - d)).toBeGreaterThan(1e-4); // another step, another mask
    expect(await lossAt(true, 0)).toBe(a); // replayed: the same mask
  });
});

describe("lora config", () => {
  test.each([
    ["q_proj,v_proj", "q_proj,v_proj"],
    ["v_proj, q_proj", "q_proj,v_proj"],
    ["all-linear", "all-linear"],
    ["q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "all-linear"],
  ])("targets %p read as %p", (given, canonical) => {
    expect(formatTargets(parseTargets(given))).toBe(canonical);
    expect(resolveSFTConfig({ loraTargets: given }).loraTargets).toBe(canonical);
  });

  test("a LoRA run without --lr takes LORA_LR, without --epochs or --steps LORA_EPOCHS; given ones stay", () => {
    expect(resolveSFTConfig({ lora: true }).lr).toBe(LORA_LR);
    expect(resolveSFTConfig({ lora: true, lr: 1e-3 }).lr).toBe(1e-3);
    expect(resolveSFTConfig({}).lr).toBe(3e-4);
    expect([resolveSFTConfig({ lora: true }).epochs, resolveSFTConfig({}).epochs]).toEqual([LORA_EPOCHS, 10]);
    expect(resolveSFTConfig({ lora: true, epochs: 5 }).epochs).toBe(5);
    expect(resolveSFTConfig({ lora: true, steps: 30 })).toMatchObject({ steps: 30, epochs: 0 });
  });

  test.each([
    ["an unknown target", { loraTargets: "q_proj,lm_head" }, /loraTargets must be a string of all-linear or comma-separated module names such as q_proj,v_proj, got `"q_proj,lm_head"`/],
    ["quantize without lora", { quantize: 4 }, /quantize 4 needs lora/],
    ["3 bits", { quantize: 3, lora: true }, /quantize must be 0, 4 or 8 \(bits; 0 = off\), got `3`/],
    ["group size 48", { quantizeGroupSize: 48, lora: true }, /quantizeGroupSize must be 32, 64 or 128, got `48`/],
    ["grad-accum 0", { gradAccum: 0 }, /gradAccum must be an integer > 0/],
  ])("%s is refused with the key and value", (_name, partial, message) => {
    expect(() => resolveSFTConfig(partial as never)).toThrow(message);
  });
});

describe("quantize", () => {
  test.each([4, 8])("the %i-bit rule agrees with mx.quantize itself", (bits) => {
    for (const groupSize of [32, 64, 128]) {
      for (const inDim of [64, 128, 192, 256, 320, 512, 688]) {
        let ok = true;
        try {
          mx.eval(mx.quantize(mx.ones([8, inDim]), groupSize, bits));
        } catch {
          ok = false;
        }
        expect([inDim, groupSize, notQuantizable(inDim, { bits: bits as 4 | 8, groupSize }) === null]).toEqual([inDim, groupSize, ok]);
      }
    }
    expect(minInputDim(bits)).toBe(bits === 4 ? 256 : 128);
  });

  test("a base with a 688-wide MLP input: every other layer quantized, down_proj kept and said why; decoding copy matches", async () => {
    const model = tinyModel(V, { seed: 9, tied: false, overrides: WIDE });
    const float = model.forward(ids);
    const report = await quantizeModel(model, { bits: 4, groupSize: 64 });
    expect(report.quantized.sort()).toEqual(["embed_tokens", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]); // an untied head stays float32
    expect(model.lmHead).toBeInstanceOf(nn.Linear);
    expect(report.kept).toEqual({ down_proj: "input dimension 688 is not a multiple of the group size 64" });
    expect(report.bytesAfter).toBeLessThan(0.5 * report.bytesBefore); // down_proj's third stays float32
    expect(model.model.layers[0]!.selfAttn.qProj).toBeInstanceOf(QuantizedLinear);
    expect(model.model.layers[0]!.mlp.downProj).toBeInstanceOf(nn.Linear);
    const q = model.forward(ids);
    expect(maxAbsDiff(q, float)).toBeGreaterThan(0); // it is quantized...
    expect(maxAbsDiff(mergeLoRA(model).forward(ids), q)).toBeLessThan(1e-4); // ...and the dequantized copy computes the same
  });

  test("a quantized layer computes MLX's quantized product (on the CPU by dequantizing: quantizedMatmul is ~25x slower there)", () => {
    mx.random.seed(11);
    const linear = new nn.Linear(256, 96);
    const q = new QuantizedLinear(linear, 64, 4);
    const x = mx.random.normal([3, 5, 256]);
    const reference = mx.add(mx.quantizedMatmul(x, q.weight, q.scales, q.biases, true, 64, 4), linear.bias!);
    expect(maxAbsDiff(q.forward(x), reference)).toBeLessThan(1e-4);
    expect(q.trainableParameters()).toEqual({}); // frozen: only an adapter trains on it
  });

  test("bf16 weights are refused on the CPU before anything computes (a bf16 matmul would abort the process)", () => {
    const model = tinyModel(V, { seed: 10 });
    model.apply((p) => p.astype(mx.bfloat16));
    expect(() => new TrainStep(model)).toThrow(/is bfloat16, and on the CPU MLX multiplies float32 only/);
  });
});
