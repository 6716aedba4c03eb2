/**
 * The checkpoint store: one directory per checkpoint on the storage
 * filesystem, holding a captured state (CRIU images, a read-only rootfs
 * snapshot, the OCI config) and its record. A checkpoint is captured in the
 * staging area and renamed into the store complete, so the store never holds
 * half of one.
 *
 *   <store>/<id>/meta.json, images/, rootfs (subvolume), config.json, devshm-checkpoint.tar
 *   <store>/heads/<container id>   the checkpoint the container last came from
 *
 * An incremental checkpoint's images hold only the pages written since its
 * `imagesParent`, whose images CRIU reads for the rest (images/parent links
 * there). Removing a checkpoint that others stand on only takes it out of
 * the listing (meta.json becomes held.json); its directory goes with the
 * last checkpoint standing on it.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import type { CaptureMode } from '../state/capture-mode.js';
import type { Layout } from '../../drivers/layout.js';
import { writeFileAtomic } from '../../drivers/archive.js';
import { TforkError } from '../../errors.js';
import { discardScratch, type CapturedState } from '../state/capture.js';
import { relinkRelative } from '../../drivers/files.js';
import { readBaseline, stopTracking, trackDir, withTrackingLock } from './tracking.js';
import { killPoint } from '../fault.js';
import { pidAlive } from '../../drivers/host.js';

export interface CheckpointInfo {
  id: string;
  container: { id: string; name: string };
  image: string;
  createdAt: string;
  /** Bytes of CRIU images (the rootfs snapshot shares its blocks with the container). */
  sizeBytes: number;
  path: string;
  /** The checkpoint the container came from when this one was taken (rollback or earlier checkpoint). */
  parent?: string;
  timings: { dumpMs: number; frozenMs?: number; snapshotMs?: number; totalMs: number };
  /** How the memory was captured: written after the container ran on (background) or while it was frozen. */
  capture?: CaptureMode;
  /** Incremental: the checkpoint whose images hold the pages not written since (tracking.ts). */
  imagesParent?: string;
  /** Why the checkpoint is full or incremental. */
  memory?: string;
}

interface Record_ extends CheckpointInfo {
  state: CapturedState;
}

const ID_RE = /^[a-z0-9][a-z0-9-]*$/;

export function newCheckpointId(): string {
  return `ck-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

function dirOf(l: Layout, id: string): string {
  if (!ID_RE.test(id)) throw new TforkError('E_USAGE', `invalid checkpoint id ${JSON.stringify(id)}`);
  return path.join(l.checkpointStore, id);
}

function treeBytes(p: string): number {
  let n = 0;
  for (const e of readdirSync(p, { withFileTypes: true })) {
    const f = path.join(p, e.name);
    n += e.isDirectory() ? treeBytes(f) : lstatSync(f).size;
  }
  return n;
}

/** Move a captured state into the store under `info.id`; returns the stored record. */
export function storeCheckpoint(l: Layout, state: CapturedState, info: Omit<CheckpointInfo, 'path' | 'sizeBytes'>): CheckpointInfo {
  mkdirSync(l.checkpointStore, { recursive: true });
  const dir = dirOf(l, info.id);
  const rel = (p: string | undefined) => (p ? path.join(dir, path.relative(state.dir, p)) : undefined);
  const sizeBytes = treeBytes(state.images) + (state.devshm ? statSync(state.devshm).size : 0);
  renameSync(state.dir, dir);
  killPoint('store');
  const moved: CapturedState = { ...state, dir, images: rel(state.images)!, rootfs: rel(state.rootfs)!, config: rel(state.config)!, devshm: rel(state.devshm) };
  // An incremental checkpoint's link to its parent's images: relative, within the store.
  relinkRelative(path.join(moved.images, 'parent'));
  const rec: Record_ = { ...info, path: dir, sizeBytes, state: moved };
  writeFileAtomic(path.join(dir, 'meta.json'), `${JSON.stringify(rec, null, 2)}\n`);
  return publicInfo(rec);
}

function publicInfo(r: Record_): CheckpointInfo {
  const { state, ...info } = r;
  void state;
  return info;
}

const HELD = 'held.json';

function readRecord(l: Layout, id: string): Record_ {
  const meta = path.join(dirOf(l, id), 'meta.json');
  if (!existsSync(meta)) throw new TforkError('E_NOT_FOUND', `no such checkpoint: ${id}`, { suggestions: ['podman-tfork checkpoint list'] });
  return JSON.parse(readFileSync(meta, 'utf8')) as Record_;
}

/** Every record in the store, listed or held for the checkpoints standing on it. */
function allRecords(l: Layout): { rec: Record_; held: boolean }[] {
  if (!existsSync(l.checkpointStore)) return [];
  const out: { rec: Record_; held: boolean }[] = [];
  for (const id of readdirSync(l.checkpointStore)) {
    if (!ID_RE.test(id)) continue;
    for (const [f, held] of [['meta.json', false], [HELD, true]] as const) {
      const p = path.join(l.checkpointStore, id, f);
      if (existsSync(p)) out.push({ rec: JSON.parse(readFileSync(p, 'utf8')) as Record_, held });
    }
  }
  return out;
}

/** How many checkpoints `id`'s images stand on, itself included; undefined when it is not listed. */
export function chainLength(l: Layout, id: string): number | undefined {
  const recs = new Map(allRecords(l).map((r) => [r.rec.id, r]));
  if (!recs.get(id) || recs.get(id)!.held) return undefined;
  let n = 0;
  for (let at: string | undefined = id; at && n <= recs.size; at = recs.get(at)?.rec.imagesParent) n++;
  return n;
}

export function checkpointState(l: Layout, id: string): { info: CheckpointInfo; state: CapturedState } {
  const r = readRecord(l, id);
  return { info: publicInfo(r), state: r.state };
}

export function listStored(l: Layout): CheckpointInfo[] {
  if (!existsSync(l.checkpointStore)) return [];
  return readdirSync(l.checkpointStore)
    .filter((id) => ID_RE.test(id) && existsSync(path.join(l.checkpointStore, id, 'meta.json')))
    .map((id) => publicInfo(readRecord(l, id)))
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Removed checkpoints whose images later incremental ones still read: out of the listing, on disk until the last of those goes. */
export function heldStored(l: Layout): CheckpointInfo[] {
  return allRecords(l)
    .filter((r) => r.held)
    .map((r) => publicInfo(r.rec))
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

export async function removeStored(l: Layout, id: string): Promise<void> {
  const first = readRecord(l, id);
  await withTrackingLock(l, first.container, undefined, async () => {
    await removeUnlocked(l, id);
    // No checkpoint can be written against a removed baseline (the next one is full): the tracking
    // ends now, outside any dump, rather than be lent to the next live clone's capture (CRIU 0028,
    // ~0.1 s more frozen per GiB) or stopped inside the next checkpoint's time.
    if (readBaseline(trackDir(l, first.container.id)) === id) await stopTracking(l, first.container.id);
  });
}

async function removeUnlocked(l: Layout, id: string): Promise<void> {
  let rec: Record_ | undefined = readRecord(l, id);
  const all = allRecords(l);
  if (all.some((r) => r.rec.imagesParent === id)) {
    // Others read its images: out of the listing, kept until the last of them goes.
    renameSync(path.join(dirOf(l, id), 'meta.json'), path.join(dirOf(l, id), HELD));
    return;
  }
  // Then each held checkpoint it was the last to stand on.
  while (rec) {
    // Out of the listing first (one rename): a removal killed half way leaves an unlisted
    // `.rm-<id>-<pid>` that cleanup removes, never a listed checkpoint without its images.
    const doomed = path.join(l.checkpointStore, `.rm-${rec.id}-${process.pid}`);
    renameSync(dirOf(l, rec.id), doomed);
    killPoint('checkpoint-rm');
    await discardScratch(doomed);
    const parent: string | undefined = rec.imagesParent;
    const held: { rec: Record_; held: boolean } | undefined = parent ? all.find((r) => r.rec.id === parent && r.held) : undefined;
    rec = held && !allRecords(l).some((r) => r.rec.imagesParent === parent) ? held.rec : undefined;
  }
}

/** Store directories without a record, older than `minAgeMs` (a checkpoint's record is written right after its directory is moved in). */
export function checkpointHalves(l: Layout, minAgeMs = 60_000): string[] {
  if (!existsSync(l.checkpointStore)) return [];
  const names = readdirSync(l.checkpointStore);
  const unrecorded = names
    .filter((id) => ID_RE.test(id) && id !== 'heads')
    .map((id) => path.join(l.checkpointStore, id))
    .filter((d) => !existsSync(path.join(d, 'meta.json')) && !existsSync(path.join(d, HELD)) && Date.now() - statSync(d).mtimeMs > minAgeMs);
  // Held checkpoints nothing stands on any more (a removal killed between its steps).
  const all = allRecords(l);
  const orphans = all.filter((r) => r.held && !all.some((o) => o.rec.imagesParent === r.rec.id)).map((r) => dirOf(l, r.rec.id));
  // Removals whose process is gone.
  const removing = names.filter((n) => /^\.rm-.+-(\d+)$/.test(n) && !pidAlive(Number(/-(\d+)$/.exec(n)![1]))).map((n) => path.join(l.checkpointStore, n));
  return [...unrecorded, ...orphans, ...removing];
}

export function headOf(l: Layout, containerId: string): string | undefined {
  const f = path.join(l.checkpointStore, 'heads', containerId);
  return existsSync(f) ? readFileSync(f, 'utf8').trim() || undefined : undefined;
}

export function setHead(l: Layout, containerId: string, id: string): void {
  mkdirSync(path.join(l.checkpointStore, 'heads'), { recursive: true });
  writeFileAtomic(path.join(l.checkpointStore, 'heads', containerId), `${id}\n`);
}

/** Containers that have a head record (for cleanup of the ones that are gone). */
export function headIds(l: Layout): { id: string; path: string }[] {
  const dir = path.join(l.checkpointStore, 'heads');
  return existsSync(dir) ? readdirSync(dir).map((id) => ({ id, path: path.join(dir, id) })) : [];
}
