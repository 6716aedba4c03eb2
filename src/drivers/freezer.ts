/** The cgroup freezer of a container: a failed dump must never leave the source frozen. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const PARENTS = ['libpod_parent', 'machine.slice'];

export function freezerStateFile(containerId: string): string | undefined {
  for (const p of PARENTS) {
    for (const f of [
      path.join('/sys/fs/cgroup/freezer', p, `libpod-${containerId}`, 'freezer.state'),
      path.join('/sys/fs/cgroup', p, `libpod-${containerId}`, 'cgroup.freeze'),
    ]) if (existsSync(f)) return f;
  }
  return undefined;
}

export function isFrozen(containerId: string): boolean {
  const f = freezerStateFile(containerId);
  if (!f) return false;
  const s = readFileSync(f, 'utf8').trim();
  return f.endsWith('cgroup.freeze') ? s === '1' : s !== 'THAWED';
}

/** Thaw the container's cgroup if it is frozen; returns true when it had to. */
export function thaw(containerId: string): boolean {
  const f = freezerStateFile(containerId);
  if (!f || !isFrozen(containerId)) return false;
  writeFileSync(f, f.endsWith('cgroup.freeze') ? '0' : 'THAWED');
  return true;
}

/**
 * Freeze the container's cgroup and wait until every process is frozen
 * (cgroup v1 reports FREEZING until then). A freeze that does not complete in
 * `timeoutMs` is undone and reported.
 */
export async function freeze(containerId: string, timeoutMs = 10_000): Promise<void> {
  const f = freezerStateFile(containerId);
  if (!f) throw new Error(`no freezer cgroup found for container ${containerId.slice(0, 12)}`);
  const v2 = f.endsWith('cgroup.freeze');
  writeFileSync(f, v2 ? '1' : 'FROZEN');
  const done = () => (v2 ? /^frozen 1$/m.test(readFileSync(path.join(path.dirname(f), 'cgroup.events'), 'utf8')) : readFileSync(f, 'utf8').trim() === 'FROZEN');
  const start = performance.now();
  for (let step = 0.2; !done(); step = Math.min(step * 2, 20)) {
    if (performance.now() - start > timeoutMs) {
      thaw(containerId);
      throw new Error(`the cgroup freezer did not freeze container ${containerId.slice(0, 12)} within ${timeoutMs} ms (${f})`);
    }
    await new Promise((r) => setTimeout(r, step));
  }
}
