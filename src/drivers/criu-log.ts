/** The tool's own words when a checkpoint or restore fails: podman's stderr plus CRIU's log. */
import { existsSync, readFileSync } from 'node:fs';
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
