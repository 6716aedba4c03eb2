/**
 * Stamps decide whether a setup step must run again: a stamp is the hash of
 * everything the step's output depends on (tarball, patches, flags, image
 * definition). A step whose stamp matches the one recorded last time is
 * skipped.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';

export type StampInput = string | { file: string } | { dir: string };

/** Files of a directory, recursively, in a stable order. */
export function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

export function computeStamp(inputs: StampInput[]): string {
  const h = createHash('sha256');
  for (const i of inputs) {
    if (typeof i === 'string') h.update(`s:${i}\0`);
    else if ('file' in i) h.update(`f:${path.basename(i.file)}\0`).update(readFileSync(i.file)).update('\0');
    else
      for (const f of listFiles(i.dir)) h.update(`d:${path.relative(i.dir, f)}\0`).update(readFileSync(f)).update('\0');
  }
  return h.digest('hex');
}

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

export class StampStore {
  constructor(private readonly dir: string) {}

  private file(name: string): string {
    return path.join(this.dir, `${name}.stamp`);
  }

  get(name: string): string | undefined {
    try {
      return readFileSync(this.file(name), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  matches(name: string, stamp: string): boolean {
    return this.get(name) === stamp;
  }

  set(name: string, stamp: string): void {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(this.file(name), `${stamp}\n`);
  }
}
