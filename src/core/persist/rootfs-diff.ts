/**
 * What a container changed in its root filesystem, relative to its image:
 * the list a checkpoint archive carries as rootfs-diff.tar and deleted.files.
 *
 * Both trees are btrfs subvolumes and the container's is a snapshot of the
 * image's top layer, so an unchanged entry keeps its inode number and its
 * change time: one lstat per entry decides. A directory whose inode and
 * mtime are unchanged lost no entries, so only changed directories are
 * listed on the image side to find deletions.
 */
import { lstatSync, readdirSync, type BigIntStats } from 'node:fs';
import path from 'node:path';

export interface RootfsChanges {
  /** Added or modified entries, relative paths, parents before children. */
  changed: string[];
  /** Entries of the image gone from the container, absolute ("/etc/x"), topmost only. */
  deleted: string[];
}

function stat(p: string): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

function same(a: BigIntStats, b: BigIntStats): boolean {
  return a.ino === b.ino && a.ctimeNs === b.ctimeNs && a.mtimeNs === b.mtimeNs && a.mode === b.mode && a.size === b.size;
}

/** `base`: the image's root (or undefined for none), `top`: the container's. */
export function rootfsChanges(base: string | undefined, top: string): RootfsChanges {
  const changed: string[] = [];
  const deleted: string[] = [];
  const walk = (rel: string) => {
    const names = readdirSync(path.join(top, rel));
    const topDir = stat(path.join(top, rel))!;
    const baseDir = base ? stat(path.join(base, rel)) : undefined;
    if (base && baseDir?.isDirectory() && !(topDir.ino === baseDir.ino && topDir.mtimeNs === baseDir.mtimeNs)) {
      const present = new Set(names);
      for (const n of readdirSync(path.join(base, rel))) if (!present.has(n)) deleted.push(`/${path.join(rel, n)}`);
    }
    for (const n of names) {
      const r = path.join(rel, n);
      const t = stat(path.join(top, r));
      if (!t) continue;
      const b = base ? stat(path.join(base, r)) : undefined;
      if (!b || !same(t, b)) changed.push(r);
      if (t.isDirectory()) walk(r);
    }
  };
  walk('');
  return { changed, deleted };
}
