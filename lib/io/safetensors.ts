// The safetensors format, checked before MLX reads a byte of it: MLX trusts the header and reads
// bytes missing from a cut file as zeros, so a truncated base or checkpoint used to load "fine" and
// train a model with zero weights. Layout: 8 bytes (little-endian length N), N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}, then the data, which
// the tensors cover exactly (no holes, no overlaps). A file passes only if every tensor's byte
// range matches its dtype and shape and lies inside the file, and the file ends where the last
// tensor does; a sha256 recorded at save time is checked too when one is given.
import { createHash, type Hash } from "node:crypto";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { asFileError, FileError } from "./files.ts";
import { decodeUtf8 } from "./text.ts";

/** Bytes per element of each safetensors dtype. */
export const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8, C64: 8,
};
const MAX_HEADER = 100 * 2 ** 20; // bytes; the reference implementation's limit

export interface TensorEntry {
  dtype: string;
  shape: number[];
  begin: number; // byte offsets into the data, which starts at dataStart
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string> | null;
  dataStart: number; // 8 + header length
  fileBytes: number; // what the header says the file's size is (checked equal to the real size)
}

/** Size and sha256 of a file, recorded when it is saved and checked when it is loaded. */
export interface FileDigest {
  bytes: number;
  sha256: string;
}

const FIX = "It was not completely written or copied (a full disk, an interrupted copy or download, a killed save): copy or download it again, or use another checkpoint";

/** A safetensors file that is not whole or not well-formed. */
export class SafetensorsError extends FileError {
  override name = "SafetensorsError";
  constructor(path: string, readonly problem: string) {
    super(path, `${path}: ${problem}. ${FIX}`);
  }
}


/** Read and check a safetensors file's header against its size; throws SafetensorsError saying
 * what is wrong. Reads only the header, not the data. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const bad = (what: string) => new SafetensorsError(path, what);
  let size: number;
  let fd: number;
  try {
    size = statSync(path).size;
    fd = openSync(path, "r");
  } catch (e) {
    throw asFileError(e, path, "read");
  }
  let headerText: string;
  let n = 0; // header length, bytes
  try {
    if (size < 8) throw bad(`${size} bytes: too short to be a safetensors file (the first 8 bytes give the header's length)`);
    const lenBytes = Buffer.alloc(8);
    readSync(fd, lenBytes, 0, 8, 0);
    n = Number(lenBytes.readBigUInt64LE(0));
    if (n > MAX_HEADER) throw bad(`its first 8 bytes give a header of ${n} bytes: not a safetensors file`);
    if (8 + n > size) throw bad(`the file is cut inside its header (${size} bytes; the header alone needs ${8 + n})`);
    const header = Buffer.alloc(n);
    readSync(fd, header, 0, n, 8);
    try {
      headerText = decodeUtf8(header, path);
    } catch {
      throw bad("its header is not UTF-8 text");
    }
  } finally {
    closeSync(fd);
  }
  let json: unknown;
  try {
    json = JSON.parse(headerText);
  } catch (e) {
    throw bad(`its header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad("its header is not a JSON object");

  const dataStart = 8 + n;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> | null = null;
  for (const [name, v] of Object.entries(json as Record<string, any>)) {
    if (name === "__metadata__") {
      metadata = v;
      continue;
    }
    const what = `tensor \`${name}\``;
    if (typeof v !== "object" || v === null) throw bad(`${what} has no description in the header`);
    const elem = DTYPE_BYTES[v.dtype];
    if (!elem) throw bad(`${what} has an unknown dtype \`${v.dtype}\``);
    if (!Array.isArray(v.shape) || !v.shape.every((d: unknown) => Number.isInteger(d) && (d as number) >= 0)) throw bad(`${what} has a bad shape ${JSON.stringify(v.shape)}`);
    const off = v.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o: unknown) => Number.isInteger(o) && (o as number) >= 0) || off[0] > off[1]) {
      throw bad(`${what} has bad data_offsets ${JSON.stringify(off)}`);
    }
    const want = (v.shape as number[]).reduce((a, d) => a * d, 1) * elem;
    if (off[1] - off[0] !== want) throw bad(`${what} (${v.dtype} ${JSON.stringify(v.shape)}) needs ${want} bytes but its byte range holds ${off[1] - off[0]}`);
    tensors.set(name, { dtype: v.dtype, shape: v.shape, begin: off[0], end: off[1] });
  }
  // The data is covered exactly: sorted by offset, each tensor starts where the previous ended.
  let end = 0;
  for (const [name, t] of [...tensors].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end)) {
    if (t.begin !== end) throw bad(`tensor \`${name}\` starts at byte ${t.begin} of the data, not ${end}: its range ${t.begin < end ? "overlaps another tensor" : "leaves a hole"}`);
    end = t.end;
  }
  const fileBytes = dataStart + end;
  if (size < fileBytes) throw bad(`the file is cut short: ${size} bytes, but its header describes ${fileBytes} (${fileBytes - size} missing; MLX would read them as zeros)`);
  if (size > fileBytes) throw bad(`the file has ${size - fileBytes} bytes after its last tensor (${size} bytes, the header describes ${fileBytes})`);
  return { tensors, metadata, dataStart, fileBytes };
}

/** Size and sha256 of a file, read in chunks. */
export function fileDigest(path: string): FileDigest {
  const h = createHash("sha256");
  const bytes = hashFileInto(h, path);
  return { bytes, sha256: h.digest("hex") };
}

/** Feed a file to `h` in 4 MiB chunks and return its size: a checkpoint's weights (2.4 GB for a
 * 0.6B model) are never held whole in memory to be hashed. */
export function hashFileInto(h: Hash, path: string): number {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw asFileError(e, path, "read");
  }
  let bytes = 0;
  try {
    const chunk = Buffer.alloc(4 * 2 ** 20);
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; bytes += n) h.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/** Check a safetensors file before it is used: its header and size (readSafetensorsHeader), and,
 * when `recorded` is given (the digest written at save time), its size and sha256. */
export function verifySafetensors(path: string, recorded?: FileDigest): SafetensorsHeader {
  const header = readSafetensorsHeader(path);
  if (recorded) {
    const actual = fileDigest(path);
    if (actual.bytes !== recorded.bytes || actual.sha256 !== recorded.sha256) {
      throw new SafetensorsError(path, `its content is not what was saved (${actual.bytes} bytes with sha256 ${actual.sha256.slice(0, 12)}…, recorded ${recorded.bytes} bytes with ${recorded.sha256.slice(0, 12)}…): the file was changed or damaged after it was written`);
    }
  }
  return header;
}
