/**
 * The commits made into each container, shared by every process on the host:
 * `<runDir>/agent/commits/<container id>.json` holds how many commits the
 * container took (its generation) and who made them. Forks remember the
 * generation they were made at; a commit is claimed only if the generation is
 * still that one, and the claim bumps it, under a host-wide lock (lock.ts).
 * So first commit wins between siblings in one process and between pattern
 * runs in separate processes alike.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from './layout.js';
import { withLockSync } from './lock.js';

interface Entry {
  generation: number;
  winners: string[];
}

const dirOf = (l: Layout) => path.join(l.runDir, 'agent', 'commits');
const fileOf = (l: Layout, id: string) => path.join(dirOf(l), `${id}.json`);

function read(l: Layout, id: string): Entry {
  try {
    return JSON.parse(readFileSync(fileOf(l, id), 'utf8')) as Entry;
  } catch {
    return { generation: 0, winners: [] };
  }
}

/** Run `fn` holding the container's ledger lock (held for microseconds: no await inside). */
function locked<T>(l: Layout, id: string, fn: () => T): T {
  mkdirSync(dirOf(l), { recursive: true });
  return withLockSync(l, `ledger-${id}`, `the commit ledger of ${id}`, fn);
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

/** Ids of containers that have a ledger (for cleanup of the ones that are gone). */
export function ledgerIds(l: Layout): { id: string; path: string }[] {
  let names: string[];
  try {
    names = readdirSync(dirOf(l));
  } catch {
    return [];
  }
  return names.filter((n) => n.endsWith('.json')).map((n) => ({ id: n.slice(0, -'.json'.length), path: path.join(dirOf(l), n) }));
}
