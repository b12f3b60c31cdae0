// Learning-rate schedule shared by pretraining and SFT: linear warmup, then cosine decay.

export interface ScheduleConfig {
  lr: number; // peak learning rate
  warmup: number; // steps of linear warmup from 0
  steps: number; // total steps; the cosine reaches minLr here
  minLrRatio: number; // final lr as a fraction of the peak
}

/** Learning rate at optimizer step `step` (1-based), the course's cosine_with_warmup at its 0-based
 * step s = step - 1: max·(s+1)/W while s < W, then cosine with progress (s - W)/(N - W), so the peak
 * holds for steps W and W + 1 and the last step is one short of the end value. */
export function learningRate({ lr, warmup, steps, minLrRatio }: ScheduleConfig, step: number): number {
  const s = step - 1;
  if (s < warmup) return (lr * (s + 1)) / warmup;
  const progress = Math.min(1, Math.max(0, (s - warmup) / Math.max(1, steps - warmup)));
  const minLr = lr * minLrRatio;
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
