/**
 * Helpers of the agent-layer suites: a counting source, what a run left
 * behind (containers carrying this run's label, clone root filesystems,
 * checkpoints), and candidates that succeed, fail, hang or crash.
 */
import { existsSync } from 'node:fs';
import { expect } from 'vitest';
import { Sandbox } from '../../src/agent/sandbox.js';
import { listCheckpoints } from '../../src/core/checkpoint/index.js';
import { inspectContainer } from '../../src/drivers/containers.js';
import type { Candidate } from '../../src/agent/results.js';
import { podman, startContainer, waitFor, TEST_LABEL } from './host.js';

/** W1: a shell whose loop variable (memory) is written to /tmp/count every 0.1 s (renamed into place, never seen half-written). */
export const COUNTER = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done'];

export async function counterSandbox(image = 'localhost/tfork/tiny'): Promise<Sandbox> {
  const name = await startContainer(image, COUNTER);
  await waitFor(name, ['test', '-s', '/tmp/count']);
  return Sandbox.attach(name);
}

export async function count(sb: Sandbox, file = '/tmp/count'): Promise<number> {
  return Number((await sb.readText(file)).trim());
}

/** Names of the containers carrying this run's label (clones inherit it). */
export async function labelled(): Promise<string[]> {
  const r = await podman().run(['ps', '-a', '--filter', `label=${TEST_LABEL}`, '--format', '{{.Names}}']);
  return r.stdout.split('\n').filter(Boolean).sort();
}

/** Root filesystems of the clones the candidates ran in, recorded as they start. */
export class Footprint {
  readonly rootfs = new Set<string>();

  /** The candidate, recording its clone's rootfs subvolume first. */
  track(c: Candidate): Candidate {
    return async (sb, i) => {
      this.rootfs.add((await inspectContainer(podman(), sb.id)).rootfs);
      return c(sb, i);
    };
  }

  /** Every clone gone: no container of `source`'s lineage but the source, no rootfs, no checkpoint of a clone. */
  async expectClean(source: Sandbox): Promise<void> {
    expect((await labelled()).filter((n) => n.startsWith(`${source.name}-`))).toEqual([]);
    for (const p of this.rootfs) expect(existsSync(p), `${p} left behind`).toBe(false);
    const cps = (await listCheckpoints()).filter((c) => c.container.name.startsWith(`${source.name}-`));
    expect(cps.map((c) => c.id)).toEqual([]);
  }
}

const sh = (script: string): Candidate => async (sb) => (await sb.exec(['sh', '-c', script])).exitCode === 0;

/** Candidates of every kind. */
export const kinds = {
  succeed: sh,
  fail: (after = 0.2) => sh(`sleep ${after}; exit 1`),
  hang: (): Candidate => sh('sleep 1000'),
  /** The clone's container dies under the candidate. */
  crash: (): Candidate => async (sb) => {
    await podman().run(['kill', sb.id]);
    return (await sb.exec(['true'])).exitCode === 0;
  },
  throws: (): Candidate => async () => {
    throw new Error('candidate bug');
  },
};

/** Whether a process whose command line holds `text` runs in the container. */
export async function runs(sb: Sandbox, text: string): Promise<boolean> {
  return (await sb.exec(['ps', '-o', 'args'])).stdout.split('\n').some((l) => l.includes(text) && !l.includes('ps -o'));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
