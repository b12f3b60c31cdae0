// Files the project writes and reads back. A file is written to a temporary sibling, flushed to the
// disk (fsync), checked for its full size and renamed in, so a reader sees the old file or the new
// one, never half of one, and a full disk is an error instead of a short file. A folder (a
// checkpoint, a trainer state) is written whole beside its destination and swapped in (swapDir).
// Every error names the file, what went wrong and what to do.
import {
  closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync,
  writeFileSync, writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { SchemaError, type Schema } from "../util/schema.ts";

/** A file that could not be written or read as it should: the message says which, why, and the fix. */
export class FileError extends Error {
  override name = "FileError";
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

/** Test seam: runs after the project's own writes and MLX's, before they are checked. Tests set it
 * to simulate a disk that takes fewer bytes than were written without an error, which is what
 * mx.saveSafetensors does on a full disk; nothing else sets it. */
export const writeHooks: { afterWrite?: (path: string) => void } = {};

/** What a failed system call means for the user, and what to do about it. */
export function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return "the disk is full: free some space, or write somewhere else";
    case "EROFS":
      return "the file system is read-only: write somewhere else";
    case "EACCES":
    case "EPERM":
      return "permission denied: write somewhere you may write, or fix the folder's permissions";
    case "ENOTDIR":
      return "a part of the path is a file, not a folder";
    case "ENOENT":
      return "no such file or folder";
    case "EISDIR":
      return "it is a folder, not a file";
    default:
      return (e as Error)?.message ?? String(e);
  }
}

/** `e` as a FileError about `path` ("cannot <action> <path>: <reason>"); FileErrors pass through. */
export function asFileError(e: unknown, path: string, action: string): FileError {
  if (e instanceof FileError) return e;
  return new FileError(path, `cannot ${action} ${path}: ${fsReason(e)}`);
}

/** fsync a file or a folder (a folder's entry list: what makes a rename durable). */
export function syncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } catch (e) {
    // Some file systems cannot sync a folder; the data itself was synced file by file.
    if ((e as NodeJS.ErrnoException).code !== "EINVAL" || !statSync(path).isDirectory()) throw e;
  } finally {
    closeSync(fd);
  }
}

/** After a write: flush `path` to the disk (a full disk may only say so here). Errors name `shown`
 * (the destination, when `path` is its temporary sibling). */
export function flushWritten(path: string, shown = path): void {
  writeHooks.afterWrite?.(path);
  try {
    syncPath(path);
  } catch (e) {
    throw asFileError(e, shown, "write");
  }
}

/** After a write: flush `path` to the disk and check that it holds `bytes` bytes. A short file
 * means the disk did not take everything, though the writer raised no error. */
export function checkWritten(path: string, bytes: number, shown = path): void {
  flushWritten(path, shown);
  const size = statSync(path).size;
  if (size !== bytes) {
    throw new FileError(shown, `${shown}: wrote ${bytes} bytes but the disk holds ${size}: the disk did not take the whole file (is it full?): free some space, or write somewhere else`);
  }
}

/** Write `contents` to `path` and check it (not atomic: for files inside a temporary folder). */
export function writeFileChecked(path: string, contents: string | Uint8Array, shown = path): void {
  const data = typeof contents === "string" ? Buffer.from(contents, "utf8") : contents;
  try {
    writeFileSync(path, data);
  } catch (e) {
    throw asFileError(e, shown, "write");
  }
  checkWritten(path, data.byteLength, shown);
}

/** Write a file atomically: a temporary sibling, written, synced and checked, then renamed in. On
 * any failure the temporary file is removed and the old file (if any) is left as it was. */
export function writeFileAtomic(path: string, contents: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileChecked(tmp, contents, path);
    renameSync(tmp, path);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing to remove where nothing could be written (a path through a file)
    }
    throw asFileError(e, path, "write");
  }
  trySyncDir(dirname(path));
}

export function writeJSON(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/** Read a JSON file, checked against `schema` when given. Errors name the file: missing,
 * unreadable, not JSON (damaged or cut short), or not what the schema says. */
export function readJSON<T = any>(path: string, schema?: Schema<T>): T {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw asFileError(e, path, "read");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FileError(path, `${path} is damaged: not valid JSON (${(e as Error).message})${text.length === 0 ? ": the file is empty" : ""}`);
  }
  return schema ? parseAs(schema, value, path) : (value as T);
}

/** `value` checked against `schema`; a mismatch is a FileError naming `path` and the key. */
export function parseAs<T>(schema: Schema<T>, value: unknown, path: string): T {
  try {
    return schema.parse(value);
  } catch (e) {
    if (e instanceof SchemaError) throw new FileError(path, `${path} is damaged or not the file expected: ${e.message}`);
    throw e;
  }
}

/** A temporary sibling of `path` for a folder written whole before it is swapped in. */
export function tempSibling(path: string, tag = "tmp"): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${process.pid}-${Date.now()}`);
}

/** Swap the finished folder `tmp` in as `dest`: everything in it synced, then one rename. An old
 * `dest` is first renamed aside and removed only once the new one is in place; a crash between
 * the two renames leaves it under `.<name>.old-*`, which recoverDir puts back. */
export function swapDir(tmp: string, dest: string): void {
  try {
    for (const name of readdirSync(tmp)) syncPath(join(tmp, name));
    syncPath(tmp);
    if (existsSync(dest)) {
      const old = tempSibling(dest, "old");
      renameSync(dest, old);
      renameSync(tmp, dest);
      trySyncDir(dirname(dest));
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, dest);
      trySyncDir(dirname(dest));
    }
  } catch (e) {
    throw asFileError(e, dest, "write");
  }
}

/** Write the folder `dest` as one unit: `fill` writes into a fresh temporary sibling, which swapDir
 * swaps in once it is complete; if anything fails the sibling is removed and `dest` is as it was.
 * `what` names the folder in the error of creating it ("checkpoint", "adapter", ...). */
export function writeDirWhole(dest: string, what: string, fill: (tmp: string) => void): void {
  const tmp = tempSibling(dest);
  try {
    mkdirSync(dirname(dest), { recursive: true });
    mkdirSync(tmp);
  } catch (e) {
    throw asFileError(e, dest, `create the ${what} folder`);
  }
  try {
    fill(tmp);
    swapDir(tmp, dest);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Undo what a crash in swapDir or a folder write can leave: if `dest` is missing but an old copy
 * set aside by swapDir exists, it is renamed back; unfinished temporary siblings are removed.
 * Returns whether `dest` exists afterwards. */
export function recoverDir(dest: string): boolean {
  const parent = dirname(dest);
  if (!existsSync(parent)) return false;
  const prefix = `.${basename(dest)}.`;
  const leftovers = readdirSync(parent).filter((n) => n.startsWith(prefix));
  const olds = leftovers.filter((n) => n.startsWith(`${prefix}old-`)).sort();
  if (!existsSync(dest) && olds.length) renameSync(join(parent, olds.at(-1)!), dest);
  for (const n of leftovers) rmSync(join(parent, n), { recursive: true, force: true });
  return existsSync(dest);
}

/** Append one line to a log file (metrics.jsonl) so that the file only ever ends in a whole line:
 * a torn last line left by a crash is cut off first, and a write the disk did not take is undone. */
export function appendLine(path: string, line: string): void {
  let size = existsSync(path) ? statSync(path).size : 0;
  try {
    if (size > 0) size = cutTornTail(path, size);
    const data = Buffer.from(line + "\n", "utf8");
    const fd = openSync(path, "a");
    try {
      let done = 0;
      while (done < data.byteLength) done += writeBytes(fd, data, done);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    try {
      if (existsSync(path) && statSync(path).size > size) truncateTo(path, size);
    } catch {
      // the line stays torn; every reader ignores a torn last line (with a warning)
    }
    throw asFileError(e, path, "append to");
  }
}

/** Refuse symbolic links anywhere inside `dir` (a run folder): writes through one would land
 * outside the folder. Throws a FileError listing them. */
export function refuseSymlinks(dir: string): void {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isSymbolicLink()) found.push(p);
      else if (entry.isDirectory()) walk(p);
    }
  };
  walk(dir);
  if (found.length) {
    throw new FileError(found[0]!, `${dir} holds symbolic link${found.length > 1 ? "s" : ""} (${found.join(", ")}): a run folder is written only by its run, and writing through a link would change files outside it. Remove the link${found.length > 1 ? "s" : ""} (or copy the real file in) and try again`);
  }
}

function trySyncDir(dir: string): void {
  try {
    syncPath(dir);
  } catch {
    // the rename happened; durability of the folder entry is best effort where fsync is refused
  }
}

/** The size of `path` without a torn last line (cut off if there is one). */
function cutTornTail(path: string, size: number): number {
  const fd = openSync(path, "r");
  let keep = size;
  try {
    const chunk = Buffer.alloc(Math.min(size, 1 << 16));
    readSync(fd, chunk, 0, chunk.length, size - chunk.length);
    if (chunk[chunk.length - 1] === 0x0a) return size;
    const nl = chunk.lastIndexOf(0x0a);
    keep = nl >= 0 ? size - chunk.length + nl + 1 : chunk.length === size ? 0 : size; // a torn line longer than 64 KB is left to the readers
  } finally {
    closeSync(fd);
  }
  if (keep !== size) truncateTo(path, keep);
  return keep;
}

function truncateTo(path: string, size: number): void {
  const fd = openSync(path, "r+");
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

function writeBytes(fd: number, data: Buffer, offset: number): number {
  const n = writeSync(fd, data, offset, data.byteLength - offset);
  if (n <= 0) throw Object.assign(new Error("no bytes written"), { code: "ENOSPC" });
  return n;
}
