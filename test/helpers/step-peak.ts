// One model's two full fine-tuning steps in a process of their own, for test/memory-check.test.ts:
// prints {"growthMB", "estimateMB"}: the process's peak resident memory beyond what it held before the
// first step, and lib/train/footprint.ts's estimate of the same (everything but the weights).
//   bun test/helpers/step-peak.ts '{"rows":4,"seqLen":64,"config":{...config.json}}'
import { core as mx } from "@frost-beta/mlx";
import { configFromHF } from "../../lib/model/config.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { TrainStep } from "../../lib/train/step.ts";
import { estimateStepMemory } from "../../lib/train/footprint.ts";
import { peakRssMB, rssMB } from "../../lib/mlx/memory.ts";

const { rows, seqLen, config } = JSON.parse(process.argv[2]!) as { rows: number; seqLen: number; config: Record<string, unknown> };
const c = configFromHF(config);
mx.random.seed(0);
const model = new LlamaModel(c);
mx.eval(model.parameters());
const data = mx.random.randint(0, c.vocabSize, [rows, seqLen + 1]).astype(mx.int32);
const batch = { inputs: data.index(mx.Slice(), mx.Slice(0, seqLen)), targets: data.index(mx.Slice(), mx.Slice(1)), mask: mx.ones([rows, seqLen]) };
mx.eval(batch.inputs, batch.targets, batch.mask);
Bun.gc(true);
const before = rssMB();
const step = new TrainStep(model, undefined, { sparseHead: true }); // as the SFT trainer runs it
for (let i = 0; i < 2; i++) await step.step(batch, 1e-4);
const est = estimateStepMemory(c, { rows, seqLen });
console.log(JSON.stringify({ growthMB: peakRssMB() - before, estimateMB: est.totalMB - est.weightsMB }));
