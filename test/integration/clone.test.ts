/**
 * Live clones with real podman, crun, CRIU and btrfs: what a user observes.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, CLI, engineGate, expectTier, leaks, newLeaks, exec, pixelDiff, podman, run, screenshot, startContainer, sweep, uniqueName, waitFor, waitForSettledScreen, TEST_LABEL } from '../helpers/host.js';
import { isFrozen } from '../../src/drivers/freezer.js';
import { servicePaths } from '../../src/drivers/podman-api.js';
import { layout } from '../../src/drivers/layout.js';
import { pidAlive } from '../../src/drivers/host.js';
import { graftAvailable } from '../../src/core/clone/tier.js';
import { COUNTER, count, idOf, rm, sleep, stateOf } from '../helpers/workloads.js';

const skip = await engineGate('live clone');
async function clone(args: string[]) {
  return cli(['container', 'clone', '--live', '--format', 'json', ...args]);
}
describe.skipIf(skip)('container clone --live (W1 counter)', () => {
  let src = '';
  let baseline = new Set<string>();
  beforeAll(async () => {
    src = await startContainer('localhost/tfork/tiny', COUNTER);
    await waitFor(src, ['test', '-s', '/tmp/count']);
    await sleep(500);
  });
  afterAll(sweep);

  it('makes N running copies that continue from the source instant, with the same PIDs and isolated files', async () => {
    baseline = await leaks();
    const srcPid = (await podman().run(['inspect', '-f', '{{.State.Pid}}', src])).stdout.trim();
    // The container's /dev is a tmpfs: CRIU archives its contents while the source is frozen (patches 0008, 0029).
    await exec(src, ['sh', '-c', 'mkdir -p /dev/tfork && echo dev > /dev/tfork/before']);
    const before = await count(src);
    const r = await clone(['--copies=3', '--name', `${src}-c`, src]);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expectTier(report);
    const names: string[] = report.copies.map((c: { name: string }) => c.name);
    expect(names).toEqual([`${src}-c-0`, `${src}-c-1`, `${src}-c-2`]);
    expect(report.copies.every((c: { state: string }) => c.state === 'running')).toBe(true);
    expect(report.timings.frozenMs).toBeGreaterThan(0);
    try {
      for (const n of names) expect(await stateOf(n)).toBe('running');
      // Continuity: the shell variable went on from the source's value, not from zero.
      const first = await Promise.all(names.map(count));
      for (const v of first) expect(v).toBeGreaterThanOrEqual(before);
      await sleep(600);
      const later = await Promise.all(names.map(count));
      later.forEach((v, i) => expect(v).toBeGreaterThan(first[i]!));
      // Same process tree, same PIDs inside.
      // (The shell forks for each mv and sleep; a child caught before its exec shows the shell's
      // arguments under another PID, so the trees are compared until neither shows one: a slow
      // CPU, as in the kernel lane's TCG guest, widens that window.)
      const tree = async (n: string) => (await exec(n, ['ps', '-o', 'pid,args'])).stdout.split('\n').filter((x) => x.includes('while true')).join('\n');
      let trees: string[] = [];
      for (let i = 0; i < 10; i++) {
        trees = [await tree(names[0]!), await tree(src)];
        if (trees[0] === trees[1]) break;
      }
      expect(trees[0]).toBe(trees[1]);
      expect(trees[0]!.trim()).toMatch(/^1 /);
      // Files: what the source wrote before is everywhere; later writes stay where they were made.
      for (const n of names) expect((await exec(n, ['cat', '/tmp/before'])).stdout.trim()).toBe('before');
      for (const n of names) expect((await exec(n, ['cat', '/dev/tfork/before'])).stdout.trim(), `${n}: /dev (a tmpfs) as the source had it`).toBe('dev');
      await exec(src, ['sh', '-c', 'echo src > /tmp/after-src']);
      await exec(names[0]!, ['sh', '-c', 'echo c0 > /tmp/after-c0']);
      for (const n of [src, ...names]) {
        const ls = (await exec(n, ['ls', '/tmp'])).stdout;
        expect(ls.includes('after-src')).toBe(n === src);
        expect(ls.includes('after-c0')).toBe(n === names[0]);
      }
      // Each clone has its own network namespace and address.
      const ips = await Promise.all([src, ...names].map(async (n) => (await podman().run(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', n])).stdout.trim()));
      expect(new Set(ips).size).toBe(ips.length);
      // The source is untouched: same host PID, running, not frozen.
      expect((await podman().run(['inspect', '-f', '{{.State.Pid}}', src])).stdout.trim()).toBe(srcPid);
      expect(isFrozen(await idOf(src))).toBe(false);
      // Clones are ordinary podman containers.
      expect((await podman().run(['ps', '--format', '{{.Names}}'])).stdout).toContain(names[1]!);
      await podman().run(['stop', '-t', '0', names[2]!]);
      expect(await stateOf(names[2]!)).toBe('exited');
    } finally {
      await rm(...names);
    }
    // Removing the clones releases their snapshot subvolumes; no scratch remains.
    expect(await newLeaks(baseline)).toEqual([]);
  });

  it('carries the trees of tmpfs mounts as they were: one CRIU archives itself, one it leaves to tar', async () => {
    // /dev (a tmpfs) holds what CRIU writes in tar's format itself (patch 0032): nested directories,
    // a file, setuid and sticky bits, an owner, a symlink, a FIFO, a device node and a name longer
    // than a ustar name field. A second tmpfs holds a file with two links, which CRIU leaves to tar.
    const t = await startContainer('localhost/tfork/tiny', COUNTER, { extra: ['--tmpfs', '/data'] });
    const long = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
    await exec(t, ['sh', '-c', [
      'mkdir -p /dev/tree/a/b /dev/tree/' + long,
      'echo hello > /dev/tree/a/b/file',
      'head -c 3000 /dev/zero | tr "\\000" x > /dev/tree/big',
      'echo deep > /dev/tree/' + long + '/f',
      'touch /dev/tree/setuid && chmod 4711 /dev/tree/setuid',
      'chmod 1777 /dev/tree/a && chown 1234:5678 /dev/tree/a/b',
      'ln -s ../nowhere /dev/tree/link',
      'mkfifo /dev/tree/fifo',
      'mknod /dev/tree/mynull c 1 3',
      'mkdir /data/tree && echo linked > /data/tree/one && ln /data/tree/one /data/tree/two && echo plain > /data/tree/plain',
    ].join(' && ')]);
    const manifest = async (n: string) =>
      (await exec(n, ['sh', '-c', 'for d in /dev/tree /data/tree; do cd $d && find . | sort | while read f; do if [ -L "$f" ]; then echo "$f link $(readlink "$f")"; else stat -c "%n %A %u %g %s %Y %t:%T %h" "$f"; fi; [ -f "$f" ] && [ ! -L "$f" ] && md5sum "$f"; done; done'])).stdout;
    const want = await manifest(t);
    expect(want).toContain('./setuid -rws--x--x');
    expect(want).toContain(`./${long}/f`);
    expect(want).toContain('./two -rw-r--r-- 0 0 7');
    const r = await clone(['--copies=1', t]);
    expect(r.exitCode, r.stderr).toBe(0);
    const copy = JSON.parse(r.stdout).copies[0].name as string;
    try {
      expect(await manifest(copy)).toBe(want);
      expect((await exec(copy, ['sh', '-c', 'echo more >> /data/tree/one; cat /data/tree/two'])).stdout).toBe('linked\nmore\n');
    } finally {
      await rm(copy, t);
    }
  });

  it('clones a clone', async () => {
    const r1 = await clone(['--name', `${src}-g1`, src]);
    expect(r1.exitCode, r1.stderr).toBe(0);
    const r2 = await clone(['--name', `${src}-g2`, `${src}-g1`]);
    try {
      expect(r2.exitCode, r2.stderr).toBe(0);
      expectTier(JSON.parse(r1.stdout));
      expectTier(JSON.parse(r2.stdout));
      const v = await count(`${src}-g2`);
      await sleep(400);
      expect(await count(`${src}-g2`)).toBeGreaterThan(v);
    } finally {
      await rm(`${src}-g2`, `${src}-g1`);
    }
  });

  it('keeps the images in memory when they fit, on disk when asked, and works with a podman process per call', async () => {
    for (const [env, imagesIn] of [
      [{}, 'memory'],
      [{ TFORK_IMAGES_IN: 'disk', TFORK_PODMAN_API: 'cli' }, 'disk'],
    ] as const) {
      const base = `${src}-m${imagesIn[0]}`;
      const before = await count(src);
      const r = await cli(['container', 'clone', '--live', '--format', 'json', '--copies=2', '--name', base, src], { env });
      try {
        expect(r.exitCode, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout).imagesIn).toBe(imagesIn);
        for (const n of [`${base}-0`, `${base}-1`]) {
          const v = await count(n);
          expect(v).toBeGreaterThanOrEqual(before);
          await sleep(300);
          expect(await count(n)).toBeGreaterThan(v);
        }
      } finally {
        await rm(`${base}-0`, `${base}-1`);
      }
    }
  });

  it('starts the podman service again when it died', async () => {
    const paths = servicePaths(layout());
    const r1 = await clone(['--name', `${src}-s1`, src]);
    expect(r1.exitCode, r1.stderr).toBe(0);
    const pid = Number(readFileSync(paths.pidFile, 'utf8'));
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(100);
    const r2 = await clone(['--name', `${src}-s2`, src]);
    try {
      expect(r2.exitCode, r2.stderr).toBe(0);
      const again = Number(readFileSync(paths.pidFile, 'utf8'));
      expect(again).not.toBe(pid);
      expect(pidAlive(again)).toBe(true);
      expect(await stateOf(`${src}-s2`)).toBe('running');
    } finally {
      await rm(`${src}-s1`, `${src}-s2`);
    }
  });

  it('keeps working after the directory the podman service was started from is deleted', async () => {
    const paths = servicePaths(layout());
    const pid = Number(readFileSync(paths.pidFile, 'utf8'));
    if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(100);
    // A clone run from a directory that goes away afterwards (a checkout, a temporary directory) starts the service.
    const dir = mkdtempSync(path.join(tmpdir(), 'tfork-cwd-'));
    const r1 = await run(process.execPath, [CLI, 'container', 'clone', '--live', '--format', 'json', '--name', `${src}-d1`, src], { reject: false, cwd: dir, timeoutMs: 600_000 });
    rmSync(dir, { recursive: true, force: true });
    const r2 = await clone(['--name', `${src}-d2`, src]);
    try {
      expect(r1.exitCode, r1.stderr).toBe(0);
      expect(r2.exitCode, r2.stdout).toBe(0);
      expect(await stateOf(`${src}-d2`)).toBe('running');
    } finally {
      await rm(`${src}-d1`, `${src}-d2`);
    }
  });

  for (const [sig, at] of [['SIGINT', 'restore'], ['SIGTERM', 'dump']] as const) {
    it(`${sig} during the ${at}: the command unwinds, no copy or scratch is left, the source runs`, async () => {
      const before = await leaks();
      const base = `${src}-${sig.toLowerCase()}`;
      const child = spawn(process.execPath, [CLI, 'container', 'clone', '--live', '--copies=3', '--name', base, src], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const t0 = Date.now();
      // The progress line names each phase as it starts.
      while (!stderr.includes(`… ${at}`) && Date.now() - t0 < 60_000) await sleep(5);
      child.kill(sig);
      expect(await exited, stderr).toBe(125);
      expect(stderr).toMatch(/cancelled/);
      const left = (await podman().run(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter((n) => n.startsWith(base));
      expect(left).toEqual([]);
      expect(await newLeaks(before)).toEqual([]);
      expect(await stateOf(src)).toBe('running');
      expect(isFrozen(await idOf(src))).toBe(false);
    });
  }

  it('refuses a name in use, a missing source and a stopped source before any work', async () => {
    const stopped = uniqueName('stopped');
    await podman().run(['create', '--label', TEST_LABEL, '--name', stopped, 'localhost/tfork/tiny', 'true']);
    const before = await leaks();
    let r = await clone(['--name', src, src]);
    expect(r.exitCode).toBe(125);
    expect(JSON.parse(r.stdout).error.code).toBe('E_EXISTS');
    r = await clone([uniqueName('missing')]);
    expect(r.exitCode).toBe(125);
    expect(JSON.parse(r.stdout).error.code).toBe('E_NOT_FOUND');
    r = await clone([stopped]);
    expect(r.exitCode).toBe(125);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'E_INVALID_STATE', phase: 'validate' });
    expect(await newLeaks(before)).toEqual([]);
  });

  // graft:1 (tier 2): the second copy's restore grafts from a process that does not exist.
  for (const fault of ['freeze', 'dump', 'snapshot', 'register', 'restore:1', 'thaw', ...(graftAvailable(layout()).ok ? ['graft:1'] : [])]) {
    it(`fault at ${fault}: clear error naming the phase, nothing left behind, source running`, async () => {
      const before = await leaks();
      const base = `${src}-f`;
      const r = await cli(['container', 'clone', '--live', '--copies=2', '--name', base, '--format', 'json', src], { env: { TFORK_FAULT: fault } });
      expect(r.exitCode).toBe(125);
      const err = JSON.parse(r.stdout).error;
      expect(err.phase).toBe(fault === 'freeze' ? 'dump' : fault === 'graft:1' ? 'restore:1' : fault);
      expect(err.message.length).toBeGreaterThan(10);
      const left = (await podman().run(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter((n) => n.startsWith(base));
      expect(left).toEqual([]);
      expect(await newLeaks(before)).toEqual([]);
      expect(await stateOf(src)).toBe('running');
      expect(isFrozen(await idOf(src))).toBe(false);
      // Nothing of the operation stays in the source's bundle: no CRIU options for its next dump, no link to images.
      const bundle = (await podman().run(['inspect', '-f', '{{.StaticDir}}', src])).stdout.trim();
      expect(existsSync(path.join(bundle, 'tfork-criu.conf'))).toBe(false);
      expect(existsSync(path.join(bundle, 'checkpoint'))).toBe(false);
      const v = await count(src);
      await sleep(300);
      expect(await count(src)).toBeGreaterThan(v);
    });
  }
});

describe.skipIf(skip)('container clone --live (W2 desktop, 4 ways)', () => {
  afterAll(sweep);
  it('every clone shows the source screen; typing into one changes only that one', async () => {
    const src = await startContainer('localhost/tfork/desktop');
    await waitFor(src, ['sh', '-c', 'xwininfo -root -tree | grep -q tfork-xterm && grep -q ":170C 00000000:0000 0A" /proc/net/tcp']);
    await waitForSettledScreen(src);
    const r = await clone(['--copies=4', '--name', `${src}-d`, src]);
    expect(r.exitCode, r.stderr).toBe(0);
    expectTier(JSON.parse(r.stdout));
    const names = JSON.parse(r.stdout).copies.map((c: { name: string }) => c.name) as string[];
    try {
      const ref = await screenshot(src);
      for (const n of names) expect(pixelDiff(await screenshot(n), ref), n).toBeLessThan(0.001);
      // The VNC server listens in every clone.
      for (const n of names) expect((await exec(n, ['cat', '/proc/net/tcp'])).stdout).toMatch(/:170C 00000000:0000 0A/);
      await exec(names[1]!, ['sh', '-c', 'xdotool search --name tfork-xterm windowactivate --sync; xdotool type --delay 20 "echo typed-in-clone-one"; xdotool key Return']);
      await sleep(800);
      const after = await Promise.all([src, ...names].map(screenshot));
      expect(pixelDiff(after[2]!, ref)).toBeGreaterThan(0.0005);
      for (const i of [0, 1, 3, 4]) expect(pixelDiff(after[i]!, ref), `screen ${i}`).toBeLessThan(0.001);
    } finally {
      await rm(...names, src);
    }
  });
});
