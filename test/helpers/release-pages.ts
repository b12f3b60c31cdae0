// Two training steps of a small model in a process of its own, under the scripts' allocator
// (tcmalloc when installed), for test/allocator.test.ts: prints the resident memory before them,
// after them and a collection, after releaseMemory({ toSystem: true }), and after one more such
// call once the optimizer state is dropped (as a run does before its probes).
//   bun test/helpers/release-pages.ts
import { core as mx } from "@frost-beta/mlx";
import { prepareProcess } from "../../lib/mlx/startup.ts";
import { activeAllocator } from "../../lib/mlx/allocator.ts";
import { releaseMemory, rssMB } from "../../lib/mlx/memory.ts";
import { configFromHF } from "../../lib/model/config.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { TrainStep } from "../../lib/train/step.ts";

prepareProcess();
const c = configFromHF({ model_type: "llama", vocab_size: 32000, hidden_size: 512, intermediate_size: 1536, num_hidden_layers: 2, num_attention_heads: 8, num_key_value_heads: 4, max_position_embeddings: 256 }); // 22M parameters: AdamW's moments 169 MB
mx.random.seed(0);
const model = new LlamaModel(c);
mx.eval(model.parameters());
const data = mx.random.randint(0, c.vocabSize, [4, 129]).astype(mx.int32);
const batch = { inputs: data.index(mx.Slice(), mx.Slice(0, 128)), targets: data.index(mx.Slice(), mx.Slice(1)), mask: mx.ones([4, 128]) };
mx.eval(batch.inputs, batch.targets, batch.mask);
const before = rssMB();
const step = new TrainStep(model, undefined, { sparseHead: true });
for (let i = 0; i < 2; i++) await step.step(batch, 1e-4);
for (let i = 0; i < 3; i++) await releaseMemory();
const kept = rssMB();
await releaseMemory({ toSystem: true });
const released = rssMB();
step.setState({ m: [], v: [], t: step.stepCount });
await releaseMemory({ toSystem: true }); // one call: the dropped arrays' finalizers run within it
console.log(JSON.stringify({ allocator: activeAllocator(), before, kept, released, dropped: rssMB() }));
