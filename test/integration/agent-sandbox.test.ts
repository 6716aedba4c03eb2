/**
 * The Sandbox handle on real containers: exec (with a timeout that kills
 * inside the container), files, checkpoint and rollback, fork and commit
 * (first commit wins), nested forks, dispose.
 */
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { listCheckpoints, removeCheckpoint } from '../../src/core/checkpoint/index.js';
import { Sandbox } from '../../src/agent/sandbox.js';
import { TforkError } from '../../src/errors.js';
import { engineGate, sweep } from '../helpers/host.js';
import { count, counterSandbox, Footprint, labelled, runs, sleep } from '../helpers/agent.js';

const skip = await engineGate('agent sandbox');

describe.skipIf(skip)('Sandbox', () => {
  afterAll(sweep);

  it('runs commands, reads and writes files, and kills a timed-out command inside the container', async () => {
    await using src = await counterSandbox();
    const r = await src.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
    expect((await src.exec(['cat'], { input: 'piped' })).stdout).toBe('piped');
    expect((await src.exec(['sh', '-c', 'echo $A'], { env: { A: 'from env' } })).stdout).toBe('from env\n');

    await src.writeFile('/work/dir/file.bin', Buffer.from([0, 1, 2, 255]));
    expect([...(await src.readFile('/work/dir/file.bin'))]).toEqual([0, 1, 2, 255]);
    await expect(src.readFile('/nope')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });

    const t0 = Date.now();
    await expect(src.exec(['sh', '-c', 'sleep 777 & sleep 778'], { timeoutMs: 800 })).rejects.toMatchObject({ code: 'E_TIMEOUT' });
    expect(Date.now() - t0).toBeLessThan(5000);
    // The command and its child are gone from the container, not just the podman client.
    expect(await runs(src, 'sleep 77')).toBe(false);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await expect(src.exec(['sleep', '779'], { signal: ac.signal })).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(await runs(src, 'sleep 779')).toBe(false);
  });

  it('refuses what it cannot do, with codes', async () => {
    await expect(Sandbox.attach('tfork-test-no-such-container')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    const src = await counterSandbox();
    await expect(src.discard()).rejects.toMatchObject({ code: 'E_INVALID_STATE' });
    await expect(src.commit()).rejects.toMatchObject({ code: 'E_INVALID_STATE' });
    await src.dispose();
    // An attached container outlives its handle.
    expect(await labelled()).toContain(src.name);
    await expect(src.exec(['true'])).rejects.toMatchObject({ code: 'E_INVALID_STATE' });
  });

  it('checkpoint, change files and memory, rollback: the checkpointed state is back and keeps running; older after newer', async () => {
    await using src = await counterSandbox();
    // Checkpoints outlive their container: remove them even when an expectation fails.
    onTestFinished(async () => {
      for (const c of await listCheckpoints(src.id)) await removeCheckpoint(c.id);
    });
    await src.writeFile('/tmp/marker', 'A');
    // The loop keeps counting while a checkpoint is taken: its value at the checkpoint is at least the one before.
    const atA = await count(src);
    const cpA = await src.checkpoint();
    await src.writeFile('/tmp/marker', 'B');
    await sleep(3000);
    const atB = await count(src);
    const cpB = await src.checkpoint();
    await src.writeFile('/tmp/marker', 'C');
    await src.exec(['rm', '/tmp/count']);
    await sleep(3000);
    const beforeRollback = await count(src);
    expect(beforeRollback).toBeGreaterThan(atB);

    await src.rollback(cpA);
    expect(await src.readText('/tmp/marker')).toBe('A');
    // The loop variable (memory) went back: the counter continues from the checkpoint, neither from 0 nor from now.
    const afterA = await count(src);
    expect(afterA).toBeGreaterThanOrEqual(atA);
    expect(afterA).toBeLessThan(beforeRollback);
    await sleep(500);
    expect(await count(src)).toBeGreaterThan(afterA);

    await src.rollback(cpB);
    expect(await src.readText('/tmp/marker')).toBe('B');
    const afterB = await count(src);
    expect(afterB).toBeGreaterThanOrEqual(atB);
    expect(afterB).toBeLessThan(beforeRollback);
    // Same container: same name and id, listed with its checkpoints.
    expect((await Sandbox.attach(src.name)).id).toBe(src.id);
    const ids = (await src.checkpoints()).map((c) => c.id);
    expect(ids).toEqual(expect.arrayContaining([cpA, cpB]));
    await src.removeCheckpoint(cpA);
    expect((await src.checkpoints()).map((c) => c.id)).not.toContain(cpA);
  });

  it('first commit wins between two racing siblings; the loser is refused and can be discarded', async () => {
    await using src = await counterSandbox();
    const fp = new Footprint();
    const [a, b] = await src.fork(2);
    for (const s of [a!, b!]) await fp.track(async () => true)(s, 0);
    await a!.writeFile('/tmp/who', 'a');
    await b!.writeFile('/tmp/who', 'b');
    const settled = await Promise.allSettled([a!.commit(), b!.commit()]);
    const won = settled.findIndex((s) => s.status === 'fulfilled');
    expect(won).toBeGreaterThanOrEqual(0);
    const lost = settled[1 - won] as PromiseRejectedResult;
    expect(lost.reason).toBeInstanceOf(TforkError);
    expect(lost.reason.code).toBe('E_INVALID_STATE');
    expect(lost.reason.message).toMatch(/first commit wins/);
    expect(await src.readText('/tmp/who')).toBe(won === 0 ? 'a' : 'b');
    const loser = won === 0 ? b! : a!;
    expect(loser.state).toBe('live');
    await loser.discard();
    // A fork made after the commit may commit again.
    const [c] = await src.fork(1);
    await fp.track(async () => true)(c!, 0);
    await c!.writeFile('/tmp/who', 'c');
    await c!.commit();
    expect(await src.readText('/tmp/who')).toBe('c');
    await fp.expectClean(src);
  });

  it('forks of forks commit into their parent, and a deep fork straight into an ancestor', async () => {
    await using src = await counterSandbox();
    const [child] = await src.fork(1);
    const [grandchild] = await child!.fork(1);
    await grandchild!.writeFile('/tmp/depth', '2');
    await grandchild!.commit();
    expect(await child!.readText('/tmp/depth')).toBe('2');
    await child!.commit();
    expect(await src.readText('/tmp/depth')).toBe('2');

    const [x] = await src.fork(1);
    const [y] = await x!.fork(1);
    await y!.writeFile('/tmp/depth', 'y');
    await y!.commit({ into: src });
    expect(await src.readText('/tmp/depth')).toBe('y');
    await x!.dispose();
    expect((await labelled()).filter((n) => n.startsWith(`${src.name}-`))).toEqual([]);
  });
});
