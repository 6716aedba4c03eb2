/** Small text formats shared by progress lines, the table and the charts. */
import type { SetKey } from './runner.js';

export function sizeTag(bytes: number): string {
  return bytes >= 2 ** 30 && bytes % 2 ** 30 === 0 ? `${bytes / 2 ** 30}GiB` : `${Math.round(bytes / 2 ** 20)}MiB`;
}

/** The name of a workload's checkpoint/rollback set: "W2", "W3 1GiB". */
export function rollbackTitle(r: { workload: string; sizeBytes?: number }): string {
  return r.sizeBytes !== undefined ? `${r.workload} ${sizeTag(r.sizeBytes)}` : r.workload;
}

export function setTitle(k: SetKey): string {
  return `${k.workload}${k.sizeBytes !== undefined ? ` ${sizeTag(k.sizeBytes)}` : ''} N=${k.copies}`;
}

/** Milliseconds as seconds: two decimals under 10 s, one above; "-" for nothing. */
export function seconds(ms?: number): string {
  return ms === undefined ? '-' : (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
}

/** Rows of cells as aligned columns. */
export function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
