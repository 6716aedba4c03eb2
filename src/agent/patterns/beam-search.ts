/**
 * Beam search and tree of thoughts: the candidates run on forks of the
 * source; the best K successes (the beam) are each expanded into new
 * candidates that run on forks of them, and the best K of all of those
 * survive, depth after depth. Tree of thoughts is a beam of one. The best of
 * the deepest level that had a success wins, and its state is committed
 * straight into the source.
 */
import { TforkError } from '../../errors.js';
import { PatternRun } from '../pattern-run.js';
import type { Candidate, Outcome, PatternOptions } from '../results.js';
import type { Sandbox } from '../sandbox.js';
import type { Settled } from '../wave.js';

/** The next candidates to try from a surviving sandbox at `depth` (2 for the children of the first level). */
export type Expand = (sandbox: Sandbox, depth: number) => Candidate[] | Promise<Candidate[]>;

export interface BeamSearchOptions extends PatternOptions {
  expand?: Expand;
  /** Survivors per depth (default 2). */
  beamWidth?: number;
  /** Levels, the first one included (default 2). */
  maxDepth?: number;
}

export async function beamSearch(source: Sandbox, candidates: Candidate[], options: BeamSearchOptions = {}): Promise<Outcome> {
  return search('beam-search', source, candidates, { beamWidth: 2, ...options });
}

export async function treeOfThoughts(source: Sandbox, strategies: Candidate[], options: Omit<BeamSearchOptions, 'beamWidth'> = {}): Promise<Outcome> {
  return search('tree-of-thoughts', source, strategies, { ...options, beamWidth: 1 });
}

async function search(pattern: 'beam-search' | 'tree-of-thoughts', source: Sandbox, candidates: Candidate[], o: BeamSearchOptions & { beamWidth: number }): Promise<Outcome> {
  const maxDepth = o.maxDepth ?? 2;
  if (!Number.isInteger(o.beamWidth) || o.beamWidth < 1) throw new TforkError('E_USAGE', `beamWidth must be a positive whole number, not ${o.beamWidth}`);
  if (!Number.isInteger(maxDepth) || maxDepth < 1) throw new TforkError('E_USAGE', `maxDepth must be a positive whole number, not ${maxDepth}`);
  const run = new PatternRun(pattern, source, o);
  const top = (kept: Settled[]) => [...kept].sort((a, b) => b.result.score - a.result.score || a.result.index - b.result.index);
  return run.guard(async () => {
    let beam = await keepBest(run, top(await run.wave(source, candidates, 'all', { tag: { depth: 1 } })), o.beamWidth);
    for (let depth = 2; depth <= maxDepth && beam.length && o.expand; depth++) {
      const expansions = await Promise.all(beam.map(async (b) => ({ parent: b, next: await o.expand!(b.sandbox, depth) })));
      if (expansions.every((e) => !e.next.length)) break;
      const level = (await Promise.all(expansions.map((e) => run.wave(e.parent.sandbox, e.next, 'all', { tag: { depth } })))).flat();
      if (!level.length) break; // nothing succeeded deeper: the current beam stands
      await run.drop(beam.map((b) => b.sandbox), `expanded at depth ${depth}`);
      beam = await keepBest(run, top(level), o.beamWidth);
    }
    return run.finish(beam[0]);
  });
}

async function keepBest(run: PatternRun, sorted: Settled[], k: number): Promise<Settled[]> {
  await run.drop(sorted.slice(k).map((s) => s.sandbox), 'outside the beam');
  return sorted.slice(0, k);
}
