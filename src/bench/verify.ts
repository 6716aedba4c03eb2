/**
 * What each workload's clones must show to count: the W1 counter continues
 * (same token, not behind the source's value at clone time, still counting),
 * the W2 screen matches the source's, the W3 memory checksum equals the
 * source's. A clone that fails any of it fails the run.
 */
import type { Podman } from '../drivers/podman.js';
import { TforkError } from '../errors.js';
import { containerState, execIn, sleep } from './containers.js';
import { pixelDiff, screenshot } from './screen.js';

export class VerifyError extends TforkError {
  constructor(readonly clone: string, what: string) {
    super('E_INVALID_STATE', `${clone}: ${what}`);
  }
}

/** Largest fraction of differing pixels a clone's screen may show (the W2 marker changes far more). */
export const SCREEN_THRESHOLD = 0.001;

export interface Counter {
  token: string;
  value: number;
}

export function parseCounter(text: string): Counter | undefined {
  const m = /^(\S+) (\d+)\s*$/.exec(text);
  return m ? { token: m[1]!, value: Number(m[2]) } : undefined;
}

/** W1's counter file (retried: the loop rewrites it ten times a second). */
export async function readCounter(podman: Podman, name: string): Promise<Counter> {
  let last = '';
  for (let i = 0; i < 10; i++) {
    last = await execIn(podman, name, ['cat', '/tmp/count']);
    const c = parseCounter(last);
    if (c) return c;
    await sleep(30);
  }
  throw new VerifyError(name, `unreadable counter ${JSON.stringify(last)}`);
}

/** W3: ask tfork-memhold (PID 1) to hash its memory now, and read the hash. */
/** tfork-memhold rewrites one more MiB of its memory (SIGUSR2); the script returns once it did. */
export const MEMHOLD_CHANGE_SCRIPT =
  'n=$(cat /tmp/memhold.changes 2>/dev/null || echo 0); kill -USR2 1; i=0; while [ "$(cat /tmp/memhold.changes 2>/dev/null || echo 0)" = "$n" ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 3; sleep 0.05; done';

export async function memholdChange(podman: Podman, name: string): Promise<void> {
  await execIn(podman, name, ['sh', '-c', MEMHOLD_CHANGE_SCRIPT], 120_000);
}

export async function memoryChecksum(podman: Podman, name: string): Promise<string> {
  const script = 'rm -f /tmp/memhold.sum; kill -USR1 1; i=0; while [ ! -s /tmp/memhold.sum ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 3; sleep 0.05; done; cat /tmp/memhold.sum';
  return (await execIn(podman, name, ['sh', '-c', script], 120_000)).trim();
}

async function allRunning(podman: Podman, clones: string[]): Promise<void> {
  const states = await Promise.all(clones.map((c) => containerState(podman, c)));
  states.forEach((s, i) => {
    if (s !== 'running') throw new VerifyError(clones[i]!, `is ${s}, not running`);
  });
}

export async function verifyCounter(podman: Podman, clones: string[], atClone: Counter): Promise<void> {
  await allRunning(podman, clones);
  const first = await Promise.all(clones.map((c) => readCounter(podman, c)));
  first.forEach((c, i) => {
    if (c.token !== atClone.token) throw new VerifyError(clones[i]!, `counter token ${c.token} is not the source's ${atClone.token}: the loop was restarted, not cloned`);
    if (c.value < atClone.value) throw new VerifyError(clones[i]!, `counter ${c.value} is behind the source's ${atClone.value} at clone time`);
  });
  await sleep(500);
  const later = await Promise.all(clones.map((c) => readCounter(podman, c)));
  later.forEach((c, i) => {
    if (c.token !== atClone.token || c.value <= first[i]!.value) throw new VerifyError(clones[i]!, `counter stopped at ${first[i]!.value} (now ${c.token} ${c.value})`);
  });
}

export async function verifyScreen(podman: Podman, clones: string[], source: Buffer): Promise<void> {
  await allRunning(podman, clones);
  const shots = await Promise.all(clones.map((c) => screenshot(podman, c)));
  shots.forEach((s, i) => {
    const d = pixelDiff(s, source);
    if (d >= SCREEN_THRESHOLD) throw new VerifyError(clones[i]!, `screen differs from the source's in ${(d * 100).toFixed(2)}% of pixels (limit ${SCREEN_THRESHOLD * 100}%)`);
  });
}

export async function verifyChecksum(podman: Podman, clones: string[], source: string): Promise<void> {
  await allRunning(podman, clones);
  const sums = await Promise.all(clones.map((c) => memoryChecksum(podman, c)));
  sums.forEach((s, i) => {
    if (s !== source) throw new VerifyError(clones[i]!, `memory checksum ${s} is not the source's ${source}`);
  });
}
