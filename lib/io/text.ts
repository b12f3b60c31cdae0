// Text files read strictly as UTF-8: a byte sequence that is not UTF-8 is an error naming the file,
// the byte offset and the line, never silently replaced by U+FFFD (which would train on, or compare
// against, text that is not in the file).
import { readFileSync } from "node:fs";
import { asFileError, FileError } from "./files.ts";

const STRICT = new TextDecoder("utf-8", { fatal: true });

/** The offset of the first byte that does not begin or continue a valid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    // lead byte → sequence length and the allowed range of the second byte (no overlongs, no surrogates, ≤ U+10FFFF)
    const [n, lo, hi] = b >= 0xc2 && b <= 0xdf ? [2, 0x80, 0xbf]
      : b === 0xe0 ? [3, 0xa0, 0xbf] : b === 0xed ? [3, 0x80, 0x9f] : b >= 0xe1 && b <= 0xef ? [3, 0x80, 0xbf]
      : b === 0xf0 ? [4, 0x90, 0xbf] : b === 0xf4 ? [4, 0x80, 0x8f] : b >= 0xf1 && b <= 0xf3 ? [4, 0x80, 0xbf]
      : [0, 0, 0];
    if (n === 0) return i;
    for (let k = 1; k < n; k++) {
      const c = bytes[i + k];
      const [min, max] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c === undefined || c < min || c > max) return i;
    }
    i += n;
  }
  return -1;
}

/** Where `bytes` stop being UTF-8 (byte offset, 1-based line, the bytes there in hex), or null. */
export function utf8Problem(bytes: Uint8Array): { offset: number; line: number; hex: string } | null {
  const offset = firstInvalidUtf8(bytes);
  if (offset < 0) return null;
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  const hex = Array.from(bytes.subarray(offset, offset + 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
  return { offset, line, hex };
}

/** What to tell the user about a file that is not UTF-8. */
export const UTF8_FIX = "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in > out`)";

/** Decode `bytes` as UTF-8; invalid bytes throw a FileError naming `file`, the byte offset and line. */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return STRICT.decode(bytes);
  } catch {
    const p = utf8Problem(bytes)!;
    throw new FileError(file, `${file}: not valid UTF-8 at byte ${p.offset} (line ${p.line}: bytes ${p.hex}): ${UTF8_FIX}`);
  }
}

/** Read a text file strictly as UTF-8 (see decodeUtf8). */
export function readTextFile(path: string): string {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw asFileError(e, path, "read");
  }
  return decodeUtf8(bytes, path);
}
