// Merge a LoRA adapter into its base: a full Hugging Face checkpoint (config.json, model.safetensors,
// tokenizer with the chat template) that transformers, mlx-lm and `bun scripts/chat.ts --model` load
// without PEFT. The base and the adapter are read only; the output folder must not exist.
//   bun scripts/fuse.ts --run runs/<dir>                          (writes runs/<dir>/fused/)
//   bun scripts/fuse.ts --adapter <peft adapter dir> --base <checkpoint dir> --out <dir>
import { prepareProcess } from "../lib/mlx/startup.ts";
import { defineCommand, runMain } from "citty";
import { consola } from "consola";
import { existsSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { UsageError } from "../lib/util/cli.ts";

const log = consola.withTag("fuse");
/** A path relative to the working directory when it is inside it. */
const shown = (p: string) => (relative(process.cwd(), p).startsWith("..") ? p : relative(process.cwd(), p) || ".");

const command = defineCommand({
  meta: { name: "fuse", description: "Merge a LoRA adapter (PEFT's layout) into its base as a full checkpoint" },
  args: {
    run: { type: "string", description: "a LoRA run folder: its adapter/ onto its recorded base" },
    adapter: { type: "string", description: "an adapter folder (adapter_config.json, adapter_model.safetensors)" },
    base: { type: "string", description: "the base checkpoint folder (default: the one the adapter records)" },
    out: { type: "string", description: "the checkpoint folder to write (default with --run: runs/<dir>/fused)" },
  },
  async run({ args }) {
    prepareProcess(); // tcmalloc, kernel flags: lib/mlx/startup.ts
    try {
      if ((args.run === undefined) === (args.adapter === undefined)) throw new UsageError("say which adapter to merge: --run runs/<dir>, or --adapter <dir> (with --out)");
      const adapter = args.run ? join(resolve(args.run), "adapter") : resolve(args.adapter!);
      if (!existsSync(join(adapter, "adapter_config.json"))) {
        throw new UsageError(args.run ? `--run ${args.run}: no adapter/ there (was it trained with --lora, and has it finished?)` : `--adapter ${args.adapter}: no adapter_config.json there`);
      }
      if (!args.out && !args.run) throw new UsageError("--out <dir> is needed with --adapter: where the merged checkpoint goes");
      const out = resolve(args.out ?? join(resolve(args.run!), "fused"));
      if (existsSync(out)) throw new UsageError(`--out ${out} already exists: checkpoints are never overwritten; choose another folder`);
      const { fuseAdapter } = await import("../lib/model/adapter.ts"); // MLX loads here
      const fused = await fuseAdapter(adapter, out, { base: args.base && resolve(args.base) });
      log.success(`merged ${shown(adapter)} into ${shown(String(fused.meta.base))} → ${shown(out)} (${fused.config.vocabSize} ids, ${fused.config.numHiddenLayers} layers)`);
      log.info(`chat with it: bun scripts/chat.ts --model ${shown(out)}`);
    } catch (e) {
      const err = e as Error;
      if (["UsageError", "AdapterError", "CheckpointError", "ConfigError"].includes(err.name)) {
        log.error(err.message);
        process.exit(2);
      }
      throw e;
    }
  },
});

runMain(command);
