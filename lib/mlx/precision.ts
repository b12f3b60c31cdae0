// Low precision on the CPU: MLX 0.13's CPU matmul supports float32 only, and a bfloat16 or float16
// matmul there aborts the whole process ("Matmul::eval_cpu only supports float32") from native code,
// where no try/catch can reach it. So a model is checked before it computes, and refused with a
// message, instead of dying mid-run. Quantized weights (uint32 values, float32 scales) are fine:
// quantizedMatmul computes in float32.
import { core as mx } from "@frost-beta/mlx";
import { onCpu } from "./parallel.ts";

export class PrecisionError extends Error {
  override name = "PrecisionError";
}

const LOW = [mx.bfloat16, mx.float16];

/** Throw a PrecisionError when running on the CPU and any of `named` arrays is bfloat16 or
 * float16; `what` names the model or file in the message. */
export function assertCpuPrecision(named: [string, mx.array][], what: string): void {
  if (!onCpu()) return;
  const low = named.find(([, a]) => LOW.includes(a.dtype));
  if (!low) return;
  throw new PrecisionError(
    `${what}: ${low[0]} is ${String(low[1].dtype)}, and on the CPU MLX multiplies float32 only: a ${String(low[1].dtype)} matmul aborts the process, ` +
      "uncatchably. Low precision is for Metal. On the CPU keep the weights float32 (checkpoints load as float32), or save memory with --quantize 4|8 (QLoRA)",
  );
}
