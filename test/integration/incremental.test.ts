/**
 * Incremental checkpoints (criu-modules/patches/0006, checkpoint/tracking.ts):
 * after the first checkpoint, each one writes only the pages the container
 * wrote since the one before, and a rollback to any checkpoint of the chain
 * brings back that instant's memory. tfork-memhold holds 256 MiB of random
 * data, rewrites one MiB of it on SIGUSR2 and hashes all of it on SIGUSR1.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, engineGate, exec, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { checkerCount, idOf, memholdChange, memholdSum, rm, sleep, startScript, sysvSegmentsPy } from '../helpers/workloads.js';
import { layout } from '../../src/drivers/layout.js';
import { holderPid, keepsTrackingInBackground, trackDir, trackingSupport, tracksAfterBackground } from '../../src/core/checkpoint/tracking.js';
import { pidAlive } from '../../src/drivers/host.js';

const MEMORY = 'localhost/tfork/memory';
const support = trackingSupport(layout());
const skip = (await engineGate('incremental checkpoints')) ?? (support.ok ? undefined : (console.warn(`SKIP incremental checkpoints: ${support.reason}`), support.reason));

interface Ck {
  id: string;
  sizeBytes: number;
  imagesParent?: string;
  memory?: string;
  capture?: string;
}

async function checkpoint(name: string): Promise<Ck> {
  const r = await cli(['checkpoint', 'create', '--format', 'json', name]);
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Ck;
}

async function rollback(name: string, id: string): Promise<void> {
  const r = await cli(['rollback', '--format', 'json', name, id]);
  expect(r.exitCode, r.stderr).toBe(0);
}

const MiB = 2 ** 20;

describe.skipIf(skip)('incremental checkpoints (userfaultfd write tracking)', () => {
  let src = '';
  beforeAll(async () => {
    src = await startContainer(MEMORY, ['/usr/local/bin/tfork-memhold', '256']);
    await waitFor(src, ['test', '-s', '/tmp/memhold.ready'], 60_000);
  });
  afterAll(sweep);

  it('writes only what changed since the previous checkpoint; every checkpoint of the chain rolls back to its own memory', async () => {
    const l = layout();
    const dir = trackDir(l, await idOf(src));
    const ck1 = await checkpoint(src);
    const s1 = await memholdSum(src);
    expect(ck1.imagesParent).toBeUndefined();
    expect(ck1.sizeBytes).toBeGreaterThan(256 * MiB);
    // the first of a chain: in the background where CRIU arms the tracking after it (patch 0023)
    expect(ck1.capture).toBe(tracksAfterBackground(l) ? 'background' : 'frozen');
    const holder = holderPid(dir);
    expect(holder, 'a tfork-track holder keeps the tracking').toBeGreaterThan(0);

    await memholdChange(src);
    const s2 = await memholdSum(src);
    expect(s2).not.toBe(s1);
    const ck2 = await checkpoint(src);
    expect(ck2.imagesParent).toBe(ck1.id);
    expect(ck2.memory).toMatch(/^incremental/);
    // One MiB changed, plus the little a process writes anyway (stack, libc).
    expect(ck2.sizeBytes).toBeGreaterThan(1 * MiB);
    expect(ck2.sizeBytes).toBeLessThan(8 * MiB);
    expect(readdirSync(path.join(l.checkpointStore, ck2.id, 'images'))).toContain('parent');

    // A live clone of a tracked source leaves the tracking as it was: captured in the background
    // where CRIU lends the tracking to the capture and gives it back (patch 0028), frozen where it
    // can't. A MiB written before the clone must still be in the next increment.
    await memholdChange(src);
    const s2b = await memholdSum(src);
    const holder2 = holderPid(dir);
    const c = await cli(['container', 'clone', '--live', '--format', 'json', '--name', `${src}-c`, src]);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout).capture).toMatchObject(
      keepsTrackingInBackground(l) ? { mode: 'background', reason: expect.stringMatching(/lent to the capture/) } : { mode: 'frozen', reason: expect.stringMatching(/incremental/) },
    );
    expect(await memholdSum(`${src}-c`)).toBe(s2b);
    expect(holderPid(dir), 'the same holder keeps the tracking').toBe(holder2);
    await rm(`${src}-c`);

    await memholdChange(src);
    const s3 = await memholdSum(src);
    const ck3 = await checkpoint(src);
    expect(ck3.imagesParent).toBe(ck2.id);
    expect(ck3.sizeBytes).toBeLessThan(8 * MiB);

    // Each checkpoint brings back its own instant, through one or two parents.
    await rollback(src, ck2.id);
    expect(await memholdSum(src)).toBe(s2);
    expect(pidAlive(holder!), 'the holder of the replaced processes is gone').toBe(false);
    await rollback(src, ck1.id);
    expect(await memholdSum(src)).toBe(s1);
    await rollback(src, ck3.id);
    expect(await memholdSum(src)).toBe(s3);

    // After a rollback the processes are new: the next checkpoint is full again, then incremental.
    const ck4 = await checkpoint(src);
    expect(ck4.imagesParent).toBeUndefined();
    expect(ck4.memory).toMatch(/rolled back/);
    await memholdChange(src);
    const ck5 = await checkpoint(src);
    expect(ck5.imagesParent).toBe(ck4.id);

    // Removing a checkpoint others stand on hides it; its images go with the last one on it.
    expect((await cli(['checkpoint', 'rm', ck1.id, ck2.id])).exitCode).toBe(0);
    const listed = JSON.parse((await cli(['checkpoint', 'list', '--format', 'json', src])).stdout) as Ck[];
    expect(listed.map((x) => x.id)).toEqual([ck3.id, ck4.id, ck5.id]);
    expect(existsSync(path.join(l.checkpointStore, ck1.id))).toBe(true);
    // The table's reader learns what the listing hides: the two held, and why.
    const table = await cli(['checkpoint', 'list', src]);
    expect(table.stderr).toMatch(/^2 removed checkpoint\(s\) \([\d.]+MiB of images\) kept on disk: incremental checkpoints listed here read their pages/m);
    await rollback(src, ck3.id);
    expect(await memholdSum(src)).toBe(s3);
    expect((await cli(['checkpoint', 'rm', ck3.id, ck4.id, ck5.id])).exitCode).toBe(0);
    for (const ck of [ck1, ck2, ck3, ck4, ck5]) expect(existsSync(path.join(l.checkpointStore, ck.id)), ck.id).toBe(false);
  });

  it('a holder killed between checkpoints makes the next one full, and it rolls back right', async () => {
    const dir = trackDir(layout(), await idOf(src));
    const ck1 = await checkpoint(src);
    const holder = holderPid(dir);
    expect(holder).toBeGreaterThan(0);
    process.kill(holder!, 'SIGKILL');
    for (let i = 0; i < 100 && pidAlive(holder!); i++) await new Promise((r) => setTimeout(r, 20));
    await memholdChange(src);
    const s2 = await memholdSum(src);
    const ck2 = await checkpoint(src);
    expect(ck2.imagesParent).toBeUndefined();
    expect(ck2.memory).toMatch(/holder is gone/);
    expect(ck2.sizeBytes).toBeGreaterThan(256 * MiB);
    await memholdChange(src);
    await rollback(src, ck2.id);
    expect(await memholdSum(src)).toBe(s2);
    expect((await cli(['checkpoint', 'rm', ck1.id, ck2.id])).exitCode).toBe(0);
  });

  it('removing the head of a chain ends its tracking: the old holder lets the processes go and exits with the removal; the new checkpoint is full, the next incremental, and both roll back right', async () => {
    const dir = trackDir(layout(), await idOf(src));
    const ck1 = await checkpoint(src);
    const holder1 = holderPid(dir);
    expect(holder1).toBeGreaterThan(0);
    // The engine asks the holder to stop (SIGTERM; CRIU patch 0030 wakes each process once on its
    // way out): no checkpoint can stand on the removed one, and a live clone must not borrow it.
    expect((await cli(['checkpoint', 'rm', ck1.id])).exitCode).toBe(0);
    expect(pidAlive(holder1!), 'the old holder is gone').toBe(false);
    expect(holderPid(dir), 'no holder tracks the container').toBeUndefined();
    await memholdChange(src);
    const s2 = await memholdSum(src);
    const ck2 = await checkpoint(src);
    expect(ck2.imagesParent).toBeUndefined();
    expect(ck2.memory).toMatch(/^full/);
    const holder2 = holderPid(dir);
    expect(holder2, 'a new holder tracks the new chain').toBeGreaterThan(0);
    expect(holder2).not.toBe(holder1);
    // The process answers (a process left stopped by the holder would not).
    await memholdChange(src);
    const s3 = await memholdSum(src);
    const ck3 = await checkpoint(src);
    expect(ck3.imagesParent).toBe(ck2.id);
    await rollback(src, ck2.id);
    expect(await memholdSum(src)).toBe(s2);
    await rollback(src, ck3.id);
    expect(await memholdSum(src)).toBe(s3);
    expect((await cli(['checkpoint', 'rm', ck2.id, ck3.id])).exitCode).toBe(0);
  });

  it('the holder exits with its container', async () => {
    const id = await idOf(src);
    const ck = await checkpoint(src);
    const holder = holderPid(trackDir(layout(), id));
    expect(holder).toBeGreaterThan(0);
    await podman().run(['rm', '-f', '-t', '0', src]);
    for (let i = 0; i < 100 && pidAlive(holder!); i++) await new Promise((r) => setTimeout(r, 20));
    expect(pidAlive(holder!)).toBe(false);
    expect((await cli(['checkpoint', 'rm', ck.id])).exitCode).toBe(0);
  });
});

describe.skipIf(skip)('incremental checkpoints of private file memory (tfork-relro)', () => {
  afterAll(sweep);

  it("tracks a library's relocated pages too: held still they are not written again, and every checkpoint of the chain rolls back to its instant", async () => {
    // 4 MiB of read-only private file memory, one page made writable, checked (it must hold the
    // round of one cycle back), rewritten and made read-only again every ~0.2 ms; 64 MiB of ballast.
    const src = await startContainer(MEMORY, ['/usr/local/bin/tfork-relro', '4', '64']);
    await waitFor(src, ['test', '-s', '/tmp/relro.status']);
    const rounds = (): Promise<number> => checkerCount(src, 'relro');
    const ck1 = await checkpoint(src);
    expect(ck1.sizeBytes).toBeGreaterThan(64 * MiB);
    await sleep(1000);
    // Held still (SIGUSR2) from here: every page was rewritten since ck1, none after ck2.
    await exec(src, ['kill', '-USR2', '1']);
    const ck2 = await checkpoint(src);
    expect(ck2.imagesParent).toBe(ck1.id);
    expect(ck2.sizeBytes).toBeGreaterThan(4 * MiB);
    expect(ck2.sizeBytes).toBeLessThan(32 * MiB);
    const ck3 = await checkpoint(src);
    expect(ck3.imagesParent).toBe(ck2.id);
    // Without tracking, the 4 MiB of the file mapping's pages would be in every checkpoint.
    expect(ck3.sizeBytes, 'the still file memory was written again').toBeLessThan(2 * MiB);

    await exec(src, ['kill', '-USR2', '1']);
    await sleep(500);
    // Each rolled-back instant, set going, checks every page within a cycle: a page taken from the
    // parent after it changed makes it say BROKEN.
    for (const ck of [ck2, ck3]) {
      await rollback(src, ck.id);
      await exec(src, ['kill', '-USR2', '1']);
      const r0 = await rounds();
      await sleep(1500);
      expect(await rounds(), `after the rollback to ${ck.id}`).toBeGreaterThan(r0 + 1024);
    }
    expect((await cli(['checkpoint', 'rm', ck1.id, ck2.id, ck3.id])).exitCode).toBe(0);
    await rm(src);
  });
});

/**
 * A process holding a PROT_NONE reservation larger than the host's memory and swap (a browser's
 * V8 cage is 32 GiB) beside memory it writes. A restore that reads pages through a parent's images
 * premapped every private mapping writable, which the overcommit heuristic refused for the
 * reservation: every rollback of a chromium desktop to an incremental checkpoint failed (ENOMEM)
 * until criu-modules/patches/0021.
 */
const RESERVER = [
  'import mmap, os, signal, time, hashlib',
  'GiB = 1 << 30',
  'ram = sum(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith(("MemTotal:", "SwapTotal:"))) * 1024',
  'r = mmap.mmap(-1, (ram // GiB + 8) * GiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=0)',
  'd = bytearray(os.urandom(8 << 20))',
  'n = [0]',
  'def usr1(s, f):',
  '    open("/tmp/reserver.res.tmp", "w").write(hashlib.sha1(d).hexdigest())',
  '    os.rename("/tmp/reserver.res.tmp", "/tmp/reserver.res")',
  'def usr2(s, f):',
  '    n[0] = n[0] % 7 + 1',
  '    d[n[0] << 20:(n[0] + 1) << 20] = os.urandom(1 << 20)',
  'signal.signal(signal.SIGUSR1, usr1)',
  'signal.signal(signal.SIGUSR2, usr2)',
  'open("/tmp/reserver.ready", "w").write(str(os.getpid()))',
  'while True:',
  '    time.sleep(1)',
].join('\n');

describe.skipIf(skip)('incremental checkpoints of a process with a reservation larger than the host', () => {
  afterAll(sweep);

  it('rolls back to an incremental checkpoint and to its parent, the reservation and the written memory as they were', async () => {
    const { src, pid, ask: sum, change } = await startScript('reserver', RESERVER);
    const reservation = async () => {
      const maps = (await exec(src, ['cat', `/proc/${pid}/maps`])).stdout;
      return maps.split('\n').filter((l) => / ---p 00000000 00:00 0/.test(l) && (([a, b]) => b! - a! > 8 * 2 ** 30)(l.split(' ')[0]!.split('-').map((x) => parseInt(x, 16)))).length;
    };
    expect(await reservation()).toBe(1);

    const ck1 = await checkpoint(src);
    const s1 = await sum();
    await change();
    const s2 = await sum();
    expect(s2).not.toBe(s1);
    const ck2 = await checkpoint(src);
    expect(ck2.imagesParent).toBe(ck1.id);
    await change();
    expect(await sum()).not.toBe(s2);

    await rollback(src, ck2.id);
    expect(await sum()).toBe(s2);
    expect(await reservation()).toBe(1);
    await rollback(src, ck1.id);
    expect(await sum()).toBe(s1);
    expect(await reservation()).toBe(1);
    await cli(['checkpoint', 'rm', ck2.id, ck1.id]);
  });
});

/**
 * Three SysV segments of 4 MiB of random bytes beside the desktop's own (the X server's shared
 * images); SIGUSR2 rewrites one page of the second, SIGUSR1 answers the three hashes.
 */
const SEGMENTS = [
  ...sysvSegmentsPy('os.urandom(N)'),
  'n = [0]',
  'def change(*_):',
  '    n[0] += 1',
  '    off = (n[0] * 37 % 1024) * 4096',
  '    segs[1][off:off + 4096] = os.urandom(4096)',
  'def answer(*_):',
  '    open("/tmp/segments.tmp", "w").write(" ".join(hashlib.sha256(bytes(b)).hexdigest() for b in segs))',
  '    os.rename("/tmp/segments.tmp", "/tmp/segments.res")',
  'signal.signal(signal.SIGUSR2, change)',
  'signal.signal(signal.SIGUSR1, answer)',
  'open("/tmp/segments.ready", "w").write(str(os.getpid()))',
  'while True:',
  '    time.sleep(1)',
].join('\n');

/** The SysV segments a process of the container made (their ids, in the order made). */
async function segmentIds(container: string, pid: string): Promise<number[]> {
  const table = (await exec(container, ['cat', '/proc/sysvipc/shm'])).stdout.trim().split('\n').slice(1);
  // key shmid perms size cpid lpid ...
  return table
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[4] === pid)
    .map((f) => Number(f[1]))
    .sort((a, b) => a - b);
}

/**
 * How many bytes of pages a checkpoint's own images hold for one shared memory object: its
 * pagemap image names its pages image in a PagemapHead (after CRIU's two magics and the entry's
 * length, protobuf field 1, a varint).
 */
function shmemPagesBytes(images: string, shmid: number): number {
  const b = readFileSync(path.join(images, `pagemap-shmem-${shmid}.img`));
  let i = 12;
  if (b[i++] !== 0x08) throw new Error(`pagemap-shmem-${shmid}.img: no PagemapHead`);
  let id = 0;
  for (let shift = 0; ; shift += 7) {
    const c = b[i++]!;
    id |= (c & 0x7f) << shift;
    if (!(c & 0x80)) break;
  }
  const pages = path.join(images, `pages-${id}.img`);
  return existsSync(pages) ? statSync(pages).size : 0;
}

describe.skipIf(skip)('incremental checkpoints of shared memory', () => {
  afterAll(sweep);

  it('write the pages of SysV segments that changed since the parent, and every checkpoint of the chain rolls back to its segments', async () => {
    const { src, pid, ask: sum, change } = await startScript('segments', SEGMENTS);
    const ck1 = await checkpoint(src);
    const s1 = await sum();
    await change();
    const s2 = await sum();
    const ck2 = await checkpoint(src);
    await change();
    const s3 = await sum();
    const ck3 = await checkpoint(src);
    await change();
    expect(ck2.imagesParent).toBe(ck1.id);
    expect(ck3.imagesParent).toBe(ck2.id);
    // Nothing says which pages of shared memory were written, so they are compared with the
    // parent's (CRIU patch 0039): one page of these 12 MiB changed each time (before, every
    // increment held all of them).
    const ids = await segmentIds(src, pid);
    expect(ids).toHaveLength(3);
    const pagesOf = (ck: Ck) => ids.map((id) => shmemPagesBytes(path.join(layout().checkpointStore, ck.id, 'images'), id));
    expect(pagesOf(ck1)).toEqual([4 * MiB, 4 * MiB, 4 * MiB]);
    for (const ck of [ck2, ck3]) expect(pagesOf(ck), ck.id).toEqual([0, 4096, 0]);

    await rollback(src, ck3.id);
    expect(await sum()).toBe(s3);
    await rollback(src, ck2.id);
    expect(await sum()).toBe(s2);
    await rollback(src, ck1.id);
    expect(await sum()).toBe(s1);
    await cli(['checkpoint', 'rm', ck3.id, ck2.id, ck1.id]);
  });
});

/**
 * A writer that never stops: it rewrites 256 MiB one page at a time (each page holds the number of
 * the write that last filled it), ~6,000 pages a second, so a cycle takes ~10 s. The checkpoint
 * that starts a chain is captured in the background, and the tracking takes over from the capture's
 * userfaultfd only once the pages are written (criu-modules/patches/0023), and a live clone in
 * between borrows the tracking and gives it back (0028): pages written in between are not written
 * again before the next checkpoint, which must still carry them. On SIGUSR1 it
 * checks every page against its count (Python runs the handler between two writes).
 */
const WRITER = [
  'import mmap, os, signal, struct, time',
  'N, P = 65536, 4096',
  'm = mmap.mmap(-1, N * P, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)',
  'pg = lambda k: struct.pack("<Q", k) * (P // 8)',
  'c = [0]',
  'def put():',
  '    k = c[0]',
  '    m[(k % N) * P:(k % N + 1) * P] = pg(k)',
  '    c[0] = k + 1',
  'def check(s, f):',
  '    k, bad = c[0], []',
  '    for j in range(N):',
  '        want = k - 1 - ((k - 1 - j) % N)',
  '        got = (struct.unpack_from("<Q", m, j * P)[0], struct.unpack_from("<Q", m, j * P + P - 8)[0])',
  '        if got != (want, want): bad.append((j, got, want))',
  '    open("/tmp/writer.res.tmp", "w").write("%d %d %s" % (k, len(bad), bad[:3]))',
  '    os.rename("/tmp/writer.res.tmp", "/tmp/writer.res")',
  'for j in range(N): put()',
  'signal.signal(signal.SIGUSR1, check)',
  'open("/tmp/writer.ready", "w").write(str(os.getpid()))',
  'while True:',
  '    for i in range(64): put()',
  '    time.sleep(0.01)',
].join('\n');

describe.skipIf(skip)('incremental checkpoints of a source written to all along', () => {
  afterAll(sweep);

  /** The writer started, and its check: how many writes it made, how many pages are wrong, its own words. */
  async function startWriter() {
    const { src, ask } = await startScript('writer', WRITER);
    const verify = async () => {
      const text = await ask();
      const [count, bad] = text.split(' ');
      return { count: Number(count), bad: Number(bad), text };
    };
    return { src, verify };
  }

  it('a chain started by a background capture: the pages written while it was written go into the next checkpoint, and both roll back to their instant', async () => {
    const { src, verify } = await startWriter();
    const before = await verify();
    expect(before.bad, before.text).toBe(0);

    const ck1 = await checkpoint(src);
    if (tracksAfterBackground(layout())) expect(ck1.capture).toBe('background');
    await sleep(500);
    const ck2 = await checkpoint(src);
    expect(ck2.imagesParent).toBe(ck1.id);
    // the pages written since the first one's freeze, not all 256 MiB
    expect(ck2.sizeBytes).toBeLessThan(ck1.sizeBytes / 2);
    await sleep(500);

    await rollback(src, ck2.id);
    const at2 = await verify();
    expect(at2.bad, at2.text).toBe(0);
    expect(at2.count).toBeGreaterThan(before.count);
    await rollback(src, ck1.id);
    const at1 = await verify();
    expect(at1.bad, at1.text).toBe(0);
    expect(at1.count).toBeLessThan(at2.count);
    await cli(['checkpoint', 'rm', ck2.id, ck1.id]);
  });

  it('a live clone between two checkpoints borrows the tracking: what was written before it and while it was captured is in the next increment, which rolls back to its instant', async () => {
    const { src, verify } = await startWriter();
    const ck1 = await checkpoint(src);
    await sleep(500);
    const c = await cli(['container', 'clone', '--live', '--format', 'json', '--name', `${src}-c`, src]);
    expect(c.exitCode, c.stderr).toBe(0);
    if (keepsTrackingInBackground(layout())) expect(JSON.parse(c.stdout).capture.mode).toBe('background');
    const ck2 = await checkpoint(src);
    expect(ck2.imagesParent).toBe(ck1.id);
    await rm(`${src}-c`);
    await sleep(500);
    await rollback(src, ck2.id);
    const at2 = await verify();
    expect(at2.bad, at2.text).toBe(0);
    expect(at2.count).toBeGreaterThan(0);
    await cli(['checkpoint', 'rm', ck2.id, ck1.id]);
  });
});
