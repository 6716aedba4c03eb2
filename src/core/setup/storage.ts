/**
 * Storage: podman's graphroot must be btrfs (each container rootfs is a
 * subvolume; clones are snapshots). When the host has no btrfs under
 * TFORK_ROOT, a sparse loop file holds one; it is mounted again after a
 * reboot by setup or by the wrapper.
 */
import { existsSync, mkdirSync, openSync, closeSync, ftruncateSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';
import { fsType, isMountPoint } from '../../drivers/host.js';
import { mkfs } from '../../drivers/btrfs.js';
import { mountLoop } from '../../drivers/mount.js';
import { TforkError } from '../../errors.js';

export const DEFAULT_STORAGE_SIZE = '40G';

export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(s.trim());
  if (!m) throw new TforkError('E_USAGE', `invalid size ${JSON.stringify(s)} (expected a number with an optional K, M, G or T suffix)`);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

export type StorageState = { kind: 'native' | 'loop'; mounted: boolean; fs: string };

export function storageState(l: Layout): StorageState {
  const loop = existsSync(l.storageImage);
  const fs = existsSync(l.graphroot) ? fsType(l.graphroot) : 'missing';
  return { kind: loop ? 'loop' : 'native', mounted: loop ? isMountPoint(l.graphroot) : fs === 'btrfs', fs };
}

/**
 * Make sure the graphroot is a mounted btrfs. Creates the loop file on first
 * use (`create`), and only remounts otherwise. Returns what it did.
 */
export async function ensureStorage(l: Layout, opts: { create: boolean; size?: string }): Promise<'ready' | 'mounted' | 'created'> {
  mkdirSync(l.graphroot, { recursive: true });
  if (existsSync(l.storageImage)) {
    if (isMountPoint(l.graphroot)) return 'ready';
    await mountLoop(l.storageImage, l.graphroot);
    return 'mounted';
  }
  if (fsType(l.graphroot) === 'btrfs') return 'ready';
  if (!opts.create) {
    throw new TforkError('E_SETUP_REQUIRED', `podman storage ${l.graphroot} is not on btrfs`, { suggestions: ['run `podman-tfork setup`'] });
  }
  const size = parseSize(opts.size ?? process.env.TFORK_STORAGE_SIZE ?? DEFAULT_STORAGE_SIZE);
  mkdirSync(path.dirname(l.storageImage), { recursive: true });
  const fd = openSync(l.storageImage, 'w');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
  await mkfs(l.storageImage);
  await mountLoop(l.storageImage, l.graphroot);
  return 'created';
}
