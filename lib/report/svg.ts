// Self-contained SVG charts for reports: line charts (loss curves, any number of series), scatter
// plots (a metric against a swept parameter) and grouped bar charts (base vs SFT). Strings in,
// a string of <svg> out: no DOM, no external assets, every label escaped.

/** A named series of [x, y] points. Non-finite points (a NaN loss) are skipped. */
export interface Series {
  name: string;
  points: [number, number][];
  color?: string; // default: the palette colour of the series' index
}

export interface XYChartOptions {
  series: Series[];
  xLabel: string;
  yLabel: string;
  title?: string;
  width?: number; // px
  height?: number; // px
  logX?: boolean; // e.g. learning rates
  logY?: boolean; // e.g. a loss that falls by orders of magnitude
}

export interface BarChartOptions {
  categories: string[]; // one group of bars per category; "\n" breaks a label into lines
  series: { name: string; values: number[]; color?: string }[]; // values[i] belongs to categories[i]
  yLabel: string;
  title?: string;
  width?: number;
  height?: number;
  format?: (v: number) => string; // value labels above the bars
}

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac"]; // Tableau 10: distinct for the first ten series
const FONT = `font-family="system-ui, -apple-system, Segoe UI, sans-serif"`;
const CHAR_W = 6.5; // px per character at 11px: for legend layout without measuring text
const MAX_AUTO_MARKERS = 20; // line charts mark points only when there are few (eval losses), not on dense train curves
const MARGIN = { left: 64, right: 20, top: 12, bottom: 46 }; // px around the plot area (plus title and legend)

/** Escape text for XML/HTML element content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** A distinct colour for series `i`: the palette first, then golden-angle hues. */
export function seriesColor(i: number): string {
  return i < PALETTE.length ? PALETTE[i]! : `hsl(${Math.round((i * 137.508) % 360)}, 55%, 45%)`;
}

/** "Nice" tick values (steps of 1, 2 or 5 × 10^k) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

/** Ticks on a log axis: decades (with 2× and 5× when there are few), or nice linear ticks when the
 * range spans less than a decade. */
function logTicks(lo: number, hi: number): number[] {
  if (hi / lo < 10) return niceTicks(lo, hi).filter((v) => v > 0);
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of hi / lo < 1000 ? [1, 2, 5] : [1]) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

/** Short value label: up to 4 significant digits, "k" for thousands, exponent form for tiny or huge
 * magnitudes (learning rates: 3e-4). */
export function formatTick(v: number, exponent = isExtreme(v)): string {
  if (v === 0) return "0";
  if (exponent) return v.toExponential(1).replace(".0e", "e").replace("e+", "e");
  if (Math.abs(v) >= 1000) return `${+(v / 1000).toFixed(1)}k`;
  return `${+v.toPrecision(4)}`;
}

const isExtreme = (v: number) => v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3);

/** Labels for one axis in one style: all in exponent form if any tick needs it. */
function tickLabels(ticks: number[]): string[] {
  const exponent = ticks.some(isExtreme);
  return ticks.map((v) => formatTick(v, exponent));
}

interface Frame {
  svg: string[];
  x0: number; // plot area, px
  y0: number;
  w: number;
  h: number;
  width: number;
  height: number;
}

/** Title, legend (wrapping rows above the plot), axis labels; returns the plot area. */
function frame(width: number, height: number, title: string | undefined, legend: { name: string; color: string }[], xLabel: string, yLabel: string): Frame {
  const svg: string[] = [];
  let top = MARGIN.top;
  if (title) {
    svg.push(`<text x="${MARGIN.left}" y="${top + 12}" font-size="13" font-weight="600" fill="#222">${escapeXml(title)}</text>`);
    top += 22;
  }
  if (legend.length > 1 || (legend.length === 1 && legend[0]!.name)) {
    let x = MARGIN.left;
    let y = top + 8;
    for (const { name, color } of legend) {
      const itemW = 22 + name.length * CHAR_W + 14;
      if (x + itemW > width - MARGIN.right && x > MARGIN.left) {
        x = MARGIN.left;
        y += 16;
      }
      svg.push(`<rect x="${x}" y="${y - 5}" width="14" height="4" rx="1" fill="${color}"/>`);
      svg.push(`<text x="${x + 19}" y="${y}" font-size="11" fill="#333">${escapeXml(name)}</text>`);
      x += itemW;
    }
    top = y + 12;
  }
  const x0 = MARGIN.left;
  const y0 = top;
  const w = width - MARGIN.left - MARGIN.right;
  const h = Math.max(40, height - top - MARGIN.bottom);
  svg.push(`<text x="${x0 + w / 2}" y="${y0 + h + 36}" font-size="11" fill="#333" text-anchor="middle">${escapeXml(xLabel)}</text>`);
  svg.push(`<text transform="translate(14 ${y0 + h / 2}) rotate(-90)" font-size="11" fill="#333" text-anchor="middle">${escapeXml(yLabel)}</text>`);
  return { svg, x0, y0, w, h, width, height: Math.max(height, y0 + h + MARGIN.bottom) };
}

function close(f: Frame, title: string | undefined): string {
  const label = escapeXml(title ?? "chart");
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" height="${f.height}" role="img" aria-label="${label}" ${FONT}><title>${label}</title><rect width="100%" height="100%" fill="#fff"/>${f.svg.join("")}</svg>`;
}

/** Linear or log mapping of a data range onto pixels, with its ticks. */
function axis(values: number[], log: boolean, from: number, to: number, { zero = false, pad = 0.05 } = {}) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (zero) [lo, hi] = [Math.min(0, lo), Math.max(0, hi)];
  if (log) {
    const [a, b] = [Math.log10(lo), Math.log10(hi)];
    const span = b - a || 1;
    [lo, hi] = [10 ** (a - span * pad), 10 ** (b + span * pad)];
    if (!(hi > lo)) [lo, hi] = [lo / 2, hi * 2];
  } else {
    const span = hi - lo || Math.abs(hi) || 1;
    [lo, hi] = [zero && lo === 0 ? 0 : lo - span * pad, hi + span * pad];
  }
  const t = (v: number) => (log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo));
  return { map: (v: number) => from + t(v) * (to - from), ticks: log ? logTicks(lo, hi) : niceTicks(lo, hi) };
}

const fixed = (v: number) => +v.toFixed(1);

function xyChart(opts: XYChartOptions, { lines, markers }: { lines: boolean; markers: "auto" | "always" }): string {
  const { width = 640, height = 320, title, xLabel, yLabel, logX = false, logY = false } = opts;
  const ok = (v: number, log: boolean) => Number.isFinite(v) && (!log || v > 0);
  const series = opts.series.map((s, i) => ({
    name: s.name,
    color: s.color ?? seriesColor(i),
    points: s.points.filter(([x, y]) => ok(x, logX) && ok(y, logY)),
  }));
  const f = frame(width, height, title, series, xLabel, yLabel);
  const all = series.flatMap((s) => s.points);
  f.svg.push(`<rect x="${f.x0}" y="${f.y0}" width="${f.w}" height="${f.h}" fill="#fafafa" stroke="#ccc"/>`);
  if (all.length === 0) {
    f.svg.push(`<text x="${f.x0 + f.w / 2}" y="${f.y0 + f.h / 2}" font-size="12" fill="#888" text-anchor="middle">no data</text>`);
    return close(f, title);
  }
  const X = axis(all.map((p) => p[0]), logX, f.x0, f.x0 + f.w, { pad: 0.02 });
  const Y = axis(all.map((p) => p[1]), logY, f.y0 + f.h, f.y0);
  const xLabels = tickLabels(X.ticks);
  for (const [i, v] of X.ticks.entries()) {
    const x = fixed(X.map(v));
    f.svg.push(`<line x1="${x}" x2="${x}" y1="${f.y0}" y2="${f.y0 + f.h}" stroke="#e6e6e6"/>`);
    f.svg.push(`<text x="${x}" y="${f.y0 + f.h + 15}" font-size="10" fill="#555" text-anchor="middle">${xLabels[i]}</text>`);
  }
  const yLabels = tickLabels(Y.ticks);
  for (const [i, v] of Y.ticks.entries()) {
    const y = fixed(Y.map(v));
    f.svg.push(`<line x1="${f.x0}" x2="${f.x0 + f.w}" y1="${y}" y2="${y}" stroke="#e6e6e6"/>`);
    f.svg.push(`<text x="${f.x0 - 6}" y="${y + 3}" font-size="10" fill="#555" text-anchor="end">${yLabels[i]}</text>`);
  }
  for (const s of series) {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]).map(([x, y]) => [fixed(X.map(x)), fixed(Y.map(y))] as const);
    if (lines && pts.length > 1) {
      f.svg.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.8" stroke-linejoin="round" points="${pts.map((p) => p.join(",")).join(" ")}"><title>${escapeXml(s.name)}</title></polyline>`);
    }
    if (markers === "always" || pts.length <= MAX_AUTO_MARKERS) {
      for (const [x, y] of pts) f.svg.push(`<circle cx="${x}" cy="${y}" r="${lines ? 2.5 : 3.5}" fill="${s.color}"/>`);
    }
  }
  return close(f, title);
}

/** Lines through each series' points (sorted by x), any number of series in distinct colours. */
export function lineChart(opts: XYChartOptions): string {
  return xyChart(opts, { lines: true, markers: "auto" });
}

/** Points only; `connect` joins each series' points in x order (a metric against a swept value). */
export function scatter(opts: XYChartOptions & { connect?: boolean }): string {
  return xyChart(opts, { lines: opts.connect ?? false, markers: "always" });
}

/** Grouped bars: one group per category, one bar per series, value labels on top; the y axis
 * always includes 0. */
export function barChart(opts: BarChartOptions): string {
  const { categories, yLabel, title, width = 640, height = 300, format = (v: number) => formatTick(v) } = opts;
  const series = opts.series.map((s, i) => ({ ...s, color: s.color ?? seriesColor(i) }));
  const f = frame(width, height, title, series, "", yLabel);
  f.svg.push(`<rect x="${f.x0}" y="${f.y0}" width="${f.w}" height="${f.h}" fill="#fafafa" stroke="#ccc"/>`);
  const values = series.flatMap((s) => s.values).filter(Number.isFinite);
  if (categories.length === 0 || values.length === 0) {
    f.svg.push(`<text x="${f.x0 + f.w / 2}" y="${f.y0 + f.h / 2}" font-size="12" fill="#888" text-anchor="middle">no data</text>`);
    return close(f, title);
  }
  const Y = axis(values, false, f.y0 + f.h, f.y0, { zero: true, pad: 0.12 });
  const yLabels = tickLabels(Y.ticks);
  for (const [i, v] of Y.ticks.entries()) {
    const y = fixed(Y.map(v));
    f.svg.push(`<line x1="${f.x0}" x2="${f.x0 + f.w}" y1="${y}" y2="${y}" stroke="${v === 0 ? "#999" : "#e6e6e6"}"/>`);
    f.svg.push(`<text x="${f.x0 - 6}" y="${y + 3}" font-size="10" fill="#555" text-anchor="end">${yLabels[i]}</text>`);
  }
  const group = f.w / categories.length;
  const barW = Math.min(36, (group * 0.8) / series.length);
  const y0 = Y.map(0);
  categories.forEach((cat, c) => {
    const left = f.x0 + c * group + (group - barW * series.length) / 2;
    series.forEach((s, k) => {
      const v = s.values[c];
      if (v === undefined || !Number.isFinite(v)) return;
      const y = Y.map(v);
      const x = fixed(left + k * barW);
      f.svg.push(`<rect x="${x}" y="${fixed(Math.min(y, y0))}" width="${fixed(barW - 2)}" height="${fixed(Math.abs(y0 - y))}" fill="${s.color}"><title>${escapeXml(`${s.name} · ${cat}: ${format(v)}`)}</title></rect>`);
      const ly = v >= 0 ? y - 3 : y + 11;
      f.svg.push(`<text x="${fixed(x + (barW - 2) / 2)}" y="${fixed(ly)}" font-size="9" fill="#333" text-anchor="middle">${escapeXml(format(v))}</text>`);
    });
    const cx = fixed(f.x0 + (c + 0.5) * group);
    const lines = cat.split("\n").map((line, i) => `<tspan x="${cx}" dy="${i === 0 ? 0 : 12}">${escapeXml(line)}</tspan>`);
    f.svg.push(`<text x="${cx}" y="${f.y0 + f.h + 15}" font-size="10" fill="#333" text-anchor="middle">${lines.join("")}</text>`);
  });
  return close(f, title);
}
