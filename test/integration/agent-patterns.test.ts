/**
 * The search patterns on real containers, with candidates that succeed, fail,
 * hang and crash: the right winner is committed (the source shows its files
 * and its still-running processes), losers are gone, hung candidates are
 * killed at the timeout, nothing is left behind.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { speculate } from '../../src/agent/patterns/speculate.js';
import { bestOfN } from '../../src/agent/patterns/best-of-n.js';
import { reflexion } from '../../src/agent/patterns/reflexion.js';
import { beamSearch, treeOfThoughts } from '../../src/agent/patterns/beam-search.js';
import { tournament } from '../../src/agent/patterns/tournament.js';
import { cascaded } from '../../src/agent/patterns/cascaded.js';
import type { AgentEvent, Candidate } from '../../src/agent/results.js';
import type { Sandbox } from '../../src/agent/sandbox.js';
import { engineGate, sweep } from '../helpers/host.js';
import { count, counterSandbox, Footprint, kinds, runs, sleep } from '../helpers/agent.js';

const skip = await engineGate('agent patterns');

/** A success that leaves a file and a process that keeps counting in its clone. */
const leaves = (tag: string, score?: number, seconds = 0.3): Candidate => async (sb) => {
  const r = await sb.exec(['sh', '-c', `echo ${tag} > /tmp/winner; (j=0; while true; do j=$((j+1)); echo $j > /tmp/bg-${tag}; sleep 0.1; done) >/dev/null 2>&1 & sleep ${seconds}`]);
  return { ok: r.exitCode === 0, ...(score !== undefined ? { score } : {}) };
};

/** The source now runs the winner's state: its file, and its background process still counting. */
async function expectWinnerState(src: Sandbox, tag: string): Promise<void> {
  expect((await src.readText('/tmp/winner')).trim()).toBe(tag);
  expect(await runs(src, 'while true')).toBe(true);
  const a = await count(src, `/tmp/bg-${tag}`);
  await sleep(400);
  expect(await count(src, `/tmp/bg-${tag}`)).toBeGreaterThan(a);
}

describe.skipIf(skip)('agent patterns', () => {
  afterAll(sweep);

  it('speculate: the first success is committed, the hung one stopped at once, failures and crashes removed', async () => {
    await using src = await counterSandbox();
    const fp = new Footprint();
    const events: AgentEvent[] = [];
    const t0 = Date.now();
    const out = await speculate(src, [kinds.fail(), kinds.hang(), leaves('spec', undefined, 5), kinds.crash(), kinds.throws()].map((c) => fp.track(c)), {
      timeoutMs: 60_000,
      onEvent: (e) => events.push(e),
    });
    expect(out.committed).toBe(true);
    expect(out.winner?.index).toBe(2);
    expect(out.results.map((r) => r.status)).toEqual(['failed', 'cancelled', 'succeeded', 'crashed', 'crashed']);
    expect(out.results[3]!.error?.code).toBe('E_INVALID_STATE');
    // The hung candidate did not hold the pattern up to its timeout.
    expect(Date.now() - t0).toBeLessThan(40_000);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['fork', 'candidate-start', 'candidate-end', 'winner', 'commit']));
    await expectWinnerState(src, 'spec');
    await fp.expectClean(src);
  });

  it('speculate: hung candidates are killed at the timeout; with no success the source is untouched', async () => {
    await using src = await counterSandbox();
    const fp = new Footprint();
    const t0 = Date.now();
    const out = await speculate(src, [kinds.hang(), kinds.hang()].map((c) => fp.track(c)), { timeoutMs: 1500 });
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(out.winner).toBeUndefined();
    expect(out.committed).toBe(false);
    expect(out.results.map((r) => r.status)).toEqual(['timed-out', 'timed-out']);
    for (const r of out.results) expect(r.durationMs).toBeGreaterThanOrEqual(1400);
    await expect(src.readText('/tmp/winner')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await fp.expectClean(src);
  });

  it('best-of-n: the highest-scoring success is committed; with commit: false all results come back and the source is untouched', async () => {
    await using src = await counterSandbox();
    const fp = new Footprint();
    const cands = [leaves('low', 0.2), kinds.fail(), leaves('high', 0.9), kinds.hang(), leaves('mid', 0.5)].map((c) => fp.track(c));
    const dry = await bestOfN(src, cands, { commit: false, timeoutMs: 4000 });
    expect(dry.committed).toBe(false);
    expect(dry.results.map((r) => [r.status, r.score])).toEqual([
      ['succeeded', 0.2],
      ['failed', 0],
      ['succeeded', 0.9],
      ['timed-out', 0],
      ['succeeded', 0.5],
    ]);
    expect(dry.winner?.index).toBe(2);
    await expect(src.readText('/tmp/winner')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await fp.expectClean(src);

    const out = await bestOfN(src, [leaves('a'), leaves('b'), leaves('c')], { evaluate: async (sb, i) => (i === 1 ? 5 : i) });
    expect(out.winner?.index).toBe(1);
    expect(out.winner?.score).toBe(5);
    await expectWinnerState(src, 'b');
    await fp.expectClean(src);
  });

  it('reflexion: failed attempts are critiqued in their own clone and the critique reaches the next attempt', async () => {
    await using src = await counterSandbox();
    const seen: (string | undefined)[] = [];
    const out = await reflexion(
      src,
      async (sb, attempt, feedback) => {
        seen.push(feedback);
        if (attempt < 2) return (await sb.exec(['sh', '-c', `echo "clue ${attempt}" > /tmp/log; exit 1`])).exitCode === 0;
        return leaves(`try${attempt}`)(sb, attempt);
      },
      { retries: 3, critique: async (sb) => `critique: ${(await sb.readText('/tmp/log')).trim()}` },
    );
    expect(seen).toEqual([undefined, 'critique: clue 0', 'critique: clue 1']);
    expect(out.results.map((r) => [r.attempt, r.status])).toEqual([
      [0, 'failed'],
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    await expectWinnerState(src, 'try2');
  });

  it('beam search keeps the best K per depth and commits the deepest best; tree of thoughts expands one', async () => {
    await using src = await counterSandbox();
    const fp = new Footprint();
    const step = (name: string, score: number, ok = true): Candidate =>
      fp.track(async (sb) => ({ ok: ok && (await sb.exec(['sh', '-c', `echo ${name} >> /tmp/path`])).exitCode === 0, score }));
    const expanded: string[] = [];
    const out = await beamSearch(src, [step('a', 1), step('b', 3), step('c', 2), step('d', 9, false)], {
      beamWidth: 2,
      maxDepth: 2,
      timeoutMs: 30_000,
      expand: async (sb, depth) => {
        const path = (await sb.readText('/tmp/path')).trim().split('\n').join('');
        expanded.push(`${path}@${depth}`);
        return [step(`${path}1`, path === 'c' ? 10 : 4), step(`${path}2`, 0, false)];
      },
    });
    expect(expanded.sort()).toEqual(['b@2', 'c@2']);
    expect(out.winner?.depth).toBe(2);
    expect(out.committed).toBe(true);
    expect((await src.readText('/tmp/path')).trim().split('\n')).toEqual(['c', 'c1']);
    await fp.expectClean(src);

    const tot = await treeOfThoughts(src, [step('x', 1), step('y', 2)], {
      maxDepth: 2,
      commit: false,
      expand: async () => [step('z', 1)],
    });
    expect(tot.results.filter((r) => r.depth === 2)).toHaveLength(1);
    expect(tot.winner?.depth).toBe(2);
    expect((await src.readText('/tmp/path')).trim().split('\n')).toEqual(['c', 'c1']);
    await fp.expectClean(src);
  });

  it('tournament: the judge picks pairwise; losers go as they lose; failures never enter', async () => {
    await using src = await counterSandbox();
    const fp = new Footprint();
    const value = (v: number): Candidate => async (sb) => (await sb.exec(['sh', '-c', `echo ${v} > /tmp/value; echo v${v} > /tmp/winner`])).exitCode === 0;
    const out = await tournament(src, [value(3), kinds.fail(), value(7), value(5), kinds.crash()].map((c) => fp.track(c)), {
      judge: async (a, b) => (Number(await a.readText('/tmp/value')) >= Number(await b.readText('/tmp/value')) ? 0 : 1),
    });
    expect(out.winner?.index).toBe(2);
    expect(out.results.map((r) => r.eliminatedInRound)).toEqual([1, undefined, undefined, 2, undefined]);
    expect((await src.readText('/tmp/winner')).trim()).toBe('v7');
    await fp.expectClean(src);
  });

  it('cascaded: waves widen with the errors of earlier waves as feedback', async () => {
    await using src = await counterSandbox();
    const calls: string[][] = [];
    const out = await cascaded(
      src,
      async (sb, feedback, index) => {
        calls.push(feedback);
        if (index === 0) return { ok: false, feedback: 'needs more care' };
        if (index === 1) throw new Error('tool broke');
        return leaves(`wave${index}`)(sb, index);
      },
      { fanOut: [1, 2, 4], timeoutMs: 30_000 },
    );
    expect(out.results.map((r) => [r.wave, r.status])).toEqual([
      [1, 'failed'],
      [2, 'crashed'],
      [2, 'succeeded'],
    ]);
    expect(calls).toEqual([[], ['needs more care'], ['needs more care']]);
    await expectWinnerState(src, 'wave2');
  });

  it('nested: a pattern inside a candidate commits into that candidate, which is then committed into the source', async () => {
    await using src = await counterSandbox();
    const fp = new Footprint();
    const out = await speculate(src, [
      fp.track(async (outer) => {
        const inner = await speculate(outer, [kinds.fail(), leaves('inner')].map((c) => fp.track(c)));
        return inner.committed;
      }),
    ]);
    expect(out.committed).toBe(true);
    await expectWinnerState(src, 'inner');
    await fp.expectClean(src);
  });
});
