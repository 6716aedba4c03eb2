/** tar archives and durable files: what a checkpoint archive is made of. */
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run, type RunOptions } from './exec.js';

const TAR = '/usr/bin/tar';

/** An uncompressed tar of the listed paths (relative to `dir`), without recursing. */
export async function tarList(dir: string, list: string[], out: string, opts: RunOptions = {}): Promise<void> {
  const listFile = `${out}.list`;
  writeFileSync(listFile, list.map((p) => `${p}\0`).join(''));
  await run(TAR, ['--create', '--file', out, '--directory', dir, '--no-recursion', '--numeric-owner', '--xattrs', '--null', '--files-from', listFile], { timeoutMs: 0, ...opts });
}

/** Append files (relative to `dir`) to an existing tar. */
export async function tarAppend(archive: string, dir: string, files: string[], opts: RunOptions = {}): Promise<void> {
  await run(TAR, ['--append', '--file', archive, '--directory', dir, ...files], { timeoutMs: 0, ...opts });
}

/** Make a file durable under its final name: fsync it, rename it, fsync the directory. */
export function commitFile(tmp: string, final: string): void {
  const fd = openSync(tmp, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, final);
  const dfd = openSync(path.dirname(final), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Write a small file atomically (temporary file, fsync, rename). */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  commitFile(tmp, file);
}
