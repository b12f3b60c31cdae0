// A one-line progress bar for long loops: step, percentage, a caller-supplied status and the ETA.
// On a terminal it redraws in place; elsewhere (CI, pipes) it prints the line at each update.
import { formatDuration } from "./folder.ts";

export class ProgressLine {
  private readonly start = performance.now();
  private startStep: number | null = null;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly total: number) {}

  update(step: number, status: string): void {
    this.startStep ??= step - 1;
    const frac = step / this.total;
    const secs = (performance.now() - this.start) / 1000;
    const rate = (step - this.startStep) / Math.max(secs, 1e-9);
    const eta = rate > 0 ? (this.total - step) / rate : 0;
    const width = 20;
    const bar = "█".repeat(Math.round(frac * width)).padEnd(width, "·");
    const line = `step ${String(step).padStart(String(this.total).length)}/${this.total} ${bar} ${(frac * 100).toFixed(1)}% | ${status} | ${formatDuration(secs)} < ${formatDuration(eta)}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}`);
    else process.stderr.write(line + "\n");
  }

  /** Print a message on its own line without breaking the bar. */
  log(message: string): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
    process.stderr.write(message + "\n");
  }

  done(): void {
    if (this.tty) process.stderr.write("\n");
  }
}
