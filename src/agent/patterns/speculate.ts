/** Speculate: run candidates side by side; the first success wins and the rest are stopped at once. */
import { PatternRun } from '../pattern-run.js';
import type { Candidate, Outcome, PatternOptions } from '../results.js';
import type { Sandbox } from '../sandbox.js';

export async function speculate(source: Sandbox, candidates: Candidate[], options: PatternOptions = {}): Promise<Outcome> {
  const run = new PatternRun('speculate', source, options);
  return run.guard(async () => {
    const [winner] = await run.wave(source, candidates, 'first-success');
    return run.finish(winner);
  });
}
