/**
 * Capture: the complete state of a running container at one instant, in a
 * scratch directory on the storage filesystem.
 *
 *   freeze + dump (CRIU, through `podman container checkpoint`)
 *     -> snapshot (read-only btrfs snapshot of the rootfs, taken by a CRIU
 *        action script after the dump while the tree is still frozen)
 *     -> resume (CRIU, when the container is left running)
 *     -> pages written (background capture, capture-mode.ts: after the
 *        resume, while the source runs)
 *
 * What podman leaves in the container's bundle is moved into the directory,
 * so the source is left as it was. Live clones, checkpoints and durable
 * archives are all made from a captured state.
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';
import type { Podman } from '../../drivers/podman.js';
import { checkpointContainer, inspectContainer, type ContainerInfo } from '../../drivers/containers.js';
import { deleteSubvolume, isSubvolume } from '../../drivers/btrfs.js';
import { CONTAINER_CRIU_CONF, criuVerbosity, parseDumpTimes, snapshotFiles, snapshotSettled, writeContainerCriuConf, writeSnapshotScript } from '../../drivers/criu-shim.js';
import { criuLogExcerpt, logBesideImages, logTo } from '../../drivers/criu-log.js';
import { freeze } from '../../drivers/freezer.js';
import { writeCgroupYard } from '../../drivers/cgroups.js';
import { removeTree } from '../../drivers/files.js';
import { lockHeld, withLock } from '../../drivers/lock.js';
import { fitsInMemory } from '../../drivers/memory.js';
import { parseCheckpointStats, type CheckpointStats } from '../../drivers/podman-stats.js';
import { assertDumpable } from '../validate/index.js';
import { TforkError } from '../../errors.js';
import { killPointAfter } from '../fault.js';
import { BACKGROUND_PAGES_OPTION, criuHasOption } from './capture-mode.js';
import { KEEP_TRACKING_OPTION, TRACK_WRITTEN_OPTION } from '../checkpoint/tracking.js';
import { GRAFT_PAGES_OPTION } from '../clone/tier.js';

export interface CapturedState {
  /** The scratch directory holding all of it. */
  dir: string;
  /** CRIU images. */
  images: string;
  /** Read-only btrfs snapshot of the root filesystem at the frozen instant. */
  rootfs: string;
  /** podman's tar of the container's /dev/shm, when it has one. */
  devshm?: string;
  /** The container's OCI config at capture time (the restore needs its mount layout). */
  config: string;
  source: { id: string; name: string; rootfs: string; image: string };
  /** podman's export archive (without the root filesystem), when asked for. */
  exportTar?: string;
  timings: {
    /** podman checkpoint: freeze + dump + snapshot (+ resume). */
    dumpMs: number;
    /** How long the container's processes stayed frozen (CRIU's frozen_time; the snapshot happens inside it). */
    frozenMs?: number;
    /** How long the cgroup freezer took to freeze them (CRIU's freezing_time). */
    freezingMs?: number;
    snapshotMs?: number;
    /** A graft capture: when (performance.now()) the source was frozen; it still is. */
    frozenSince?: number;
  };
  /**
   * Set when a background capture failed after the source ran on and was
   * taken again frozen: why (CRIU's words).
   */
  retriedFrozen?: string;
}

export interface CaptureOptions {
  /** Keep the container running (live clone, checkpoint) or stop it (commit of a winner). */
  leaveRunning: boolean;
  tcpClose: boolean;
  ghostLimit: number;
  /** Also have podman write its export archive (config.dump, spec.dump, images) here. */
  exportTo?: string;
  signal?: AbortSignal;
  /** Test fault injection: fail the dump or the snapshot. */
  fault?: 'dump' | 'snapshot';
  /**
   * Have CRIU write the images here (a directory on tmpfs for a live clone,
   * whose copies all read them) instead of into the scratch directory.
   * Not with `exportTo`: podman archives the images from the bundle itself.
   */
  imagesDir?: string;
  /**
   * Write the pages after the source runs on (capture-mode.ts): the source is
   * frozen only while they are drained and write-protected.
   */
  background?: boolean;
  /**
   * Incremental checkpoints (checkpoint/tracking.ts): CRIU's --track-written
   * directory, and the images this dump writes only the changes against.
   */
  trackWritten?: { dir: string; parentImages?: string };
  /**
   * A dump outside the chain (a live clone) of a tracked source: CRIU's
   * --keep-tracking directory. The source is captured in the background and
   * its tracking given back as it was (patch 0028).
   */
  keepTracking?: string;
  /**
   * Tier 2 (clone/tier.ts): freeze the source's cgroup first and leave the
   * private anonymous pages in it. CRIU keeps a cgroup frozen that was frozen
   * before the dump, so the source stays frozen for its copies to graft
   * from; the caller thaws it (on failure too).
   */
  graft?: boolean;
}

const BTRFS = '/usr/bin/btrfs';
/** The dump's action script in a capture's scratch directory (criu-shim.ts writeSnapshotScript). */
const DUMP_HOOK = 'dump-hook';
/** The CRIU option of patch 0007: no conntrack tables in the images. */
const SKIP_CONNTRACK_OPTION = 'skip-conntrack';
/**
 * The CRIU option of patch 0025: CRIU takes the root filesystem's snapshot
 * itself, on a thread from the freeze on, instead of the action script.
 */
const SNAPSHOT_ROOTFS_OPTION = 'snapshot-rootfs';
/** CRIU patch 0038: memory for the frozen copies, faulted in before the freeze. */
const BG_PREFAULT_OPTION = 'bg-prefault';
/**
 * A container's first background capture touches this much (MiB): the OSWorld desktop copies
 * ~12 MiB while frozen. Later captures size it from what the previous one copied
 * (PREFAULT_HINT): the W2 desktop copies ~1.4 MiB, and touching 16 MiB took it ~35 ms.
 */
const BG_PREFAULT_FIRST_MIB = 16;
const BG_PREFAULT_MAX_MIB = 256;
/** In the container's bundle (podman removes it with the container): KiB the last background capture copied while frozen. */
const PREFAULT_HINT = 'tfork-frozen-copies';
/** CRIU's per-task line of a background capture (bg-pages.c). */
const FROZEN_COPIES = /(\d+) KiB outside them copied while frozen/g;
/** How CRIU (0025) says that the snapshot failed. */
const SNAPSHOT_FAILED = /Can't snapshot the root filesystem/;

function snapshotLines(subvolume: string, snapshot: string): string[] {
  return [`${SNAPSHOT_ROOTFS_OPTION} ${subvolume}`, `snapshot-to ${snapshot}`];
}

/** The first of `logs` that exists, read; '' when none does. */
function firstLog(logs: string[]): string {
  for (const f of logs) if (existsSync(f)) return readFileSync(f, 'utf8');
  return '';
}

/** How long CRIU's snapshot took (patch 0025's line), in ms. */
function snapshotMsIn(log: string): number | undefined {
  const m = /Snapshot of \S+ taken in (\d+) us/.exec(log);
  return m ? Number(m[1]) / 1000 : undefined;
}

/** What a background capture's tasks had copied while frozen, in KiB (undefined: no such lines). */
export function frozenCopiesKiB(log: string): number | undefined {
  let kib: number | undefined;
  for (const m of log.matchAll(FROZEN_COPIES)) kib = (kib ?? 0) + Number(m[1]);
  return kib;
}

/**
 * MiB for CRIU to touch before the freeze: what the container's previous background capture
 * copied while frozen, with a quarter to spare (a copy beyond the pool is made in memory
 * CRIU allocates then, as without it); BG_PREFAULT_FIRST_MIB when no capture said.
 */
export function prefaultMiB(bundle: string): number {
  let kib: number;
  try {
    kib = Number(readFileSync(path.join(bundle, PREFAULT_HINT), 'utf8'));
  } catch {
    return BG_PREFAULT_FIRST_MIB;
  }
  if (!Number.isFinite(kib) || kib < 0) return BG_PREFAULT_FIRST_MIB;
  return Math.min(BG_PREFAULT_MAX_MIB, Math.max(1, Math.ceil((kib * 1.25) / 1024)));
}

function notePrefault(bundle: string, log: string): void {
  const kib = frozenCopiesKiB(log);
  if (kib === undefined) return;
  try {
    writeFileSync(path.join(bundle, PREFAULT_HINT), `${kib}\n`);
  } catch {
    /* a hint only: the next capture touches the first capture's amount */
  }
}

/** Files `podman container checkpoint` leaves in the bundle besides the images. */
const BUNDLE_LEFTOVERS = ['network.status', 'stats-dump', 'config.dump', 'spec.dump', 'rootfs-diff.tar', 'deleted.files', 'dump.log', CONTAINER_CRIU_CONF];

/** Only a running container on btrfs storage can be captured: said before any work. */
export async function assertCapturable(src: ContainerInfo): Promise<void> {
  if (src.state !== 'running' || src.paused) {
    throw new TforkError('E_INVALID_STATE', `container ${src.name} is ${src.paused ? 'paused' : src.state}: only a running container can be captured`, {
      suggestions: [src.paused ? `podman-tfork unpause ${src.name}` : `podman-tfork start ${src.name}`],
    });
  }
  if (src.graphDriver !== 'btrfs' || !src.rootfs || !(await isSubvolume(src.rootfs))) {
    throw new TforkError('E_CAPABILITY_MISSING', `container ${src.name} is not on btrfs storage (driver ${src.graphDriver})`, {
      suggestions: ['create the container with podman-tfork, whose storage is btrfs'],
    });
  }
  assertDumpable(src);
}

/**
 * The container as a capture should judge it. Another podman-tfork command
 * may hold it right now (a rollback stops it and restores it): then wait for
 * that command to finish and look again, so that commands started together
 * on one container run one after the other instead of refusing each other.
 */
export async function inspectForCapture(podman: Podman, l: Layout, name: string, signal?: AbortSignal): Promise<ContainerInfo> {
  const info = await inspectContainer(podman, name, { signal });
  if ((info.state === 'running' && !info.paused) || !lockHeld(l, `container-${info.id}`)) return info;
  await withContainerLock(l, info, signal, async () => undefined);
  return inspectContainer(podman, info.id, { signal });
}

/**
 * Run `fn` as the only podman-tfork operation on the container's state on this
 * host: captures (clone, checkpoint, commit) and rollbacks of one container
 * wait for each other instead of colliding in its bundle.
 */
export function withContainerLock<T>(l: Layout, c: { id: string; name: string }, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  return withLock(l, `container-${c.id}`, { what: `container ${c.name}`, signal }, fn);
}

/** A new scratch directory in the staging area, marked with its owner process. */
export function scratchDir(l: Layout, kind: string, base = l.staging): string {
  const dir = path.join(base, `${kind}-${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'owner'), `${process.pid}\n`);
  return dir;
}

/**
 * A scratch directory in memory (tmpfs) for the images of a live clone of a
 * source holding `sourceBytes`, when they fit with room to spare (see
 * memory.ts); else undefined and
 * the images stay on the storage filesystem.
 */
export function memoryScratch(l: Layout, sourceBytes: number | undefined): string | undefined {
  if (process.env.TFORK_IMAGES_IN === 'disk') return undefined;
  try {
    mkdirSync(l.shmStaging, { recursive: true });
  } catch {
    return undefined;
  }
  if (!fitsInMemory(l.shmStaging, sourceBytes)) return undefined;
  return scratchDir(l, 'clone-images', l.shmStaging);
}

/**
 * Remove a scratch directory and the snapshot in it. A dump that failed (or a
 * command killed) after the freeze may have left the snapshot it started
 * running: it ends first, so that it cannot appear in a directory being removed.
 */
export async function discardScratch(dir: string): Promise<void> {
  await dropSnapshot(dir);
  await removeTree(dir);
}

/** The root filesystem's snapshot in a capture's scratch directory, once its dump hook is done with it. */
async function dropSnapshot(dir: string): Promise<void> {
  await snapshotSettled(path.join(dir, DUMP_HOOK));
  const snap = path.join(dir, 'rootfs');
  if (existsSync(snap) && (await isSubvolume(snap))) await deleteSubvolume(snap);
}

/**
 * Capture `src` into `dir`. Failures carry the phase (dump or snapshot) and
 * CRIU's log excerpt; the caller owns `dir` and discards it on failure.
 */
export async function captureState(podman: Podman, l: Layout, src: ContainerInfo, dir: string, o: CaptureOptions): Promise<CapturedState> {
  // podman serialises the dumps of one container, but each leaves its images in the
  // same <bundle>/checkpoint; hold the container until they are moved out of it.
  return withContainerLock(l, src, o.signal, () => capture(podman, l, src, dir, o));
}

/**
 * What CRIU says when a background capture failed after the tasks ran on
 * (bg-pages.c): most likely a page it could only watch was written before it
 * was in the images (criu-modules/patches/0013). Nothing of that dump is
 * usable, and the source runs on unharmed.
 */
const LOST_RACE = /could not be captured as of the freeze/;

async function capture(podman: Podman, l: Layout, src: ContainerInfo, dir: string, o: CaptureOptions): Promise<CapturedState> {
  try {
    return await attempt(podman, l, src, dir, o);
  } catch (err) {
    if (!o.background || !(err instanceof TforkError) || !LOST_RACE.test(err.message)) throw err;
    // The source runs on, unprotected (CRIU let go of it); what the dump left goes, and the capture is
    // taken again the stock way. A second pause, for a race that needs an mprotect() of read-only memory.
    const line = err.message.split('\n').find((x) => LOST_RACE.test(x));
    const why = line?.replace(/^\s*\(\d+\.\d+\)\s*Error \([^)]*\):\s*/, '').trim() ?? 'a page was written before it was captured';
    await resetScratch(dir, o.imagesDir);
    const state = await attempt(podman, l, src, dir, { ...o, background: false, keepTracking: undefined });
    return { ...state, retriedFrozen: why };
  }
}

/** Empty a capture's scratch directory of what a failed dump made in it (its snapshot included). */
async function resetScratch(dir: string, imagesDir: string | undefined): Promise<void> {
  await dropSnapshot(dir);
  const hook = path.join(dir, DUMP_HOOK);
  for (const f of ['images', 'dump-times', 'config.json', 'devshm-checkpoint.tar', hook, ...Object.values(snapshotFiles(hook))]) rmSync(path.resolve(dir, f), { recursive: true, force: true });
  if (imagesDir) rmSync(imagesDir, { recursive: true, force: true });
}

async function attempt(podman: Podman, l: Layout, src: ContainerInfo, dir: string, o: CaptureOptions): Promise<CapturedState> {
  const rootfs = path.join(dir, 'rootfs');
  const timesFile = path.join(dir, 'dump-times');
  const hook = path.join(dir, DUMP_HOOK);
  const snapshotInCriu = criuHasOption(l, SNAPSHOT_ROOTFS_OPTION);
  if (!snapshotInCriu) writeSnapshotScript(hook, { rootfs: src.rootfs, snapshot: rootfs, timesFile, btrfs: BTRFS, fail: o.fault === 'snapshot' });
  // file-locks: a desktop's processes may hold POSIX/flock locks at any instant; carry them.
  const conf = [
    ...(snapshotInCriu ? snapshotLines(src.rootfs, o.fault === 'snapshot' ? path.join(dir, 'fault-injected-no-such-dir', 'rootfs') : rootfs) : [`action-script ${hook}`]),
    `ghost-limit ${o.ghostLimit}`,
    'file-locks',
    ...criuVerbosity(),
    // CRIU's default validation maps the head of every mapped file to read its ELF build-id,
    // while frozen (~0.1 ms a file; an OSWorld desktop dumps ~680 files). Every restore of these
    // images reads the files from a snapshot of the rootfs taken at the freeze instant, so
    // the file's size is validation enough; the restores then skip reading build-ids too.
    'file-validation filesize',
    // A deleted file still open or mapped (a browser's shared memory in /tmp) is copied into the
    // images while frozen. CRIU finds its data with FIEMAP by default, whose sync flag writes the
    // file's dirty pages to disk first; SEEK_DATA/SEEK_HOLE find the same data without the
    // writeback: the OSWorld desktop's 69 such files took 15-17 ms instead of 21-23 ms (3 pairs).
    'no-ghost-fiemap',
    // CRIU locks the network namespace so that established connections cannot move while their
    // state is read, and unlocks it (an iptables run, ~50 ms) inside the frozen window. Every
    // restore of ours closes those connections (tcp-close), so the lock buys nothing then.
    ...(o.tcpClose ? ['network-lock skip'] : []),
    // Likewise the connection tracking tables: the copies live in new namespaces with new
    // addresses, and reading the tables walks the host's whole table (~12 ms each, frozen).
    ...(o.tcpClose && criuHasOption(l, SKIP_CONNTRACK_OPTION) ? [SKIP_CONNTRACK_OPTION] : []),
    // The host's own cgroup mounts, instead of CRIU mounting each hierarchy while frozen.
    ...yardLine(path.join(dir, 'cgroup-yard'), src.pid),
    ...(o.background ? [BACKGROUND_PAGES_OPTION] : []),
    // The pages a background capture copies while frozen (written file memory: ~12 MiB on the
    // OSWorld desktop) went to memory CRIU touched for the first time inside the window, 6-11 us a
    // page on these hosts; CRIU touches that much before the freeze instead (~2.5 ms a MiB), as
    // much as the container's previous capture copied (prefaultMiB).
    ...(o.background && criuHasOption(l, BG_PREFAULT_OPTION) ? [`${BG_PREFAULT_OPTION} ${prefaultMiB(src.bundle)}`] : []),
    ...(o.graft ? [GRAFT_PAGES_OPTION] : []),
    ...(o.trackWritten ? [`${TRACK_WRITTEN_OPTION} ${o.trackWritten.dir}`] : []),
    ...(o.trackWritten?.parentImages ? [`prev-images-dir ${o.trackWritten.parentImages}`] : []),
    ...(o.keepTracking ? [`${KEEP_TRACKING_OPTION} ${o.keepTracking}`] : []),
    ...(o.fault === 'dump' ? ['fault-injected-unknown-option'] : []),
  ];
  copyFileSync(path.join(src.bundle, 'config.json'), path.join(dir, 'config.json'));
  const s = performance.now();
  let logDir: string | undefined;
  if (o.graft) {
    await freeze(src.id).catch((err) => {
      throw new TforkError('E_TOOL_FAILED', (err as Error).message, { phase: 'dump' });
    });
  }
  try {
    // The dispatching criu (first in podman's PATH) reads these from the bundle; leaveBundleClean takes them back.
    writeContainerCriuConf(src.bundle, conf);
    if (o.imagesDir && !o.exportTo) {
      // crun creates and opens <bundle>/checkpoint through the link: CRIU writes straight into imagesDir.
      // What an earlier checkpoint left there (podman keeps its images in the bundle) goes first.
      mkdirSync(o.imagesDir, { recursive: true });
      unlinkBundleImages(src.bundle);
      rmSync(path.join(src.bundle, 'checkpoint'), { recursive: true, force: true });
      symlinkSync(o.imagesDir, path.join(src.bundle, 'checkpoint'));
      logBesideImages(src.bundle, 'dump.log');
    } else logDir = logInMemory(l, src.bundle);
    const dumping = checkpointContainer(podman, src.id, { leaveRunning: o.leaveRunning, tcpEstablished: o.tcpClose, exportTo: o.exportTo, signal: o.signal, timeoutMs: 10 * 60_000 });
    await killPointAfter('dump', podman.mode === 'rest' && !o.exportTo ? 100 : 0);
    const r = await dumping;
    if (!r.ok) {
      const times = parseDumpTimes(existsSync(timesFile) ? readFileSync(timesFile, 'utf8') : '');
      const excerpt = criuLogExcerpt(src.bundle, r.error);
      throw new TforkError('E_TOOL_FAILED', `podman container checkpoint failed:\n${excerpt}`, { phase: times.snapshotFailed || SNAPSHOT_FAILED.test(excerpt) ? 'snapshot' : 'dump' });
    }
    const dumpMs = performance.now() - s;
    // post-dump waited for the snapshot: nothing is left to settle (discardScratch), nor to keep.
    for (const f of Object.values(snapshotFiles(hook))) rmSync(f, { force: true });
    let images = path.join(dir, 'images');
    if (lstatSync(path.join(src.bundle, 'checkpoint')).isSymbolicLink()) images = o.imagesDir!;
    else renameSync(path.join(src.bundle, 'checkpoint'), images);
    const log = snapshotInCriu || o.background ? firstLog([path.join(images, 'dump.log'), ...(logDir ? [path.join(logDir, 'dump.log')] : [])]) : '';
    const snapshotTakenMs = snapshotInCriu ? snapshotMsIn(log) : undefined;
    if (o.background) notePrefault(src.bundle, log);
    // The log of a dump that succeeded is not part of its state (logBesideImages).
    rmSync(path.join(images, 'dump.log'), { force: true });
    let devshm: string | undefined;
    if (existsSync(path.join(src.bundle, 'devshm-checkpoint.tar'))) {
      devshm = path.join(dir, 'devshm-checkpoint.tar');
      renameSync(path.join(src.bundle, 'devshm-checkpoint.tar'), devshm);
    }
    const times = parseDumpTimes(existsSync(timesFile) ? readFileSync(timesFile, 'utf8') : '');
    // CRIU's own measure; the hooks' span (pre-dump to end of snapshot) bounds it when stats are missing.
    const stats = statsOf(r.stats);
    const frozenMs = stats?.frozenMs ?? (times.preDump && times.snapshotEnd ? times.snapshotEnd - times.preDump : undefined);
    return {
      dir,
      images,
      rootfs,
      devshm,
      config: path.join(dir, 'config.json'),
      source: { id: src.id, name: src.name, rootfs: src.rootfs, image: src.image },
      exportTar: o.exportTo,
      timings: {
        dumpMs,
        frozenMs,
        freezingMs: stats?.freezingMs,
        snapshotMs: snapshotTakenMs ?? (times.snapshotStart && times.snapshotEnd ? times.snapshotEnd - times.snapshotStart : undefined),
        ...(o.graft ? { frozenSince: s } : {}),
      },
    };
  } finally {
    rmSync(path.join(dir, 'cgroup-yard'), { recursive: true, force: true });
    await leaveBundleClean(src.bundle);
    if (logDir) rmSync(logDir, { recursive: true, force: true });
  }
}

/**
 * A dump whose images stay in the bundle (a checkpoint, a clone through an archive) logs into a
 * scratch directory in memory instead, for the reason of logBesideImages: a desktop's checkpoint
 * was frozen ~20 ms longer with its log on the storage filesystem (6 interleaved pairs). The caller
 * removes the directory once the log is read; without a tmpfs the log stays in the bundle.
 */
function logInMemory(l: Layout, bundle: string): string | undefined {
  let dir: string;
  try {
    mkdirSync(l.shmStaging, { recursive: true });
    dir = scratchDir(l, 'dump-log', l.shmStaging);
  } catch {
    return undefined;
  }
  logTo(bundle, 'dump.log', path.join(dir, 'dump.log'));
  return dir;
}

function yardLine(dir: string, pid: number | undefined): string[] {
  const yard = pid ? writeCgroupYard(dir, pid) : undefined;
  return yard ? [`cgroup-yard ${yard}`] : [];
}

function statsOf(stdout: string): CheckpointStats | undefined {
  try {
    return parseCheckpointStats(stdout);
  } catch {
    return undefined;
  }
}

/** Take back what a checkpoint left in a container's bundle (images of a failed dump included). */
export async function leaveBundleClean(bundle: string): Promise<void> {
  // In-process removal: this runs on every clone, and a tool process per file costs more than the files.
  unlinkBundleImages(bundle);
  for (const f of ['checkpoint', 'devshm-checkpoint.tar', ...BUNDLE_LEFTOVERS]) rmSync(path.join(bundle, f), { recursive: true, force: true });
}

/** Remove <bundle>/checkpoint when it is a link to images kept elsewhere (never what it points to). */
export function unlinkBundleImages(bundle: string): void {
  const p = path.join(bundle, 'checkpoint');
  try {
    if (lstatSync(p).isSymbolicLink()) unlinkSync(p);
  } catch {
    /* absent */
  }
}
