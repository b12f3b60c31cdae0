// The chat template: conversation -> text, and conversation -> (ids, mask) for training.
//
// Layout, byte for byte, per exchange (exchanges concatenated with nothing between; no BOS):
//   <|user|>\n{user}\n<|assistant|>\n{assistant}<|end|>
//
// Text, ids and the generation prompt are all produced from one list of segments, so the prompt
// is a prefix of the training render by construction. Each text segment is encoded on its own:
// message text can never merge with a neighbouring "\n" or marker, and a special id only ever
// comes from `tokenizer.tokenId(...)`, never from message text.

import type { TextTokenizer } from "../tokenizer/types.ts";
import { SPECIAL_TOKENS } from "./tokens.ts";
import type { Message, SFTExample } from "./types.ts";

/** Which tokens get mask 1: only assistant content and its `<|end|>`, or everything (ablation). */
export type MaskMode = "assistant" | "all";

export interface RenderOptions {
  maskMode?: MaskMode;
}

/** The same layout as a Jinja chat template, written into every saved checkpoint's
 * tokenizer_config.json so that transformers' and mlx-lm's `apply_chat_template` agree with
 * `ChatTemplate.render` byte for byte.
 *
 * `{% generation %}` ... `{% endgeneration %}` wraps exactly what `renderWithMask` supervises
 * (assistant content and its `<|end|>`, every turn), so the checkpoint carries its own training
 * mask: `apply_chat_template(..., return_assistant_tokens_mask=True, return_dict=True)` and TRL's
 * `assistant_only_loss=True` mark the same tokens as mask 1 here (scripts/trl-parity.py checks it
 * row by row). The tag renders nothing. transformers defines it; llama.cpp treats it as a no-op
 * (its own Jinja engine, common/jinja/parser.cpp, and the minja engine before it); Ollama never
 * executes a checkpoint's Jinja (it matches it against known templates by edit distance). A plain
 * jinja2 Environment without transformers' extension does reject it (`unknown tag 'generation'`):
 * the README's "Scaling out" lists where that was seen and fixed. */
export const CHAT_TEMPLATE_JINJA =
  "{% for message in messages %}" +
  "{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}" +
  "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' }}" +
  "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}" +
  "{% else %}{{ raise_exception('only user and assistant roles are supported') }}{% endif %}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

/** One piece of a render: a special marker (one id) or ordinary text (encoded on its own). */
interface Segment {
  text: string;
  special: boolean;
  supervised: boolean;
}

export class ChatTemplate {
  // On the class, as the course reads them (`ChatTemplate.USER`, no instance), and on every instance.
  static readonly USER = SPECIAL_TOKENS.user;
  static readonly ASSISTANT = SPECIAL_TOKENS.assistant;
  static readonly END = SPECIAL_TOKENS.end;
  readonly USER = ChatTemplate.USER;
  readonly ASSISTANT = ChatTemplate.ASSISTANT;
  readonly END = ChatTemplate.END;

  /** The exact training text of a conversation. */
  render(messages: Message[]): string {
    return this.segments(messages).map((s) => s.text).join("");
  }

  /** Ids and mask for training: `mask[i] = 1` iff `ids[i]` is assistant content or the `<|end|>`
   * closing it, in every assistant turn (or every token with `maskMode: "all"`). */
  renderWithMask(messages: Message[], tokenizer: TextTokenizer, { maskMode = "assistant" }: RenderOptions = {}): SFTExample {
    if (maskMode !== "assistant" && maskMode !== "all") {
      throw new Error(`maskMode must be "assistant" or "all", got \`${maskMode}\``);
    }
    return this.encodeSegments(this.segments(messages), tokenizer, maskMode);
  }

  /** The generation prompt: the history (ending with a user message) then `<|assistant|>\n`.
   * A byte-exact prefix of `render(messages + [reply])`. */
  renderPrompt(messages: Message[]): string {
    return this.promptSegments(messages).map((s) => s.text).join("");
  }

  /** Ids of `renderPrompt(messages)`: an id-exact prefix of `renderWithMask(messages + [reply]).ids`. */
  renderPromptIds(messages: Message[], tokenizer: TextTokenizer): number[] {
    return this.encodeSegments(this.promptSegments(messages), tokenizer, "assistant").ids;
  }

  private promptSegments(messages: Message[]): Segment[] {
    const last = messages[messages.length - 1];
    if (last?.role !== "user") {
      throw new Error(`a generation prompt must end with a user message, got ${last ? `\`${last.role}\`` : "no messages"}`);
    }
    return [...this.segments(messages), ...this.assistantHeader()];
  }

  private assistantHeader(): Segment[] {
    return [
      { text: this.ASSISTANT, special: true, supervised: false },
      { text: "\n", special: false, supervised: false }, // its own piece: the prompt ends exactly here
    ];
  }

  private segments(messages: Message[]): Segment[] {
    checkConversation(messages);
    const out: Segment[] = [];
    for (const m of messages) {
      if (m.role === "user") {
        out.push(
          { text: this.USER, special: true, supervised: false },
          { text: "\n", special: false, supervised: false },
          { text: m.content, special: false, supervised: false },
          { text: "\n", special: false, supervised: false },
        );
      } else {
        out.push(
          ...this.assistantHeader(),
          { text: m.content, special: false, supervised: true },
          { text: this.END, special: true, supervised: true }, // the model must learn to stop
        );
      }
    }
    return out;
  }

  private encodeSegments(segments: Segment[], tokenizer: TextTokenizer, maskMode: MaskMode): SFTExample {
    const ids: number[] = [];
    const mask: number[] = [];
    const add = (tokens: number[], maskValue: number) => {
      for (const t of tokens) {
        ids.push(t);
        mask.push(maskValue);
      }
    };
    for (const s of segments) {
      const tokens = s.special ? [tokenizer.tokenId(s.text)] : tokenizer.encode(s.text);
      if (!s.special) checkNoSpecial(tokens, s.text, tokenizer);
      add(tokens, maskMode === "all" || s.supervised ? 1 : 0);
    }
    return { ids, mask };
  }
}

/** Conversations start with a user turn and alternate; anything else is a data bug. An empty list
 * is a programming error (the course raises on it too), not an empty render. */
function checkConversation(messages: Message[]): void {
  if (messages.length === 0) throw new Error("no messages to render: a conversation needs at least one message (a user turn)");
  messages.forEach((m, i) => {
    const expected = i % 2 === 0 ? "user" : "assistant";
    if (m.role !== expected) {
      throw new Error(`message ${i} has role \`${m.role}\`, expected \`${expected}\`: conversations start with a user turn and alternate user/assistant`);
    }
    if (typeof m.content !== "string") {
      throw new Error(`message ${i} (${m.role}) has no string content, got \`${typeof m.content}\``);
    }
  });
}

/** The tokenizer contract says `encode` never yields special ids; check it where injection would bite. */
function checkNoSpecial(tokens: number[], text: string, tokenizer: TextTokenizer): void {
  const bad = tokens.find((t) => tokenizer.specialIds.has(t));
  if (bad !== undefined) {
    throw new Error(`tokenizer.encode produced special id ${bad} for text ${JSON.stringify(text.slice(0, 60))}: encode must treat special-token strings as plain text`);
  }
}
