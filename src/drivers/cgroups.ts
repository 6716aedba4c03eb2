/**
 * Container cgroups under podman's cgroupfs parent (`libpod_parent`), in every
 * hierarchy: v1 controllers, the cgroup2 mount of a hybrid host, or a unified
 * root. A container podman removed while something still ran in it (a restore
 * that went on after its command was killed) leaves live processes there, out
 * of any container podman knows; these are found and killed here.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const CGROUP_PARENT = 'libpod_parent';
const BASE = '/sys/fs/cgroup';
const NAME_RE = /^libpod-(?:conmon-)?([0-9a-f]{64})$/;

/** Every `libpod_parent` directory, once per hierarchy (co-mounted controllers are one). */
export function cgroupParents(): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const add = (p: string) => {
    if (!existsSync(p)) return;
    const real = realpathSync(p);
    if (!seen.has(real)) {
      seen.add(real);
      out.push(p);
    }
  };
  add(path.join(BASE, CGROUP_PARENT));
  for (const c of existsSync(BASE) ? readdirSync(BASE) : []) add(path.join(BASE, c, CGROUP_PARENT));
  return out;
}

/** Container cgroup directories (its own and its conmon's), by container id. */
export function containerCgroups(): Map<string, string[]> {
  const by = new Map<string, string[]>();
  for (const root of cgroupParents()) {
    for (const name of readdirSync(root)) {
      const m = NAME_RE.exec(name);
      const dir = path.join(root, name);
      if (!m || !statSync(dir).isDirectory()) continue;
      by.set(m[1]!, [...(by.get(m[1]!) ?? []), dir]);
    }
  }
  return by;
}

/** Pids in a cgroup directory and below (v1 `cgroup.procs`/`tasks`, v2 `cgroup.procs`). */
export function cgroupPids(dir: string): number[] {
  const pids = new Set<number>();
  const walk = (d: string) => {
    for (const f of ['cgroup.procs', 'tasks']) {
      try {
        for (const l of readFileSync(path.join(d, f), 'utf8').split('\n')) if (l.trim()) pids.add(Number(l));
      } catch {
        /* not in this hierarchy, or gone */
      }
    }
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch {
      /* removed meanwhile */
    }
  };
  walk(dir);
  return [...pids].sort((a, b) => a - b);
}

/**
 * A cgroup yard for a CRIU dump of `pid`'s tree (CRIU's --cgroup-yard): in
 * `dir`, one link per hierarchy the process is in, named as CRIU names it (the
 * v1 controller list, `systemd` for name=systemd, `unified` for cgroup2), to
 * where the host has that hierarchy mounted. Without one, CRIU mounts every
 * hierarchy afresh when it reaches the first task's cgroups, inside the
 * frozen window: ~22 ms of the source's pause on a hybrid host with ten.
 * Undefined (CRIU then mounts its own) when a hierarchy is not mounted whole.
 */
export function writeCgroupYard(dir: string, pid: number, proc = '/proc'): string | undefined {
  let cgroups: string, mountinfo: string;
  try {
    cgroups = readFileSync(path.join(proc, String(pid), 'cgroup'), 'utf8');
    mountinfo = readFileSync(path.join(proc, 'self', 'mountinfo'), 'utf8');
  } catch {
    return undefined;
  }
  // Hierarchy roots mounted here: cgroup2, and each v1 mount by its controllers (and name=).
  const v1: { opts: Set<string>; at: string }[] = [];
  let v2: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const [fstype, , superOpts = ''] = post.split(' ');
    if (f[3] !== '/') continue;
    const at = f[4]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (fstype === 'cgroup2') v2 ??= at;
    else if (fstype === 'cgroup') v1.push({ opts: new Set(superOpts.split(',')), at });
  }
  const links: [string, string][] = [];
  for (const line of cgroups.split('\n')) {
    const m = /^\d+:([^:]*):/.exec(line);
    if (!m) continue;
    const ctl = m[1]!;
    if (ctl === '') {
      if (!v2) return undefined;
      links.push(['unified', v2]);
      continue;
    }
    const want = ctl.split(',');
    const found = v1.find((h) => want.every((c) => h.opts.has(c)));
    if (!found) return undefined;
    links.push([ctl.startsWith('name=') ? ctl.slice('name='.length) : ctl, found.at]);
  }
  if (links.length === 0) return undefined;
  mkdirSync(dir, { recursive: true });
  for (const [name, at] of links) symlinkSync(at, path.join(dir, name));
  return dir;
}

export interface ProcessInfo {
  pid: number;
  comm: string;
}

export function describePid(pid: number): ProcessInfo {
  let comm = '?';
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    /* exited */
  }
  return { pid, comm };
}

/** Thaw frozen directories (a frozen task never dies of SIGKILL) in a cgroup tree. */
function thawTree(dir: string): void {
  const walk = (d: string) => {
    for (const [f, thawed] of [['freezer.state', 'THAWED'], ['cgroup.freeze', '0']] as const) {
      try {
        const v = readFileSync(path.join(d, f), 'utf8').trim();
        if (v !== thawed && v !== 'THAWED') writeFileSync(path.join(d, f), thawed);
      } catch {
        /* not this hierarchy */
      }
    }
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch {
      /* gone */
    }
  };
  walk(dir);
}

/** SIGKILL every process in the directories until they are empty (or 5 s pass); returns what was killed. */
export async function killCgroupProcesses(dirs: string[]): Promise<ProcessInfo[]> {
  const killed = new Map<number, ProcessInfo>();
  for (let round = 0; round < 100; round++) {
    const pids = dirs.flatMap(cgroupPids);
    if (!pids.length) break;
    for (const d of dirs) thawTree(d);
    for (const pid of pids) {
      if (!killed.has(pid)) killed.set(pid, describePid(pid));
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* exited */
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return [...killed.values()];
}

/** Remove cgroup directories, deepest first (they must be empty of processes). */
export function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) removeCgroupTree(path.join(dir, d.name));
  rmdirSync(dir);
}

/**
 * conmon processes by the container they monitor (`conmon -c <id>`): with the
 * cgroupfs manager they live in one shared `libpod_parent/conmon` cgroup, so
 * an orphaned container's conmon is found by its arguments, not its cgroup.
 */
export function conmonsByContainer(proc = '/proc'): Map<string, number[]> {
  const by = new Map<string, number[]>();
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`${proc}/${entry}/comm`, 'utf8').trim() !== 'conmon') continue;
      const args = readFileSync(`${proc}/${entry}/cmdline`, 'utf8').split('\0');
      const i = args.indexOf('-c');
      const id = i >= 0 ? args[i + 1] : undefined;
      if (id && /^[0-9a-f]{64}$/.test(id)) by.set(id, [...(by.get(id) ?? []), Number(entry)]);
    } catch {
      /* gone */
    }
  }
  return by;
}

/** SIGKILL the pids; returns what they were. */
export function killPids(pids: number[]): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const pid of pids) {
    const p = describePid(pid);
    try {
      process.kill(pid, 'SIGKILL');
      out.push(p);
    } catch {
      /* exited */
    }
  }
  return out;
}
