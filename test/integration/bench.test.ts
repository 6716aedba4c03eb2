/**
 * The benchmark program on a small configuration (--quick), and its
 * verification against real clones: it accepts a live clone and rejects one
 * whose state did not come from the source (a clone restarted afresh).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, engineGate, podman, run, startContainer, sweep } from '../helpers/host.js';
import { layout } from '../../src/drivers/layout.js';
import { trackingSupport } from '../../src/core/checkpoint/tracking.js';
import { WORKLOADS, type Workload } from '../../src/bench/workloads.js';
import { sleep } from '../../src/bench/containers.js';

const skip = await engineGate('benchmark');
const BENCH = path.resolve(import.meta.dirname, '../../dist/bench/main.js');

async function liveClone(src: string): Promise<string> {
  const name = `${src}-c`;
  const r = await cli(['container', 'clone', '--live', '--name', name, '--format', 'json', src]);
  expect(r.exitCode, r.stderr + r.stdout).toBe(0);
  return name;
}

async function restart(name: string): Promise<void> {
  await podman().run(['restart', '-t', '0', name]);
  await sleep(1500);
}

describe.skipIf(skip)('npm run bench -- --quick', () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'tfork-bench-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs both contenders, verifies every run (clones, checkpoint and rollback) and writes the table, the JSON with every sample and the charts', async () => {
    const r = await run(process.execPath, [BENCH, '--quick', '--out', out], { reject: false, timeoutMs: 170_000 });
    expect(r.exitCode, r.stderr.split('\n').slice(-15).join('\n')).toBe(0);
    expect(r.stdout).toMatch(/machine .*cores.*kernel .*podman .*CRIU .*crun/);
    expect(r.stdout).toMatch(/speedup/);
    const files = readdirSync(out);
    expect(files).toEqual(expect.arrayContaining(['results.json', 'table.txt', 'time-vs-copies-w1.svg']));
    expect(readFileSync(path.join(out, 'table.txt'), 'utf8')).toBe(r.stdout);
    const doc = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(doc.schema).toBe(1);
    expect(doc.machine).toMatchObject({ cpus: expect.any(Number), kernel: expect.any(String), podman: expect.any(String), criu: expect.any(String), crun: expect.any(String) });
    const sets = doc.options.workloads.length * doc.options.copies.length;
    expect(doc.contenders).toEqual(expect.arrayContaining(['engine', 'stock']));
    expect(doc.samples).toHaveLength(sets * doc.options.reps * doc.contenders.length);
    for (const s of doc.samples) {
      expect(s, JSON.stringify(s)).toMatchObject({ ok: true, wallMs: expect.any(Number), sourceMs: expect.any(Number), copiesMs: expect.any(Number) });
      expect(doc.contenders).toContain(s.contender);
      expect(s.frozenMs).toBeGreaterThan(0);
      // The probe in the source saw the freeze: a stop at least as long as CRIU's frozen time (its own 1 ms tick aside).
      expect(s.pauseMs, JSON.stringify(s)).toBeGreaterThanOrEqual(s.frozenMs - 5);
      expect(s.memoryPerClone.pssKiB).toBeGreaterThan(0);
    }
    // W3 clones hold the source's memory: PSS per clone at least the size written.
    for (const s of doc.samples.filter((x: { workload: string }) => x.workload === 'W3')) expect(s.memoryPerClone.rssKiB * 1024).toBeGreaterThanOrEqual(s.sizeBytes);
    // The durable checkpoint: stock's export is written when checkpoint returns; the engine's async archive later.
    for (const s of doc.samples.filter((x: { contender: string }) => x.contender === 'stock' || x.contender === 'engine+persist')) expect(s.durableMs).toBeGreaterThan(0);
    expect(doc.results.rows).toHaveLength(sets * doc.contenders.length);
    expect(doc.results.ratios.every((x: { speedup?: { median: number } }) => x.speedup!.median > 0)).toBe(true);
    // Checkpoint and rollback of one container (W1 in --quick): every contender timed, every run verified,
    // the pause seen inside the source; the engine's full checkpoint is full, its incremental one writes
    // the changes only where this host tracks written pages.
    expect(doc.rollbackSamples.map((x: { contender: string }) => x.contender).sort()).toEqual(['engine', 'engine-incremental', 'stock']);
    for (const s of doc.rollbackSamples) {
      expect(s, JSON.stringify(s)).toMatchObject({ workload: 'W1', ok: true, checkpointMs: expect.any(Number), rollbackMs: expect.any(Number), pauseMs: expect.any(Number) });
      expect(s.frozenMs).toBeGreaterThan(0);
      expect(s.frozenMs).toBeLessThan(s.checkpointMs);
      expect(s.pauseMs).toBeGreaterThan(0);
    }
    const tracks = trackingSupport(layout()).ok;
    const of = (c: string) => doc.rollbackSamples.find((x: { contender: string }) => x.contender === c);
    expect(of('engine').incremental).toBe(false);
    expect(of('engine-incremental').incremental).toBe(tracks);
    expect(doc.results.rollback.ratios[0]).toMatchObject({ workload: 'W1', pairs: 1 });
    if (tracks) expect(doc.results.rollback.ratios[0].incremental.median).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/checkpoint and rollback of one running container/);
    expect(files).toContain('checkpoint-rollback.svg');
    for (const f of files.filter((x) => x.endsWith('.svg'))) expect(readFileSync(path.join(out, f), 'utf8')).toMatch(/^<svg [^]*<\/svg>\n$/);
    // Nothing of the run is left: no containers, no export files.
    const left = await podman().run(['ps', '-a', '--filter', `name=^tfork-bench-${doc.run}`, '--format', '{{.Names}}']);
    expect(left.stdout.trim()).toBe('');
    expect(existsSync(path.join(layout().root, 'bench-tmp', doc.run))).toBe(false);
  });
});

describe.skipIf(skip)('benchmark verification', () => {
  afterAll(async () => {
    await sweep();
  });

  /** Clone a fresh, prepared source live; the check must pass on the clone, then reject it once restarted afresh. */
  async function acceptsCloneRejectsRestart(w: Workload, args: string[], rejection: (clone: string) => RegExp, more?: (check: (c: string[]) => Promise<void>, clone: string) => Promise<void>) {
    const src = await startContainer(w.image, args);
    await w.prepare(podman(), src);
    const check = await w.check(podman(), src);
    const clone = await liveClone(src);
    try {
      await check([clone]);
      await restart(clone);
      await expect(check([clone])).rejects.toThrow(rejection(clone));
      await more?.(check, clone);
    } finally {
      await podman().run(['rm', '-f', '-t', '0', clone], { reject: false });
    }
  }

  it('W1: accepts a live clone whose counter continues, rejects it once restarted afresh', async () => {
    await acceptsCloneRejectsRestart(WORKLOADS.W1, WORKLOADS.W1.args(), (c) => new RegExp(`${c}: counter token \\d+ is not the source's`));
  });

  it('W3: accepts a live clone holding the source memory, rejects a restarted one by its checksum, and a stopped one', async () => {
    await acceptsCloneRejectsRestart(WORKLOADS.W3, WORKLOADS.W3.args(32 * 2 ** 20), (c) => new RegExp(`${c}: memory checksum [0-9a-f]{16} is not the source's`), async (check, clone) => {
      await podman().run(['stop', '-t', '0', clone]);
      await expect(check([clone])).rejects.toThrow(/is exited, not running/);
    });
  });
});
