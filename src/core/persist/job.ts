/**
 * Durable checkpoints (--persistent): a podman checkpoint archive, restorable
 * with stock `podman container restore --import`, written next to a status
 * record that says whether it is in flight, done or failed.
 *
 *   <checkpoints>/<id>.tar        the archive, present only once complete
 *   <checkpoints>/.<id>.tar.part  the archive being written
 *   <checkpoints>/<id>.json       the status record (written atomically)
 *   <staging>/persist-<id>/       the writer's scratch: a read-only rootfs snapshot
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';
import type { ContainerInfo } from '../../drivers/containers.js';
import { layerParent } from '../../drivers/containers.js';
import { writeFileAtomic } from '../../drivers/archive.js';
import { snapshot } from '../../drivers/btrfs.js';
import { TforkError } from '../../errors.js';
import type { CapturedState } from '../state/capture.js';
import { discardScratch } from '../state/capture.js';
import { pidAlive } from '../../drivers/host.js';

export type PersistMode = 'sync' | 'async';
export type PersistState = 'in-flight' | 'done' | 'failed';

export interface PersistStatus {
  id: string;
  source: { id: string; name: string };
  mode: PersistMode;
  state: PersistState;
  /** The archive (exists once state is done). */
  path: string;
  statusFile: string;
  createdAt: string;
  finishedAt?: string;
  /** Time the writer took, from the capture to the renamed archive. */
  writeMs?: number;
  sizeBytes?: number;
  error?: string;
  writerPid?: number;
}

export interface PersistJob {
  id: string;
  source: { id: string; name: string };
  mode: PersistMode;
  createdAt: string;
  /** Scratch of the writer, holding `rootfs` (read-only snapshot at the capture instant). */
  dir: string;
  /** The image's top layer the container's rootfs diverged from. */
  baseRootfs?: string;
  partFile: string;
  archive: string;
  statusFile: string;
  fault?: boolean;
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Plan a durable checkpoint of `src`; `where` overrides the directory of the archive (default the checkpoints dir). */
export function preparePersist(l: Layout, src: ContainerInfo, mode: PersistMode, where = l.checkpoints) {
  mkdirSync(where, { recursive: true });
  const now = new Date();
  const id = `${src.name}-${stamp(now)}-${Math.random().toString(36).slice(2, 6)}`;
  const layer = path.basename(src.rootfs);
  const parent = layerParent(l.graphroot, layer);
  const job: PersistJob = {
    id,
    source: { id: src.id, name: src.name },
    mode,
    createdAt: now.toISOString(),
    dir: path.join(l.staging, `persist-${id}`),
    baseRootfs: parent ? path.join(path.dirname(src.rootfs), parent) : undefined,
    partFile: path.join(where, `.${id}.tar.part`),
    archive: path.join(where, `${id}.tar`),
    statusFile: path.join(where, `${id}.json`),
  };
  // Visible as in flight from the start; this process writes it until a detached writer takes over.
  writeStatus(statusOf(job, 'in-flight', { writerPid: process.pid }));
  return {
    job,
    partFile: job.partFile,
    /** Give the writer its own read-only snapshot of the captured rootfs. */
    async snapshotFrom(state: CapturedState): Promise<void> {
      mkdirSync(job.dir, { recursive: true });
      await snapshot(state.rootfs, path.join(job.dir, 'rootfs'), { readonly: true });
    },
    /** Undo everything of this checkpoint (the operation failed). */
    async discard(): Promise<void> {
      if (existsSync(job.dir)) await discardScratch(job.dir);
      for (const f of [job.partFile, job.archive, job.statusFile]) rmSync(f, { force: true });
    },
  };
}

export function statusOf(job: PersistJob, state: PersistState, extra: Partial<PersistStatus> = {}): PersistStatus {
  return { id: job.id, source: job.source, mode: job.mode, state, path: job.archive, statusFile: job.statusFile, createdAt: job.createdAt, ...extra };
}

export function writeStatus(s: PersistStatus): void {
  writeFileAtomic(s.statusFile, `${JSON.stringify(s, null, 2)}\n`);
}

/** A status as it is now: an in-flight record whose writer died is a failure. */
export function current(s: PersistStatus): PersistStatus {
  if (s.state !== 'in-flight') return s;
  if (s.writerPid ? !pidAlive(s.writerPid) : Date.now() - Date.parse(s.createdAt) > 60_000) {
    return { ...s, state: 'failed', error: `the writer${s.writerPid ? ` (pid ${s.writerPid})` : ''} exited without finishing` };
  }
  return s;
}

export function readStatus(l: Layout, id: string): PersistStatus {
  const file = path.join(l.checkpoints, `${id.replace(/\.(tar|json)$/, '')}.json`);
  if (!existsSync(file)) throw new TforkError('E_NOT_FOUND', `no durable checkpoint ${id} in ${l.checkpoints}`);
  return current(JSON.parse(readFileSync(file, 'utf8')) as PersistStatus);
}

export function listStatuses(l: Layout): PersistStatus[] {
  if (!existsSync(l.checkpoints)) return [];
  return readdirSync(l.checkpoints)
    .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
    .map((f) => readStatus(l, f))
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Remove a durable checkpoint (archive and status). */
export function removePersisted(l: Layout, id: string): void {
  const s = readStatus(l, id);
  if (s.state === 'in-flight') throw new TforkError('E_INVALID_STATE', `durable checkpoint ${s.id} is still being written`, { suggestions: [`podman-tfork persist wait ${s.id}`] });
  rmSync(s.path, { force: true });
  rmSync(s.statusFile, { force: true });
}
