// The low layer of safe files (lib/io/, lib/util/schema.ts, lib/mlx/arrays-file.ts): safetensors
// checked before use, writes checked after, folders swapped whole, append-safe lines, strict UTF-8,
// symbolic links refused, private folders, schemas that name the key.
//   bun test test/safe-io.test.ts
import { afterAll, describe, expect, test } from "bun:test";
import { core as mx } from "@frost-beta/mlx";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appendLine, FileError, readJSON, recoverDir, refuseSymlinks, swapDir, writeFileAtomic, writeHooks } from "../lib/io/files.ts";
import { fileDigest, readSafetensorsHeader, verifySafetensors } from "../lib/io/safetensors.ts";
import { readTextFile } from "../lib/io/text.ts";
import { ensurePrivateDir } from "../lib/io/private-dir.ts";
import { loadArrays, saveArrays } from "../lib/mlx/arrays-file.ts";
import { array, finite, int, literal, nullable, object, optional, string, tagged } from "../lib/util/schema.ts";
import { useSuiteTimeout } from "./helpers/suite.ts";

useSuiteTimeout();

const ROOT = mkdtempSync(join(tmpdir(), "sft-safe-io-"));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));
let n = 0;
/** A fresh path in ROOT; the extension stays last (MLX appends .safetensors to a name without it). */
const fresh = (name: string) => join(ROOT, name.replace(/(\.\w+)?$/, (ext) => `-${n++}${ext}`));

/** A safetensors file from a header object and data bytes, written by hand. */
function rawSafetensors(path: string, header: Record<string, unknown>, data: Uint8Array): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}
const f32 = (shape: number[], begin: number) => ({ dtype: "F32", shape, data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)] });

describe("safetensors checked before use", () => {
  const good = () => rawSafetensors(fresh("good.safetensors"), { a: f32([2, 3], 0), b: f32([4], 24), __metadata__: { format: "pt" } }, new Uint8Array(40));

  test("a whole file passes: tensors, offsets and size read from the header", () => {
    const h = readSafetensorsHeader(good());
    expect([...h.tensors.keys()]).toEqual(["a", "b"]);
    expect(h.tensors.get("b")).toEqual({ dtype: "F32", shape: [4], begin: 24, end: 40 });
    expect(h.fileBytes).toBe(h.dataStart + 40);
  });

  test("MLX's own files pass, and load through loadArrays with their digest", () => {
    const path = fresh("mlx.safetensors");
    const digest = saveArrays(path, { w: mx.arange(6).reshape([2, 3]).astype(mx.float32), b: mx.ones([1], mx.int32) });
    expect(digest.bytes).toBe(readFileSync(path).length);
    expect(loadArrays(path, digest).w!.tolist()).toEqual([[0, 1, 2], [3, 4, 5]]);
  });

  const cut = (path: string, bytes: number) => {
    truncateSync(path, bytes);
    return path;
  };
  test.each([
    ["cut inside the data", (p: string) => cut(p, readFileSync(p).length - 10), /cut short: \d+ bytes, but its header describes \d+ \(10 missing; MLX would read them as zeros\)/],
    ["cut inside the header", (p: string) => cut(p, 20), /cut inside its header/],
    ["cut inside the length", (p: string) => cut(p, 5), /5 bytes: too short to be a safetensors file/],
    ["empty", (p: string) => cut(p, 0), /0 bytes: too short/],
    ["with bytes after the last tensor", (p: string) => (writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.alloc(3)])), p), /3 bytes after its last tensor/],
  ])("a file %s is refused, naming the file and what to do", (_what, damage, message) => {
    const path = damage(good());
    expect(() => readSafetensorsHeader(path)).toThrow(message);
    expect(() => readSafetensorsHeader(path)).toThrow(new RegExp(`^${path}: .*copy or download it again`));
  });

  test.each([
    ["a range that does not match dtype and shape", { a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8, /`a` \(F32 \[3\]\) needs 12 bytes but its byte range holds 8/],
    ["overlapping ranges", { a: f32([2], 0), b: f32([2], 4) }, 12, /`b` starts at byte 4 of the data, not 8: its range overlaps another tensor/],
    ["a hole", { a: f32([1], 0), b: f32([1], 8) }, 12, /leaves a hole/],
    ["an unknown dtype", { a: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }, 1, /unknown dtype `Q4`/],
    ["a bad shape", { a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, 4, /bad shape \[-1\]/],
  ])("a header with %s is refused", (_what, header, bytes, message) => {
    expect(() => readSafetensorsHeader(rawSafetensors(fresh("bad.safetensors"), header, new Uint8Array(bytes)))).toThrow(message);
  });

  test("a header that is not JSON is refused with the reason, not an empty `Error: `", () => {
    const path = fresh("notjson.safetensors");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(5n);
    writeFileSync(path, Buffer.concat([len, Buffer.from("{oops")]));
    expect(() => readSafetensorsHeader(path)).toThrow(/header is not valid JSON \(.+\)/);
  });

  test("a recorded sha256 catches a changed byte that keeps the structure", () => {
    const path = good();
    const digest = fileDigest(path);
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] = 7;
    writeFileSync(path, bytes);
    expect(() => verifySafetensors(path)).not.toThrow();
    expect(() => verifySafetensors(path, digest)).toThrow(/its content is not what was saved/);
  });
});

describe("writes checked after", () => {
  test("a short write (a full disk that raised no error) is an error; the old file stays", () => {
    const dir = fresh("short-write");
    mkdirSync(dir);
    const path = join(dir, "file.txt");
    writeFileAtomic(path, "old");
    writeHooks.afterWrite = (p) => truncateSync(p, 1);
    try {
      expect(() => writeFileAtomic(path, "new contents")).toThrow(/wrote 12 bytes but the disk holds 1: the disk did not take the whole file/);
    } finally {
      delete writeHooks.afterWrite;
    }
    expect(readFileSync(path, "utf8")).toBe("old");
    expect(readdirSync(dir)).toEqual(["file.txt"]); // no *.tmp-PID left behind
  });

  test("saveArrays: mx.saveSafetensors writing a short file is caught", () => {
    const path = fresh("short.safetensors");
    writeHooks.afterWrite = (p) => truncateSync(p, 100);
    try {
      expect(() => saveArrays(path, { w: mx.zeros([64, 64]) })).toThrow(/the disk did not take the whole file, though the write reported no error/);
    } finally {
      delete writeHooks.afterWrite;
    }
  });

  test("an unwritable path is a FileError that says why (a folder where a file is expected)", () => {
    const dir = fresh("blocker");
    writeFileSync(dir, "I am a file");
    expect(() => writeFileAtomic(join(dir, "x.json"), "{}")).toThrow(/cannot write .*x\.json: a part of the path is a file, not a folder/);
  });

  test("readJSON names a damaged file; a schema names the key", () => {
    const path = fresh("bad.json");
    writeFileSync(path, '{"a": 1,');
    expect(() => readJSON(path)).toThrow(new RegExp(`^${path} is damaged: not valid JSON`));
    writeFileSync(path, '{"a": "x"}');
    expect(() => readJSON(path, object<{ a: number }>({ a: finite() }))).toThrow(/is damaged or not the file expected: a: expected a finite number, got "x"/);
  });
});

describe("folders swapped whole", () => {
  test("swapDir replaces the old folder only once the new one is in place", () => {
    const dest = fresh("state");
    mkdirSync(dest);
    writeFileSync(join(dest, "v"), "1");
    const tmp = fresh("tmp");
    mkdirSync(tmp);
    writeFileSync(join(tmp, "v"), "2");
    swapDir(tmp, dest);
    expect(readFileSync(join(dest, "v"), "utf8")).toBe("2");
    expect(existsSync(tmp)).toBe(false);
  });

  test("recoverDir puts back a folder a crash left set aside, and removes temporary ones", () => {
    const parent = fresh("parent");
    mkdirSync(join(parent, ".state.old-1-2"), { recursive: true });
    writeFileSync(join(parent, ".state.old-1-2", "v"), "good");
    mkdirSync(join(parent, ".state.tmp-1-3"));
    expect(recoverDir(join(parent, "state"))).toBe(true);
    expect(readdirSync(parent)).toEqual(["state"]);
    expect(readFileSync(join(parent, "state", "v"), "utf8")).toBe("good");
  });
});

describe("append-safe lines, strict text, links, private folders", () => {
  test("appendLine cuts a torn last line before appending", () => {
    const path = fresh("m.jsonl");
    writeFileSync(path, '{"a":1}\n{"a":');
    appendLine(path, '{"a":2}');
    expect(readFileSync(path, "utf8")).toBe('{"a":1}\n{"a":2}\n');
  });

  test("invalid UTF-8 names the file, the byte offset and the line", () => {
    const path = fresh("latin1.txt");
    writeFileSync(path, Buffer.concat([Buffer.from("ok\nna"), Buffer.from([0xef, 0x76]), Buffer.from("e\n")]));
    expect(() => readTextFile(path)).toThrow(new RegExp(`^${path}: not valid UTF-8 at byte 5 \\(line 2: bytes ef 76 65 0a\\)`));
    writeFileSync(path, "naïve ✓ 𝄞\n");
    expect(readTextFile(path)).toBe("naïve ✓ 𝄞\n");
  });

  test("refuseSymlinks lists the links inside a folder", () => {
    const dir = fresh("run");
    mkdirSync(join(dir, "sub"), { recursive: true });
    symlinkSync("/etc/hostname", join(dir, "sub", "metrics.jsonl"));
    expect(() => refuseSymlinks(dir)).toThrow(/holds symbolic link \(.*sub\/metrics\.jsonl\)/);
  });

  test("a private folder: made 0700; one that is another user's or writable by others is refused", () => {
    const root = fresh("cache");
    mkdirSync(root, { mode: 0o700 });
    expect(ensurePrivateDir(root, join(root, "sft-mlx", "kernels-x"))).toBeNull();
    chmodSync(join(root, "sft-mlx"), 0o777);
    expect(ensurePrivateDir(root, join(root, "sft-mlx", "kernels-x"))).toMatch(/sft-mlx: others may write into it \(mode 777\)/);
    if (process.getuid?.() !== 0) return; // only root can make a folder another user's
    chmodSync(join(root, "sft-mlx"), 0o700);
    chownSync(join(root, "sft-mlx"), 65534, 65534);
    expect(ensurePrivateDir(root, join(root, "sft-mlx", "kernels-x"))).toMatch(/sft-mlx: it belongs to user id 65534, not to this user \(0\)/);
  });
});

describe("schemas", () => {
  interface Row {
    type: "a";
    n: number;
    s?: string;
    v: number | null;
    list: number[];
  }
  const ROW = object<Row>({ type: literal("a"), n: int(0), s: optional(string()), v: nullable(finite()), list: array(finite()) });
  const ROWS = tagged("type", { a: ROW });

  test("a value that matches is rebuilt with only the schema's keys", () => {
    expect(ROW.parse({ type: "a", n: 1, v: null, list: [1.5], extra: true })).toEqual({ type: "a", n: 1, v: null, list: [1.5] });
  });

  test.each([
    [{ type: "a", n: -1, v: null, list: [] }, "n: expected an integer >= 0, got -1"],
    [{ type: "a", n: 1, v: null, list: [1, "x"] }, "list[1]: expected a finite number, got \"x\""],
    [{ type: "a", n: 1, list: [] }, "v: expected a finite number or null, got nothing (the key is missing)"],
    [{ type: "b" }, "type: expected `a`, got \"b\""],
  ])("%j is refused: %s", (value, message) => {
    expect(() => ROWS.parse(value)).toThrow(message);
  });
});

test("FileError is what every reader throws", () => {
  expect(new FileError("x", "y")).toBeInstanceOf(Error);
});
