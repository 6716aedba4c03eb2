/**
 * Host-wide locks between podman-tfork processes: an exclusive mkdir of
 * `<runDir>/locks/<key>.lock` holding the owner's pid and start time. A lock
 * whose owner is gone (crashed, killed) is taken over; a pid reused by another
 * process does not keep a lock alive, because its start time differs.
 *
 * Two flavours: `withLock` waits asynchronously (for work that spawns tools:
 * a capture, a rollback) and `withLockSync` spins for microsecond sections
 * (the commit ledger). Not reentrant: a holder that asks again waits for
 * itself, so callers take each key once.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from './layout.js';
import { exited, procStatFields } from './host.js';
import { TforkError } from '../errors.js';

export const locksDir = (l: Layout): string => path.join(l.runDir, 'locks');
const lockPath = (l: Layout, key: string) => path.join(locksDir(l), `${key}.lock`);

/** A process identity that survives pid reuse: "<pid> <start time in clock ticks>"; none for a zombie (it exited). */
export function identity(pid: number): string | undefined {
  const fields = procStatFields(pid);
  return fields && !exited(fields) ? `${pid} ${fields[19]}` : undefined;
}

export const self = (): string => identity(process.pid) ?? `${process.pid} ?`;

/** Whether the process named by an identity ("<pid> <start time>") still runs (the same process, not a reused pid). */
export function identityAlive(owner: string): boolean {
  const pid = Number(owner.split(' ')[0]);
  return pid > 0 && identity(pid) === owner;
}

/** Whether the process recorded in a lock directory still runs (a lock being written counts as live). */
export function lockOwnerAlive(dir: string): boolean {
  let owner: string;
  try {
    owner = readFileSync(path.join(dir, 'owner'), 'utf8').trim();
  } catch {
    // Between mkdir and the owner write, for a moment; longer means its maker died there.
    try {
      return Date.now() - statSync(dir).mtimeMs < 10_000;
    } catch {
      return false;
    }
  }
  const pid = Number(owner.split(' ')[0]);
  return pid > 0 && identity(pid) === owner;
}

/** One attempt: true when the lock is now ours. A dead owner's lock is removed on the way. */
function tryTake(l: Layout, key: string): boolean {
  const dir = lockPath(l, key);
  mkdirSync(locksDir(l), { recursive: true });
  try {
    mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    if (!lockOwnerAlive(dir)) rmSync(dir, { recursive: true, force: true });
    return false;
  }
  writeFileSync(path.join(dir, 'owner'), `${self()}\n`);
  return true;
}

function release(l: Layout, key: string): void {
  rmSync(lockPath(l, key), { recursive: true, force: true });
}

function stuck(l: Layout, key: string, what: string): TforkError {
  return new TforkError('E_TIMEOUT', `${what} stays locked by another podman-tfork process (${lockPath(l, key)})`, {
    suggestions: ['wait for the other command to finish', `remove ${lockPath(l, key)} if no podman-tfork runs`],
  });
}

export interface LockOptions {
  /** What the lock protects, for the error message ("container web"). */
  what: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called once when the lock is busy, before waiting. */
  onWait?: () => void;
}

/** Run `fn` holding `key`, waiting (without blocking the event loop) while another process holds it. */
export async function withLock<T>(l: Layout, key: string, o: LockOptions, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + (o.timeoutMs ?? 15 * 60_000);
  for (let waited = false; !tryTake(l, key); waited = true) {
    if (!waited) o.onWait?.();
    if (o.signal?.aborted) throw new TforkError('E_CANCELLED', `cancelled while waiting for the lock of ${o.what}`);
    if (Date.now() > deadline) throw stuck(l, key, o.what);
    await new Promise((r) => setTimeout(r, 25));
  }
  try {
    return await fn();
  } finally {
    release(l, key);
  }
}

const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Run `fn` holding `key` for a section with no await inside (microseconds). */
export function withLockSync<T>(l: Layout, key: string, what: string, fn: () => T): T {
  for (let tries = 0; !tryTake(l, key); tries++) {
    if (tries > 2500) throw stuck(l, key, what);
    pause(2);
  }
  try {
    return fn();
  } finally {
    release(l, key);
  }
}

/** Whether a live process holds `key` now. */
export function lockHeld(l: Layout, key: string): boolean {
  const dir = lockPath(l, key);
  return existsSync(dir) && lockOwnerAlive(dir);
}

/** Lock directories whose owner is gone (for cleanup). */
export function staleLocks(l: Layout): string[] {
  let names: string[];
  try {
    names = readdirSync(locksDir(l));
  } catch {
    return [];
  }
  return names.filter((n) => n.endsWith('.lock')).map((n) => path.join(locksDir(l), n)).filter((d) => !lockOwnerAlive(d));
}
