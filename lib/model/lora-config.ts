// The settings of a LoRA adapter, as PEFT names them (r, lora_alpha, lora_dropout, target_modules),
// and the linear modules of a decoder layer it can target. No MLX here, so the training config
// (lib/train/config.ts) and the scripts can check `--lora-targets` before the native binding loads.

/** The linear layers of a Llama-family decoder layer, by their Hugging Face names (what PEFT's
 * `target_modules` lists), with where each lives in lib/model/llama.ts. */
export const LINEAR_MODULES = {
  q_proj: ["selfAttn", "qProj"],
  k_proj: ["selfAttn", "kProj"],
  v_proj: ["selfAttn", "vProj"],
  o_proj: ["selfAttn", "oProj"],
  gate_proj: ["mlp", "gateProj"],
  up_proj: ["mlp", "upProj"],
  down_proj: ["mlp", "downProj"],
} as const;
export type LinearModule = keyof typeof LINEAR_MODULES;
const NAMES = Object.keys(LINEAR_MODULES) as LinearModule[];

/** PEFT's spelling for every linear layer except the output head. */
export const ALL_LINEAR = "all-linear";

export interface LoRASettings {
  rank: number; // r: the adapter's inner dimension
  alpha: number; // lora_alpha: the update is scaled by alpha / rank
  dropout: number; // lora_dropout: on the adapter's input, training only
  targets: LinearModule[]; // in LINEAR_MODULES order
}

/** Parse `--lora-targets`: `all-linear`, or module names separated by commas (`q_proj,v_proj`).
 * Returns them in layer order without repeats; throws an Error naming an unknown entry. */
export function parseTargets(value: string): LinearModule[] {
  const items = value.split(",").map((s) => s.trim()).filter(Boolean);
  if (items.length === 1 && items[0] === ALL_LINEAR) return [...NAMES];
  if (items.length === 0) throw new Error(`lora targets are empty: give ${ALL_LINEAR} or some of ${NAMES.join(", ")}`);
  for (const item of items) {
    if (!(item in LINEAR_MODULES)) {
      throw new Error(`lora target \`${item}\` is not a linear module of the decoder: use ${ALL_LINEAR} or some of ${NAMES.join(", ")}`);
    }
  }
  return NAMES.filter((n) => items.includes(n));
}

/** The canonical spelling of a target list: `all-linear` when it is every module. */
export function formatTargets(targets: readonly LinearModule[]): string {
  return targets.length === NAMES.length ? ALL_LINEAR : NAMES.filter((n) => targets.includes(n)).join(",");
}
