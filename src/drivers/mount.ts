/** mount(8)/umount(8). */
import { run, type RunOptions } from './exec.js';

export async function mountLoop(file: string, target: string, opts: RunOptions = {}): Promise<void> {
  await run('/bin/mount', ['-o', 'loop', file, target], opts);
}

export async function umount(target: string, opts: RunOptions & { lazy?: boolean } = {}): Promise<void> {
  await run('/bin/umount', [...(opts.lazy ? ['-l'] : []), target], opts);
}
