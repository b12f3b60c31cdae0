// The project's tokenizer: a Hugging Face tokenizer.json run by @huggingface/tokenizers (pure JS).
// Works for the byte-level BPE that lib/tokenizer/bpe-train.ts writes and for checkpoints' own
// tokenizer.json files (GPT-2 style ByteLevel, Llama style Metaspace + byte_fallback).

import { mkdir, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import type { AddedTokenJSON, TokenizerJSON } from "./bpe-train.ts";
import type { TextTokenizer } from "./types.ts";

/** Emits decoded text as ids arrive, never splitting a multi-byte character. */
export interface DecodeStream {
  /** Add one id; returns the text that became complete (often "", e.g. mid-character). */
  push(id: number): string;
  /** Return whatever is still held back (a dangling partial character decodes to U+FFFD). */
  flush(): string;
}

const FILE_NAME = "tokenizer.json";
const REPLACEMENT = "\uFFFD"; // what the decoder yields for a character whose bytes are incomplete

/** A tokenizer.json wrapped to the project's {@link TextTokenizer} contract. */
export class Tokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly specialIds: ReadonlySet<number>;
  /** Where this tokenizer came from (a file path, or a label), named in error messages. */
  readonly source: string;
  private readonly json: TokenizerJSON;
  private readonly specials: Map<string, number>; // special added token -> id
  private readonly full: HFTokenizer; // knows the special tokens: decoding, id lookups
  private readonly plain: HFTokenizer; // same file minus the special tokens: encodes ordinary text

  private constructor(json: TokenizerJSON, source: string) {
    this.json = json;
    this.source = source;
    const special = json.added_tokens.filter((t) => t.special);
    this.specials = new Map(special.map((t) => [t.content, t.id]));
    this.specialIds = new Set(this.specials.values());
    this.full = new HFTokenizer(json, {});
    // Without its special added tokens the splitter never matches "<|end|>" in user text, so that
    // text goes through the ordinary pre-tokenizer and BPE like any other characters.
    this.plain = new HFTokenizer({ ...json, added_tokens: json.added_tokens.filter((t) => !t.special) }, {});
    const ids = [...Object.values(json.model.vocab), ...json.added_tokens.map((t) => t.id)];
    this.vocabSize = ids.reduce((a, b) => Math.max(a, b), -1) + 1;
  }

  /** Load `dirOrFile`: a checkpoint directory holding tokenizer.json, or the file itself. */
  static async load(dirOrFile: string): Promise<Tokenizer> {
    const info = await stat(dirOrFile).catch(() => null);
    if (!info) throw new Error(`tokenizer not found: \`${dirOrFile}\` does not exist`);
    const path = info.isDirectory() ? join(dirOrFile, FILE_NAME) : dirOrFile;
    const file = Bun.file(path);
    if (!(await file.exists()))
      throw new Error(
        `no ${FILE_NAME} in \`${dirOrFile}\`: copy the checkpoint's tokenizer.json there, or train one with ` +
          `\`bun scripts/train-tokenizer.ts --corpus <text files> --out ${path}\``,
      );
    return Tokenizer.fromJSON((await file.json()) as TokenizerJSON, path);
  }

  /** Build from a parsed tokenizer.json object (copied, so later edits to `obj` do not leak in). */
  static fromJSON(obj: TokenizerJSON, source = "<in-memory tokenizer.json>"): Tokenizer {
    const json = structuredClone(obj);
    if (!json.model?.vocab || !Array.isArray(json.added_tokens))
      throw new Error(`${source} is not a tokenizer.json: it needs \`model.vocab\` and \`added_tokens\``);
    return new Tokenizer(json, source);
  }

  /** A copy of the tokenizer.json object. */
  toJSON(): TokenizerJSON {
    return structuredClone(this.json);
  }

  /** Write `dir/tokenizer.json` (via a temp file and rename, so readers never see half a file). */
  async save(dir: string): Promise<string> {
    await mkdir(dir, { recursive: true });
    const path = join(dir, FILE_NAME);
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(this.json));
    await rename(tmp, path);
    return path;
  }

  /** Encode ordinary text. Special-token strings in it are encoded as plain characters, and no
   * BOS/EOS is added: callers place special ids themselves. */
  encode(text: string): number[] {
    if (text.length === 0) return [];
    return this.plain.encode(text, { add_special_tokens: false }).ids;
  }

  /** Decode ids; special tokens appear as their strings unless `skipSpecial`. */
  decode(ids: number[], { skipSpecial = false }: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new RangeError(`cannot decode id ${id} at index ${i}: ${this.source} has ids 0..${this.vocabSize - 1}`);
    }
    // clean_up_tokenization_spaces would turn " ." into "." and break decode(encode(x)) === x
    return this.full.decode(ids, { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  /** The id of a special (added) token; throws naming the token, the file and the fix. */
  tokenId(token: string): number {
    const id = this.specials.get(token);
    if (id !== undefined) return id;
    const known = [...this.specials.keys()].slice(0, 12).join(", ") || "none";
    throw new Error(
      `${this.source} has no special token \`${token}\` (its special tokens: ${known}). ` +
        `Add it with \`tokenizer.withAddedTokens(["${token}"])\` and grow the model's embeddings to ` +
        `\`vocabSize\`, or use a tokenizer trained by scripts/train-tokenizer.ts, which has all chat tokens.`,
    );
  }

  /** Whether `token` is one of this tokenizer's special (added) tokens. */
  hasToken(token: string): boolean {
    return this.specials.has(token);
  }

  /** The vocabulary entry for `id` (byte-level tokens show GPT-2's stand-ins, e.g. "Ġ" for space). */
  idToToken(id: number): string {
    const token = this.full.id_to_token(id);
    if (token === undefined) throw new RangeError(`${this.source} has no token with id ${id}`);
    return token;
  }

  /**
   * A new tokenizer in which each of `tokens` is a special token. Missing ones get the next ids
   * (`vocabSize`, `vocabSize + 1`, ...); a string already in the model's vocabulary keeps its id.
   * `added` lists the tokens that were not special before, in order.
   */
  withAddedTokens(tokens: string[]): { tokenizer: Tokenizer; added: string[] } {
    const json = this.toJSON();
    const added: string[] = [];
    let nextId = this.vocabSize;
    for (const content of tokens) {
      const existing = json.added_tokens.find((t) => t.content === content);
      if (existing?.special) continue;
      if (existing) {
        existing.special = true;
      } else {
        const id = json.model.vocab[content] ?? nextId++;
        const entry: AddedTokenJSON = { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
        json.added_tokens.push(entry);
      }
      added.push(content);
    }
    return { tokenizer: new Tokenizer(json, this.source), added };
  }

  /**
   * A streaming decoder for generation. It re-decodes a short window of recent ids, emits only
   * the new text, and holds it back while it ends in U+FFFD (a character whose bytes have not all
   * arrived). The window starts one step back so decoders that strip a leading space (Llama's
   * Metaspace) see the same context as a full decode.
   */
  decodeStream({ skipSpecial = false }: { skipSpecial?: boolean } = {}): DecodeStream {
    const ids: number[] = [];
    let prefixOffset = 0; // start of the window re-decoded for context
    let readOffset = 0; // ids before this have been emitted
    const take = (final: boolean): string => {
      const prefixText = this.decode(ids.slice(prefixOffset, readOffset), { skipSpecial });
      const fullText = this.decode(ids.slice(prefixOffset), { skipSpecial });
      if (fullText.length <= prefixText.length || (!final && fullText.endsWith(REPLACEMENT))) return "";
      prefixOffset = readOffset;
      readOffset = ids.length;
      return fullText.slice(prefixText.length);
    };
    return {
      push: (id) => {
        ids.push(id);
        return take(false);
      },
      flush: () => take(true),
    };
  }
}
