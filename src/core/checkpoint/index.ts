/**
 * Checkpoint and rollback of one running container.
 *
 *   checkpoint: capture (one CRIU dump, the container keeps running; a
 *               read-only rootfs snapshot at the frozen instant) -> store
 *   rollback:   stop the container -> place the checkpoint's state into it
 *               (writable snapshot, links to the stored images, its config) -> restore
 *
 * The container keeps its name and id across a rollback. A checkpoint of one
 * container can be rolled into another made from the same image: that is how
 * a winning clone's state becomes its source's (commit).
 */
import { cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { layout as defaultLayout, type Layout } from '../../drivers/layout.js';
import { Podman } from '../../drivers/podman.js';
import { inspectContainer, stopContainer, type ContainerInfo } from '../../drivers/containers.js';
import { thaw } from '../../drivers/freezer.js';
import { asTforkError, TforkError } from '../../errors.js';
import { DEFAULT_GHOST_LIMIT } from '../clone/plan.js';
import { assertCapturable, captureState, discardScratch, inspectForCapture, memoryScratch, scratchDir, withContainerLock, type CapturedState } from '../state/capture.js';
import { captureMode } from '../state/capture-mode.js';
import { containerMemoryBytes } from '../../drivers/memory.js';
import { placeState, restoreContainer, targetOf } from '../state/place.js';
import { Journal } from '../journal.js';
import { killPoint, killPointAfter } from '../fault.js';
import { recoverContainer } from '../recover.js';
import { chainLength, checkpointState, headOf, heldStored, listStored, newCheckpointId, removeStored, setHead, storeCheckpoint, type CheckpointInfo } from './store.js';
import { planTracking, stopTracking, trackingSupport, tracksAfterBackground, withTrackingLock, writeBaseline } from './tracking.js';

/** A frozen capture of a source holding this much memory writes its images in memory first (see createCheckpoint). */
const IMAGES_IN_MEMORY_FROM = 256 * 2 ** 20;

export type { CheckpointInfo } from './store.js';

interface Deps {
  layout?: Layout;
  podman?: Podman;
}

function deps(d: Deps): { l: Layout; podman: Podman } {
  const l = d.layout ?? defaultLayout();
  return { l, podman: d.podman ?? new Podman(l) };
}

export interface CheckpointOptions {
  signal?: AbortSignal;
  /** Established TCP connections come back closed after a rollback (default true). */
  tcpClose?: boolean;
  /** Stop the container after the capture instead of leaving it running. */
  stop?: boolean;
}

/** Capture the container's full state (memory, processes, files); it keeps running. */
export async function createCheckpoint(container: string, o: CheckpointOptions = {}, d: Deps = {}): Promise<CheckpointInfo> {
  const { l, podman } = deps(d);
  const t0 = performance.now();
  const src = await inspectForCapture(podman, l, container, o.signal);
  await assertCapturable(src);
  await recoverContainer(l, podman, src.id);
  const journal = Journal.begin(l, 'checkpoint', { id: src.id, name: src.name });
  const scratch = scratchDir(l, 'checkpoint');
  let shm: string | undefined;
  journal.add({ kind: 'scratch', path: scratch });
  journal.add({ kind: 'thaw', containerId: src.id, name: src.name, bundle: src.bundle });
  try {
    // One checkpoint of a container at a time from planning to its baseline (tracking.ts): a
    // checkpoint written against X must be dumped by the CRIU that took over X's tracking.
    const info = await withTrackingLock(l, src, o.signal, async () => {
      // Incremental when this host can track written pages. An increment is captured frozen: the
      // tracking holds the userfaultfd, and it writes little. The checkpoint that starts a chain is
      // captured in the background where CRIU arms the tracking in a second short freeze once its
      // pages are written (patch 0023); frozen where it can't.
      const tracking = !o.stop && trackingSupport(l).ok ? planTracking(l, src.id, headOf(l, src.id), (id) => chainLength(l, id)) : undefined;
      // A container that is stopped afterwards gains nothing from running on while its pages are written.
      const sourceBytes = containerMemoryBytes(src.pid);
      const frozenForTracking = !!tracking && (!!tracking.parent || !tracksAfterBackground(l));
      const capture = o.stop || frozenForTracking ? 'frozen' : captureMode(l, process.env).mode;
      if (capture === 'background' || o.stop) await stopTracking(l, src.id);
      // (a chain that starts with a background capture: the old holder is gone, CRIU's new one goes here)
      if (tracking && capture === 'background') mkdirSync(tracking.dir, { recursive: true });
      // A large frozen capture writes its images in memory when they fit, and they move to the store
      // after the source runs on: its pause is then not the storage's write speed (1 GiB: 4.5 s on the
      // storage filesystem here, under 1 s in memory). A small one goes to the page cache as fast,
      // and the move would only add to its time.
      const large = (sourceBytes ?? 0) >= IMAGES_IN_MEMORY_FROM;
      shm = capture === 'frozen' && !o.stop && large ? memoryScratch(l, sourceBytes) : undefined;
      if (shm) journal.add({ kind: 'scratch', path: shm });
      const captured = await captureState(podman, l, src, scratch, {
        leaveRunning: !o.stop,
        tcpClose: o.tcpClose ?? true,
        ghostLimit: DEFAULT_GHOST_LIMIT,
        signal: o.signal,
        background: capture === 'background',
        trackWritten: tracking && {
          dir: tracking.dir,
          parentImages: tracking.parent ? checkpointState(l, tracking.parent).state.images : undefined,
        },
        imagesDir: shm && path.join(shm, 'images'),
      });
      if (!o.stop) thaw(src.id);
      const state = shm ? moveImages(captured, path.join(scratch, 'images')) : captured;
      if (shm) await discardScratch(shm);
      const id = newCheckpointId();
      journal.add({ kind: 'stored-checkpoint', id, path: path.join(l.checkpointStore, id) });
      const info = storeCheckpoint(l, state, {
        id,
        container: { id: src.id, name: src.name },
        image: src.image,
        createdAt: new Date().toISOString(),
        parent: headOf(l, src.id),
        timings: { ...state.timings, totalMs: performance.now() - t0 },
        capture: captured.retriedFrozen ? 'frozen' : capture,
        imagesParent: tracking?.parent,
        memory: tracking?.reason,
      });
      setHead(l, src.id, id);
      if (tracking) writeBaseline(tracking.dir, id);
      return info;
    });
    journal.end();
    return info;
  } catch (err) {
    thaw(src.id);
    await Promise.all([discardScratch(scratch), shm && discardScratch(shm)]).then(() => journal.end(), () => undefined);
    throw asTforkError(err).inPhase('checkpoint');
  }
}

/** The captured images copied from memory to `to` (links kept as links: an incremental one's parent). */
function moveImages(state: CapturedState, to: string): CapturedState {
  cpSync(state.images, to, { recursive: true, verbatimSymlinks: true });
  return { ...state, images: to };
}

function ofContainer(list: CheckpointInfo[], container?: string): CheckpointInfo[] {
  if (!container) return list;
  return list.filter((c) => c.container.name === container || c.container.id === container || c.container.id.startsWith(container));
}

/** Checkpoints, oldest first; of one container (name or id) when given. */
export async function listCheckpoints(container?: string, d: Deps = {}): Promise<CheckpointInfo[]> {
  return ofContainer(listStored(deps(d).l), container);
}

/** Removed checkpoints kept on disk for the incremental ones standing on them (store.ts), oldest first. */
export async function heldCheckpoints(container?: string, d: Deps = {}): Promise<CheckpointInfo[]> {
  return ofContainer(heldStored(deps(d).l), container);
}

export async function removeCheckpoint(id: string, d: Deps = {}): Promise<void> {
  await removeStored(deps(d).l, id);
}

/**
 * Keep what the caller says and remove the rest of a container's checkpoints:
 * the newest `keepLast`, and every id in `keep` (those a search still references).
 */
export async function pruneCheckpoints(container: string, rule: { keepLast?: number; keep?: string[] }, d: Deps = {}): Promise<string[]> {
  const list = await listCheckpoints(container, d);
  const keep = new Set([...(rule.keep ?? []), ...list.slice(Math.max(0, list.length - (rule.keepLast ?? 0))).map((c) => c.id)]);
  const removed: string[] = [];
  for (const c of list) {
    if (keep.has(c.id)) continue;
    await removeCheckpoint(c.id, d);
    removed.push(c.id);
  }
  return removed;
}

export interface RollbackReport {
  container: { id: string; name: string };
  checkpoint: string;
  timings: { stopMs: number; placeMs: number; restoreMs: number; totalMs: number };
}

/**
 * Replace the container's running state with the checkpoint's: same name, same
 * id, processes, memory and files as they were at the checkpoint.
 */
export async function rollback(container: string, checkpointId: string, o: { signal?: AbortSignal; tcpClose?: boolean } = {}, d: Deps = {}): Promise<RollbackReport> {
  const { l, podman } = deps(d);
  const signal = o.signal;
  const t0 = performance.now();
  const { info, state } = checkpointState(l, checkpointId);
  const target = await inspectContainer(podman, container, { signal });
  if (target.image !== info.image) {
    throw new TforkError('E_INVALID_STATE', `checkpoint ${info.id} is of image ${info.image}, container ${target.name} runs ${target.image}`);
  }
  await recoverContainer(l, podman, target.id);
  return withContainerLock(l, target, signal, () => rollInto(podman, l, target, info, state, { signal, tcpClose: o.tcpClose ?? true }, t0));
}

async function rollInto(
  podman: Podman,
  l: Layout,
  target: ContainerInfo,
  info: CheckpointInfo,
  state: CapturedState,
  o: { signal?: AbortSignal; tcpClose: boolean },
  t0: number,
): Promise<RollbackReport> {
  const signal = o.signal;
  let phase = 'stop';
  const journal = Journal.begin(l, 'rollback', { id: target.id, name: target.name });
  const scratch = scratchDir(l, 'rollback');
  journal.add({ kind: 'scratch', path: scratch });
  journal.add({ kind: 'rollback', containerId: target.id, name: target.name, checkpoint: info.id, bundle: target.bundle });
  try {
    const stopping = stopContainer(podman, target, { signal });
    await killPointAfter('stop', podman.mode === 'rest' ? 50 : 0);
    await stopping;
    const stopMs = performance.now() - t0;
    // The restored processes are new: what the old ones wrote is no measure for the next checkpoint.
    await stopTracking(l, target.id);
    phase = 'place';
    const t = targetOf(l, target.id);
    await placeState(state, t, { signal, linksIn: scratch });
    killPoint('place');
    const placeMs = performance.now() - t0 - stopMs;
    phase = 'restore';
    const restoreMs = await restoreContainer(podman, t, { scratch, tag: 'rollback', tcpClose: o.tcpClose, signal, fault: process.env.TFORK_FAULT === 'restore:rollback' });
    setHead(l, target.id, info.id);
    return { container: { id: target.id, name: target.name }, checkpoint: info.id, timings: { stopMs, placeMs, restoreMs, totalMs: performance.now() - t0 } };
  } catch (err) {
    throw asTforkError(err)
      .inPhase(phase)
      .withSuggestions([`the container is stopped; retry: podman-tfork rollback ${target.name} ${info.id}`, `or start it afresh: podman-tfork start ${target.name}`]);
  } finally {
    // The container's state is what the report or the error says: nothing is left to roll back.
    await discardScratch(scratch).then(() => journal.end(), () => undefined);
  }
}
