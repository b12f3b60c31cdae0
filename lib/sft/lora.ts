// The LoRA part of an SFT run (`--lora`, `--quantize`): the base loaded as usual is quantized in
// memory if asked (QLoRA), then frozen under a LoRA adapter, with the chat tokens' rows trainable;
// the run leaves `adapter/` (PEFT's layout) instead of `checkpoint/`; probes and chat decode a
// merged copy (faster per token: see mergeLoRA), and the probes' base side is the frozen base itself.
import { consola } from "consola";
import type { LlamaModel } from "../model/llama.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { applyLoRA, mergeLoRA, unadapted, type LoRASummary } from "../model/lora.ts";
import type { ProbeModel } from "../probes/compare.ts";
import { parseTargets, type LoRASettings } from "../model/lora-config.ts";
import { quantizeModel, type QuantizeBits, type QuantizeReport } from "../model/quantize.ts";
import { adapterOf, saveAdapter } from "../model/adapter.ts";
import type { SFTConfig } from "../train/config.ts";
import { onCpu } from "../mlx/parallel.ts";
import { CHAT_TOKENS } from "../format/tokens.ts";

const log = consola.withTag("train");

/** What a LoRA run added to its base, recorded in the run's config.json (provenance). */
export interface AdapterSetup {
  settings: LoRASettings;
  tokenIndices: number[]; // the added chat tokens' ids: their embedding (and untied head) rows train
  summary: LoRASummary;
  quantization: QuantizeReport | null;
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;

/** Quantize (if asked) and add the adapter to `model`, in place, with the rows of the chat tokens
 * (`loraTokens` "chat"), or of those this run added (`addedTokens`, "added"), trainable: otherwise
 * new or never-trained markers keep their initial embedding, and the model hardly learns to emit `<|end|>`. */
export async function setUpAdapter(model: LlamaModel, tokenizer: Tokenizer, addedTokens: string[], cfg: SFTConfig): Promise<AdapterSetup> {
  let quantization: QuantizeReport | null = null;
  if (cfg.quantize) {
    quantization = await quantizeModel(model, { bits: cfg.quantize as QuantizeBits, groupSize: cfg.quantizeGroupSize });
    const kept = Object.entries(quantization.kept).map(([k, why]) => `${k} (${why})`);
    log.info(`quantized the base to ${cfg.quantize} bits in memory (group ${cfg.quantizeGroupSize}): ${quantization.quantized.join(", ")}; ` +
      `${mb(quantization.bytesBefore)} → ${mb(quantization.bytesAfter)}${kept.length ? `; float32: ${kept.join(", ")}` : ""}`);
    if (!cfg.gradCheckpoint && onCpu()) {
      log.warn("on the CPU a quantized layer is dequantized for each use (MLX's CPU quantized matmul is ~25x slower), and without --grad-checkpoint " +
        "every layer's float32 weights then live until the backward pass: add --grad-checkpoint to train in QLoRA's memory");
    }
  }
  return { ...adaptModel(model, tokenizer, addedTokens, cfg), quantization };
}

/** The adapter of a run with `cfg`, added to `model` in place: A drawn from the run's seed, B zero,
 * the rows of `loraTokens` trainable. The same adapter, value for value, each time it is called on the
 * same base (an export's starting adapter is the run's). */
export function adaptModel(model: LlamaModel, tokenizer: Tokenizer, addedTokens: string[], cfg: SFTConfig): Omit<AdapterSetup, "quantization"> {
  const settings: LoRASettings = { rank: cfg.loraRank, alpha: cfg.loraAlpha, dropout: cfg.loraDropout, targets: parseTargets(cfg.loraTargets) };
  const rows = cfg.loraTokens === "chat" ? CHAT_TOKENS : cfg.loraTokens === "added" ? addedTokens : [];
  const tokenIndices = rows.map((t) => tokenizer.tokenId(t));
  const summary = applyLoRA(model, settings, { seed: cfg.seed, tokenIndices });
  log.info(`LoRA r ${settings.rank}, alpha ${settings.alpha} on ${cfg.loraTargets} (${summary.modules} modules)` +
    `${tokenIndices.length ? ` + the rows of ${rows.join(" ")}` : ""}: ` +
    `${(summary.trainable / 1e6).toFixed(3)}M trainable of ${(summary.total / 1e6).toFixed(1)}M (${((100 * summary.trainable) / summary.total).toFixed(2)}%)`);
  return { settings, tokenIndices, summary };
}

/** Write the run's adapter (PEFT's layout, with the tokenizer and provenance) to `dir`. */
export function saveRunAdapter(dir: string, model: LlamaModel, tokenizer: Tokenizer, setup: AdapterSetup, { base, meta, replace = false }: { base: string; meta: Record<string, unknown>; replace?: boolean }): void {
  saveAdapter(dir, adapterOf(model, setup.settings), {
    baseModel: base,
    tokenizer,
    contextLength: model.config.maxPositionEmbeddings,
    meta: { kind: "lora", ...meta, base, quantization: setup.quantization },
    replace,
  });
}

/** The models a run's probes compare, each made only when its side runs (probeRun), from the model
 * the run trained: the fine-tuned side is the model itself, or for LoRA a merged copy that shares
 * every array the adapter does not touch; the base side, on a float32 LoRA base, is the frozen base
 * itself (no second load). `base` is absent where the base must be read from disk again: after full
 * fine-tuning, and under QLoRA, whose quantized base is not the base the run is compared with. */
export function probeSides(model: LlamaModel, setup: AdapterSetup | null): { sft: ProbeModel; base?: ProbeModel } {
  if (!setup) return { sft: model };
  return { sft: () => mergeLoRA(model), ...(setup.quantization ? {} : { base: () => unadapted(model) }) };
}
