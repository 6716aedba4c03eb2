import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { layout } from '../../src/drivers/layout.js';
import { locksDir, staleLocks, withLock, withLockSync } from '../../src/drivers/lock.js';
import { pidAlive, procStatFields } from '../../src/drivers/host.js';

const runDir = mkdtempSync(path.join(os.tmpdir(), 'tfork-lock-'));
const l = layout({ TFORK_ROOT: runDir, TFORK_RUN_DIR: runDir });
afterAll(() => rmSync(runDir, { recursive: true, force: true }));

describe('host-wide lock', () => {
  it('lets one holder in at a time', async () => {
    const trace: string[] = [];
    const hold = (who: string) =>
      withLock(l, 'k', { what: 'k' }, async () => {
        trace.push(`${who}+`);
        await new Promise((r) => setTimeout(r, 60));
        trace.push(`${who}-`);
      });
    await Promise.all([hold('a'), hold('b'), hold('c')]);
    for (let i = 0; i < trace.length; i += 2) expect(trace[i + 1]).toBe(trace[i]!.replace('+', '-'));
    expect(existsSync(path.join(locksDir(l), 'k.lock'))).toBe(false);
  });

  it('takes over the lock of a dead process, but not of a live one whose pid is reused', () => {
    const dead = path.join(locksDir(l), 'dead.lock');
    mkdirSync(dead, { recursive: true });
    // Our own pid with another start time: the process that took it is gone.
    writeFileSync(path.join(dead, 'owner'), `${process.pid} 1\n`);
    expect(staleLocks(l)).toContain(dead);
    expect(withLockSync(l, 'dead', 'dead', () => 'in')).toBe('in');
  });

  it('waits for a lock another process holds, and is cancellable', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { withLock } from ${JSON.stringify(path.resolve('dist/drivers/lock.js'))};
      import { layout } from ${JSON.stringify(path.resolve('dist/drivers/layout.js'))};
      await withLock(layout({ TFORK_ROOT: ${JSON.stringify(runDir)}, TFORK_RUN_DIR: ${JSON.stringify(runDir)} }), 'x', { what: 'x' }, async () => {
        console.log('held'); await new Promise((r) => setTimeout(r, 400));
      });`]);
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the lock holder exited early (${code})`)));
    });
    const ac = new AbortController();
    const cancelled = withLock(l, 'x', { what: 'container x', signal: ac.signal }, async () => 'no');
    setTimeout(() => ac.abort(), 50);
    await expect(cancelled).rejects.toMatchObject({ code: 'E_CANCELLED' });
    const t0 = Date.now();
    let waited = false;
    await withLock(l, 'x', { what: 'x', onWait: () => (waited = true) }, async () => undefined);
    expect(waited).toBe(true);
    expect(Date.now() - t0).toBeGreaterThan(150);
    await exited;
  });
});

describe('pidAlive', () => {
  it('counts a zombie as gone: it exited, only its reaper has not collected it', async () => {
    // The shell's background child exits at once; the shell then becomes a sleep that never
    // reaps it, so it stays a zombie for the sleep's two seconds.
    const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 2']);
    const zombie = Number(await new Promise<string>((r) => parent.stdout.once('data', (b) => r(String(b)))));
    for (let i = 0; i < 100 && procStatFields(zombie)?.[0] !== 'Z'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(procStatFields(zombie)?.[0]).toBe('Z');
    expect(() => process.kill(zombie, 0)).not.toThrow();
    expect(pidAlive(zombie)).toBe(false);
    expect(pidAlive(parent.pid!)).toBe(true);
    parent.kill('SIGKILL');
    await new Promise((r) => parent.once('exit', r));
    expect(pidAlive(parent.pid!)).toBe(false);
  });
});
