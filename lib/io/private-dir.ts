// Folders outside the project that the project runs code from (the compiled-kernel cache) must
// belong to the user running it: a folder another local user made or can write into could hold a
// planted compiler wrapper or kernel library, which would then run as this user. A private folder is
// created 0700 and used only if it, and each folder above it up to `root`, is a real folder (not a
// link) owned by this user and writable by no one else.
import { lstatSync, mkdirSync, mkdtempSync, statSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, relative, sep } from "node:path";

/** The user's cache folder: $XDG_CACHE_HOME, else ~/.cache (null without a home). */
export function userCacheDir(): string | null {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg && xdg.startsWith("/")) return xdg;
  const home = process.env.HOME || homedir();
  return home ? join(home, ".cache") : null;
}

/** Why `path` may not hold code this process runs, or null if it may. */
export function unsafeReason(path: string): string | null {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    return `cannot inspect it (${(e as Error).message})`;
  }
  const uid = process.getuid?.();
  if (st.isSymbolicLink()) return "it is a symbolic link";
  if (!st.isDirectory() && !st.isFile()) return "it is neither a file nor a folder";
  if (uid !== undefined && st.uid !== uid) return `it belongs to user id ${st.uid}, not to this user (${uid})`;
  if (st.mode & 0o022) return `others may write into it (mode ${(st.mode & 0o777).toString(8)})`;
  return null;
}

/** Create (0700) or check the private folder `path` under `root` (which must exist and be safe
 * too, as must every folder between them). Returns null when it is safe to use, else the reason. */
export function ensurePrivateDir(root: string, path: string): string | null {
  const rel = relative(root, path);
  if (rel.startsWith("..")) return `${path} is not inside ${root}`;
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  } catch (e) {
    return `cannot create ${root} (${(e as Error).message})`;
  }
  const rootWhy = rootReason(root);
  if (rootWhy) return `${root}: ${rootWhy}`;
  // Outermost first, each checked before anything is made inside it: nothing is created in a
  // folder that is not ours.
  let dir = root;
  for (const part of rel.split(sep).filter(Boolean)) {
    dir = join(dir, part);
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") return `cannot create ${dir} (${(e as Error).message})`;
    }
    const why = unsafeReason(dir);
    if (why) return `${dir}: ${why}`;
  }
  return null;
}

/** A fresh private folder under the system's temporary folder (mkdtemp makes it 0700). */
export function freshPrivateDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The root (e.g. ~/.cache, or /tmp given as XDG_CACHE_HOME; a link to it is followed) may be
 * shared if, like /tmp, it has the sticky bit (no one can rename or remove another's folder in it);
 * its owner must be this user or root. */
function rootReason(root: string): string | null {
  let st;
  try {
    st = statSync(root);
  } catch (e) {
    return `cannot inspect it (${(e as Error).message})`;
  }
  const uid = process.getuid?.();
  if (!st.isDirectory()) return "it is not a folder";
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) return `it belongs to user id ${st.uid}`;
  if (st.mode & 0o022 && !(st.mode & 0o1000)) return `others may write into it and it is not sticky (mode ${(st.mode & 0o7777).toString(8)})`;
  return null;
}
