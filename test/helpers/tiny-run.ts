// A tiny SFT run's data in a temporary folder: four training conversations, one held out, a writer
// for the files a test adds, and where its runs go (test/sft-run.test.ts, test/file-safety.test.ts);
// and a run Ctrl-C'd right after its step-0 evaluation.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { executeRun, type PreparedRun } from "../../lib/sft/run.ts";

/** One exchange in the messages format. */
export const chat = (user: string, assistant: string) => ({ messages: [{ role: "user", content: user }, { role: "assistant", content: assistant }] });

/** A writer of files in `dir`: `write(name, value)` writes text or bytes as they are, anything else
 * as JSON, and returns the path. */
export const fileWriter = (dir: string) => (name: string, value: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof value === "string" || value instanceof Uint8Array ? value : JSON.stringify(value));
  return path;
};

export function tinyRunFiles(tmp: string) {
  const write = fileWriter(tmp);
  const data = write("train.json", [
    chat("What is the capital of France?", "The capital of France is Paris."),
    chat("How many legs does a spider have?", "A spider has eight legs."),
    chat("Write one sentence about the sea.", "The sea is wide, deep and always moving."),
    chat("Who was tired of sitting by her sister?", "Alice was."),
  ]);
  const evalData = write("eval.json", [chat("Where does the dog sleep?", "The dog sleeps in the sun.")]);
  return { write, data, evalData, out: join(tmp, "runs") };
}

/** Execute a prepared run in `dir`, sending Ctrl-C (SIGINT, in this process) once its step-0
 * evaluation is on disk, so it lands during the first step (which yields); returns the exit code. */
export async function interruptAfterFirstEval(p: PreparedRun, dir: string): Promise<number> {
  const poll = setInterval(() => {
    const metrics = join(dir, "metrics.jsonl");
    if (existsSync(metrics) && readFileSync(metrics, "utf8").includes('"type":"eval"')) {
      clearInterval(poll);
      process.emit("SIGINT");
    }
  }, 1);
  return executeRun(p, dir);
}
