/**
 * A small SVG chart writer (no dependencies): line charts over a numeric x
 * axis and grouped bar charts over named groups, both with "nice" y ticks, a
 * legend, and optional min-max whiskers.
 */

export interface Point {
  x: number;
  y: number;
  /** Spread of the measurements behind the point (drawn as a whisker). */
  min?: number;
  max?: number;
}

export interface Series {
  name: string;
  points: Point[];
  color?: string;
  dashed?: boolean;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Small print under the title (machine, units, slopes); one line per entry. */
  note?: string | string[];
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const LEGEND_PER_ROW = 3;

/** Round step of about (hi - lo) / count: 1, 2 or 5 times a power of ten. */
export function niceStep(lo: number, hi: number, count = 5): number {
  const raw = (hi - lo) / Math.max(1, count) || 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** Ticks from at or below lo up to the first at or above hi. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  const step = niceStep(lo, hi, count);
  const out = [Math.floor(lo / step) * step];
  while (out[out.length - 1]! < hi - step * 1e-9) out.push(Number((out[out.length - 1]! + step).toPrecision(12)));
  return out.length > 1 ? out : [out[0]!, out[0]! + step];
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 || v === Math.round(v) ? String(Math.round(v)) : String(Number(v.toPrecision(3)));
}

/** The svg element, white background, title, notes and the y grid with its labels. */
function frame(f: { W: number; H: number; left: number; right: number; title: string; notes: string[]; yTicks: number[]; py: (y: number) => number }): string[] {
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.W}" height="${f.H}" viewBox="0 0 ${f.W} ${f.H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${f.W}" height="${f.H}" fill="white"/>`,
    `<text x="${f.W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(f.title)}</text>`,
  ];
  f.notes.forEach((n, i) => out.push(`<text x="${f.W / 2}" y="${37 + 14 * i}" text-anchor="middle" fill="#555" font-size="11">${escapeXml(n)}</text>`));
  for (const t of f.yTicks) {
    out.push(`<line x1="${f.left}" x2="${f.W - f.right}" y1="${f.py(t)}" y2="${f.py(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${f.left - 6}" y="${f.py(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  return out;
}

export function lineChart(c: Chart): string {
  const W = c.width ?? 640;
  const notes = c.note === undefined ? [] : Array.isArray(c.note) ? c.note : [c.note];
  const legendRows = Math.ceil(c.series.length / LEGEND_PER_ROW);
  const M = { left: 64, right: 16, top: 34 + 14 * notes.length, bottom: 46 + 16 * legendRows };
  const H = (c.height ?? 400) + 14 * notes.length + 16 * (legendRows - 1);
  const pts = c.series.flatMap((s) => s.points);
  const xs = pts.map((p) => p.x);
  const ys = pts.flatMap((p) => [p.y, p.max ?? p.y]);
  const xHi = Math.max(1, ...xs);
  // Whole-number x (copies) gets whole-number ticks.
  const xt = xs.every(Number.isInteger) ? ticks(0, xHi, Math.min(6, xHi)) : ticks(Math.min(0, ...xs), xHi, 6);
  const yt = ticks(0, Math.max(1e-9, ...ys) * 1.05, 5);
  const [x0, x1, y0, y1] = [xt[0]!, xt[xt.length - 1]!, yt[0]!, yt[yt.length - 1]!];
  const px = (x: number) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const py = (y: number) => H - M.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom);
  const out = frame({ W, H, left: M.left, right: M.right, title: c.title, notes, yTicks: yt, py });
  for (const t of xt) out.push(`<text x="${px(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  out.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - M.bottom + 34}" text-anchor="middle">${escapeXml(c.xLabel)}</text>`,
    `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(c.yLabel)}</text>`,
  );
  c.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const sorted = [...s.points].sort((a, b) => a.x - b.x);
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    if (sorted.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${sorted.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>`);
    }
    for (const p of sorted) {
      if (p.min !== undefined && p.max !== undefined) {
        out.push(`<line x1="${px(p.x)}" x2="${px(p.x)}" y1="${py(p.min)}" y2="${py(p.max)}" stroke="${color}" stroke-width="1"/>`);
      }
      out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3.5" fill="${color}"><title>${escapeXml(`${s.name}: x=${fmt(p.x)} y=${fmt(p.y)}`)}</title></circle>`);
    }
    const lx = M.left + 8 + (i % LEGEND_PER_ROW) * ((W - M.left - M.right) / LEGEND_PER_ROW);
    const ly = H - 14 - (legendRows - 1 - Math.floor(i / LEGEND_PER_ROW)) * 16;
    out.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${lx + 28}" y="${ly}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface Bar {
  y: number;
  min?: number;
  max?: number;
}

export interface BarChart {
  title: string;
  yLabel: string;
  /** The groups along x, in order. */
  groups: string[];
  /** One bar per group for each series (undefined: no bar). */
  series: { name: string; color?: string; bars: (Bar | undefined)[] }[];
  note?: string | string[];
  width?: number;
  height?: number;
}

export function barChart(c: BarChart): string {
  const W = c.width ?? 640;
  const notes = c.note === undefined ? [] : Array.isArray(c.note) ? c.note : [c.note];
  const M = { left: 64, right: 16, top: 34 + 14 * notes.length, bottom: 62 };
  const H = (c.height ?? 360) + 14 * notes.length;
  const ys = c.series.flatMap((s) => s.bars.flatMap((b) => (b ? [b.y, b.max ?? b.y] : [])));
  const yt = ticks(0, Math.max(1e-9, ...ys) * 1.05, 5);
  const y1 = yt[yt.length - 1]!;
  const py = (y: number) => H - M.bottom - (y / (y1 || 1)) * (H - M.top - M.bottom);
  const groupW = (W - M.left - M.right) / Math.max(1, c.groups.length);
  const barW = (groupW * 0.7) / Math.max(1, c.series.length);
  const out = frame({ W, H, left: M.left, right: M.right, title: c.title, notes, yTicks: yt, py });
  c.groups.forEach((g, gi) => {
    const gx = M.left + gi * groupW + groupW * 0.15;
    out.push(`<text x="${M.left + (gi + 0.5) * groupW}" y="${H - M.bottom + 16}" text-anchor="middle">${escapeXml(g)}</text>`);
    c.series.forEach((s, si) => {
      const b = s.bars[gi];
      if (!b) return;
      const color = s.color ?? PALETTE[si % PALETTE.length]!;
      const x = gx + si * barW;
      out.push(`<rect x="${x.toFixed(1)}" y="${py(b.y).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(H - M.bottom - py(b.y)).toFixed(1)}" fill="${color}"><title>${escapeXml(`${s.name}, ${g}: ${fmt(b.y)}`)}</title></rect>`);
      out.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(py(b.max ?? b.y) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${fmt(b.y)}</text>`);
      if (b.min !== undefined && b.max !== undefined) {
        const cx = (x + barW / 2 - 1).toFixed(1);
        out.push(`<line x1="${cx}" x2="${cx}" y1="${py(b.min)}" y2="${py(b.max)}" stroke="#333" stroke-width="1"/>`);
      }
    });
  });
  out.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(c.yLabel)}</text>`,
  );
  c.series.forEach((s, i) => {
    const lx = M.left + 8 + i * 140;
    const ly = H - 14;
    out.push(`<rect x="${lx}" y="${ly - 10}" width="14" height="10" fill="${s.color ?? PALETTE[i % PALETTE.length]!}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
