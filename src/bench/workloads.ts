/**
 * The three workloads, each on a reference image: how to start a fresh
 * source, when it is ready, what state to capture right before a clone and
 * how to check that state in the clones.
 */
import { randomBytes } from 'node:crypto';
import { imageRef } from '../core/setup/images.js';
import type { Podman } from '../drivers/podman.js';
import { TforkError } from '../errors.js';
import { execIn, sleep, waitUntil } from './containers.js';
import type { WorkloadId } from './options.js';
import { pixelDiff, screenshot } from './screen.js';
import { w4 } from './osworld-workload.js';
import { memoryChecksum, readCounter, SCREEN_THRESHOLD, verifyChecksum, verifyCounter, verifyScreen } from './verify.js';

export interface Workload {
  id: WorkloadId;
  title: string;
  image: string;
  /** The source's command (after the image); W3 takes the memory size. */
  args(sizeBytes?: number): string[];
  /** Wait until the fresh source is ready and give it state of its own. */
  prepare(podman: Podman, name: string): Promise<void>;
  /** Check the clones against the source; throws a VerifyError naming the first bad clone. */
  check(podman: Podman, source: string): Promise<(clones: string[]) => Promise<void>>;
}

/** W1: a shell loop counting in a variable; the token is drawn at start, so a restarted loop has another. */
export const COUNTER_SCRIPT = 't=$RANDOM$RANDOM$RANDOM; i=0; while true; do i=$((i+1)); echo "$t $i" > /tmp/count; sleep 0.1; done';

const w1: Workload = {
  id: 'W1',
  title: 'W1 tiny (busybox counter loop)',
  image: imageRef('tiny'),
  args: () => ['sh', '-c', COUNTER_SCRIPT],
  async prepare(podman, name) {
    // Count long enough that a restarted loop could not catch up with the source by verification time.
    const t0 = Date.now();
    while ((await readCounter(podman, name).catch(() => ({ value: 0 }))).value < 30) {
      if (Date.now() - t0 > 60_000) throw new TforkError('E_TIMEOUT', `${name}: the counter did not reach 30 within 60s`);
      await sleep(200);
    }
  },
  async check(podman, source) {
    const atClone = await readCounter(podman, source);
    return (clones) => verifyCounter(podman, clones, atClone);
  },
};

const w2: Workload = {
  id: 'W2',
  title: 'W2 desktop (Xvfb + openbox + xterm + x11vnc)',
  image: imageRef('desktop'),
  args: () => [],
  async prepare(podman, name) {
    await waitUntil(podman, name, ['xdotool', 'search', '--name', 'tfork-xterm'], 'the xterm window');
    await sleep(1000);
    const before = await screenshot(podman, name);
    // A marker of this source only, filling a good part of the terminal: a restarted desktop lacks it.
    const marker = `tfork-bench-${randomBytes(6).toString('hex')}`;
    await execIn(podman, name, ['sh', '-c', `xdotool search --name tfork-xterm windowactivate --sync; xdotool type --delay 2 "yes ${marker} | head -n 18"; xdotool key Return`]);
    // The xterm draws the marker within a second or so; on a busy host it can take longer.
    let changed = 0;
    for (const t0 = Date.now(); changed < 10 * SCREEN_THRESHOLD && Date.now() - t0 < 15_000; ) {
      await sleep(500);
      changed = pixelDiff(await screenshot(podman, name), before);
    }
    await sleep(500);
    if (changed < 10 * SCREEN_THRESHOLD) {
      throw new TforkError('E_INVALID_STATE', `${name}: typing the marker changed only ${(changed * 100).toFixed(3)}% of the screen; verification could not tell a restarted desktop from a clone`);
    }
  },
  async check(podman, source) {
    const shot = await screenshot(podman, source);
    return (clones) => verifyScreen(podman, clones, shot);
  },
};

const w3: Workload = {
  id: 'W3',
  title: 'W3 memory (tfork-memhold: written anonymous memory)',
  image: imageRef('memory'),
  args: (sizeBytes = 256 * 2 ** 20) => ['/usr/local/bin/tfork-memhold', String(Math.round(sizeBytes / 2 ** 20))],
  async prepare(podman, name) {
    await waitUntil(podman, name, ['test', '-s', '/tmp/memhold.ready'], 'tfork-memhold filling its memory', 300_000);
  },
  async check(podman, source) {
    const sum = await memoryChecksum(podman, source);
    return (clones) => verifyChecksum(podman, clones, sum);
  },
};

export const WORKLOADS: Record<WorkloadId, Workload> = { W1: w1, W2: w2, W3: w3, W4: w4 };
