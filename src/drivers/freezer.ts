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
