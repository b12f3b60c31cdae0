// Files the project writes and reads back: written whole to a temporary sibling and renamed in,
// read back with an error that names the file.
import { readFileSync, renameSync, writeFileSync } from "node:fs";

/** Write a file atomically (temporary name, then rename). */
export function writeFileAtomic(path: string, contents: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, contents);
  renameSync(tmp, path);
}

export function writeJSON(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

export function readJSON<T = any>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}
