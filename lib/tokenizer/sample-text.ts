// Reading tokenizer training text: byte ranges of corpus files ("book.txt:0-1000000"), and an
// evenly spread sample of them under a size budget, so a 25 MB sample of a 70 MB corpus sees
// every book instead of only the first third.

/** A byte range of a file; `end` is exclusive and clamped to the file size. */
export interface TextSpan {
  path: string;
  start: number;
  end: number;
}

/**
 * Parse `path` or `path:START-END` (bytes, END exclusive and optional: `path:65000000-`).
 * Offsets are snapped forward to the next line start when read, so a range never cuts a line.
 */
export function parseSpan(spec: string): TextSpan {
  const m = /^(.*):(\d*)-(\d*)$/.exec(spec);
  if (!m) return { path: spec, start: 0, end: Infinity };
  const [, path, start, end] = m;
  const span = { path: path!, start: start ? Number(start) : 0, end: end ? Number(end) : Infinity };
  if (span.end <= span.start) throw new Error(`empty byte range in \`${spec}\`: END must be greater than START`);
  return span;
}

const CHUNK_BYTES = 1 << 20; // sampling unit: 1 MiB, long enough that few words are cut in two

/** Index of the first byte after the next "\n" at or after `i` (or `bytes.length`). */
function lineStart(bytes: Uint8Array, i: number): number {
  if (i <= 0) return 0;
  const nl = bytes.indexOf(10, i - 1);
  return nl < 0 ? bytes.length : nl + 1;
}

const SNAP_SLACK = 1 << 16; // bytes read past a range's end to find the end of its last line

/** Read one span as text, snapped to whole lines. */
export async function readSpan({ path, start, end }: TextSpan): Promise<string> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw new Error(`corpus file not found: \`${path}\``);
  const size = file.size;
  // read from one byte early: that byte tells whether `start` is already a line start
  const base = Math.max(0, start - 1);
  const bytes = new Uint8Array(await file.slice(base, Math.min(size, end + SNAP_SLACK)).arrayBuffer());
  const from = lineStart(bytes, start - base);
  const to = end >= size ? bytes.length : lineStart(bytes, end - base);
  return new TextDecoder().decode(bytes.subarray(from, Math.max(from, to)));
}

/**
 * Read `spans` as a list of texts of at most `maxBytes` in total: every span whole if they fit,
 * otherwise 1 MiB chunks spaced evenly across the concatenated spans (deterministic).
 */
export async function sampleSpans(spans: TextSpan[], maxBytes: number): Promise<string[]> {
  const sized = await Promise.all(
    spans.map(async (s) => ({ ...s, end: Math.min(s.end, Bun.file(s.path).size) })),
  );
  const total = sized.reduce((n, s) => n + Math.max(0, s.end - s.start), 0);
  if (total <= maxBytes) return Promise.all(sized.map(readSpan));

  const stride = CHUNK_BYTES * (total / maxBytes); // one chunk taken per stride of corpus bytes
  const texts: string[] = [];
  let offset = 0; // position in the concatenation of all spans
  for (const s of sized) {
    const length = Math.max(0, s.end - s.start);
    const firstChunk = Math.ceil(offset / stride);
    for (let k = firstChunk; k * stride < offset + length; k++) {
      const start = s.start + Math.round(k * stride - offset);
      texts.push(await readSpan({ path: s.path, start, end: Math.min(s.end, start + CHUNK_BYTES) }));
    }
    offset += length;
  }
  return texts;
}
