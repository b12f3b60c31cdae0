// The paragraph the course asks for — what the fine-tuned model can and cannot do — written from
// the measured numbers. Every clause reads a value; the wording changes only at the thresholds
// below, so two runs with different numbers get different paragraphs.

import { SPECIAL_TOKENS } from "../format/tokens.ts";
import { LOOPING } from "./metrics.ts";
import type { ProbeReport } from "./types.ts";

const RELIABLE_STOP = 0.9; // stop rate from which the model "has learned to end its turn"
const USUAL_STOP = 0.5; // stop rate from which it "usually" ends its turn
const NO_CHANGE = 0.02; // relative prose-loss change below which forgetting is negligible
const CLEAR_FORGETTING = 0.1; // relative prose-loss rise from which forgetting is clear
const FORMAT_SHIFT = 0.5; // stop-rate gain over the base that counts as a format change
const MEMORISING = 0.1; // share of replies reproducing training answers from which the model "recites"
const FACT_TOLERANCE = 0.05; // share of cloze items that may flip without counting as lost facts

const pct = (x: number) => `${(100 * x).toFixed(Math.abs(x) < 0.1 ? 1 : 0)}%`;

/** The verdict paragraph for a report's numbers. */
export function verdictText({ base, sft, prose, retention }: Pick<ProbeReport, "base" | "sft" | "prose" | "retention">): string {
  const out: string[] = [];
  const n = sft.chatProbes;
  if (n > 0) {
    const how =
      sft.stopRate >= RELIABLE_STOP ? "it has learned to end its turn"
      : sft.stopRate >= USUAL_STOP ? "it usually ends its turn, but not reliably"
      : sft.stops > 0 ? "it rarely ends its turn"
      : "it has not learned to end its turn";
    out.push(`The fine-tuned model stops with ${SPECIAL_TOKENS.end} on ${sft.stops} of ${n} chat prompts (base: ${base.stops}): ${how}.`);
    const loops = sft.repetition >= LOOPING ? "; many replies loop on a phrase" : "";
    out.push(`Its replies average ${sft.meanLength.toFixed(0)} tokens (base: ${base.meanLength.toFixed(0)}) with ${pct(sft.repetition)} of their 3-grams repeated (base: ${pct(base.repetition)})${loops}.`);
    out.push(
      sft.leaks > 0
        ? `It writes a role marker inside ${sft.leaks} of ${n} replies (base: ${base.leaks}), inventing the next turn instead of stopping.`
        : `No reply holds a role marker (base: ${base.leaks} of ${n}).`,
    );
    if (sft.memorised > 0 || base.memorised > 0) {
      out.push(`${sft.memorised} of ${n} replies reproduce a training answer verbatim (base: ${base.memorised})${sft.memorisedRate > MEMORISING ? ": it recites its training data instead of answering" : ""}.`);
    }
    if (sft.offPattern > 0 || base.offPattern > 0) {
      out.push(`${sft.offPattern} of ${n} replies use chat filler such as "Great question!" (base: ${base.offPattern}).`);
    }
  }
  const p = sft.proseProbes;
  if (p > 0) {
    const answers =
      sft.answered > 0
        ? `; it still answers ${sft.answered} of them instead of continuing (base: ${base.answered})`
        : sft.continued === p ? `, answering none: the chat format has not taken over plain text` : "";
    out.push(`Given ${p} prose openings as plain text, it continues ${sft.continued} (base: ${base.continued})${answers}.`);
  }
  const f = sft.prefillProbes;
  if (f > 0) {
    out.push(`Given ${f} prompt${f > 1 ? "s" : ""} that end${f > 1 ? "" : "s"} inside an assistant turn, it continues the reply and closes it with ${SPECIAL_TOKENS.end} on ${sft.prefillCompleted} (base: ${base.prefillCompleted}).`);
  }
  if (prose.ntoks > 0) {
    const r = prose.relative;
    const what =
      Math.abs(r) < NO_CHANGE ? "next to no forgetting"
      : r >= CLEAR_FORGETTING ? "clear forgetting of plain prose"
      : r > 0 ? "mild forgetting"
      : "no sign of forgetting";
    const moved = prose.delta === 0 ? "is unchanged" : `${r > 0 ? "rose" : "fell"} ${pct(Math.abs(r))}`;
    out.push(`Held-out prose loss ${moved} (${prose.baseLoss.toFixed(3)} → ${prose.sftLoss.toFixed(3)} nats/token): ${what}.`);
  }
  const { base: rb, sft: rs } = retention;
  if (rs.total > 0) {
    const diff = rs.correct - rb.correct;
    const tolerance = Math.max(1, Math.ceil(FACT_TOLERANCE * rs.total));
    const formatMoved = n > 0 && sft.stopRate - base.stopRate >= FORMAT_SHIFT;
    const lost = diff < -tolerance;
    const conclusion = formatMoved
      ? lost ? "SFT changed the format and cost facts" : "SFT moved format, not facts"
      : lost ? "SFT cost facts without teaching the format" : "the format did not move much, and the facts were kept";
    out.push(`Cloze retention is ${rs.correct}/${rs.total} against ${rb.correct}/${rb.total} for the base (mean margin ${rs.meanMargin.toFixed(2)} vs ${rb.meanMargin.toFixed(2)} nats): ${conclusion}.`);
  }
  return out.join(" ");
}
