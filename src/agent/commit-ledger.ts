/**
 * The commits made into each container, shared by every process on the host:
 * `<runDir>/agent/commits/<container id>.json` holds how many commits the
 * container took (its generation) and who made them. Forks remember the
 * generation they were made at; a commit is claimed only if the generation is
 * still that one, and the claim bumps it, under a lock (an exclusive mkdir,
 * taken over from a dead owner). So first commit wins between siblings in one
 * process and between pattern runs in separate processes alike.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../drivers/layout.js';
import { TforkError } from '../errors.js';

interface Entry {
  generation: number;
  winners: string[];
}

const dirOf = (l: Layout) => path.join(l.runDir, 'agent', 'commits');
const fileOf = (l: Layout, id: string) => path.join(dirOf(l), `${id}.json`);
const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function read(l: Layout, id: string): Entry {
  try {
    return JSON.parse(readFileSync(fileOf(l, id), 'utf8')) as Entry;
  } catch {
    return { generation: 0, winners: [] };
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Run `fn` holding the container's ledger lock (held for microseconds: no await inside). */
function locked<T>(l: Layout, id: string, fn: () => T): T {
  mkdirSync(dirOf(l), { recursive: true });
  const lock = `${fileOf(l, id)}.lock`;
  for (let tries = 0; ; tries++) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = 0;
      try {
        owner = Number(readFileSync(path.join(lock, 'pid'), 'utf8'));
      } catch {
        // being created or removed: try again
      }
      if (owner && !alive(owner)) rmSync(lock, { recursive: true, force: true });
      else if (tries > 2000) throw new TforkError('E_TIMEOUT', `the commit ledger of ${id} stays locked (${lock})`, { suggestions: [`remove ${lock} if no podman-tfork runs`] });
      else pause(2);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function write(l: Layout, id: string, e: Entry): void {
  const f = fileOf(l, id);
  writeFileSync(`${f}.tmp`, JSON.stringify(e));
  renameSync(`${f}.tmp`, f);
}

/** The container's commit generation now. */
export function generationOf(l: Layout, id: string): number {
  return read(l, id).generation;
}

/** Claim the next commit into `id` for a fork made at `forkedAt`; the winner's name when another was first. */
export function claimCommit(l: Layout, id: string, forkedAt: number, by: string): { ok: true; generation: number } | { ok: false; first?: string } {
  return locked(l, id, () => {
    const e = read(l, id);
    if (e.generation !== forkedAt) return { ok: false, first: forkedAt >= 0 ? e.winners[forkedAt] : undefined };
    write(l, id, { generation: e.generation + 1, winners: [...e.winners, by] });
    return { ok: true, generation: e.generation + 1 };
  });
}

/** Give back a claim whose commit changed nothing (unless another commit came after it). */
export function releaseClaim(l: Layout, id: string, generation: number): void {
  locked(l, id, () => {
    const e = read(l, id);
    if (e.generation === generation) write(l, id, { generation: generation - 1, winners: e.winners.slice(0, -1) });
  });
}

/** Forget a removed container. */
export function dropLedger(l: Layout, id: string): void {
  rmSync(fileOf(l, id), { force: true });
}
