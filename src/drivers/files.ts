/** File operations on the storage filesystem. */
import { run, type RunOptions } from './exec.js';
import { linkSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import path from 'node:path';

export async function removeTree(p: string, opts: RunOptions = {}): Promise<void> {
  await run('/bin/rm', ['-rf', '--one-file-system', p], opts);
}

/**
 * A directory of hard links to every file of `src` (recursively): the same
 * inodes, so the same page cache, without copying a byte. Both must be on one
 * filesystem. Readers of the links see `src`'s files; a file created in
 * `dest` stays there.
 */
export function linkTree(src: string, dest: string): void {
  mkdirSync(dest, { recursive: true });
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, e.name);
    const to = path.join(dest, e.name);
    if (e.isDirectory()) linkTree(from, to);
    else linkSync(from, to);
  }
}

/**
 * Make the symbolic link `link` relative to where it is, pointing where it
 * points now (an absolute target, or one relative to `from`, the directory it
 * was made in). CRIU's restore follows an incremental dump's `parent` link
 * after the container's root is in place, where an absolute path would name
 * a file inside the container.
 */
export function relinkRelative(link: string, from = path.dirname(link)): void {
  let target: string;
  try {
    target = readlinkSync(link);
  } catch {
    return; // no link
  }
  const rel = path.relative(path.dirname(link), path.resolve(from, target));
  if (rel === target) return;
  unlinkSync(link);
  symlinkSync(rel, link);
}
