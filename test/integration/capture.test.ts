/**
 * Background capture (criu-modules/patches/0003): the source runs on while
 * its pages are written, and what the clones and checkpoints carry is still
 * one instant of its memory. tfork-memwrite keeps writing its memory and
 * checks it against itself, so a torn capture shows as a BROKEN process in
 * the copy; tfork-cowshare does the same for pages a parent and its child
 * share copy-on-write, which the dump leaves in its pipes uncopied (0010);
 * tfork-relro for read-only pages of a private file mapping, which the dump
 * leaves in its pipes under watch (0013), and which it rewrites.
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, engineGate, exec, leaks, newLeaks, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { checkerCount, rm, sleep, startScript, stateOf, sysvSegmentsPy } from '../helpers/workloads.js';
import { captureMode } from '../../src/core/state/capture-mode.js';
import { layout } from '../../src/drivers/layout.js';
import { isFrozen } from '../../src/drivers/freezer.js';
import { CRIU, installedBinary } from '../../src/core/setup/toolchain.js';
import { kernelHasWpAsync } from '../../src/core/checkpoint/tracking.js';

const MEMORY = 'localhost/tfork/memory';
/**
 * The sources here are small enough that the default (auto) might choose the stock dump; and where the
 * kernel tier runs (tfork_graft), clones would graft instead: this is the stock tier's capture.
 */
const BACKGROUND = { TFORK_CAPTURE: 'background', TFORK_GRAFT: '0' };
const mode = captureMode(layout());
const skip = (await engineGate('background capture')) ?? (mode.mode === 'background' ? undefined : (console.warn(`SKIP background capture: ${mode.reason}`), mode.reason));

const progress = (name: string): Promise<number> => checkerCount(name, 'memwrite');
const passes = (name: string): Promise<number> => checkerCount(name, 'cowshare');
const rounds = (name: string): Promise<number> => checkerCount(name, 'relro');

async function startWriter(mib: number): Promise<string> {
  const name = await startContainer(MEMORY, ['/usr/local/bin/tfork-memwrite', String(mib)]);
  await waitFor(name, ['test', '-s', '/tmp/memwrite.status']);
  await progress(name);
  return name;
}

/**
 * The CRIU dump serving the container and its log so far, once the log says `marker` (by default that
 * the pages are being written after the thaw: what the frozen part did is in the log by then). The log
 * is held open from the moment it appears: the engine removes it as soon as the dump succeeds, and a
 * line written just before that is still read through the open file.
 */
async function criuInBackgroundPhase(bundle: string, timeoutMs: number, marker = 'in the background'): Promise<{ pid?: number; log: string } | undefined> {
  const criu = installedBinary(layout(), CRIU);
  const t0 = Date.now();
  let fd: number | undefined;
  let log = '';
  try {
    while (Date.now() - t0 < timeoutMs) {
      try {
        fd ??= openSync(path.join(bundle, 'dump.log'), 'r');
        log += readFileSync(fd, 'utf8'); // from where the last read ended
      } catch {
        // not started yet
      }
      if (log.slice(0, log.lastIndexOf('\n') + 1).includes(marker)) { // whole lines only
        for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
          try {
            if (readlinkSync(`/proc/${p}/exe`) === criu) return { pid: Number(p), log };
          } catch {
            // gone
          }
        }
        return { log };
      }
      await sleep(2);
    }
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Three SysV shared memory segments with a pattern each, and 8 MiB of its own; answers their hashes. */
const SYSV_HOLDER = [
  ...sysvSegmentsPy('(bytes(range(256))[k + 1:] + bytes(range(256))[:k + 1]) * (N // 256)'),
  'own = bytearray(os.urandom(8 << 20))',
  'def answer(*_):',
  '    open("/tmp/sysv.tmp", "w").write(" ".join(hashlib.sha256(bytes(b)).hexdigest() for b in segs))',
  '    os.rename("/tmp/sysv.tmp", "/tmp/sysv.res")',
  'signal.signal(signal.SIGUSR1, answer)',
  'open("/tmp/sysv.ready", "w").write(str(os.getpid()))',
  'while True:',
  '    time.sleep(1)',
].join('\n');

/**
 * A file deleted while open and mapped shared (a browser's shared memory in /tmp): 64 KiB written,
 * a hole, 12 KiB written through the mapping only; answers its links, size and hashes.
 */
const GHOST_HOLDER = [
  'import hashlib, mmap, os, signal, time',
  'fd = os.open("/tmp/ghost.bin", os.O_RDWR | os.O_CREAT, 0o600)',
  'os.pwrite(fd, bytes(range(256)) * 256, 0)',
  'os.ftruncate(fd, 4 << 20)',
  'm = mmap.mmap(fd, 4 << 20)',
  'm[2 << 20:(2 << 20) + 12288] = bytes([0x5a]) * 12288',
  'os.unlink("/tmp/ghost.bin")',
  'def answer(*_):',
  '    st = os.fstat(fd)',
  '    got = "%d %d %s %s %s" % (st.st_nlink, st.st_size, os.path.exists("/tmp/ghost.bin"), hashlib.sha256(os.pread(fd, st.st_size, 0)).hexdigest(), hashlib.sha256(m[:]).hexdigest())',
  '    open("/tmp/ghost.tmp", "w").write(got)',
  '    os.rename("/tmp/ghost.tmp", "/tmp/ghost.res")',
  'signal.signal(signal.SIGUSR1, answer)',
  'open("/tmp/ghost.ready", "w").write(str(os.getpid()))',
  'while True:',
  '    time.sleep(1)',
].join('\n');

/**
 * Start `script` (a startScript holder) in the desktop, checkpoint it and clone it in the background, and
 * roll it back: the copy and the rolled-back source must answer what the source answered before.
 */
async function carriedThroughCheckpointCloneRollback(name: string, script: string, check: (want: string) => void): Promise<void> {
  const { src, ask } = await startScript(name, script);
  const names: string[] = [];
  let id: string | undefined;
  try {
    const want = await ask();
    check(want);
    const ck = await cli(['checkpoint', 'create', '--format', 'json', src], { env: BACKGROUND });
    expect(ck.exitCode, ck.stderr).toBe(0);
    const info = JSON.parse(ck.stdout);
    id = info.id;
    expect(info.capture).toBe('background');
    const r = await cli(['container', 'clone', '--live', '--format', 'json', src], { env: BACKGROUND });
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.capture.mode).toBe('background');
    names.push(...report.copies.map((c: { name: string }) => c.name));
    expect(await ask(names[0])).toBe(want);
    const rb = await cli(['rollback', src, info.id]);
    expect(rb.exitCode, rb.stderr).toBe(0);
    expect(await ask()).toBe(want);
  } finally {
    await rm(...names, src);
    if (id) await cli(['checkpoint', 'rm', id]);
  }
}

async function staticDir(name: string): Promise<string> {
  return (await podman().run(['inspect', '-f', '{{.StaticDir}}', name])).stdout.trim();
}

describe.skipIf(skip)('background capture (userfaultfd write-protect)', () => {
  afterAll(sweep);

  it('clones a process that keeps writing its memory: every copy carries one instant and runs on', async () => {
    const baseline = await leaks();
    const src = await startWriter(256);
    const before = await progress(src);
    // 256 MiB under protection: CRIU patch 0034 takes it off in 32 MiB steps while the writer runs on.
    const stepping = criuInBackgroundPhase(await staticDir(src), 60_000, 'Protection taken off in');
    const r = await cli(['container', 'clone', '--live', '--copies=2', '--format', 'json', src], { env: BACKGROUND });
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    const names: string[] = report.copies.map((c: { name: string }) => c.name);
    try {
      expect(report.capture.mode).toBe('background');
      const line = (await stepping)?.log.match(/Protection taken off in (\d+) steps.*/)?.[0];
      expect(line, "CRIU's log did not say how the writer's protection came off").toBeDefined();
      expect(Number(/in (\d+) steps/.exec(line!)![1]), line).toBeGreaterThanOrEqual(4);
      await sleep(2000);
      // tfork-memwrite checks every page of its ring once a pass, and makes passes all the time:
      // a copy whose pages came from two instants would have said BROKEN by now.
      const at = await Promise.all(names.map(progress));
      for (const g of at) expect(g).toBeGreaterThan(before);
      await sleep(500);
      const later = await Promise.all(names.map(progress));
      later.forEach((g, i) => expect(g).toBeGreaterThan(at[i]!));
      // The source ran on and runs on, not frozen and not write-protected.
      const s1 = await progress(src);
      await sleep(300);
      expect(await progress(src)).toBeGreaterThan(s1);
      expect(isFrozen((await podman().run(['inspect', '-f', '{{.Id}}', src])).stdout.trim())).toBe(false);
    } finally {
      await rm(...names, src);
    }
    expect(await newLeaks(baseline)).toEqual([]);
  });

  it('clones a parent and a child sharing pages copy-on-write while the child rewrites them: the copies carry one instant', async () => {
    const baseline = await leaks();
    const src = await startContainer(MEMORY, ['/usr/local/bin/tfork-cowshare', '16']);
    await waitFor(src, ['test', '-s', '/tmp/cowshare.status']);
    const before = await passes(src);
    // The first process's line comes while frozen, well before the dump ends and its log goes.
    const dir = await staticDir(src);
    const watching = criuInBackgroundPhase(dir, 60_000, 'left in the pipes');
    // The last task's dump comes before the thaw, and so does this line (patch 0015).
    const readAhead = criuInBackgroundPhase(dir, 60_000, 'read ahead of their dump');
    const r = await cli(['container', 'clone', '--live', '--copies=2', '--format', 'json', src], { env: BACKGROUND });
    expect(r.exitCode, r.stderr).toBe(0);
    const names: string[] = JSON.parse(r.stdout).copies.map((c: { name: string }) => c.name);
    try {
      // The pages the child had not rewritten yet were shared at the freeze: the dump left them in
      // its pipes instead of copying them while frozen, and the child went on rewriting them.
      const log = (await watching)?.log ?? '';
      const shared = [...log.matchAll(/(\d+) KiB shared copy-on-write left in the pipes/g)].reduce((a, m) => a + Number(m[1]), 0);
      expect(shared, 'no page was left in the pipes as shared copy-on-write').toBeGreaterThan(0);
      // Both processes' mappings came from their smaps as read ahead on CRIU's second thread, and
      // their map_files modes with them (patch 0017).
      const ahead = /(\d+) of (\d+) tasks' smaps read ahead of their dump, and (\d+) mappings' map_files modes, and (\d+) tasks' pagemaps/.exec((await readAhead)?.log ?? '');
      expect(ahead, 'CRIU did not read the tasks\' smaps, map_files modes and pagemaps ahead').not.toBeNull();
      expect(Number(ahead![2])).toBeGreaterThanOrEqual(2);
      expect(Number(ahead![1])).toBe(Number(ahead![2]));
      expect(Number(ahead![3])).toBeGreaterThan(0);
      // Their page tables were scanned there too (patch 0035; PAGEMAP_SCAN came with Linux 6.7, as the capture's watch).
      if (kernelHasWpAsync()) expect(Number(ahead![4]), "the tasks' pagemaps were not scanned ahead").toBe(Number(ahead![2]));
      // A child checks every page before it writes it, and the parent its own after each child:
      // a copy that carries a page taken after it changed says BROKEN within one pass (~0.5 s).
      await sleep(2500);
      const at = await Promise.all(names.map(passes));
      for (const g of at) expect(g).toBeGreaterThan(before);
      const s1 = await passes(src);
      await sleep(1500);
      expect(await passes(src)).toBeGreaterThan(s1);
    } finally {
      await rm(...names, src);
    }
    expect(await newLeaks(baseline)).toEqual([]);
  });

  it('leaves read-only file memory in the pipes under watch; a dump that lost the race to a write there is taken again frozen', async (ctx) => {
    const baseline = await leaks();
    // 4 MiB of relocated-library-like pages, and 64 MiB of ballast the dump writes after the thaw.
    const src = await startContainer(MEMORY, ['/usr/local/bin/tfork-relro', '4', '64']);
    await waitFor(src, ['test', '-s', '/tmp/relro.status']);
    const names: string[] = [];
    const copiesOf = (stdout: string): { capture: { mode: string; reason: string }; copies: { name: string }[] } => {
      const report = JSON.parse(stdout);
      names.push(...report.copies.map((c: { name: string }) => c.name));
      return report;
    };
    try {
      // Holding still, nothing writes the watched pages: the dump keeps them without a frozen copy.
      await exec(src, ['kill', '-USR2', '1']);
      const held = await rounds(src);
      const watching = criuInBackgroundPhase(await staticDir(src), 60_000, 'left in the pipes and watched');
      const still = await cli(['container', 'clone', '--live', '--format', 'json', src], { env: BACKGROUND });
      expect(still.exitCode, still.stderr).toBe(0);
      const quiet = copiesOf(still.stdout);
      expect(quiet.capture.mode).toBe('background');
      const log = (await watching)?.log ?? '';
      // The watch needs UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN (Linux 6.7+); without them CRIU copies those pages frozen.
      const refused = /no asynchronous write-protection \(([^)]*)\)/.exec(log);
      if (refused) {
        console.warn(`SKIP read-only file memory under watch: this kernel refused asynchronous write-protection (${refused[1]})`);
        ctx.skip();
      }
      const watched = [...log.matchAll(/(\d+) KiB of read-only file memory left in the pipes and watched/g)].reduce((a, m) => a + Number(m[1]), 0);
      expect(watched, 'the read-only pages were not left in the pipes under watch').toBeGreaterThanOrEqual(4096);
      // The copy goes on from the instant; every round checks the page it rewrites, 1024 rounds check them all.
      const copy = quiet.copies[0]!.name;
      await exec(copy, ['kill', '-USR2', '1']);
      await sleep(3000);
      expect(await rounds(copy)).toBeGreaterThan(held + 1024);

      // Rewriting a page every ~0.2 ms, the source writes a watched page before the dump has written
      // its pipes: CRIU finds it written (PAGEMAP_SCAN) and fails, and the engine captures again frozen.
      await exec(src, ['kill', '-USR2', '1']);
      const before = await rounds(src);
      const r = await cli(['container', 'clone', '--live', '--copies=2', '--format', 'json', src], { env: BACKGROUND });
      expect(r.exitCode, r.stderr).toBe(0);
      const raced = copiesOf(r.stdout);
      expect(raced.capture.mode).toBe('frozen');
      expect(raced.capture.reason).toMatch(/taken again frozen: .*watched read-only file memory written after the freeze/);
      await sleep(3000);
      for (const g of await Promise.all(raced.copies.map((c) => rounds(c.name)))) expect(g).toBeGreaterThan(before + 1024);
      const s1 = await rounds(src);
      await sleep(1000);
      expect(await rounds(src)).toBeGreaterThan(s1);
    } finally {
      await rm(...names, src);
    }
    expect(await newLeaks(baseline)).toEqual([]);
  });

  it('checkpoints in the background, and the rollback brings back the instant', async () => {
    const src = await startWriter(128);
    let id: string | undefined;
    try {
      const ck = await cli(['checkpoint', 'create', '--format', 'json', src], { env: BACKGROUND });
      expect(ck.exitCode, ck.stderr).toBe(0);
      const info = JSON.parse(ck.stdout);
      id = info.id;
      expect(info.capture).toBe('background');
      // What the capture copied while frozen sizes the memory the next one touches before its freeze.
      expect(readFileSync(path.join(await staticDir(src), 'tfork-frozen-copies'), 'utf8')).toMatch(/^\d+\n$/);
      await sleep(1000);
      const rb = await cli(['rollback', src, info.id]);
      expect(rb.exitCode, rb.stderr).toBe(0);
      // Back at the checkpoint's instant, consistent through every pass over its pages, and counting on.
      await sleep(1500);
      const g = await progress(src);
      await sleep(500);
      expect(await progress(src)).toBeGreaterThan(g);
      expect(await stateOf(src)).toBe('running');
    } finally {
      await rm(src);
      if (id) await cli(['checkpoint', 'rm', id]);
    }
  });

  it('carries SysV shared memory as it was beside the pages written after the thaw (a checkpoint and a live clone)', async () => {
    // Three segments with patterns of their own beside 8 MiB of the process's own memory, in the
    // desktop (whose X server has segments too). The segments' page images were once numbered by a
    // fork of CRIU from the count at the fork, and the tasks' written after the thaw took the same
    // numbers over: the rollback and the copy found other pages in the segments.
    await carriedThroughCheckpointCloneRollback('sysv', SYSV_HOLDER, (want) => expect(want.split(' ')).toHaveLength(3));
  });

  it('carries a file deleted while open and mapped, its data and holes as they were (a checkpoint and a live clone)', async () => {
    // CRIU copies such a file into the images while frozen, finding its data with SEEK_DATA and
    // SEEK_HOLE (the engine turns FIEMAP off: its sync wrote the dirty pages to disk first). The
    // 12 KiB written through the mapping are dirty in the page cache only.
    await carriedThroughCheckpointCloneRollback('ghost', GHOST_HOLDER, (want) => expect(want).toMatch(/^0 4194304 False [0-9a-f]{64} [0-9a-f]{64}$/));
  });

  it('a CRIU killed while it writes the pages leaves the source running unprotected and no clone', async () => {
    const baseline = await leaks();
    // 1 GiB, so that the writing after the thaw lasts long enough to be caught.
    const src = await startWriter(1024);
    const bundle = await staticDir(src);
    try {
      // On a loaded host the pages may all be written between the log line and the kill: the
      // clone then succeeds, and is removed and taken again (at most three times).
      let r: Awaited<ReturnType<typeof cli>> | undefined;
      for (let round = 0; round < 3; round++) {
        const cloning = cli(['container', 'clone', '--live', '--format', 'json', '--name', `${src}-k`, src], { env: BACKGROUND });
        const pid = (await criuInBackgroundPhase(bundle, 60_000))?.pid;
        expect(pid, 'the dump never reached its background phase').toBeDefined();
        process.kill(pid!, 'SIGKILL');
        r = await cloning;
        if (r.exitCode !== 0) break;
        console.warn(`round ${round}: CRIU had written every page before the kill; removing the clone and trying again`);
        await rm(`${src}-k`);
      }
      expect(r!.exitCode).not.toBe(0);
      const report = JSON.parse(r!.stdout);
      expect(report.error.phase).toBe('dump');
      // The source writes on: its pages are no longer write-protected by a CRIU that is gone.
      const s1 = await progress(src);
      await sleep(500);
      expect(await progress(src)).toBeGreaterThan(s1);
      expect(isFrozen((await podman().run(['inspect', '-f', '{{.Id}}', src])).stdout.trim())).toBe(false);
      expect(await stateOf(`${src}-k-0`).catch(() => '')).toBe('');
      expect(await stateOf(`${src}-k`).catch(() => '')).toBe('');
    } finally {
      await rm(src);
    }
    expect(await newLeaks(baseline)).toEqual([]);
  });
});
