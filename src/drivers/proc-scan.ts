/**
 * What /proc says about a container's processes: the tree under its init
 * (host PIDs), each process's namespaces, the special files it has open and
 * mapped. Read without stopping anything; a process that exits meanwhile is
 * simply left out.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { procStatFields } from './host.js';

export const NAMESPACES = ['ipc', 'mnt', 'net', 'pid', 'user', 'uts', 'cgroup', 'time'] as const;
export type Namespace = (typeof NAMESPACES)[number];

export interface ProcInfo {
  /** Host PID. */
  pid: number;
  ppid: number;
  /** PID inside the container's PID namespace (the last NSpid entry). */
  nsPid: number;
  comm: string;
  cmdline: string;
  /** Real, effective, saved and filesystem uid (host view). */
  uids: number[];
  /** Namespace identities, `ipc:[4026532…]`. */
  ns: Partial<Record<Namespace, string>>;
  /** Targets of open file descriptors that are not plain files, pipes or sockets (anon inodes, devices). */
  special: string[];
  /** Mapped special files (anon inodes, devices). */
  mapped: string[];
}

const read = (p: string): string | undefined => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
};
const link = (p: string): string | undefined => {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
};

/** Parent of every process on the host, from /proc/PID/stat. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const rest = procStatFields(Number(d));
    if (rest) out.set(Number(d), Number(rest[1]));
  }
  return out;
}

/** Interesting fd targets: anon inodes (io_uring, ...) and device files. */
export function isSpecialTarget(t: string): boolean {
  return t.startsWith('anon_inode:') || t.startsWith('/dev/');
}

export function readProc(pid: number): ProcInfo | undefined {
  const status = read(`/proc/${pid}/status`);
  if (!status) return undefined;
  const field = (k: string) => status.match(new RegExp(`^${k}:\\s*(.*)$`, 'm'))?.[1] ?? '';
  const nsPids = field('NSpid').split(/\s+/).filter(Boolean).map(Number);
  const ns: ProcInfo['ns'] = {};
  for (const n of NAMESPACES) {
    const l = link(`/proc/${pid}/ns/${n}`);
    if (l) ns[n] = l;
  }
  const special = new Set<string>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    /* exited, or no access */
  }
  for (const fd of fds) {
    const t = link(`/proc/${pid}/fd/${fd}`);
    if (t && isSpecialTarget(t)) special.add(t);
  }
  const mapped = new Set<string>();
  for (const line of (read(`/proc/${pid}/maps`) ?? '').split('\n')) {
    // Only lines that can name a special file are split (a browser's maps run to ~1 MB in all).
    if (!line.includes('/dev/') && !line.includes('anon_inode:')) continue;
    const file = line.split(/\s+/).slice(5).join(' ');
    if (file && isSpecialTarget(file)) mapped.add(file.replace(/ \(deleted\)$/, ''));
  }
  return {
    pid,
    ppid: Number(field('PPid')),
    nsPid: nsPids.length ? nsPids[nsPids.length - 1]! : pid,
    comm: field('Name'),
    uids: field('Uid').split(/\s+/).filter(Boolean).map(Number),
    cmdline: (read(`/proc/${pid}/cmdline`) ?? '').split('\0').filter(Boolean).join(' '),
    ns,
    special: [...special],
    mapped: [...mapped],
  };
}

/** The container's init and every descendant of it, init first. */
export function processTree(initPid: number): ProcInfo[] {
  const pp = parents();
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of pp) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const out: ProcInfo[] = [];
  const queue = [initPid];
  while (queue.length) {
    const pid = queue.shift()!;
    const p = readProc(pid);
    if (p) out.push(p);
    queue.push(...(children.get(pid) ?? []).sort((a, b) => a - b));
  }
  return out;
}

/** Whether this process holds CAP_SYS_RESOURCE (CRIU needs it to read the rlimits of another user's process). */
export function hasSysResource(): boolean {
  const m = (read('/proc/self/status') ?? '').match(/^CapEff:\s*([0-9a-f]+)$/m);
  return !!m && (BigInt(`0x${m[1]}`) & (1n << 24n)) !== 0n;
}
