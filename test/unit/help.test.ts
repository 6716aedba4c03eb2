import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listFiles } from '../../src/core/stamps.js';
import { ENV_VARS, renderHelp } from '../../src/cli/help.js';
import { COMMANDS } from '../../src/cli/main.js';

describe('--tfork-help', () => {
  const help = renderHelp(COMMANDS);
  it('lists every command and flag', () => {
    for (const c of COMMANDS) {
      expect(help).toContain(c.usage);
      for (const f of c.flags) expect(help).toContain(`--${f.name}`);
    }
  });
  it('lists every TFORK_* environment variable the code reads', () => {
    const src = path.resolve(import.meta.dirname, '../../src');
    const used = new Set<string>();
    for (const f of listFiles(src)) for (const m of readFileSync(f, 'utf8').matchAll(/TFORK_[A-Z_]+/g)) used.add(m[0]);
    const documented = new Set(ENV_VARS.map((e) => e.name));
    for (const v of used) expect(documented, `${v} is read by the code but missing from --tfork-help`).toContain(v);
    for (const v of documented) expect(help).toContain(v);
  });
});
