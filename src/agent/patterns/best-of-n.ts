/**
 * Best-of-N: every candidate runs to its end; the highest-scoring success
 * wins. With `commit: false` every result comes back and the source is left
 * untouched (rollouts for RL).
 */
import { TforkError } from '../../errors.js';
import { PatternRun } from '../pattern-run.js';
import { normalizeReturn, type Candidate, type Outcome, type PatternOptions } from '../results.js';
import type { Sandbox } from '../sandbox.js';

export interface BestOfNOptions extends PatternOptions {
  /** Scores known before running (e.g. from logprobs), one per candidate: they replace the candidates' own. */
  scores?: number[];
  /** Scores a success after it ran, in its sandbox (counts against the timeout). */
  evaluate?: (sandbox: Sandbox, index: number) => number | Promise<number>;
}

export async function bestOfN(source: Sandbox, candidates: Candidate[], options: BestOfNOptions = {}): Promise<Outcome> {
  const { scores, evaluate } = options;
  if (scores && scores.length !== candidates.length) {
    throw new TforkError('E_USAGE', `best-of-n got ${scores.length} scores for ${candidates.length} candidates`);
  }
  const scored: Candidate[] = candidates.map((c, i) => async (sb, index) => {
    const r = normalizeReturn(await c(sb, index));
    if (!r.ok) return r;
    if (scores) return { ...r, score: scores[i]! };
    return evaluate ? { ...r, score: await evaluate(sb, index) } : r;
  });
  const run = new PatternRun('best-of-n', source, options);
  return run.guard(async () => run.finish(run.best(await run.wave(source, scored, 'all'))));
}
