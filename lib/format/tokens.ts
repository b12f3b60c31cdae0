// The chat format's special tokens: one definition for the template, the tokenizers the project
// trains, the model's vocabulary growth and every reader of pad, end and role ids.

/** Special tokens at fixed ids in the project's own tokenizers (see lib/tokenizer/bpe-train.ts). */
export const SPECIAL_TOKENS = {
  pad: "<|pad|>", // id 0: padding; never supervised
  doc: "<|endoftext|>", // id 1: separates documents when packing pretraining text
  user: "<|user|>", // id 2
  assistant: "<|assistant|>", // id 3
  end: "<|end|>", // id 4: closes an assistant turn; the stop token for generation
  system: "<|system|>", // id 5: reserved for later
} as const;

/** The course's tool-use markers (its Module 19). This project never renders them; it only gives them
 * ids, so that a checkpoint made here has the course's full set for its later modules. */
export const TOOL_TOKENS = {
  call: "<|tool_call|>",
  result: "<|tool_result|>",
} as const;

/** The tokens every chat checkpoint must have, each as exactly one id. */
export const CHAT_TOKENS = [SPECIAL_TOKENS.user, SPECIAL_TOKENS.assistant, SPECIAL_TOKENS.end, SPECIAL_TOKENS.pad];

/** The course's special tokens in the course's order (g2c's `COURSE_SPECIAL_TOKENS`): what
 * `--add-chat-tokens` gives a foreign tokenizer, so new ids come out in the order the course's own
 * setup adds them. A superset of CHAT_TOKENS. */
export const COURSE_TOKENS = [
  SPECIAL_TOKENS.doc,
  SPECIAL_TOKENS.system,
  SPECIAL_TOKENS.user,
  SPECIAL_TOKENS.assistant,
  TOOL_TOKENS.call,
  TOOL_TOKENS.result,
  SPECIAL_TOKENS.end,
  SPECIAL_TOKENS.pad,
];
