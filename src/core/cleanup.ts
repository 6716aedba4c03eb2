/**
 * What crashed commands can leave behind, found and removed: operations
 * whose process died (rolled back from their journal record, recover.ts),
 * processes still running in the cgroups of containers podman no longer
 * knows (killed and reported), subvolumes no
 * podman layer owns, staging snapshots of operations whose process is gone,
 * empty cgroups of containers that no longer exist, stale mounts of the
 * project's scratch areas, locks of dead processes, and the per-container
 * records (commit ledger, checkpoint head) of containers removed since.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../drivers/layout.js';
import { createSubvolume, deleteSubvolume, isSubvolume } from '../drivers/btrfs.js';
import { mounts, pidAlive } from '../drivers/host.js';
import { umount } from '../drivers/mount.js';
import { ledgerIds } from '../drivers/commit-ledger.js';
import { staleLocks } from '../drivers/lock.js';
import { current, writeStatus, type PersistStatus } from './persist/job.js';
import { checkpointHalves, headIds } from './checkpoint/store.js';
import { staleTracking } from './checkpoint/tracking.js';
import type { Podman } from '../drivers/podman.js';
import { cgroupParents, cgroupPids, conmonsByContainer, containerCgroups, describePid, removeCgroupTree, CGROUP_PARENT } from '../drivers/cgroups.js';
import { knownContainerIds } from '../drivers/known-containers.js';
import { specIds } from '../drivers/containers.js';
import { deadOps, journalDir, type OpRecord } from './journal.js';
import { describeOp, killLeftovers, recoverOp, type RecoveryReport } from './recover.js';

export interface CleanupItem {
  kind: 'broken-layer' | 'operation' | 'process' | 'subvolume' | 'staging' | 'cgroup' | 'mount' | 'partial-archive' | 'lock' | 'record';
  path: string;
  reason: string;
  /** operation: what rolling it back does, one line each; process: the processes. */
  plan?: string[];
  /** process: the container whose cgroups hold them. */
  containerId?: string;
}

export interface CleanupResult extends CleanupItem {
  removed: boolean;
  error?: string;
  /** operation: what its rollback did; process: what was killed. */
  recovery?: RecoveryReport;
  killed?: { pid: number; comm: string }[];
}

export { CGROUP_PARENT };

/** Layer ids podman's storage knows (btrfs driver: one subvolume per layer). */
export function knownLayers(l: Layout): Set<string> | undefined {
  const ids = new Set<string>();
  const files = [path.join(l.graphroot, 'btrfs-layers', 'layers.json'), path.join(l.runroot, 'btrfs-layers', 'volatile-layers.json')];
  if (!existsSync(files[0]!)) return undefined;
  for (const f of files) {
    if (!existsSync(f)) continue;
    for (const layer of JSON.parse(readFileSync(f, 'utf8')) as { id: string }[]) ids.add(layer.id);
  }
  return ids;
}

/**
 * Layers podman marked incomplete (being created or removed) whose subvolume
 * is gone: podman retries their removal on every start and fails on the
 * missing directory, so its storage stays unusable until the directory exists.
 */
export function brokenLayers(l: Layout, minAgeMs = YOUNG_MS): string[] {
  try {
    const list = JSON.parse(readFileSync(path.join(l.graphroot, 'btrfs-layers', 'layers.json'), 'utf8')) as { id: string; created?: string; flags?: Record<string, unknown> }[];
    // A layer being created right now is incomplete and has no subvolume yet either: only old ones.
    const old = (x: { created?: string }) => !x.created || Date.now() - Date.parse(x.created) >= minAgeMs;
    return list.filter((x) => x.flags?.incomplete && old(x) && !existsSync(path.join(l.graphroot, 'btrfs', 'subvolumes', x.id))).map((x) => x.id);
  } catch {
    return [];
  }
}

/** Container ids in podman's storage right now. */
function storageContainerIds(l: Layout): string[] {
  try {
    return (JSON.parse(readFileSync(path.join(l.graphroot, 'btrfs-containers', 'containers.json'), 'utf8')) as { id: string }[]).map((c) => c.id);
  } catch {
    return [];
  }
}

/** An operation directory is live while the process named in its `owner` file runs. */
export function opIsLive(dir: string): boolean {
  try {
    const pid = Number(readFileSync(path.join(dir, 'owner'), 'utf8').trim());
    return pid > 0 && pidAlive(pid);
  } catch {
    // No owner file yet: an operation being created right now; leave it a minute.
    return Date.now() - statSync(dir).mtimeMs < 60_000;
  }
}

function cgroupDirs(): string[] {
  return cgroupParents();
}

function brokenLayerItems(l: Layout, minAgeMs?: number): CleanupItem[] {
  return brokenLayers(l, minAgeMs).map((id) => ({
    kind: 'broken-layer',
    path: path.join(l.graphroot, 'btrfs', 'subvolumes', id),
    reason: 'podman left this layer half-removed without its subvolume, and every podman command fails on it; an empty subvolume lets podman finish removing it',
  }));
}

/** A dead operation as a cleanup item. */
function operationItem(l: Layout, r: OpRecord): CleanupItem {
  const pid = r.owner.split(' ')[0];
  return {
    kind: 'operation',
    path: path.join(journalDir(l), `${r.id}.json`),
    reason: `${r.op}${r.subject ? ` of ${r.subject.name}` : ''} started ${r.startedAt} by pid ${pid}, which is gone`,
    plan: describeOp(r),
  };
}

function cgroupEmpty(dir: string): boolean {
  for (const f of ['cgroup.procs', 'tasks']) {
    try {
      if (readFileSync(path.join(dir, f), 'utf8').trim()) return false;
    } catch {
      /* not in this hierarchy */
    }
  }
  return readdirSync(dir, { withFileTypes: true }).every((d) => !d.isDirectory() || cgroupEmpty(path.join(dir, d.name)));
}

/** Subvolumes cleanup leaves alone however orphaned they look: made in the last two minutes. */
const YOUNG_MS = 120_000;

function ageMs(p: string): number {
  try {
    return Date.now() - statSync(p).ctimeMs;
  } catch {
    return 0;
  }
}

/** The sub-cgroup crun restores through on cgroup v1 hierarchies (its dummy process waits there). */
const PROXY_CGROUP = '.proxy-crun';

/**
 * `minAgeMs`: subvolumes made more recently are left alone (default two minutes,
 * for a cleanup running beside other podman work); tests that just failed an
 * operation on purpose pass 0 to see everything it left.
 */
export async function planCleanup(l: Layout, liveContainerIds: Set<string>, o: { minAgeMs?: number } = {}): Promise<CleanupItem[]> {
  const minAgeMs = o.minAgeMs ?? YOUNG_MS;
  const items: CleanupItem[] = deadOps(l).reverse().map((r) => operationItem(l, r));
  // Processes in the cgroups of containers no podman knows: what a removed half-made clone left running.
  const cgroups = containerCgroups();
  const conmons = conmonsByContainer();
  for (const id of new Set([...cgroups.keys(), ...conmons.keys()])) {
    if (liveContainerIds.has(id)) continue;
    const dirs = cgroups.get(id) ?? [];
    const pids = [...(conmons.get(id) ?? []), ...dirs.flatMap(cgroupPids)];
    if (!pids.length) continue;
    const procs = [...new Set(pids)].map(describePid);
    items.push({
      kind: 'process',
      path: dirs[0] ?? `conmon of ${id}`,
      containerId: id,
      reason: `${procs.length} process${procs.length === 1 ? '' : 'es'} in the cgroups of container ${id.slice(0, 12)}, which podman no longer knows`,
      plan: procs.map((p) => `kill ${p.pid} ${p.comm}`),
    });
  }
  const subvolDir = path.join(l.graphroot, 'btrfs', 'subvolumes');
  // The subvolumes first, podman's layer records second: a layer being created while we look
  // has its record written before its subvolume, so a subvolume listed here without a record
  // read after it is not one podman is making. Young ones are left alone all the same.
  const subvolumes = existsSync(subvolDir) ? readdirSync(subvolDir) : [];
  const layers = knownLayers(l);
  if (layers) {
    for (const id of subvolumes) {
      const p = path.join(subvolDir, id);
      if (!layers.has(id) && ageMs(p) >= minAgeMs && (await isSubvolume(p))) {
        items.push({ kind: 'subvolume', path: path.join(subvolDir, id), reason: 'no podman layer owns it' });
      }
    }
  }
  for (const base of [l.staging, l.shmStaging]) {
    if (!existsSync(base)) continue;
    for (const op of readdirSync(base)) {
      const dir = path.join(base, op);
      if (!opIsLive(dir)) items.push({ kind: 'staging', path: dir, reason: 'the clone operation that made it is gone' });
    }
  }
  // A checkpoint removal or store killed half way (one a dead operation journaled is rolled back above).
  const journaled = new Set(deadOps(l).flatMap((r) => Object.values(r.entries).flatMap((e) => (e.kind === 'stored-checkpoint' ? [e.path] : []))));
  for (const dir of checkpointHalves(l)) {
    if (!journaled.has(dir)) items.push({ kind: 'staging', path: dir, reason: 'half of a checkpoint: a command stored or removed it and died' });
  }
  for (const dir of staleTracking(l, minAgeMs)) items.push({ kind: 'record', path: dir, reason: 'written-page tracking whose holder is gone (its container stopped)' });
  if (existsSync(l.checkpoints)) {
    for (const f of readdirSync(l.checkpoints)) {
      const m = /^\.(.+)\.(tar\.part|log)$/.exec(f);
      if (!m) continue;
      const status = path.join(l.checkpoints, `${m[1]}.json`);
      const alive = existsSync(status)
        ? current(JSON.parse(readFileSync(status, 'utf8')) as PersistStatus).state === 'in-flight'
        : Date.now() - statSync(path.join(l.checkpoints, f)).mtimeMs < 60_000;
      if (!alive) items.push({ kind: 'partial-archive', path: path.join(l.checkpoints, f), reason: 'its durable checkpoint writer is gone' });
    }
  }
  for (const root of cgroupDirs()) {
    for (const name of readdirSync(root)) {
      const m = /^libpod-(?:conmon-)?([0-9a-f]{64})$/.exec(name);
      const dir = path.join(root, name);
      if (m && !liveContainerIds.has(m[1]!) && statSync(dir).isDirectory() && cgroupEmpty(dir)) {
        items.push({ kind: 'cgroup', path: dir, reason: 'empty, and its container is gone' });
      }
      // What a failed restore left with stock crun (crun-patches/0002): while it is there, the
      // container can neither start nor be restored. A restore in flight has its proxy in it.
      const proxy = path.join(dir, PROXY_CGROUP);
      if (m && liveContainerIds.has(m[1]!) && existsSync(proxy) && cgroupEmpty(proxy) && Date.now() - statSync(proxy).mtimeMs >= minAgeMs) {
        items.push({ kind: 'cgroup', path: proxy, reason: "crun's restore proxy cgroup, left by a failed restore: the container cannot start or be restored while it is there" });
      }
    }
  }
  for (const m of mounts()) {
    if (m.target.startsWith(`${l.staging}/`)) {
      const op = m.target.slice(l.staging.length + 1).split('/')[0]!;
      if (!opIsLive(path.join(l.staging, op))) items.push({ kind: 'mount', path: m.target, reason: 'scratch mount of a finished clone operation' });
    }
  }
  for (const dir of staleLocks(l)) items.push({ kind: 'lock', path: dir, reason: 'the process holding it is gone' });
  // Read storage again: a container created since the caller listed them is not gone.
  const known = new Set([...liveContainerIds, ...storageContainerIds(l)]);
  for (const r of [
    ...ledgerIds(l).map((x) => ({ ...x, what: 'commit ledger' })),
    ...headIds(l).map((x) => ({ ...x, what: 'checkpoint head' })),
    ...specIds(l).map((x) => ({ ...x, what: 'kept clone spec' })),
  ]) {
    if (!known.has(r.id)) items.push({ kind: 'record', path: r.path, reason: `${r.what} of a removed container` });
  }
  // Unmount first, then delete deepest paths first.
  items.push(...brokenLayerItems(l, minAgeMs));
  // podman fails on broken layers until they are repaired, and rolling operations back asks podman: those first.
  const order = { 'broken-layer': -3, operation: -2, process: -1, mount: 0, cgroup: 1, staging: 2, subvolume: 3, 'partial-archive': 5, lock: 6, record: 7 };
  return items.sort((a, b) => order[a.kind] - order[b.kind] || (a.kind === 'operation' ? 0 : b.path.length - a.path.length));
}

async function removeStaging(dir: string): Promise<void> {
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const p = path.join(dir, name);
    if (await isSubvolume(p)) await deleteSubvolume(p);
  }
  rmSync(dir, { recursive: true, force: true });
}

const rmCgroupTree = removeCgroupTree;

/** The status of a durable checkpoint whose writer died says so on disk (not only while its pid stays unused). */
function markFailed(partOrLog: string): void {
  const m = /^\.(.+)\.(tar\.part|log)$/.exec(path.basename(partOrLog));
  const file = m && path.join(path.dirname(partOrLog), `${m[1]}.json`);
  if (!file || !existsSync(file)) return;
  const s = current(JSON.parse(readFileSync(file, 'utf8')) as PersistStatus);
  if (s.state === 'failed' && s.error && !s.finishedAt) writeStatus({ ...s, finishedAt: new Date().toISOString() });
}

/** Remove the items; operations and processes need podman (to re-read what it knows right before acting). */
export async function executeCleanup(items: CleanupItem[], ctx?: { l: Layout; podman: Podman }): Promise<CleanupResult[]> {
  const out: CleanupResult[] = [];
  for (const it of items) {
    try {
      if (it.kind === 'operation' || it.kind === 'process') {
        if (!ctx) throw new Error('needs podman');
        if (it.kind === 'operation') {
          const op = deadOps(ctx.l).find((r) => path.join(journalDir(ctx.l), `${r.id}.json`) === it.path);
          if (!op) {
            out.push({ ...it, removed: true });
            continue;
          }
          const recovery = await recoverOp(ctx.l, ctx.podman, op);
          out.push({ ...it, removed: !recovery.errors.length, recovery, ...(recovery.errors.length ? { error: recovery.errors.join('; ') } : {}) });
        } else {
          const killed = await killLeftovers(ctx.l, ctx.podman, it.containerId!);
          for (const d of containerCgroups().get(it.containerId!) ?? []) rmCgroupTree(d);
          out.push({ ...it, removed: true, killed });
        }
        continue;
      }
      if (it.kind === 'mount') await umount(it.path, { lazy: true });
      else if (it.kind === 'cgroup') rmCgroupTree(it.path);
      else if (it.kind === 'staging') await removeStaging(it.path);
      else if (it.kind === 'partial-archive') {
        rmSync(it.path, { force: true });
        markFailed(it.path);
      } else if (it.kind === 'record' || it.kind === 'lock') rmSync(it.path, { recursive: true, force: true });
      else if (it.kind === 'broken-layer') await createSubvolume(it.path);
      else await deleteSubvolume(it.path);
      out.push({ ...it, removed: true });
    } catch (err) {
      out.push({ ...it, removed: false, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return out;
}

/**
 * `podman-tfork cleanup`: dead operations are rolled back first (which removes
 * their half-made clones), then what is left is planned again and removed,
 * each decision on podman's state read right before it.
 */
export async function runCleanup(l: Layout, podman: Podman, o: { dryRun?: boolean } = {}): Promise<CleanupResult[]> {
  // podman itself may fail until its broken layers are repaired: those first, before asking it anything.
  const repaired = o.dryRun ? [] : await executeCleanup(brokenLayerItems(l));
  const plan = await planCleanup(l, await knownContainerIds(l, podman));
  if (o.dryRun) return plan.map((p) => ({ ...p, removed: false }));
  const results = [...repaired, ...(await executeCleanup(plan.filter((i) => i.kind === 'operation'), { l, podman }))];
  const failedOps = new Set(results.filter((r) => !r.removed).map((r) => r.path));
  const rest = (await planCleanup(l, await knownContainerIds(l, podman))).filter((i) => i.kind !== 'operation' && !failedOps.has(i.path));
  return [...results, ...(await executeCleanup(rest, { l, podman }))];
}
