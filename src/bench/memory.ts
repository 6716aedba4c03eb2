/** Memory a container's processes hold on the host: PSS and RSS summed over its processes (smaps_rollup). */
import { readFileSync } from 'node:fs';
import type { Podman } from '../drivers/podman.js';

export interface MemoryUse {
  pssKiB: number;
  rssKiB: number;
  processes: number;
}

export function parseSmapsRollup(text: string): { pssKiB: number; rssKiB: number } {
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { pssKiB: field('Pss'), rssKiB: field('Rss') };
}

/** Host PIDs of the container's processes (`podman top NAME hpid`). */
export async function hostPids(podman: Podman, name: string): Promise<number[]> {
  const r = await podman.run(['top', name, 'hpid'], { reject: false });
  if (r.exitCode !== 0) return [];
  return r.stdout.split('\n').slice(1).map((l) => Number(l.trim())).filter((p) => Number.isInteger(p) && p > 0);
}

export async function containerMemory(podman: Podman, name: string): Promise<MemoryUse> {
  const use: MemoryUse = { pssKiB: 0, rssKiB: 0, processes: 0 };
  for (const pid of await hostPids(podman, name)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    } catch {
      continue; // the process exited meanwhile
    }
    const m = parseSmapsRollup(text);
    use.pssKiB += m.pssKiB;
    use.rssKiB += m.rssKiB;
    use.processes++;
  }
  return use;
}

/** Mean over the containers (memory added per clone). */
export async function meanMemory(podman: Podman, names: string[]): Promise<MemoryUse | undefined> {
  if (!names.length) return undefined;
  const all = await Promise.all(names.map((n) => containerMemory(podman, n)));
  const mean = (k: keyof MemoryUse) => all.reduce((a, m) => a + m[k], 0) / all.length;
  return { pssKiB: mean('pssKiB'), rssKiB: mean('rssKiB'), processes: mean('processes') };
}
