/**
 * Durable checkpoints (--persistent): the archive a live clone writes is a
 * podman checkpoint that stock `podman container restore --import` restores
 * into a container continuing from the clone instant; async survives the CLI.
 */
import { existsSync, readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, engineGate, exec, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { COUNTER, count, rm, sleep } from '../helpers/workloads.js';
import { layout } from '../../src/drivers/layout.js';

const skip = await engineGate('durable checkpoints');
const l = layout();
const made: string[] = [];

async function restoreStock(archive: string, name: string) {
  // Stock podman, no podman-tfork CRIU options: what any podman user would run.
  const r = await podman().run(['container', 'restore', '--import', archive, '--name', name, '--ignore-static-ip', '--ignore-static-mac'], { reject: false });
  expect(r.exitCode, r.stderr).toBe(0);
}

function leftovers(id: string): string[] {
  const staging = existsSync(l.staging) ? readdirSync(l.staging).filter((d) => d.includes(id)) : [];
  const parts = existsSync(l.checkpoints) ? readdirSync(l.checkpoints).filter((f) => f.includes(id) && (f.endsWith('.part') || f.endsWith('.log'))) : [];
  return [...staging, ...parts];
}

describe.skipIf(skip)('container clone --live --persistent', () => {
  let src = '';
  beforeAll(async () => {
    src = await startContainer('localhost/tfork/tiny', COUNTER);
    await waitFor(src, ['test', '-s', '/tmp/count']);
    await exec(src, ['sh', '-c', 'echo written > /tmp/file; rm /bin/vi']);
    await sleep(300);
  });
  afterAll(async () => {
    await sweep();
    for (const id of made) await cli(['persist', 'rm', id]);
  });

  it('sync: the archive is complete on return and stock podman restores it from the clone instant', async () => {
    const before = await count(src);
    const r = await cli(['container', 'clone', '--live', '--persistent=sync', '--name', `${src}-s`, '--format', 'json', src]);
    expect(r.exitCode, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    made.push(rep.persistent.id);
    expect(rep.persistent.state).toBe('done');
    expect(existsSync(rep.persistent.path)).toBe(true);
    expect(rep.timings.persistMs).toBeGreaterThan(0);
    const cloneValue = await count(`${src}-s`);
    await restoreStock(rep.persistent.path, `${src}-restored`);
    const restored = await count(`${src}-restored`);
    // Continues from the instant of the clone: not from zero, not from now.
    expect(restored).toBeGreaterThanOrEqual(before);
    expect(restored).toBeLessThanOrEqual(cloneValue + 20);
    await sleep(500);
    expect(await count(`${src}-restored`)).toBeGreaterThan(restored);
    // Files: written before the clone present, deleted before the clone absent.
    expect((await exec(`${src}-restored`, ['cat', '/tmp/file'])).stdout.trim()).toBe('written');
    expect((await podman().run(['exec', `${src}-restored`, 'ls', '/bin/vi'], { reject: false })).exitCode).not.toBe(0);
    const ls = await cli(['persist', 'ls', '--format', 'json']);
    expect(JSON.parse(ls.stdout).map((s: { id: string }) => s.id)).toContain(rep.persistent.id);
    await rm(`${src}-s`, `${src}-restored`);
  });

  it('async: killing the CLI right after it printed the clone does not lose the checkpoint', async () => {
    const child = spawn(process.execPath, [CLI, 'container', 'clone', '--live', '--persistent', '--name', `${src}-a`, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const printed = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(out.trim());
      });
      child.on('exit', (code) => reject(new Error(`CLI exited ${code} before printing: ${err}`)));
    });
    expect(printed).toBe(`${src}-a`);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const list = JSON.parse((await cli(['persist', 'ls', '--format', 'json'])).stdout) as { id: string; source: { name: string }; mode: string }[];
    const mine = list.filter((s) => s.source.name === src && s.mode === 'async' && !made.includes(s.id));
    expect(mine).toHaveLength(1);
    const id = mine[0]!.id;
    made.push(id);
    const w = await cli(['persist', 'wait', '--timeout', '120', '--format', 'json', id]);
    expect(w.exitCode, w.stdout + w.stderr).toBe(0);
    const done = JSON.parse(w.stdout)[0];
    expect(done.state).toBe('done');
    expect(done.writeMs).toBeGreaterThan(0);
    await restoreStock(done.path, `${src}-ar`);
    expect(await count(`${src}-ar`)).toBeGreaterThan(0);
    expect(leftovers(id)).toEqual([]);
    await rm(`${src}-a`, `${src}-ar`);
  });

  it('sync with a fault at persist: the command fails naming the phase and leaves nothing', async () => {
    const before = new Set(existsSync(l.checkpoints) ? readdirSync(l.checkpoints) : []);
    const r = await cli(['container', 'clone', '--live', '--persistent=sync', '--name', `${src}-f`, '--format', 'json', src], { env: { TFORK_FAULT: 'persist' } });
    expect(r.exitCode).toBe(125);
    expect(r.stdout + r.stderr).toMatch(/persist: fault injected/);
    expect((await podman().run(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n')).not.toContain(`${src}-f`);
    const after = (existsSync(l.checkpoints) ? readdirSync(l.checkpoints) : []).filter((f) => !before.has(f));
    expect(after).toEqual([]);
    expect(readdirSync(l.staging).filter((d) => d.includes(src))).toEqual([]);
    expect((await podman().run(['inspect', '-f', '{{.State.Status}}', src])).stdout.trim()).toBe('running');
  });

  it('async with a fault at persist: the clones run, the checkpoint reports failed, no partial file stays', async () => {
    const r = await cli(['container', 'clone', '--live', '--persistent=async', '--name', `${src}-af`, '--format', 'json', src], { env: { TFORK_FAULT: 'persist' } });
    expect(r.exitCode, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    made.push(rep.persistent.id);
    const w = await cli(['persist', 'wait', '--format', 'json', rep.persistent.id]);
    expect(w.exitCode).toBe(125);
    const s = JSON.parse(w.stdout)[0];
    expect(s.state).toBe('failed');
    expect(s.error).toMatch(/persist: fault injected/);
    expect(existsSync(s.path)).toBe(false);
    expect(leftovers(rep.persistent.id)).toEqual([]);
    expect((await exec(`${src}-af`, ['cat', '/tmp/count'])).exitCode).toBe(0);
    await rm(`${src}-af`);
  });
});
