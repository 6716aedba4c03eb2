/**
 * speculate, best-of-n and reflexion run as a user runs them: the built CLI
 * as a subprocess, exit codes, the table and the JSON outcome.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cli, CLI, engineGate, exec, startContainer, sweep, waitFor } from '../helpers/host.js';
import { COUNTER, labelled, sleep } from '../helpers/agent.js';

const skip = await engineGate('agent CLI');

describe.skipIf(skip)('pattern commands', () => {
  let src = '';
  beforeAll(async () => {
    src = await startContainer('localhost/tfork/tiny', COUNTER);
    await waitFor(src, ['test', '-s', '/tmp/count']);
  });
  afterAll(sweep);
  const clonesLeft = async () => (await labelled()).filter((n) => n.startsWith(`${src}-`));

  it('speculate: the first command to exit 0 is committed; a hung one is killed at --timeout', async () => {
    const r = await cli(['speculate', '--timeout', '20s', src, '-c', 'sleep 0.3; exit 4', '-c', 'sleep 1000', '-c', 'sleep 1; echo "$TFORK_ATTEMPT" > /tmp/spec']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/candidate 2 won; its state is now/);
    expect(r.stdout).toMatch(/^0\s+failed\s+4/m);
    expect((await exec(src, ['cat', '/tmp/spec'])).stdout.trim()).toBe('2');
    expect(await clonesLeft()).toEqual([]);

    const t0 = Date.now();
    const none = await cli(['speculate', '--timeout', '1s', '--json', src, '-c', 'sleep 1000']);
    expect(none.exitCode).toBe(1);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(JSON.parse(none.stdout).results[0].status).toBe('timed-out');
    expect(await clonesLeft()).toEqual([]);
  });

  it('best-of-n --no-commit --json: every result with its fd 3 score and output; the source untouched', async () => {
    const r = await cli(['best-of-n', '-n', '3', '--no-commit', '--json', src, '--', 'sh', '-c', 'echo out$TFORK_ATTEMPT; echo $((TFORK_ATTEMPT * 10)) >&3; touch /tmp/bon; [ $TFORK_ATTEMPT != 2 ]']);
    expect(r.exitCode, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.committed).toBe(false);
    expect(o.results.map((x: { status: string; score: number; stdout: string }) => [x.status, x.score, x.stdout])).toEqual([
      ['succeeded', 0, 'out0\n'],
      ['succeeded', 10, 'out1\n'],
      ['failed', 0, 'out2\n'],
    ]);
    expect(o.winner.index).toBe(1);
    expect((await exec(src, ['ls', '/tmp'])).stdout).not.toContain('bon');
    expect(await clonesLeft()).toEqual([]);
  });

  it('reflexion: each retry gets the critique of the failed attempt in TFORK_FEEDBACK', async () => {
    const task = 'if [ "$TFORK_FEEDBACK" = "try harder 1" ]; then echo done > /tmp/refl; else echo attempt $TFORK_ATTEMPT > /tmp/last; exit 1; fi';
    const r = await cli(['reflexion', '--retries', '3', '--critique', 'echo "try harder $TFORK_ATTEMPT"', '--json', src, '--', 'sh', '-c', task]);
    expect(r.exitCode, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.results.map((x: { attempt: number; status: string; feedback?: string }) => [x.attempt, x.status, x.feedback])).toEqual([
      [0, 'failed', 'try harder 0'],
      [1, 'failed', 'try harder 1'],
      [2, 'succeeded', undefined],
    ]);
    expect((await exec(src, ['cat', '/tmp/refl'])).stdout.trim()).toBe('done');
    expect(await clonesLeft()).toEqual([]);
  });

  it('two pattern runs on one source at once: the first to commit wins, the other is refused and leaves nothing', async () => {
    const run = (tag: string) => cli(['speculate', '--json', src, '-c', `sleep 5; echo ${tag} > /tmp/race`]);
    const [a, b] = await Promise.all([run('a'), run('b')]);
    const codes = [a.exitCode, b.exitCode].sort();
    expect(codes, `${a.stderr}\n${b.stderr}`).toEqual([0, 125]);
    const [won, lost] = a.exitCode === 0 ? [a, b] : [b, a];
    expect(JSON.parse(lost.stdout).error.message).toMatch(/first commit wins/);
    expect((await exec(src, ['cat', '/tmp/race'])).stdout.trim()).toBe(won === a ? 'a' : 'b');
    expect(await clonesLeft()).toEqual([]);
  });

  it('Ctrl-C while candidates run stops them and removes every clone', async () => {
    const child = spawn(process.execPath, [CLI, 'speculate', src, '-c', 'sleep 1000', '-c', 'sleep 1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const t0 = Date.now();
    while (!/forked/.test(stderr) && Date.now() - t0 < 60_000) await sleep(100);
    await sleep(500);
    child.kill('SIGINT');
    expect(await exited, stderr).toBe(125);
    expect(stderr).toMatch(/cancelled/);
    expect(await clonesLeft()).toEqual([]);
  });

  it('usage errors and a missing source exit 125 with a message', async () => {
    const a = await cli(['speculate', src]);
    expect(a.exitCode).toBe(125);
    expect(a.stderr).toMatch(/at least one -c CMD/);
    const b = await cli(['best-of-n', '-n', '2', '--json', 'tfork-test-no-such-source', '--', 'true']);
    expect(b.exitCode).toBe(125);
    expect(JSON.parse(b.stdout).error.code).toBe('E_NOT_FOUND');
  });
});
