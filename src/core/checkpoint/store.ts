/**
 * The checkpoint store: one directory per checkpoint on the storage
 * filesystem, holding a captured state (CRIU images, a read-only rootfs
 * snapshot, the OCI config) and its record. A checkpoint is captured in the
 * staging area and renamed into the store complete, so the store never holds
 * half of one.
 *
 *   <store>/<id>/meta.json, images/, rootfs (subvolume), config.json, devshm-checkpoint.tar
 *   <store>/heads/<container id>   the checkpoint the container last came from
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import type { CaptureMode } from '../state/capture-mode.js';
import type { Layout } from '../../drivers/layout.js';
import { writeFileAtomic } from '../../drivers/archive.js';
import { TforkError } from '../../errors.js';
import { discardScratch, type CapturedState } from '../state/capture.js';
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
    n += e.isDirectory() ? treeBytes(f) : statSync(f).size;
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
  const rec: Record_ = { ...info, path: dir, sizeBytes, state: moved };
  writeFileAtomic(path.join(dir, 'meta.json'), `${JSON.stringify(rec, null, 2)}\n`);
  return publicInfo(rec);
}

function publicInfo(r: Record_): CheckpointInfo {
  const { state, ...info } = r;
  void state;
  return info;
}

function readRecord(l: Layout, id: string): Record_ {
  const meta = path.join(dirOf(l, id), 'meta.json');
  if (!existsSync(meta)) throw new TforkError('E_NOT_FOUND', `no such checkpoint: ${id}`, { suggestions: ['podman-tfork checkpoint list'] });
  return JSON.parse(readFileSync(meta, 'utf8')) as Record_;
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

export async function removeStored(l: Layout, id: string): Promise<void> {
  readRecord(l, id);
  // Out of the listing first (one rename): a removal killed half way leaves an unlisted
  // `.rm-<id>-<pid>` that cleanup removes, never a listed checkpoint without its images.
  const doomed = path.join(l.checkpointStore, `.rm-${id}-${process.pid}`);
  renameSync(dirOf(l, id), doomed);
  killPoint('checkpoint-rm');
  await discardScratch(doomed);
}

/** Store directories without a record, older than `minAgeMs` (a checkpoint's record is written right after its directory is moved in). */
export function checkpointHalves(l: Layout, minAgeMs = 60_000): string[] {
  if (!existsSync(l.checkpointStore)) return [];
  const names = readdirSync(l.checkpointStore);
  const unrecorded = names
    .filter((id) => ID_RE.test(id) && id !== 'heads')
    .map((id) => path.join(l.checkpointStore, id))
    .filter((d) => !existsSync(path.join(d, 'meta.json')) && Date.now() - statSync(d).mtimeMs > minAgeMs);
  // Removals whose process is gone.
  const removing = names.filter((n) => /^\.rm-.+-(\d+)$/.test(n) && !pidAlive(Number(/-(\d+)$/.exec(n)![1]))).map((n) => path.join(l.checkpointStore, n));
  return [...unrecorded, ...removing];
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
