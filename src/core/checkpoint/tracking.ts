/**
 * Incremental checkpoints: a checkpoint of a container that changed little
 * costs little. Each checkpoint's CRIU dump (criu-modules/patches/0006,
 * `--track-written DIR`) write-protects the container's private anonymous
 * memory through asynchronous userfaultfds after it has read it; the kernel
 * drops a page's protection at its first write, with no fault reaching user
 * space. A holder process per container (`tfork-track`, CRIU re-executed)
 * keeps the userfaultfds open between checkpoints. The next checkpoint's dump
 * takes them over, writes only the pages written since, with the previous
 * checkpoint's images as its parent (CRIU's `parent` link), and arms again.
 *
 *   <runDir>/track/<container id, 12>/tracker.sock, tracker.pid   the holder (CRIU writes them)
 *   <runDir>/track/<container id, 12>/baseline                    the checkpoint whose dump armed it
 *
 * The baseline is written only once that checkpoint is stored and removed
 * before any other dump, so a checkpoint is incremental only against the
 * checkpoint the tracking started at; anything else (no holder, a holder
 * that died, a rollback, a container restarted) makes a full checkpoint.
 * CRIU itself dumps in full whatever it cannot vouch for (another process
 * under the same pid, a VMA no longer watched).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { release } from 'node:os';
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';
import { writeFileAtomic } from '../../drivers/archive.js';
import { pidAlive } from '../../drivers/host.js';
import { withLock } from '../../drivers/lock.js';
import { criuCarries, criuHasOption, USERFAULTFD_DEVICE } from '../state/capture-mode.js';

/** The CRIU option of patch 0006. */
export const TRACK_WRITTEN_OPTION = 'track-written';
/** The holder's process name. */
export const HOLDER_COMM = 'tfork-track';
/** A chain this long (incremental checkpoints on top of a full one) ends with a full checkpoint. */
export const MAX_CHAIN = 16;

/**
 * What CRIU's help says once patch 0023 is in: a dump with --background-pages
 * and --track-written captures in the background and arms the tracking in a
 * second short freeze once its pages are written.
 */
export const TRACK_AFTER_BACKGROUND_TEXT = 'in a second short freeze once the pages are written';

/** CRIU's option (patch 0028) for a dump outside the chain that captures a tracked source in the background and gives the tracking back. */
export const KEEP_TRACKING_OPTION = 'keep-tracking';

/** Whether a live clone of a tracked source can be captured in the background and leave the tracking as it was (patch 0028). */
export const keepsTrackingInBackground = (l: Layout): boolean => criuHasOption(l, KEEP_TRACKING_OPTION);

/** Whether a checkpoint that starts a chain can be captured in the background (patch 0023). */
export const tracksAfterBackground = (l: Layout): boolean => criuCarries(l, TRACK_AFTER_BACKGROUND_TEXT, 'track-after-background');

export interface TrackingSupport {
  ok: boolean;
  reason: string;
}

/** PAGEMAP_SCAN and asynchronous write-protection came with Linux 6.7. */
export function kernelHasWpAsync(rel = release()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return !!m && (Number(m[1]) > 6 || (Number(m[1]) === 6 && Number(m[2]) >= 7));
}

/** Whether checkpoints on this host can be incremental, and why (not). */
export function trackingSupport(l: Layout, env: NodeJS.ProcessEnv = process.env, rel = release()): TrackingSupport {
  if (env.TFORK_INCREMENTAL === '0') return { ok: false, reason: 'TFORK_INCREMENTAL=0: every checkpoint writes all memory' };
  if (env.TFORK_CAPTURE === 'background') {
    return { ok: false, reason: 'TFORK_CAPTURE=background: checkpoints are captured in the background, which takes the userfaultfd incremental tracking needs' };
  }
  if (!existsSync(USERFAULTFD_DEVICE)) return { ok: false, reason: `no ${USERFAULTFD_DEVICE}: every checkpoint writes all memory` };
  if (!kernelHasWpAsync(rel)) return { ok: false, reason: `kernel ${rel} lacks PAGEMAP_SCAN and asynchronous write-protection (Linux 6.7+): every checkpoint writes all memory` };
  if (!criuHasOption(l, TRACK_WRITTEN_OPTION)) {
    return { ok: false, reason: `the installed CRIU lacks --${TRACK_WRITTEN_OPTION} (run podman-tfork setup): every checkpoint writes all memory` };
  }
  return { ok: true, reason: 'checkpoints after the first write only the pages written since the previous one (userfaultfd write-protection, PAGEMAP_SCAN)' };
}

export function trackDir(l: Layout, containerId: string): string {
  // Short: CRIU binds a unix socket (108 bytes at most) in it.
  return path.join(l.runDir, 'track', containerId.slice(0, 12));
}

/** The holder of a container's tracking, if one runs. */
export function holderPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dir, 'tracker.pid'), 'utf8').trim());
    if (!pid || !pidAlive(pid)) return undefined;
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === HOLDER_COMM ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function readBaseline(dir: string): string | undefined {
  try {
    return readFileSync(path.join(dir, 'baseline'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Record that the tracking in `dir` started at `checkpointId`, unless its
 * holder is gone (a rollback ended it meanwhile): then the next checkpoint is
 * full.
 */
export function writeBaseline(dir: string, checkpointId: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, 'baseline'), `${checkpointId}\n`);
  if (!holderPid(dir)) dropBaseline(dir);
}

/**
 * Checkpoints of one container, from planning to the baseline, and removals
 * of its checkpoints, one at a time: a checkpoint must not be written
 * against one that is being removed, nor against a tracking another
 * checkpoint has re-armed meanwhile.
 */
export function withTrackingLock<T>(l: Layout, c: { id: string; name: string }, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  return withLock(l, `track-${c.id}`, { what: `the checkpoints of ${c.name}`, signal }, fn);
}

function dropBaseline(dir: string): void {
  try {
    unlinkSync(path.join(dir, 'baseline'));
  } catch {
    // none
  }
}

export interface TrackingPlan {
  /** CRIU's --track-written directory. */
  dir: string;
  /** The checkpoint this one is written against (its images become CRIU's parent), when incremental. */
  parent?: string;
  /** Why the checkpoint is full or incremental. */
  reason: string;
}

/**
 * How the next checkpoint of a container uses the tracking: against which
 * checkpoint, if any. `head` is the checkpoint the container last came from;
 * `chainLength(id)` how many checkpoints that one's images stand on (itself
 * included). Drops the baseline: it is written again once the new checkpoint
 * is stored.
 */
export function planTracking(l: Layout, containerId: string, head: string | undefined, chainLength: (id: string) => number | undefined): TrackingPlan {
  const dir = trackDir(l, containerId);
  sweepRemovedTracking(l);
  mkdirSync(dir, { recursive: true });
  const baseline = readBaseline(dir);
  dropBaseline(dir);
  if (!baseline) return { dir, reason: 'full: the first checkpoint since the container started or rolled back' };
  if (baseline !== head) return { dir, reason: `full: the container last came from ${head ?? 'no checkpoint'}, not from ${baseline}` };
  const depth = chainLength(baseline);
  if (depth === undefined) return { dir, reason: `full: checkpoint ${baseline} is gone` };
  if (!holderPid(dir)) return { dir, reason: 'full: the tracking of written pages ended (its holder is gone)' };
  if (depth >= MAX_CHAIN) return { dir, reason: `full: ${depth} checkpoints in a chain (at most ${MAX_CHAIN})` };
  return { dir, parent: baseline, reason: `incremental: the pages written since ${baseline}` };
}

/**
 * Take away the tracking directories of containers that no longer exist and
 * whose holder is gone (`podman rm` of a tracked container leaves its
 * directory): a removed container is never checkpointed again, so no lock is
 * needed. Swept whenever a checkpoint plans its own; `cleanup` lists the rest.
 */
export function sweepRemovedTracking(l: Layout): void {
  const root = path.join(l.runDir, 'track');
  let dirs: string[];
  let containers: string[];
  try {
    dirs = readdirSync(root);
    containers = readdirSync(path.join(l.graphroot, 'btrfs-containers'));
  } catch {
    return;
  }
  for (const d of dirs) {
    if (containers.some((c) => c.startsWith(d)) || holderPid(path.join(root, d))) continue;
    rmSync(path.join(root, d), { recursive: true, force: true });
  }
}

/**
 * End a container's tracking (its next checkpoint is full): before a dump
 * that needs the userfaultfd itself (background capture) and when the
 * container's processes are replaced (rollback). Waits until the holder is
 * gone, so its write-protection is off. Asked with SIGTERM, a holder of CRIU
 * patch 0030 wakes each task once on its way out, so that a sleeping task
 * pays this host's page-table resync now and not inside the next dump's
 * frozen window (it gives itself 1 s); SIGKILL after 2 s. A holder of an
 * older CRIU ends at SIGTERM as it did at SIGKILL.
 */
export async function stopTracking(l: Layout, containerId: string): Promise<void> {
  const dir = trackDir(l, containerId);
  if (!existsSync(dir)) return;
  dropBaseline(dir);
  const pid = holderPid(dir);
  if (pid) {
    for (const [sig, waitMs] of [['SIGTERM', 2000], ['SIGKILL', 1000]] as const) {
      try {
        process.kill(pid, sig);
      } catch {
        break; // gone already
      }
      for (const t0 = Date.now(); pidAlive(pid) && Date.now() - t0 < waitMs; ) await new Promise((r) => setTimeout(r, 10));
      if (!pidAlive(pid)) break;
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Tracking directories whose holder is gone (its container stopped or was
 * removed), older than `minAgeMs` (a checkpoint makes its directory before
 * CRIU starts the holder): for cleanup.
 */
export function staleTracking(l: Layout, minAgeMs = 60_000): string[] {
  const root = path.join(l.runDir, 'track');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((d) => path.join(root, d))
    .filter((d) => !holderPid(d) && Date.now() - statSync(d).mtimeMs > minAgeMs);
}
