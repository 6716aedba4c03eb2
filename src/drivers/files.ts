/** File operations on the storage filesystem. */
import { readFileSync, writeFileSync } from 'node:fs';
import { run, type RunOptions } from './exec.js';

/** Copy a tree sharing data blocks (btrfs reflinks): costs metadata, not bytes. */
export async function reflinkCopy(src: string, dest: string, opts: RunOptions = {}): Promise<void> {
  await run('/bin/cp', ['-a', '--reflink=auto', src, dest], opts);
}

export async function removeTree(p: string, opts: RunOptions = {}): Promise<void> {
  await run('/bin/rm', ['-rf', '--one-file-system', p], opts);
}

/** Copy a text file replacing every occurrence of the given strings. */
export function copyReplacing(src: string, dest: string, replacements: [string, string][]): void {
  let text = readFileSync(src, 'utf8');
  for (const [from, to] of replacements) text = text.split(from).join(to);
  writeFileSync(dest, text);
}
