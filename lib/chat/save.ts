// `/save <file>`: the conversation in the training data format, so a good chat can be added to a
// data set as it is. `.json` gets an array of one record (what loadConversations reads from a
// .json file), `.jsonl` one record on one line. Written atomically: a crash never leaves half a file,
// and a path that cannot be written is a SaveError (the REPL says why and goes on).

import { existsSync, mkdirSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import { asFileError, writeFileAtomic } from "../io/files.ts";
import type { Message } from "../format/types.ts";

export class SaveError extends Error {
  override name = "SaveError";
}

/** The file contents for `path`'s extension. */
export function conversationFile(path: string, messages: Message[]): string {
  const record = { messages: messages.map(({ role, content }) => ({ role, content })) };
  const ext = extname(path).toLowerCase();
  if (ext === ".jsonl") return JSON.stringify(record) + "\n";
  if (ext === ".json") return JSON.stringify([record], null, 2) + "\n";
  throw new SaveError(`\`${path}\`: name the file .json (an array of records) or .jsonl (one record per line), the formats the trainer reads`);
}

/** Write the conversation to `path` (relative to the working directory); returns the absolute path.
 * Refuses an empty conversation; creates missing directories; replaces an existing file. */
export function saveConversation(path: string, messages: Message[]): string {
  if (messages.length === 0) throw new SaveError("nothing to save yet: the conversation is empty");
  const file = resolve(path);
  const contents = conversationFile(file, messages);
  try {
    if (!existsSync(dirname(file))) mkdirSync(dirname(file), { recursive: true });
    writeFileAtomic(file, contents); // on failure the temporary file is removed and an old file kept
  } catch (e) {
    // The REPL stays up: the user picks another path.
    throw new SaveError(`${asFileError(e, file, "write").message}: nothing was saved; try another path, e.g. /save chats/this.jsonl`);
  }
  return file;
}
