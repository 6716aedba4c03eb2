/**
 * Container rlimits this host can grant. podman's defaults (1048576) fail on
 * hosts without CAP_SYS_RESOURCE, and the limit that works is not the shell's
 * hard limit either (podman and crun adjust their own limits on the way), so
 * setup probes it: it starts the tiny image with descending candidates and
 * keeps the largest value that runs. The result is cached with the host's
 * hard limits it was probed under.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';
import type { Podman } from '../../drivers/podman.js';
import type { Rlimit } from '../podman-config.js';
import { hostRlimits } from '../../drivers/host.js';

export interface GrantedRlimits {
  nofile: Rlimit;
  nproc: Rlimit;
}

/** Verified on the project's machines when nothing was probed yet. */
export const CONSERVATIVE: GrantedRlimits = { nofile: { soft: 1024, hard: 1024 }, nproc: { soft: 4096, hard: 4096 } };

const CANDIDATES = [1048576, 524288, 262144, 65536, 32768, 16384, 8192, 4096, 1024];

export function candidates(hostHard: number): number[] {
  return [...new Set([Math.min(hostHard, CANDIDATES[0]!), ...CANDIDATES.filter((c) => c < hostHard)])].sort((a, b) => b - a);
}

function file(l: Layout): string {
  return path.join(l.etc, 'rlimits.json');
}

interface Cache {
  host: { nofile: number; nproc: number };
  granted: GrantedRlimits;
}

export function cachedRlimits(l: Layout): GrantedRlimits {
  if (!existsSync(file(l))) return CONSERVATIVE;
  const c = JSON.parse(readFileSync(file(l), 'utf8')) as Cache;
  const h = hostRlimits();
  return c.host.nofile === h.nofile.hard && c.host.nproc === h.nproc.hard ? c.granted : CONSERVATIVE;
}

export function rlimitsProbed(l: Layout): boolean {
  return existsSync(file(l)) && cachedRlimits(l) !== CONSERVATIVE;
}

/** Probe with the given image; returns the granted limits and caches them. */
export async function probeRlimits(l: Layout, podman: Podman, image: string): Promise<GrantedRlimits> {
  const h = hostRlimits();
  const tryRun = async (nofile: number, nproc: number) =>
    (await podman.run(['run', '--rm', '--network=none', '--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`, image, 'true'], { reject: false, timeoutMs: 60_000 })).exitCode === 0;
  const pick = async (list: number[], test: (v: number) => Promise<boolean>) => {
    for (const v of list) if (await test(v)) return v;
    return undefined;
  };
  const nofile = (await pick(candidates(h.nofile.hard), (v) => tryRun(v, CONSERVATIVE.nproc.hard))) ?? CONSERVATIVE.nofile.hard;
  const nproc = (await pick(candidates(h.nproc.hard), (v) => tryRun(nofile, v))) ?? CONSERVATIVE.nproc.hard;
  const granted = { nofile: { soft: nofile, hard: nofile }, nproc: { soft: nproc, hard: nproc } };
  const cache: Cache = { host: { nofile: h.nofile.hard, nproc: h.nproc.hard }, granted };
  writeFileSync(file(l), `${JSON.stringify(cache, null, 2)}\n`);
  return granted;
}
