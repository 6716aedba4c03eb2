/**
 * The patched toolchain on this kernel, through the wrapper, with real
 * podman, crun, runc, CRIU and btrfs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { caps, cli, engineGate, exec, gate, pixelDiff, podman, screenshot, startContainer, sweep, waitFor, uniqueName, TEST_LABEL } from '../helpers/host.js';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const skip = await engineGate('toolchain');
const c = await caps();

describe.skipIf(skip)('patched toolchain', () => {
  afterAll(sweep);

  it('the patched CRIU passes `criu check` and reports its features', async () => {
    const r = await cli(['info', '--format', 'json']);
    expect(r.exitCode).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.tfork.criu.version).toBe('4.1.1');
    expect(info.tfork.criu.check.ok).toBe(true);
    expect(info.tfork.criu.features).toHaveProperty('clone3_set_tid');
    expect(info.tfork.crun.criu).toBe(true);
    expect(info.tfork.storage.fs).toBe('btrfs');
    expect(info.podman.store.graphDriverName).toBe('btrfs');
    expect(info.tfork.tier.level).toBeGreaterThanOrEqual(1);
  });

  it('the second setup run rebuilds nothing', async () => {
    const r = await cli(['setup', '--format', 'json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const steps = JSON.parse(r.stdout).steps as { step: string; result: string }[];
    expect(steps.map((s) => s.step)).toEqual(expect.arrayContaining(['packages', 'criu', 'crun', 'storage', 'config', 'images']));
    for (const s of steps) expect(s.result, `step ${s.step}`).toBe('skipped');
  });

  it('runs the tiny image through the wrapper, keeping stdout and the exit code', async () => {
    const r = await cli(['run', '--rm', '--label', TEST_LABEL, 'localhost/tfork/tiny', 'sh', '-c', 'echo hello from tiny; exit 3']);
    expect(r.stdout).toContain('hello from tiny');
    expect(r.exitCode).toBe(3);
  });

  for (const runtime of ['crun', 'runc'] as const) {
    const why = gate(`checkpoint/restore with ${runtime}`, [[runtime === 'crun' || !!c.runc, 'runc is not installed']]);
    it.skipIf(why)(`stock checkpoint --leave-running --export + restore --import clones a running desktop (${runtime})`, async () => {
      const src = await startContainer('localhost/tfork/desktop', [], { runtime });
      // Up means: the xterm is mapped and the VNC server listens; then let the session settle.
      await waitFor(src, ['sh', '-c', 'xwininfo -root -tree | grep -q tfork-xterm && grep -q ":170C 00000000:0000 0A" /proc/net/tcp']);
      await new Promise((r) => setTimeout(r, 1000));
      const archive = path.join(os.tmpdir(), `${uniqueName('ckpt')}.tar`);
      const restored = uniqueName('restored');
      try {
        const ck = await podman().run(['--runtime', runtime, 'container', 'checkpoint', '--leave-running', '--file-locks', '--export', archive, src], { reject: false });
        expect(ck.exitCode, ck.stderr).toBe(0);
        const rs = await podman().run(['--runtime', runtime, 'container', 'restore', '--file-locks', '--import', archive, '--name', restored], { reject: false });
        expect(rs.exitCode, rs.stderr).toBe(0);
        const ps = await podman().run(['inspect', '--format', '{{.State.Status}}', src, restored]);
        expect(ps.stdout.trim().split('\n')).toEqual(['running', 'running']);
        // The VNC server came back listening (port 5900 = 0x170C).
        expect((await exec(restored, ['cat', '/proc/net/tcp'])).stdout).toMatch(/:170C 00000000:0000 0A/);
        const [a, b] = [await screenshot(src), await screenshot(restored)];
        expect(a.length).toBe(1024 * 768 * 3);
        expect(pixelDiff(a, b)).toBeLessThan(0.001);
        const wins = (n: string) => exec(n, ['sh', '-c', 'xwininfo -root -tree | grep -o "\\"tfork-xterm\\"" | sort -u']);
        expect((await wins(restored)).stdout).toBe((await wins(src)).stdout);
      } finally {
        rmSync(archive, { force: true });
        await podman().run(['rm', '-f', '-t', '0', src, restored], { reject: false });
      }
    });
  }
});

describe('wrapper errors', () => {
  it('rejects an unknown tfork flag with exit code 125', async () => {
    const r = await cli(['ps', '--tfork-bogus']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain('unknown tfork flag: --tfork-bogus');
  });
  it('rejects an unknown flag of a tfork command', async () => {
    const r = await cli(['cleanup', '--force']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain('unknown flag: --force');
  });
  it('says setup has not run when the project root is empty', async () => {
    const r = await cli(['ps'], { env: { TFORK_ROOT: path.join(os.tmpdir(), uniqueName('empty-root')) } });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/not set up.*\n.*podman-tfork setup/);
  });
  it('prints --tfork-help', async () => {
    const r = await cli(['--tfork-help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('podman-tfork setup');
    expect(r.stdout).toContain('TFORK_ROOT');
  });
});

describe.skipIf(skip)('cleanup', () => {
  it('lists and removes the scratch directory of a clone operation whose process is gone', async () => {
    const { layout } = await import('../../src/drivers/layout.js');
    const { mkdirSync, writeFileSync, existsSync } = await import('node:fs');
    const dir = path.join(layout().staging, uniqueName('crashed-op'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'owner'), '999999999\n');
    const dry = await cli(['cleanup', '--dry-run', '--format', 'json']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout).items).toContainEqual(expect.objectContaining({ kind: 'staging', path: dir, removed: false }));
    expect(existsSync(dir)).toBe(true);
    const r = await cli(['cleanup', '--format', 'json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).items).toContainEqual(expect.objectContaining({ kind: 'staging', path: dir, removed: true }));
    expect(existsSync(dir)).toBe(false);
  });
  it("removes the restore proxy cgroup a failed restore left with stock crun, after which the container starts again", async () => {
    const { cgroupParents } = await import('../../src/drivers/cgroups.js');
    const { mkdirSync, rmdirSync, utimesSync, existsSync } = await import('node:fs');
    const name = await startContainer('localhost/tfork/tiny', ['sleep', '100000']);
    const id = (await podman().run(['inspect', '-f', '{{.Id}}', name])).stdout.trim();
    expect((await podman().run(['stop', '-t', '0', name])).exitCode).toBe(0);
    // What crun 1.21 left after a failed restore on cgroup v1 hierarchies (crun-patches/0002 prevents it now).
    const left = cgroupParents().map((p) => path.join(p, `libpod-${id}`, '.proxy-crun'));
    const old = new Date(Date.now() - 10 * 60_000);
    try {
      for (const d of left) {
        mkdirSync(d, { recursive: true });
        utimesSync(d, old, old);
      }
      const stuck = await podman().run(['start', name], { reject: false });
      expect(stuck.exitCode, 'a container with a leftover .proxy-crun does not start').not.toBe(0);
      const r = await cli(['cleanup', '--format', 'json']);
      expect(r.exitCode, r.stderr).toBe(0);
      const items = JSON.parse(r.stdout).items as { kind: string; path: string; removed: boolean }[];
      for (const d of left) expect(items.find((i) => i.path === d)).toMatchObject({ kind: 'cgroup', removed: true });
      expect(left.filter((d) => existsSync(d))).toEqual([]);
      const started = await podman().run(['start', name], { reject: false });
      expect(started.exitCode, started.stderr).toBe(0);
    } finally {
      for (const d of left) if (existsSync(d)) rmdirSync(d);
      await podman().run(['rm', '-f', '-t', '0', name], { reject: false });
    }
  });
  it('removes the records of removed containers and the locks of dead processes, and nothing live', async () => {
    const { layout } = await import('../../src/drivers/layout.js');
    const { claimCommit } = await import('../../src/drivers/commit-ledger.js');
    const { setHead } = await import('../../src/core/checkpoint/store.js');
    const { locksDir, withLock } = await import('../../src/drivers/lock.js');
    const { mkdirSync, writeFileSync, existsSync } = await import('node:fs');
    const l = layout();
    const gone = 'f'.repeat(48) + Date.now().toString(16).padStart(16, '0');
    expect(claimCommit(l, gone, 0, 'test').ok).toBe(true);
    setHead(l, gone, 'cp-of-a-removed-container');
    mkdirSync(path.join(l.runDir, 'specs'), { recursive: true });
    writeFileSync(path.join(l.runDir, 'specs', `${gone}.json`), '{}');
    const dead = path.join(locksDir(l), `${uniqueName('dead')}.lock`);
    mkdirSync(dead, { recursive: true });
    writeFileSync(path.join(dead, 'owner'), '999999999 1\n');
    const heldKey = uniqueName('held');
    await withLock(l, heldKey, { what: 'a test' }, async () => {
      const r = await cli(['cleanup', '--format', 'json']);
      expect(r.exitCode, r.stderr).toBe(0);
      const items = JSON.parse(r.stdout).items as { kind: string; path: string; removed: boolean }[];
      const of = (p: string) => items.find((i) => i.path === p);
      expect(of(path.join(l.runDir, 'agent', 'commits', `${gone}.json`))).toMatchObject({ kind: 'record', removed: true });
      expect(of(path.join(l.checkpointStore, 'heads', gone))).toMatchObject({ kind: 'record', removed: true });
      expect(of(path.join(l.runDir, 'specs', `${gone}.json`))).toMatchObject({ kind: 'record', removed: true });
      expect(of(dead)).toMatchObject({ kind: 'lock', removed: true });
      expect(of(path.join(locksDir(l), `${heldKey}.lock`))).toBeUndefined();
      expect(existsSync(path.join(locksDir(l), `${heldKey}.lock`))).toBe(true);
    });
    expect(existsSync(path.join(locksDir(l), `${heldKey}.lock`))).toBe(false);
    expect(existsSync(dead)).toBe(false);
  });
});
