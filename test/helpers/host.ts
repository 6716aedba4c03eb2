/**
 * Test helpers: the same capability probe the commands use, gates that say
 * why a suite skips, a label on everything tests create and a sweep of it.
 */
import { probe, type Capabilities } from '../../src/core/probe.js';
import { executeCleanup, planCleanup } from '../../src/core/cleanup.js';
import { layout } from '../../src/drivers/layout.js';
import { Podman } from '../../src/drivers/podman.js';
import { run } from '../../src/drivers/exec.js';
import { pixelDiff, screenshot as screenshotOf } from '../../src/bench/screen.js';
import path from 'node:path';
import { expect } from 'vitest';

/**
 * Everything a test run creates carries this label; the value is the run, so a
 * sweep removes this run's containers and never those of a run beside it.
 */
export const TEST_LABEL = `io.podman-tfork.test=${process.env.TFORK_TEST_RUN ?? process.pid}`;
export const CLI = path.resolve(import.meta.dirname, '../../bin/podman-tfork.js');

let cached: Capabilities | undefined;
export async function caps(): Promise<Capabilities> {
  cached ??= await probe(layout());
  return cached;
}

/** Returns the reason a suite must skip (and prints it), or undefined. */
export function gate(suite: string, checks: [boolean, string][]): string | undefined {
  const failed = checks.filter(([ok]) => !ok).map(([, why]) => why);
  if (!failed.length) return undefined;
  const reason = failed.join('; ');
  console.warn(`SKIP ${suite}: ${reason}`);
  return reason;
}

export async function engineGate(suite: string): Promise<string | undefined> {
  const c = await caps();
  return gate(suite, [
    [c.root, 'not root'],
    [!!c.podman, 'podman missing (run podman-tfork setup)'],
    [!!c.criu?.check.ok, 'patched CRIU missing or `criu check` fails'],
    [!!c.crun?.criu, 'patched crun with CRIU support missing'],
    [c.setupDone, 'podman-tfork setup has not run'],
    [c.storage.fs === 'btrfs', 'graphroot is not btrfs'],
  ]);
}

export function podman(): Podman {
  return new Podman(layout());
}

/** Run the built CLI as a user would. */
export async function cli(args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  return run(process.execPath, [CLI, ...args], { reject: false, timeoutMs: 600_000, ...opts });
}

export function uniqueName(prefix: string): string {
  return `tfork-test-${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
}

/** Start a labelled container; returns its name. */
export async function startContainer(image: string, args: string[] = [], o: { name?: string; runtime?: string; extra?: string[] } = {}): Promise<string> {
  const name = o.name ?? uniqueName(image.split('/').pop()!);
  await podman().run([...(o.runtime ? ['--runtime', o.runtime] : []), 'run', '-d', '--label', TEST_LABEL, '--name', name, ...(o.extra ?? []), image, ...args]);
  return name;
}

/** Ids of every container podman knows, the set cleanup treats as live. */
async function containerIds(): Promise<Set<string>> {
  return new Set((await podman().run(['ps', '-a', '--no-trunc', '--format', '{{.ID}}'])).stdout.split('\n').filter(Boolean));
}

/** Remove this run's containers, and the records (commit ledgers, checkpoint heads, kept specs) of removed containers. */
export async function sweep(): Promise<void> {
  await podman().run(['rm', '-f', '-t', '0', '--filter', `label=${TEST_LABEL}`], { reject: false });
  await executeCleanup((await planCleanup(layout(), await containerIds())).filter((i) => i.kind === 'record'));
}

export async function exec(name: string, argv: string[], o: { binary?: boolean; runtime?: string } = {}) {
  return podman().run([...(o.runtime ? ['--runtime', o.runtime] : []), 'exec', name, ...argv], { binary: o.binary });
}

/** Wait until a command in the container succeeds. */
export async function waitFor(name: string, argv: string[], timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const r = await podman().run(['exec', name, ...argv], { reject: false });
    if (r.exitCode === 0) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${argv.join(' ')} in ${name}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** Raw RGB screenshot of the container's X display, taken inside it. */
export async function screenshot(name: string): Promise<Buffer> {
  return screenshotOf(podman(), name);
}

/**
 * Wait until the W2 desktop's screen has settled: the xterm is painted (its
 * white background covers over a tenth of the screen) and two screenshots
 * half a second apart are the same; returns the last one. A window is mapped
 * (what xwininfo sees) well before it is painted on a slow CPU (seconds in the
 * kernel lane's TCG guest): a state captured in between is faithfully cloned,
 * and then the paint shows up later in the source and in every copy, which a
 * test comparing screens must not mistake for a defect.
 */
export async function waitForSettledScreen(name: string, timeoutMs = 120_000): Promise<Buffer> {
  const t0 = Date.now();
  let last: Buffer | undefined;
  for (;;) {
    const shot = await screenshot(name);
    if (last && pixelDiff(shot, last) === 0 && whiteShare(shot) > 0.1) return shot;
    if (Date.now() - t0 > timeoutMs) throw new Error(`the screen of ${name} did not settle within ${timeoutMs} ms (white share ${whiteShare(shot).toFixed(3)})`);
    last = shot;
    await new Promise((res) => setTimeout(res, 500));
  }
}

function whiteShare(rgb: Buffer): number {
  let white = 0;
  for (let i = 0; i + 2 < rgb.length; i += 3) if (rgb[i] === 255 && rgb[i + 1] === 255 && rgb[i + 2] === 255) white++;
  return white / (rgb.length / 3);
}

export { run, pixelDiff };

/**
 * What a failed or finished operation could have leaked, found the way
 * `podman-tfork cleanup` finds it: subvolumes no layer owns, scratch of dead
 * operations, stale mounts, partial archives. Operations of other runs still
 * in progress are not counted, so this holds on a busy machine.
 */
export async function leaks(): Promise<Set<string>> {
  const once = async () => {
    const items = await planCleanup(layout(), await containerIds(), { minAgeMs: 0 });
    // Not counted: cgroups and records (commit ledger, checkpoint head) that plain
    // `podman rm` leaves until the next cleanup; the cleanup test covers those.
    return new Set(items.filter((i) => i.kind !== 'cgroup' && i.kind !== 'record').map((i) => `${i.kind} ${i.path}`));
  };
  const first = await once();
  if (![...first].some((x) => x.startsWith('process '))) return first;
  // The processes of a container podman has just removed are still exiting for a moment:
  // a process counts when it is still there a second later.
  await new Promise((r) => setTimeout(r, 1000));
  const again = await once();
  return new Set([...first].filter((x) => !x.startsWith('process ') || again.has(x)));
}

/** Leaks present now that were not in `before`. */
export async function newLeaks(before: Set<string>): Promise<string[]> {
  return [...(await leaks())].filter((x) => !before.has(x));
}

/**
 * TFORK_EXPECT_TIER (the kernel lane sets it in its guest, where tfork_graft
 * is loaded): the tier every live clone of the run must report, so that a
 * clone quietly falling back to the stock tier fails the run.
 */
export function expectTier(report: { tier?: { level: number; reason: string } }): void {
  const want = process.env.TFORK_EXPECT_TIER;
  if (want) expect(report.tier?.level, `clone tier (${report.tier?.reason})`).toBe(Number(want));
}
