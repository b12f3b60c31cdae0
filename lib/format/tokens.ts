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

/** The tokens every chat checkpoint must have, each as exactly one id. */
export const CHAT_TOKENS = [SPECIAL_TOKENS.user, SPECIAL_TOKENS.assistant, SPECIAL_TOKENS.end, SPECIAL_TOKENS.pad];
