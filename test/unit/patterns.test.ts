/**
 * The patterns' decisions without containers: what a candidate's return
 * means, who wins, how a wave stops the others and times out, how scores come
 * back from fd 3, and the CLI's duration and flag parsing. The sandboxes here
 * are stand-ins that only count forks and removals; everything that touches a
 * container is in test/integration/agent-*.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { best, normalizeReturn, type Candidate, type CandidateResult } from '../../src/agent/results.js';
import { asCandidateReturn, runScored } from '../../src/agent/command.js';
import { runWave } from '../../src/agent/wave.js';
import type { Sandbox } from '../../src/agent/sandbox.js';
import { parseDuration } from '../../src/cli/commands/pattern-cli.js';
import { parseFlags } from '../../src/cli/flags.js';
import { speculateCommand } from '../../src/cli/commands/speculate.js';

/** A stand-in sandbox: fork makes stand-ins, discard aborts their signal. */
function standIn(name: string, removed: string[]): Sandbox {
  const life = new AbortController();
  let state = 'live';
  const sb = {
    name,
    get state() {
      return state;
    },
    signal: life.signal,
    async fork(n: number) {
      return Array.from({ length: n }, (_, i) => standIn(`${name}-${i}`, removed));
    },
    async discard() {
      if (state !== 'live') return;
      state = 'discarded';
      removed.push(name);
      life.abort();
    },
  };
  return sb as unknown as Sandbox;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const untilAborted = (sb: Sandbox) => new Promise<boolean>((r) => sb.signal.addEventListener('abort', () => r(false)));

describe('candidate returns and winners', () => {
  it('normalizes booleans and objects; successes without a score score 1', () => {
    expect(normalizeReturn(true)).toEqual({ ok: true, score: 1 });
    expect(normalizeReturn(false)).toEqual({ ok: false, score: 0 });
    expect(normalizeReturn({ ok: true, score: 0.25, feedback: 'f' })).toEqual({ ok: true, score: 0.25, feedback: 'f' });
    expect(normalizeReturn({ ok: true, score: Number.NaN })).toEqual({ ok: true, score: 1 });
  });
  it('the best is the highest-scoring success, the earliest on a tie', () => {
    const r = (index: number, success: boolean, score: number) => ({ index, success, score }) as CandidateResult;
    expect(best([r(0, true, 1), r(1, false, 9), r(2, true, 3), r(3, true, 3)])?.index).toBe(2);
    expect(best([r(0, false, 1)])).toBeUndefined();
  });
});

describe('a wave of candidates', () => {
  const emit = () => undefined;
  it('first-success: the first success wins, the running ones are stopped at once and removed', async () => {
    const removed: string[] = [];
    const hang: Candidate = async (sb) => untilAborted(sb);
    const t0 = Date.now();
    const { settled, removals } = await runWave(standIn('s', removed), [hang, async () => (await wait(50), true), async () => false, hang], { mode: 'first-success', emit, firstIndex: 10 });
    await removals;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(settled.map((s) => [s.result.index, s.result.status])).toEqual([
      [10, 'cancelled'],
      [11, 'succeeded'],
      [12, 'failed'],
      [13, 'cancelled'],
    ]);
    expect(removed.sort()).toEqual(['s-0', 's-2', 's-3']);
  });
  it('all: every candidate runs; a hung one is removed at the timeout, a throwing one is a crash', async () => {
    const removed: string[] = [];
    const { settled, removals } = await runWave(
      standIn('s', removed),
      [async () => ({ ok: true, score: 2 }), async () => new Promise<boolean>(() => undefined), async () => { throw new Error('bug'); }],
      { mode: 'all', emit, firstIndex: 0, timeoutMs: 200 },
    );
    await removals;
    expect(settled.map((s) => s.result.status)).toEqual(['succeeded', 'timed-out', 'crashed']);
    expect(settled[2]!.result.error?.message).toBe('bug');
    expect(removed.sort()).toEqual(['s-1', 's-2']);
    expect(settled[0]!.sandbox.state).toBe('live');
  });
  it('a critique runs in the failed candidate\'s sandbox before it is removed', async () => {
    const removed: string[] = [];
    const { settled } = await runWave(standIn('s', removed), [async () => ({ ok: false, feedback: 'own' })], {
      mode: 'first-success',
      emit,
      firstIndex: 0,
      critique: async (sb, r) => `${sb.name} ${sb.state} ${r.feedback}`,
    });
    expect(settled[0]!.result.feedback).toBe('s-0 live own');
  });
});

describe('commands as candidates', () => {
  const fake = (exitCode: number, stderr: string, stdout = '') => ({ exec: async () => ({ exitCode, stdout, stderr, durationMs: 1 }) }) as unknown as Sandbox;
  it('reads the score written to fd 3 and strips its marker from stderr', async () => {
    const r = await runScored(fake(0, 'warn\n\n@@tfork-score@@0.75\n', 'out\n'), ['x']);
    expect(r).toMatchObject({ exitCode: 0, score: 0.75, stderr: 'warn\n', stdout: 'out\n' });
    expect((await runScored(fake(0, 'plain\n'), ['x'])).score).toBeUndefined();
    expect(await runScored(fake(0, '\n@@tfork-score@@high\n'), ['x'])).toMatchObject({ badScore: 'high', stderr: '' });
  });
  it('exit 0 succeeds; other exits fail with their output as feedback; a signal is a crash', () => {
    expect(asCandidateReturn({ exitCode: 0, stdout: '', stderr: '', score: 3, durationMs: 1 })).toEqual({ ok: true, score: 3 });
    expect(asCandidateReturn({ exitCode: 2, stdout: '', stderr: 'no good\n', durationMs: 1 })).toEqual({ ok: false, feedback: 'exit code 2\nno good' });
    expect(() => asCandidateReturn({ exitCode: 137, stdout: '', stderr: '', durationMs: 1 })).toThrow(/signal 9/);
  });
});

describe('pattern command line', () => {
  it('parses durations', () => {
    expect(parseDuration('30')).toBe(30_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(() => parseDuration('soon')).toThrow(/--timeout/);
  });
  it('takes -c many times, short and long', () => {
    const p = parseFlags(['-c', 'a', '--command', 'b', '--no-commit', 'src'], speculateCommand.flags, 'speculate');
    expect(p.flags.command).toEqual(['a', 'b']);
    expect(p.flags['no-commit']).toBe(true);
    expect(p.positionals).toEqual(['src']);
  });
});
