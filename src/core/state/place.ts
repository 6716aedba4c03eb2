/**
 * Place a captured state into a registered, not running container and start
 * it from there: its root filesystem becomes a writable snapshot of the
 * captured one, its bundle's `checkpoint` links to a directory of hard links
 * to the captured CRIU images (every copy reads the same files, hot in the
 * page cache or on tmpfs; nothing is copied), its config.json is the
 * captured one with ids and paths rewritten, and `podman container restore`
 * brings the processes back.
 */
import { copyFileSync, existsSync, lstatSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';
import type { Podman } from '../../drivers/podman.js';
import { deleteSubvolume, isSubvolume, snapshot } from '../../drivers/btrfs.js';
import { restoreRegistered, storageLayer, writeCloneConfig } from '../../drivers/containers.js';
import { criuVerbosity, removeContainerCriuConf, writeContainerCriuConf, writeCriuShim, writeMarkerScript } from '../../drivers/criu-shim.js';
import { criuLogExcerpt, logBesideImages } from '../../drivers/criu-log.js';
import { linkTree, relinkRelative, removeTree } from '../../drivers/files.js';
import { TforkError } from '../../errors.js';
import { CRIU, installedBinary } from '../setup/toolchain.js';
import { CLONE_ANNOTATION } from '../setup/hooks.js';
import { killPointAfter } from '../fault.js';
import { unlinkBundleImages, type CapturedState } from './capture.js';
import { GRAFT_FROM_OPTION } from '../clone/tier.js';

export interface Target {
  id: string;
  /** Its userdata (OCI bundle) directory. */
  bundle: string;
  /** Its root filesystem subvolume. */
  rootfs: string;
}

/** Where a registered container's bundle and rootfs subvolume are, from storage's records. */
export function targetOf(l: Layout, id: string): Target {
  return {
    id,
    bundle: path.join(l.graphroot, 'btrfs-containers', id, 'userdata'),
    rootfs: path.join(l.graphroot, 'btrfs', 'subvolumes', storageLayer(l.graphroot, id)),
  };
}

/**
 * `linksIn`: a directory on the images' filesystem where the target's own
 * directory of links is made (CRIU writes its restore statistics there).
 */
export async function placeState(state: CapturedState, t: Target, o: { signal?: AbortSignal; cloneOf?: string; linksIn: string }): Promise<void> {
  const signal = o.signal;
  await swapRootfs(state.rootfs, t.rootfs, signal);
  const images = path.join(t.bundle, 'checkpoint');
  unlinkBundleImages(t.bundle);
  if (existsSync(images)) await removeTree(images, { signal });
  const links = path.join(o.linksIn, t.id);
  rmSync(links, { recursive: true, force: true });
  linkTree(state.images, links);
  // An incremental checkpoint's parent link, relative to the stored images: from here instead.
  relinkRelative(path.join(links, 'parent'), state.images);
  symlinkSync(links, images);
  const shm = path.join(t.bundle, 'devshm-checkpoint.tar');
  if (state.devshm) copyFileSync(state.devshm, shm);
  else if (existsSync(shm)) await removeTree(shm, { signal });
  writeCloneConfig({
    sourceConfig: state.config,
    cloneBundle: t.bundle,
    replacements: [
      [state.source.id, t.id],
      [state.source.rootfs, t.rootfs],
    ],
    annotations: o.cloneOf ? { [CLONE_ANNOTATION]: o.cloneOf } : {},
  });
}

/**
 * Make `rootfs` (a registered container's layer) a writable snapshot of
 * `from`. The snapshot is made beside it and swapped in by two renames with
 * nothing in between, so at no moment, whatever interrupts the command, is
 * podman's layer without its subvolume: podman cannot remove a layer whose
 * directory is gone, and its whole storage refuses to work until it can.
 * Leftovers of an interrupted swap (`.tfork-new`, `.tfork-old`) are
 * subvolumes no layer owns, which `cleanup` removes.
 */
async function swapRootfs(from: string, rootfs: string, signal?: AbortSignal): Promise<void> {
  const fresh = `${rootfs}.tfork-new`;
  const old = `${rootfs}.tfork-old`;
  for (const p of [fresh, old]) if (await isSubvolume(p)) await deleteSubvolume(p, { signal });
  try {
    await snapshot(from, fresh, { signal });
  } catch (err) {
    // Cancelled or failed: a snapshot made all the same goes with the error.
    if (await isSubvolume(fresh)) await deleteSubvolume(fresh).catch(() => undefined);
    throw err;
  }
  if (existsSync(rootfs)) renameSync(rootfs, old);
  renameSync(fresh, rootfs);
  if (await isSubvolume(old)) await deleteSubvolume(old);
}

interface RestoreOptions {
  /** Scratch directory for the per-restore CRIU configuration. */
  scratch: string;
  tag: string;
  tcpClose: boolean;
  signal?: AbortSignal;
  fault?: boolean;
  /** Tier 2: the host pid of the frozen source's init, whose pages the restore grafts (clone/tier.ts). */
  graftFrom?: number;
  /** Test fault injection: graft from a process that does not exist, which CRIU's restore refuses. */
  graftFault?: boolean;
  /** Tier 2: a file CRIU creates once the restored tasks have grafted (its post-restore action). */
  graftedMarker?: string;
}

/** podman's words when its check of CRIU's version failed, before it does anything. */
const VERSION_CHECK_FAILED = /checkpoint\/restore requires at least CRIU \d+/;

/** A pid no process has (above the kernel's largest pid_max): a graft from it fails. */
const NO_SUCH_PID = 4_194_305;

function restoreConf(o: RestoreOptions): string[] {
  const graft = o.graftFrom === undefined ? [] : [`${GRAFT_FROM_OPTION} ${o.graftFault ? NO_SUCH_PID : o.graftFrom}`];
  if (o.graftedMarker) {
    const script = path.join(o.scratch, `restore-hook-${o.tag}`);
    writeMarkerScript(script, 'post-restore', o.graftedMarker);
    graft.push(`action-script ${script}`);
  }
  // The dumps of states whose restores close TCP connections skip CRIU's network lock
  // (capture.ts): the restore has no lock rule to remove, and two failing iptables-restore runs
  // per copy cost CPU the other copies need.
  const close = o.tcpClose ? ['tcp-close', 'network-lock skip'] : [];
  return ['file-locks', ...criuVerbosity(), ...close, ...graft, ...(o.fault ? ['fault-injected-unknown-option'] : [])];
}

/** Restore a placed state (through the podman service, or a podman process with TFORK_PODMAN_API=cli); returns its duration in ms. */
export async function restoreContainer(podman: Podman, t: Target, o: RestoreOptions): Promise<number> {
  writeContainerCriuConf(t.bundle, restoreConf(o));
  const log = path.join(t.bundle, 'restore.log');
  if (lstatSync(path.join(t.bundle, 'checkpoint'), { throwIfNoEntry: false })?.isSymbolicLink()) logBesideImages(t.bundle, 'restore.log');
  const s = performance.now();
  try {
    const restoring = restoreRegistered(podman, t.id, { signal: o.signal, timeoutMs: 10 * 60_000 });
    await killPointAfter(`restore:${o.tag}`, podman.mode === 'rest' ? 100 : 0);
    let r = await restoring;
    // podman first asks CRIU its version (a CRIU process of its own) and says only that it is too
    // old when that fails. Seen once in ~40 clones of 4 under load, never reproduced (0 in 1,500
    // asked in a row beside clones): nothing was done yet, so it is asked once more.
    if (!r.ok && VERSION_CHECK_FAILED.test(r.error)) r = await restoreRegistered(podman, t.id, { signal: o.signal, timeoutMs: 10 * 60_000 });
    if (!r.ok) throw new TforkError('E_TOOL_FAILED', `podman container restore failed:\n${criuLogExcerpt(t.bundle, r.error, 'restore.log')}`);
    return performance.now() - s;
  } finally {
    // The images served their purpose; the bundle keeps neither them nor the options.
    removeContainerCriuConf(t.bundle);
    if (lstatSync(log, { throwIfNoEntry: false })?.isSymbolicLink()) rmSync(log);
    const link = path.join(t.bundle, 'checkpoint');
    const links = existsSync(link) && lstatSync(link).isSymbolicLink() ? readlinkSync(link) : undefined;
    unlinkBundleImages(t.bundle);
    rmSync(link, { recursive: true, force: true });
    if (links) rmSync(links, { recursive: true, force: true });
  }
}

/**
 * Create and restore a container from a checkpoint archive under a new name,
 * with new host ports (`restore --import --publish`): the path for sources
 * that publish ports, which a registered clone would share.
 */
export async function restoreImported(
  podman: Podman,
  l: Layout,
  archive: string,
  name: string,
  publish: string[],
  o: RestoreOptions,
): Promise<{ id: string; ms: number }> {
  // --file-locks: crun sets CRIU's file-locks from podman's flag, over any configuration file.
  const args = ['--import', archive, '--file-locks', '--name', name, '--ignore-static-ip', '--ignore-static-mac', ...publish.flatMap((p) => ['--publish', p])];
  // The container has no bundle before the import: its CRIU options come through a PATH shim of this restore.
  const bin = writeCriuShim(path.join(o.scratch, `bin-restore-${o.tag}`), installedBinary(l, CRIU), path.join(o.scratch, `restore-${o.tag}.conf`), restoreConf(o));
  const s = performance.now();
  const r = await podman.run(['container', 'restore', ...args], { signal: o.signal, reject: false, env: { PATH: `${bin}:${podman.env.PATH}` }, timeoutMs: 10 * 60_000 });
  if (r.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman container restore failed:\n${r.stderr.trim()}`);
  return { id: r.stdout.trim().split('\n').pop()!, ms: performance.now() - s };
}
