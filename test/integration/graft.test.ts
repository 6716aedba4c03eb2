/**
 * Live clones on tier 2 (clone/tier.ts): the copies graft the frozen source's
 * private anonymous memory copy-on-write through tfork_graft instead of
 * restoring it. Runs where the module is loaded: in the kernel lane's QEMU
 * guest (npm run test:kernel), or on a host that loads it. tfork-memhold holds
 * 256 MiB of random data, hashes it on SIGUSR1 and rewrites one MiB on SIGUSR2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, engineGate, exec, leaks, newLeaks, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { idOf, memholdChange, memholdSum, rm, sleep, stateOf } from '../helpers/workloads.js';
import { layout } from '../../src/drivers/layout.js';
import { graftAvailable } from '../../src/core/clone/tier.js';
import { containerMemory } from '../../src/bench/memory.js';
import { isFrozen } from '../../src/drivers/freezer.js';

const MEMORY = 'localhost/tfork/memory';
const MiB = 2 ** 20;
const graft = graftAvailable(layout());
const skip = (await engineGate('tier 2 live clone')) ?? (graft.ok ? undefined : (console.warn(`SKIP tier 2 live clone: ${graft.reason}`), graft.reason));

interface Report {
  tier: { level: number; name: string; reason: string };
  capture: { mode: string };
  copies: { name: string; state: string }[];
  timings: { frozenMs?: number; dumpMs: number; copiesMs: number; totalMs: number };
  error?: { phase: string; message: string };
}

async function clone(args: string[], env: Record<string, string> = {}): Promise<{ exitCode: number; report: Report; stderr: string }> {
  const r = await cli(['container', 'clone', '--live', '--format', 'json', ...args], { env });
  return { exitCode: r.exitCode ?? -1, report: (r.stdout ? JSON.parse(r.stdout) : {}) as Report, stderr: r.stderr };
}

// Under TCG (the kernel lane's guest) one clone takes seconds and hashing 256 MiB a few more.
describe.skipIf(skip)('container clone --live on tier 2 (tfork_graft)', { timeout: 900_000 }, () => {
  let src = '';
  let hash = '';
  beforeAll(async () => {
    src = await startContainer(MEMORY, ['/usr/local/bin/tfork-memhold', '256']);
    await waitFor(src, ['test', '-s', '/tmp/memhold.ready'], 120_000);
    hash = await memholdSum(src);
  });
  afterAll(sweep);

  it("shares the source's memory: each copy carries it for a few MiB of its own, and writes stay private", async () => {
    const before = await leaks();
    const srcMem = await containerMemory(podman(), src);
    const { exitCode, report, stderr } = await clone(['--copies=2', '--name', `${src}-t`, src]);
    expect(exitCode, stderr).toBe(0);
    expect(report.tier).toMatchObject({ level: 2, name: 'graft' });
    expect(report.capture.mode).toBe('graft');
    expect(report.timings.frozenMs).toBeGreaterThan(0);
    // Thawed once every copy has grafted, before the restores return.
    const t = report.timings;
    console.log(`tier 2 clone of 2: total ${Math.round(t.totalMs)} ms, dump ${Math.round(t.dumpMs)} ms, copies ${Math.round(t.copiesMs)} ms, source frozen ${Math.round(t.frozenMs!)} ms`);
    expect(t.frozenMs!).toBeLessThan(t.totalMs);
    const names = report.copies.map((c) => c.name);
    try {
      // Right after the clone, before anything reads or writes it: PSS splits the shared pages.
      const mem = await Promise.all(names.map((n) => containerMemory(podman(), n)));
      const srcAfter = await containerMemory(podman(), src);
      console.log(`tier 2, 256 MiB source: RSS ${Math.round(srcMem.rssKiB / 1024)} MiB; after 2 copies PSS source ${Math.round(srcAfter.pssKiB / 1024)} MiB, copies ${mem.map((m) => `${Math.round(m.pssKiB / 1024)} MiB PSS / ${Math.round(m.rssKiB / 1024)} MiB RSS`).join(', ')}`);
      for (const m of mem) {
        // Every copy maps the 256 MiB, and owns a third of it at most (the source and the other copy hold the rest).
        expect(m.rssKiB * 1024).toBeGreaterThan(250 * MiB);
        expect(m.pssKiB * 1024).toBeLessThan(256 * MiB * 0.4);
      }
      expect(srcAfter.pssKiB).toBeLessThan(srcMem.pssKiB * 0.4);
      // The source runs on, thawed, with its memory; every copy has the same bytes.
      expect(isFrozen(await idOf(src))).toBe(false);
      for (const n of [src, ...names]) expect(await memholdSum(n), n).toBe(hash);
      // A write in one copy changes its memory only.
      await memholdChange(names[0]!);
      const changed = await memholdSum(names[0]!);
      expect(changed).not.toBe(hash);
      expect(await memholdSum(names[1]!)).toBe(hash);
      expect(await memholdSum(src)).toBe(hash);
      // The copy that wrote owns what it wrote, the other still shares.
      const after = await Promise.all(names.map((n) => containerMemory(podman(), n)));
      expect(after[0]!.pssKiB).toBeGreaterThan(after[1]!.pssKiB);
      // A clone of the copy that wrote grafts from that copy and carries its memory.
      const { exitCode: c2, report: r2, stderr: e2 } = await clone(['--name', `${src}-tt`, names[0]!]);
      expect(c2, e2).toBe(0);
      expect(r2.tier.level).toBe(2);
      expect(await memholdSum(`${src}-tt`)).toBe(changed);
      await rm(`${src}-tt`);
    } finally {
      await rm(...names);
    }
    expect(await newLeaks(before)).toEqual([]);
  });

  it('a graft that fails unwinds: no copy is left, the source is thawed and runs on', async () => {
    const before = await leaks();
    const base = `${src}-f`;
    const { exitCode, report } = await clone(['--copies=2', '--name', base, src], { TFORK_FAULT: 'graft:1' });
    expect(exitCode).toBe(125);
    expect(report.error?.phase).toBe('restore:1');
    expect(report.error?.message).toMatch(/graft/i);
    const left = (await podman().run(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter((n) => n.startsWith(base));
    expect(left).toEqual([]);
    expect(await newLeaks(before)).toEqual([]);
    expect(await stateOf(src)).toBe('running');
    expect(isFrozen(await idOf(src))).toBe(false);
    expect(await memholdSum(src)).toBe(hash);
  });

  it('checkpoint and rollback of a grafted copy restore its pages the ordinary way; --persistent clones on tier 1 with an archive', async () => {
    const copy = `${src}-c`;
    const { exitCode, report, stderr } = await clone(['--name', copy, src]);
    expect(exitCode, stderr).toBe(0);
    expect(report.tier.level).toBe(2);
    try {
      const ck = await cli(['checkpoint', 'create', '--format', 'json', copy]);
      expect(ck.exitCode, ck.stderr).toBe(0);
      const id = JSON.parse(ck.stdout).id as string;
      await memholdChange(copy);
      expect(await memholdSum(copy)).not.toBe(hash);
      const rb = await cli(['rollback', '--format', 'json', copy, id]);
      expect(rb.exitCode, rb.stderr).toBe(0);
      expect(await memholdSum(copy)).toBe(hash);

      const p = await clone(['--persistent=sync', '--name', `${src}-p`, src]);
      expect(p.exitCode, p.stderr).toBe(0);
      expect(p.report.tier).toMatchObject({ level: 1, reason: expect.stringMatching(/--persistent/) });
      expect(await memholdSum(`${src}-p`)).toBe(hash);
    } finally {
      await rm(copy, `${src}-p`);
      await sleep(100);
    }
  });
});
