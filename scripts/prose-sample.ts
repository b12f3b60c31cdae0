// Cut the bundled base's replay sample out of its own pretraining text: evenly spaced excerpts of
// the training part of gutenberg-english.txt (bytes 0–63,944,357; the 8 held-out books come after),
// each inside one book, none holding a retention cloze fact, written with a README of which books
// and byte ranges they are.
//   bun scripts/prose-sample.ts                 (../shared/corpus → data/prose/)
//   bun scripts/prose-sample.ts --excerpts 48 --excerpt-kb 32 --out data/prose
import { defineCommand, runMain } from "citty";
import { consola } from "consola";
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeFileAtomic } from "../lib/io/files.ts";
import { normalizeText } from "../lib/tokenizer/normalize.ts";
import { parseNumber } from "../lib/util/cli.ts";
import { PROJECT_ROOT, RETENTION_ITEMS } from "../lib/util/paths.ts";

const log = consola.withTag("prose-sample");
const TRAIN_END = 63_944_357; // first byte of the held-out books (models/gutenberg-base/MODEL_CARD.md)
const BOOK_END = /^End of (?:the )?Project Gutenberg(?:'s|’s| EBook of| Ebook of| Etext of)? ?(.*)$/i; // the line after each book

const command = defineCommand({
  meta: { name: "prose-sample", description: "Cut the replay sample of the bundled base's pretraining text" },
  args: {
    corpus: { type: "string", default: resolve(PROJECT_ROOT, "../shared/corpus/gutenberg-english.txt"), description: "the pretraining corpus" },
    excerpts: { type: "string", default: "48", description: "excerpts, evenly spaced over the training part" },
    "excerpt-kb": { type: "string", default: "32", description: "KiB per excerpt (cut at paragraph breaks)" },
    out: { type: "string", default: resolve(PROJECT_ROOT, "data/prose"), description: "folder for gutenberg-sample.txt and README.md" },
  },
  run({ args }) {
    const n = parseNumber("excerpts", args.excerpts, { integer: true, positive: true });
    const size = 1024 * parseNumber("excerpt-kb", args["excerpt-kb"], { positive: true });
    const bytes = readFileSync(args.corpus).subarray(0, TRAIN_END);
    const text = bytes.toString("latin1"); // one char per byte: offsets below are byte offsets
    const utf8 = (from: number, to: number) => Buffer.from(text.slice(from, to), "latin1").toString("utf8");
    // Books: the text up to each "End of ... Project Gutenberg" line, kept only when it opens with
    // the title that line names. Some books have no such line (about 20 of 108): the text before
    // the next one then holds two or more books and fails the check, so every book named below is
    // the book its excerpts come from.
    const books: { start: number; end: number; title: string }[] = [];
    let from = 0;
    for (let at = 0; at < text.length; ) {
      const nl = text.indexOf("\n", at);
      const next = nl < 0 ? text.length : nl + 1;
      const m = BOOK_END.exec(utf8(at, next).trimEnd());
      if (m) {
        const title = m[1]!.replace(/[,.]\s*$/, "").trim();
        const words = (title.split(/,? by /)[0]!.toLowerCase().match(/[a-z]+/g) ?? []).slice(0, 3).join(" ");
        const head = utf8(from, from + 6000).toLowerCase().replace(/\s+/g, " ");
        if (words && head.includes(words)) books.push({ start: from, end: at, title });
        from = next;
      }
      at = next;
    }
    const facts = (JSON.parse(readFileSync(RETENTION_ITEMS, "utf8")) as { prompt: string; answer: string }[]).map((f) => normalizeText(f.prompt + f.answer));
    const total = books.reduce((a, b) => a + b.end - b.start, 0);
    const picked: { start: number; end: number; title: string }[] = [];
    for (let k = 0; k < n; k++) {
      // The k-th of n evenly spaced points of the books' text laid end to end.
      let offset = ((k + 0.5) * total) / n;
      const book = books.find((b) => (offset -= b.end - b.start) < 0)!;
      const at = book.end + Math.round(offset);
      const start = text.indexOf("\n\n", at) + 2; // a paragraph start
      const end = Math.max(start, text.lastIndexOf("\n\n", Math.min(book.end, start + size))); // a paragraph end, inside the book
      const excerpt = normalizeText(utf8(start, end));
      // A cloze fact inside the replay text would train the retention probe's answer directly.
      if (start < 2 || end - start < size / 2 || facts.some((f) => excerpt.includes(f))) {
        log.warn(`excerpt ${k} (${book.title}, byte ${start}) skipped: ${end - start < size / 2 ? "the book ends too soon" : "it holds a retention fact"}`);
        continue;
      }
      picked.push({ start, end, title: book.title });
    }
    log.info(`${books.length} books verified by title, ${(total / 1e6).toFixed(1)} MB`);
    const sample = picked.map((p) => utf8(p.start, p.end)).join("\n\n");
    mkdirSync(args.out, { recursive: true });
    writeFileAtomic(join(args.out, "gutenberg-sample.txt"), sample + "\n");
    const bytesOut = Buffer.byteLength(sample);
    const rows = picked.map((p, i) => `| ${i + 1} | ${p.title} | ${p.start.toLocaleString("en-US")}–${p.end.toLocaleString("en-US")} | ${p.end - p.start} |`);
    writeFileAtomic(join(args.out, "README.md"), `# Replay text for the bundled base

\`gutenberg-sample.txt\` (${(bytesOut / 1e6).toFixed(2)} MB) is what \`bun scripts/train.ts --mix-prose F\` replays
when the base is the bundled \`models/gutenberg-base\` and no \`--prose-data\` is given: ${picked.length} excerpts of
the base's own pretraining text, public domain (Project Gutenberg), separated by a blank line. They come
from the training part of \`../shared/corpus/gutenberg-english.txt\` (bytes 0–63,944,357), never from the
8 held-out books after it (whose prose the forgetting probe, \`data/probes/heldout-prose.txt\`, scores).
Excerpts are evenly spaced over ${books.length} books whose extent is certain (the text from one "End of ...
Project Gutenberg" line to the next, opening with the title the second one names), start and end at
paragraph breaks inside the book, and none holds a retention cloze fact (\`data/probes/retention.json\`),
which replay would otherwise train directly.

Made by \`bun scripts/prose-sample.ts --excerpts ${n} --excerpt-kb ${size / 1024}\`. Byte ranges are of the corpus file, end exclusive.

| # | book | bytes | length |
| --- | --- | --- | --- |
${rows.join("\n")}
`);
    log.success(`${picked.length} excerpts, ${(bytesOut / 1e6).toFixed(2)} MB from ${new Set(picked.map((p) => p.title)).size} books → ${args.out}`);
  },
});

runMain(command);
