/**
 * Reflexion: one attempt at a time, each in a fresh fork of the source; a
 * failed attempt is critiqued in its own sandbox (before it is removed) and
 * the critique is fed to the next attempt. The first success wins.
 */
import { TforkError } from '../../errors.js';
import { PatternRun } from '../pattern-run.js';
import type { CandidateResult, CandidateReturn, Outcome, PatternOptions } from '../results.js';
import type { Sandbox } from '../sandbox.js';

export type ReflexionTask = (sandbox: Sandbox, attempt: number, feedback: string | undefined) => CandidateReturn | Promise<CandidateReturn>;
/** Runs in the failed attempt's sandbox; what it returns is the next attempt's feedback. */
export type Critique = (sandbox: Sandbox, failed: CandidateResult) => string | undefined | Promise<string | undefined>;

export interface ReflexionOptions extends PatternOptions {
  /** Attempts after the first one (default 2: three attempts in all). */
  retries?: number;
  /** Without one, the feedback is what the failed attempt returned, or its error. */
  critique?: Critique;
}

export async function reflexion(source: Sandbox, task: ReflexionTask, options: ReflexionOptions = {}): Promise<Outcome> {
  const retries = options.retries ?? 2;
  if (!Number.isInteger(retries) || retries < 0) throw new TforkError('E_USAGE', `retries must be a whole number, not ${retries}`);
  const run = new PatternRun('reflexion', source, options);
  const critique = options.critique;
  return run.guard(async () => {
    let feedback: string | undefined;
    for (let attempt = 0; attempt <= retries; attempt++) {
      const [winner] = await run.wave(source, [(sb) => task(sb, attempt, feedback)], 'first-success', {
        tag: { attempt },
        ...(critique ? { critique: async (sb, failed) => critique(sb, failed) } : {}),
      });
      if (winner) return run.finish(winner);
      const last = run.results[run.results.length - 1]!;
      feedback = last.feedback ?? last.error?.message;
    }
    return run.finish(undefined);
  });
}
