/** Building pinned upstream sources: unpack, patch, configure/make. */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { run, type RunOptions } from './exec.js';

/** Unpack a tarball into a fresh directory and return the source tree. */
export async function unpack(tarball: string, into: string, opts: RunOptions = {}): Promise<string> {
  rmSync(into, { recursive: true, force: true });
  mkdirSync(into, { recursive: true });
  await run('/bin/tar', ['-xf', tarball, '-C', into], opts);
  const top = readdirSync(into);
  return top.length === 1 ? path.join(into, top[0]!) : into;
}

/** Apply every *.patch of a directory, in name order, with -p1. */
export async function applyPatches(srcDir: string, patches: string[], opts: RunOptions = {}): Promise<void> {
  for (const p of patches) {
    await run('/usr/bin/patch', ['-p1', '--forward', '--batch', '-i', p], { ...opts, cwd: srcDir });
  }
}

export async function make(srcDir: string, args: string[], opts: RunOptions = {}): Promise<void> {
  await run('/usr/bin/make', args, { timeoutMs: 30 * 60_000, ...opts, cwd: srcDir });
}

export async function configure(srcDir: string, args: string[], opts: RunOptions = {}): Promise<void> {
  await run(path.join(srcDir, 'configure'), args, { timeoutMs: 10 * 60_000, ...opts, cwd: srcDir });
}
