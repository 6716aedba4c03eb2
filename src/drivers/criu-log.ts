/** The tool's own words when a checkpoint or restore fails: podman's stderr plus CRIU's log. */
import { existsSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';

export function criuLogExcerpt(bundle: string, stderr: string, log: 'dump.log' | 'restore.log' = 'dump.log'): string {
  const lines = [stderr.trim()];
  for (const f of [path.join(bundle, 'checkpoint', log), path.join(bundle, log)]) {
    if (!existsSync(f)) continue;
    const errs = readFileSync(f, 'utf8').split('\n').filter((x) => /Error|error|fail/i.test(x)).slice(-8);
    if (errs.length) lines.push(`CRIU log ${f}:`, ...errs.map((x) => `  ${x}`));
    break;
  }
  return lines.filter(Boolean).join('\n');
}

/**
 * Have CRIU write its log beside the images the bundle's `checkpoint` links
 * to (a tmpfs when they are kept in memory) instead of in the bundle (btrfs).
 * CRIU makes one write() per line, and crun asks for its debug level: ~12,000
 * lines for a desktop's dump (some inside the frozen window) and ~7,000 for
 * each copy's restore; 12,000 such writes take ~54 ms on btrfs against ~12 ms
 * on tmpfs here. CRIU opens the log by name in the bundle and follows the
 * link; podman removes the link after a success, and criuLogExcerpt reads the
 * log beside the images first.
 */
export function logBesideImages(bundle: string, log: 'dump.log' | 'restore.log'): void {
  logTo(bundle, log, path.join('checkpoint', log));
}

/** Have CRIU write the bundle's `log` at `target` (relative to the bundle, or absolute). */
export function logTo(bundle: string, log: 'dump.log' | 'restore.log', target: string): void {
  const p = path.join(bundle, log);
  rmSync(p, { force: true });
  symlinkSync(target, p);
}
