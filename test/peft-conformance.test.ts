// Conformance against PEFT: every folder of test/fixtures/peft (written by scripts/peft-fixtures.py,
// a PEFT LoraConfig on one of the transformers fixtures, A, B and trainable token rows drawn at
// random) is loaded with the project's adapter loader onto its base and must give PEFT's logits for
// the fixed input ids (max |diff| <= 1e-4), adapted and merged; saving it again here must write the
// same tensors under the same names.
//   bun test test/peft-conformance.test.ts
import { afterAll, describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint } from "../lib/model/checkpoint.ts";
import { adapterOf, ADAPTER_WEIGHTS, attachAdapter, loadAdapterCheckpoint, loadForDecoding, readAdapter, saveAdapter } from "../lib/model/adapter.ts";
import { makeCaches } from "../lib/model/cache.ts";
import { CompiledDecoder } from "../lib/model/decode.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const FIXTURES = join(import.meta.dir, "fixtures/peft");
const TOLERANCE = 1e-4; // max |logit diff|, float32 on both sides (as test/hf-conformance.test.ts)
const NAMES = readdirSync(FIXTURES).sort();
const tmp = mkdtempSync(join(tmpdir(), "peft-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Expected {
  base: string; // the base checkpoint, relative to the fixture folder
  input_ids: number[];
  logits: number[][]; // [T, V], PEFT, float32
}
const expectedOf = (name: string): Expected => JSON.parse(readFileSync(join(FIXTURES, name, "expected.json"), "utf8"));
const maxAbsDiff = (a: mx.array, b: mx.array) => mx.max(mx.abs(mx.subtract(a, b))).item() as number;

test("there are fixtures with an untied and a tied head", () => {
  expect(NAMES).toEqual(expect.arrayContaining(["llama-all-linear", "qwen2-qv"]));
});

describe.each(NAMES)("%s", (name) => {
  const dir = join(FIXTURES, name);
  const want = expectedOf(name);
  const ids = () => mx.array([want.input_ids], mx.int32);

  test("the adapter attached to its base gives PEFT's logits", async () => {
    const { model } = await loadCheckpoint(join(dir, want.base));
    const before = model.forward(ids());
    attachAdapter(model, readAdapter(dir));
    const logits = model.forward(ids()).index(0);
    expect(maxAbsDiff(logits, mx.array(want.logits))).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(before.index(0), mx.array(want.logits))).toBeGreaterThan(1); // the adapter matters
  });

  test.each([
    ["merged into a plain model (what probes and chat decode)", true],
    ["adapted, unmerged (the one forward pass runs the LoRA layers too)", false],
  ])("%s: PEFT's logits, full forward and compiled step", async (_name, merged) => {
    const { model } = merged ? await loadForDecoding(dir) : await loadAdapterCheckpoint(dir); // the base found from adapter_config.json
    expect(maxAbsDiff(model.forward(ids()).index(0), mx.array(want.logits))).toBeLessThanOrEqual(TOLERANCE);
    const caches = makeCaches(model.config.numHiddenLayers);
    const rows = [model.forward(mx.array([want.input_ids.slice(0, 4)], mx.int32), caches).index(0)];
    const decoder = new CompiledDecoder(model);
    decoder.start(caches);
    for (const id of want.input_ids.slice(4)) rows.push(decoder.next(id).reshape([1, -1]));
    expect(maxAbsDiff(mx.concatenate(rows, 0), mx.array(want.logits))).toBeLessThanOrEqual(TOLERANCE);
  });

  test("saved again here: the same tensors under PEFT's names, and the same settings", async () => {
    const loaded = await loadAdapterCheckpoint(dir);
    const out = join(tmp, name);
    saveAdapter(out, adapterOf(loaded.model, loaded.adapter.settings), { baseModel: want.base });
    const theirs = mx.load(join(dir, ADAPTER_WEIGHTS)) as unknown as Record<string, mx.array>;
    const ours = mx.load(join(out, ADAPTER_WEIGHTS)) as unknown as Record<string, mx.array>;
    expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
    for (const [k, v] of Object.entries(theirs)) expect(mx.arrayEqual(ours[k]!, v).item()).toBe(true);
    const config = (d: string) => JSON.parse(readFileSync(join(d, "adapter_config.json"), "utf8"));
    const [a, b] = [config(dir), config(out)];
    for (const key of ["peft_type", "r", "lora_alpha", "lora_dropout", "trainable_token_indices", "use_rslora", "use_dora", "bias"]) expect(b[key]).toEqual(a[key]);
  });
});

test.each([
  ["use_dora", true, /use_dora=true is not supported/],
  ["use_rslora", true, /use_rslora=true is not supported/],
  ["peft_type", "IA3", /peft_type "IA3" is not supported/],
  ["r", 0, /r must be a positive integer/],
])("an adapter_config.json with %s=%p is refused, naming the file and key", (key, value, message) => {
  const dir = join(tmp, `bad-${key}`);
  const src = join(FIXTURES, "qwen2-qv");
  saveAdapter(dir, readAdapter(src), { baseModel: "x" }); // a valid copy, then one key changed
  const path = join(dir, "adapter_config.json");
  const cfg = JSON.parse(readFileSync(path, "utf8"));
  writeFileSync(path, JSON.stringify({ ...cfg, [key]: value }));
  expect(() => readAdapter(dir)).toThrow(new RegExp(`adapter_config.json: ${message.source}`));
});
