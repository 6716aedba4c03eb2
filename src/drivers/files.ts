/** File operations on the storage filesystem. */
import { run, type RunOptions } from './exec.js';

/** Copy a tree sharing data blocks (btrfs reflinks): costs metadata, not bytes. */
export async function reflinkCopy(src: string, dest: string, opts: RunOptions = {}): Promise<void> {
  await run('/bin/cp', ['-a', '--reflink=auto', src, dest], opts);
}

export async function removeTree(p: string, opts: RunOptions = {}): Promise<void> {
  await run('/bin/rm', ['-rf', '--one-file-system', p], opts);
}
