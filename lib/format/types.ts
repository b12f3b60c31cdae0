// Shared SFT data types.

export type Role = "user" | "assistant";

export interface Message {
  role: Role;
  content: string;
}

/** One conversation: user and assistant turns alternating, starting with a user turn. */
export type Conversation = Message[];

/** A rendered training example: `mask[t]` says whether `ids[t]` is a supervised token
 * (assistant content or its `<|end|>`). The one-token shift to targets happens in lib/data/batch.ts. */
export interface SFTExample {
  ids: number[];
  mask: number[];
}
