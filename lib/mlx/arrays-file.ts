// MLX arrays to and from safetensors files, verified both ways. mx.saveSafetensors writes a short
// file without an error when the disk is full, and mx.load reads the bytes missing from a short file
// as zeros; so every save is followed by a check of what reached the disk, and every load is
// preceded by a check of the file (lib/io/safetensors.ts).
import { core as mx } from "@frost-beta/mlx";
import { FileError, flushWritten } from "../io/files.ts";
import { fileDigest, readSafetensorsHeader, SafetensorsError, verifySafetensors, type FileDigest } from "../io/safetensors.ts";

/** Save `arrays` to `path` (write it into a temporary folder: this is not atomic by itself), then
 * check the file on disk: synced, whole, holding exactly these tensors. Returns its digest, to be
 * recorded beside it and checked by loadArrays. */
export function saveArrays(path: string, arrays: Record<string, mx.array>, { metadata, shown = path }: { metadata?: Record<string, string>; shown?: string } = {}): FileDigest {
  // MLX appends the extension to a name without it: the file checked below would not be the one written.
  if (!path.endsWith(".safetensors")) throw new Error(`saveArrays: ${path} must end in .safetensors`);
  try {
    mx.saveSafetensors(path, arrays, metadata);
  } catch (e) {
    throw new FileError(shown, `cannot write ${shown}: ${(e as Error).message || "MLX could not save the arrays"}`);
  }
  flushWritten(path, shown);
  let header;
  try {
    header = readSafetensorsHeader(path);
  } catch (e) {
    if (e instanceof SafetensorsError) {
      throw new FileError(shown, `${shown}: the disk did not take the whole file, though the write reported no error (is it full?): ${e.problem.replace(/; MLX would read them as zeros/, "")}. Free some space, or write somewhere else`);
    }
    throw e;
  }
  const missing = Object.keys(arrays).filter((k) => !header.tensors.has(k));
  const wrong = Object.entries(arrays).filter(([k, a]) => header.tensors.has(k) && JSON.stringify(header.tensors.get(k)!.shape) !== JSON.stringify(a.shape));
  if (missing.length || wrong.length || header.tensors.size !== Object.keys(arrays).length) {
    throw new FileError(shown, `${shown}: the file written does not hold the arrays given (${missing.length} missing, ${wrong.length} of another shape): write it again`);
  }
  return fileDigest(path);
}

/** Load every array of a safetensors file after checking it (header, size, and the recorded
 * digest when given). Throws SafetensorsError naming the file and what is wrong. */
export function loadArrays(path: string, recorded?: FileDigest): Record<string, mx.array> {
  verifySafetensors(path, recorded);
  return mx.load(path) as unknown as Record<string, mx.array>;
}
