// Chat session state: the conversation, which part of it still fits in the model's context, and
// the sampling parameters. No I/O: the script streams replies and prints; this decides what the
// model sees.
//
// The prompt is rendered by the training template (ChatTemplate.renderPromptIds), so at turn N the
// model sees exactly the ids it was trained on for the same conversation, up to `<|assistant|>\n`.
// In "raw" mode (a base model) each message is continued on its own, with no template.

import type { SampleOptions } from "../generate/generate.ts";
import { ChatTemplate } from "../format/template.ts";
import type { Message } from "../format/types.ts";
import type { TextTokenizer } from "../tokenizer/types.ts";
import { defaultChatParams, sampleOptions, type ChatParams } from "./params.ts";

export type ChatMode = "chat" | "raw";

const MIN_REPLY_TOKENS = 16; // less room than this is no answer at all: refuse the message instead

/** The result of fitHistory: which messages stay in the prompt. */
export interface Fit {
  start: number; // index of the first message kept (always a user turn)
  dropped: number; // whole exchanges dropped by this call
  length: number; // measured length of messages[start..]
}

/** Drop the oldest whole exchanges (user + assistant) from `messages[start..]` until
 * `measure(kept) <= budget` or only the last message is left. `messages` ends with the new user
 * message; `start` is even (a user turn), so no turn is ever cut in half. */
export function fitHistory(messages: Message[], start: number, measure: (kept: Message[]) => number, budget: number): Fit {
  if (start % 2 !== 0) throw new Error(`fitHistory: start ${start} is not the start of an exchange`);
  let dropped = 0;
  let length = measure(messages.slice(start));
  while (length > budget && start + 2 < messages.length) {
    start += 2;
    dropped++;
    length = measure(messages.slice(start));
  }
  return { start, dropped, length };
}

/** Raised when a single message cannot fit in the context with room for a reply. */
export class ContextError extends Error {
  override name = "ContextError";
}

/** What to generate for one user message. */
export interface PreparedTurn {
  ids: number[]; // the prompt
  options: SampleOptions; // sampling options for this reply (maxTokens may be cut to the room left)
  dropped: number; // exchanges dropped from the context for this turn
  kept: number; // exchanges of history still in the context
  roomCut: boolean; // maxTokens was reduced to fit the context
}

export interface SessionOptions {
  contextLength: number; // the model's maxPositionEmbeddings
  mode?: ChatMode;
  params?: ChatParams;
}

export class ChatSession {
  readonly template = new ChatTemplate();
  readonly tokenizer: TextTokenizer;
  readonly contextLength: number;
  readonly mode: ChatMode;
  params: ChatParams;
  /** The whole conversation (for /history and /save), also what fell out of the context. */
  messages: Message[] = [];
  /** Index of the first message still in the context; exchanges before it were dropped. */
  contextStart = 0;
  /** Replies generated so far (reply n samples with seed + n). */
  turn = 0;

  constructor(tokenizer: TextTokenizer, { contextLength, mode = "chat", params = defaultChatParams() }: SessionOptions) {
    this.tokenizer = tokenizer;
    this.contextLength = contextLength;
    this.mode = mode;
    this.params = params;
  }

  /** The prompt ids for `messages` (ending with a user turn), as the model sees them. */
  promptIds(messages: Message[]): number[] {
    if (this.mode === "raw") return this.tokenizer.encode(messages[messages.length - 1].content);
    return this.template.renderPromptIds(messages, this.tokenizer);
  }

  /** Build the prompt for a new user message, dropping the oldest whole exchanges from the
   * context when prompt + max_tokens would not fit. Throws ContextError if the message alone
   * leaves less than MIN_REPLY_TOKENS of room. */
  prepare(text: string): PreparedTurn {
    const { maxTokens } = this.params;
    const all = [...this.messages, { role: "user" as const, content: text }];
    let fit: Fit;
    if (this.mode === "raw") {
      fit = { start: all.length - 1, dropped: 0, length: this.promptIds(all).length };
    } else {
      fit = fitHistory(all, this.contextStart, (kept) => this.promptIds(kept).length, this.contextLength - maxTokens);
    }
    const room = this.contextLength - fit.length;
    if (room < MIN_REPLY_TOKENS) {
      throw new ContextError(
        `the message is ${fit.length} tokens with the template; the model's context is ${this.contextLength}, ` +
        `which leaves no room for a reply: shorten the message`,
      );
    }
    if (this.mode === "chat") this.contextStart = fit.start;
    const options = sampleOptions(this.params, this.turn++);
    options.maxTokens = Math.min(maxTokens, room);
    return {
      ids: this.promptIds(all.slice(fit.start)),
      options,
      dropped: fit.dropped,
      kept: this.mode === "raw" ? 0 : (all.length - 1 - fit.start) / 2,
      roomCut: room < maxTokens,
    };
  }

  /** Record an exchange. An empty reply is not kept (the training format has no empty turns), so
   * the conversation always alternates user, assistant. Returns whether it was kept. */
  commit(text: string, reply: string): boolean {
    if (reply.trim() === "") return false;
    this.messages.push({ role: "user", content: text }, { role: "assistant", content: reply });
    return true;
  }

  /** Forget the conversation (parameters stay). */
  reset(): void {
    this.messages = [];
    this.contextStart = 0;
    this.turn = 0;
  }

  /** The last exchange, if any. */
  lastExchange(): { user: string; assistant: string } | undefined {
    const n = this.messages.length;
    if (n < 2) return undefined;
    return { user: this.messages[n - 2].content, assistant: this.messages[n - 1].content };
  }
}
