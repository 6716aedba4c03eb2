/** Summaries of repeated measurements: median with min/max, and a least-squares slope. */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Summary of the defined values; undefined when there are none. */
export function summarize(values: (number | undefined)[]): Summary | undefined {
  const xs = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (!xs.length) return undefined;
  return { n: xs.length, median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** Slope and intercept of the least-squares line through the points; undefined under 2 distinct x. */
export function linearFit(points: [number, number][]): { slope: number; intercept: number } | undefined {
  const n = points.length;
  if (n < 2) return undefined;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  if (sxx === 0) return undefined;
  const slope = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
  return { slope, intercept: my - slope * mx };
}
