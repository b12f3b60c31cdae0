// Text normalization applied before encoding, the same for pretraining, probes and model cards.

/** Straighten typographic quotes: the GPT-2 split pattern only knows the ASCII apostrophe. */
export function normalizeText(text: string): string {
  return text.replace(/[\u2018\u2019]/g, "'").replace(/[\u201C\u201D]/g, '"').replace(/\r\n/g, "\n");
}
