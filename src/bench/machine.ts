/** The machine a result was measured on: hardware, kernel, tool versions, and how busy it was. */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { probe } from '../core/probe.js';
import { run } from '../drivers/exec.js';
import type { Layout } from '../drivers/layout.js';
import type { Podman } from '../drivers/podman.js';

export interface Machine {
  id: string;
  hostname: string;
  os: string;
  kernel: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  podman?: string;
  criu?: string;
  crun?: string;
  conmon?: string;
  storage: string;
  tier: string;
  node: string;
  commit?: string;
  /** Load average (1 min) and containers not of this run, when the run started. */
  loadAtStart: number;
  otherContainersAtStart: number;
}

/** First 8 hex digits of /etc/machine-id (or the hostname). */
export function shortMachineId(): string {
  const f = '/etc/machine-id';
  return (existsSync(f) ? readFileSync(f, 'utf8').trim().slice(0, 8) : '') || os.hostname();
}

function osName(): string {
  const f = '/etc/os-release';
  return (existsSync(f) && /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync(f, 'utf8'))?.[1]) || os.type();
}

export async function otherContainers(podman: Podman, label: string): Promise<number> {
  const r = await podman.run(['ps', '--format', '{{.Labels}}'], { reject: false });
  return r.stdout.split('\n').filter((l) => l.trim() && !l.includes(label.replace('=', ':'))).length;
}

export async function describeMachine(l: Layout, podman: Podman, label: string): Promise<Machine> {
  const c = await probe(l);
  const commit = await run('/usr/bin/git', ['-C', l.packageDir, 'rev-parse', '--short', 'HEAD'], { reject: false }).catch(() => undefined);
  return {
    id: shortMachineId(),
    hostname: os.hostname(),
    os: osName(),
    kernel: c.kernel,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    podman: c.podman?.version,
    criu: c.criu?.version,
    crun: c.crun?.version,
    conmon: c.conmon?.version,
    storage: `${c.storage.fs}${c.storage.loopFile ? ' on a loop file' : ''}`,
    tier: c.tier.name,
    node: process.version,
    commit: commit?.exitCode === 0 ? commit.stdout.trim() : undefined,
    loadAtStart: os.loadavg()[0]!,
    otherContainersAtStart: await otherContainers(podman, label),
  };
}

export function machineLine(m: Machine): string {
  return (
    `${m.cpus} cores (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.os}, kernel ${m.kernel}; ` +
    `podman ${m.podman ?? '?'}, CRIU ${m.criu ?? '?'}, crun ${m.crun ?? '?'}, conmon ${m.conmon ?? '?'}; storage ${m.storage}`
  );
}
