// Learning-rate schedule shared by pretraining and SFT: linear warmup, then cosine decay.

export interface ScheduleConfig {
  lr: number; // peak learning rate
  warmup: number; // steps of linear warmup from 0
  steps: number; // total steps; the cosine reaches minLr here
  minLrRatio: number; // final lr as a fraction of the peak
}

/** Learning rate at optimizer step `step` (1-based: the first step uses lr/warmup). */
export function learningRate({ lr, warmup, steps, minLrRatio }: ScheduleConfig, step: number): number {
  if (warmup > 0 && step <= warmup) return (lr * step) / warmup;
  const decaySteps = Math.max(1, steps - warmup);
  const progress = Math.min(1, Math.max(0, (step - warmup) / decaySteps));
  const minLr = lr * minLrRatio;
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
