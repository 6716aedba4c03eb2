/** Facts about the host read from /proc and /sys (no subprocesses). */
import { readFileSync, statfsSync, existsSync } from 'node:fs';
import os from 'node:os';
import type { Rlimit } from '../core/podman-config.js';
import { run, type RunOptions } from './exec.js';

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function kernelRelease(): string {
  return os.release();
}

/** Parse /proc/<pid>/limits into soft/hard pairs by resource name. */
export function parseLimits(text: string): Record<string, Rlimit> {
  const out: Record<string, Rlimit> = {};
  for (const line of text.split('\n').slice(1)) {
    const m = /^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)/.exec(line);
    if (!m) continue;
    const num = (s: string) => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
    out[m[1]!] = { soft: num(m[2]!), hard: num(m[3]!) };
  }
  return out;
}

export function hostRlimits(): { nofile: Rlimit; nproc: Rlimit } {
  const l = parseLimits(readFileSync('/proc/self/limits', 'utf8'));
  return {
    nofile: l['Max open files'] ?? { soft: 1024, hard: 1024 },
    nproc: l['Max processes'] ?? { soft: 4096, hard: 4096 },
  };
}

const FS_MAGIC: Record<number, string> = {
  0x9123683e: 'btrfs',
  0xef53: 'ext4',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlay',
  0x58465342: 'xfs',
  0x63677270: 'cgroup2',
  0x27e0eb: 'cgroup',
  0x65735546: 'fuse',
};

export function fsType(p: string): string {
  const t = statfsSync(p).type;
  return FS_MAGIC[t] ?? `0x${t.toString(16)}`;
}

export type CgroupMode = 'unified' | 'hybrid' | 'legacy';

export function cgroupMode(): CgroupMode {
  const root = fsType('/sys/fs/cgroup');
  if (root === 'cgroup2') return 'unified';
  return existsSync('/sys/fs/cgroup/unified') && fsType('/sys/fs/cgroup/unified') === 'cgroup2' ? 'hybrid' : 'legacy';
}

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string;
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({ target: unescape(l[4] ?? ''), fstype: r[0] ?? '', source: unescape(r[1] ?? ''), options: l[5] ?? '' });
  }
  return out;
}

export function mounts(): MountEntry[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

export function isMountPoint(p: string): boolean {
  return mounts().some((m) => m.target === p);
}

/** Loadable modules are possible only when /proc/modules exists. */
export function modulesSupported(): boolean {
  return existsSync('/proc/modules');
}

/** insmod a module file. */
export async function loadModule(ko: string, opts: RunOptions = {}): Promise<void> {
  await run('/sbin/insmod', [ko], { timeoutMs: 60_000, ...opts });
}

export function loadedModules(): string[] {
  try {
    return readFileSync('/proc/modules', 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[0]!);
  } catch {
    return [];
  }
}

/**
 * Whether a process runs. A zombie does not: it has exited and waits to be reaped, which an init
 * may do late (this machine's pid 1 reaps once a second), and waiting on a detached process's exit
 * (a tracking holder, a persist writer) would otherwise wait for its reaper.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return !exited(procStatFields(pid));
}

/** Whether /proc/PID/stat's fields are a process that exited (a zombie, or dead). */
export const exited = (fields: string[] | undefined): boolean => fields?.[0] === 'Z' || fields?.[0] === 'X';

/**
 * The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses):
 * [0] is the state (field 3), [19] the start time (field 22). Undefined when the process is gone.
 */
export function procStatFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
