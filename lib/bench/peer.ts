// The PyTorch peer of the training benchmark (../shared/bench/peers/torch_train.py): one run per
// call, and the ratio of our reference step to it.
//
// On a shared virtual machine the same step's speed drifts by 10–20% over minutes, for us and for
// the peer alike, so three runs of ours followed by three of the peer compare two different moments.
// The bench therefore interleaves them (ours, peer, ours, peer, ...) and reports the median of the
// per-pair ratios next to the ratio of the medians.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { PROJECT_ROOT } from "../util/paths.ts";

export const PEER_SCRIPT = resolve(PROJECT_ROOT, "../shared/bench/peers/torch_train.py");

/** One line of the peer's output (the fields the bench uses; the rest is passed through). */
export interface PeerRun {
  tokens_per_sec: number;
  [key: string]: unknown;
}

export class PeerError extends Error {
  constructor(readonly exitCode: number | null, message: string) {
    super(message);
    this.name = "PeerError";
  }
}

/** Fail early, before the long cases, when the peer cannot run: its script is missing or `python`
 * has no torch. */
export function checkPeer(python: string): void {
  if (!existsSync(PEER_SCRIPT)) throw new PeerError(null, `${PEER_SCRIPT}: not found (the peer ships in ../shared beside this clone)`);
  const proc = Bun.spawnSync([python, "-c", "import torch"], { env: process.env, stdout: "pipe", stderr: "pipe" });
  if (proc.exitCode !== 0) {
    throw new PeerError(proc.exitCode, `--python ${python}: cannot import torch (${proc.stderr.toString().trim().split("\n").pop()}); install it (README → Performance) or pass --python with a Python that has it`);
  }
}

/** Run the peer once with `python` (which must have torch) and `flags` (e.g. ["--compile"]). */
export function runPeer(python: string, flags: string[] = []): PeerRun {
  // env: process.env, so that the peer runs as shipped, without the LD_PRELOAD this process started with
  const proc = Bun.spawnSync([python, PEER_SCRIPT, ...flags], { env: process.env, stdout: "pipe", stderr: "pipe" });
  const line = proc.stdout.toString().trim().split("\n").pop() ?? "";
  if (proc.exitCode !== 0 || !line.startsWith("{")) {
    throw new PeerError(proc.exitCode, `${python} ${PEER_SCRIPT} ${flags.join(" ")} exited with ${proc.exitCode}: ${proc.stderr.toString().slice(-300)}`);
  }
  return JSON.parse(line) as PeerRun;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The ratio of our tokens/s to the peer's over interleaved runs: `ours[i]` and `peer[i]` ran one
 * after the other. `pairRatio` (the median of ours[i] / peer[i]) is the figure to quote; `ratio` is
 * the ratio of the two medians. */
export function interleavedRatio(ours: readonly number[], peer: readonly number[]): { ratio: number; pairRatio: number; pairRatios: number[] } {
  if (ours.length !== peer.length || ours.length === 0) throw new Error(`interleavedRatio: ${ours.length} runs of ours against ${peer.length} of the peer`);
  const pairRatios = ours.map((x, i) => x / peer[i]!);
  return { ratio: median(ours) / median(peer), pairRatio: median(pairRatios), pairRatios };
}
