/**
 * Tournament: every candidate runs; the successes meet in pairs and a judge
 * picks the better of each pair (0: the first, 1: the second) until one is
 * left. Losers are removed as soon as they lose; an odd one out goes on.
 */
import { PatternRun } from '../pattern-run.js';
import type { Candidate, CandidateResult, Outcome, PatternOptions } from '../results.js';
import type { Sandbox } from '../sandbox.js';
import type { Settled } from '../wave.js';

export type Judge = (a: Sandbox, b: Sandbox, ra: CandidateResult, rb: CandidateResult) => 0 | 1 | Promise<0 | 1>;

export interface TournamentOptions extends PatternOptions {
  judge: Judge;
}

export async function tournament(source: Sandbox, candidates: Candidate[], options: TournamentOptions): Promise<Outcome> {
  const run = new PatternRun('tournament', source, options);
  return run.guard(async () => {
    let field: Settled[] = await run.wave(source, candidates, 'all');
    for (let round = 1; field.length > 1; round++) {
      const pairs: [Settled, Settled][] = [];
      for (let i = 0; i + 1 < field.length; i += 2) pairs.push([field[i]!, field[i + 1]!]);
      const bye = field.length % 2 ? [field[field.length - 1]!] : [];
      const winners = await Promise.all(
        pairs.map(async ([a, b]) => {
          const pick = await options.judge(a.sandbox, b.sandbox, a.result, b.result);
          const [w, l] = pick === 1 ? [b, a] : [a, b];
          l.result.eliminatedInRound = round;
          await run.drop([l.sandbox], `lost round ${round} to candidate ${w.result.index}`);
          return w;
        }),
      );
      field = [...winners, ...bye];
    }
    return run.finish(field[0]);
  });
}
