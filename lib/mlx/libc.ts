// The C library, for the few things Bun does not expose: the environment that native code reads
// (Bun's process.env is a copy), execve, mallopt. Linux with glibc; every caller handles its absence.
import { CString, dlopen, FFIType, ptr, type Pointer } from "bun:ffi";

/** Debian's multiarch directory name: /usr/lib/<triple>/. x86_64 is the supported Linux; aarch64
 * follows the same layout. */
export const DEBIAN_TRIPLE = `${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`;

const SYMBOLS = {
  setenv: { args: [FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  unsetenv: { args: [FFIType.ptr], returns: FFIType.i32 },
  execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  mallopt: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  // glibc 2.34 and later: the dynamic loader's functions are in libc.so.6 itself
  dlopen: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.ptr },
  dlsym: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.ptr },
  dladdr: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
} as const;
const RTLD_LAZY = 1;

let lib: ReturnType<typeof dlopen<typeof SYMBOLS>> | undefined;

/** glibc's functions; throws where there is no libc.so.6 (macOS, musl). */
export function libc() {
  lib ??= dlopen("libc.so.6", SYMBOLS);
  return lib.symbols;
}

/** A NUL-terminated UTF-8 copy of `s`, for a `char*` argument. Keep it referenced until the call returns. */
export function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** Set (or, with `undefined`, remove) a variable in the C library's environment: what native code
 * (getenv, the shells std::system starts, execve's children) sees. Bun's process.env is not changed. */
export function setCEnv(name: string, value: string | undefined): void {
  const rc = value === undefined ? libc().unsetenv(ptr(cstr(name))) : libc().setenv(ptr(cstr(name)), ptr(cstr(value)), 1);
  if (rc !== 0) throw new Error(`${value === undefined ? "unsetenv" : "setenv"} ${name} failed`);
}

/** execve(2): replace this process with `argv` under `env`. Returns only if it failed. */
export function execve(path: string, argv: string[], env: Record<string, string | undefined>): void {
  const keep: Buffer[] = []; // the strings must stay alive until execve has copied them
  const table = (strings: string[]) => {
    const ptrs = new BigUint64Array(strings.length + 1); // NULL-terminated char*[]
    strings.forEach((s, i) => {
      const b = cstr(s);
      keep.push(b);
      ptrs[i] = BigInt(ptr(b));
    });
    return ptrs;
  };
  const file = cstr(path);
  const argvTable = table(argv);
  const envTable = table(Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])));
  libc().execve(ptr(file), ptr(argvTable), ptr(envTable));
  void [keep, file];
}

/** Take the LD_PRELOAD entries `drop` picks out of the environment, Bun's and the C library's (which
 * the programs this process starts inherit), keeping the others in their order. */
export function dropFromPreload(drop: (entry: string) => boolean): void {
  const rest = (process.env.LD_PRELOAD ?? "").split(":").filter((p) => p && !drop(p)).join(":");
  if (rest) process.env.LD_PRELOAD = rest;
  else delete process.env.LD_PRELOAD;
  setCEnv("LD_PRELOAD", rest || undefined);
}

/** The file that defines `symbol` for the library the loader finds as `soname` (loading it if it
 * is not loaded yet): e.g. which file really serves libblas.so.3's cblas_sgemm. With `soname` null,
 * the file the process's global scope resolves `symbol` to (a preloaded library comes first). Null
 * when the library or the symbol is not there. */
export function dlLibraryOf(soname: string | null, symbol: string): string | null {
  try {
    let handle: Pointer | bigint | null = null; // RTLD_DEFAULT
    if (soname !== null) {
      const name = cstr(soname);
      handle = libc().dlopen(ptr(name), RTLD_LAZY);
      if (!handle) return null;
    }
    const sym = cstr(symbol);
    const addr = libc().dlsym(handle, ptr(sym));
    if (!addr) return null;
    const info = new BigUint64Array(4); // Dl_info: dli_fname, dli_fbase, dli_sname, dli_saddr
    if (libc().dladdr(addr, ptr(info)) === 0 || info[0] === 0n) return null;
    return new CString(Number(info[0]) as never).toString();
  } catch {
    return null; // no glibc (macOS, musl)
  }
}
