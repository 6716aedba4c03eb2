/**
 * Cascaded speculation: start with one attempt; while none succeeds, widen
 * (fan-out 1, 2, 4 ...), each wave told the errors of the earlier ones. In a
 * wave the first success wins and the rest are stopped.
 */
import { TforkError } from '../../errors.js';
import { PatternRun } from '../pattern-run.js';
import type { CandidateReturn, Outcome, PatternOptions } from '../results.js';
import type { Sandbox } from '../sandbox.js';

/** `feedback`: the non-empty feedback (or error) of every failed attempt so far, oldest first. */
export type CascadedTask = (sandbox: Sandbox, feedback: string[], index: number) => CandidateReturn | Promise<CandidateReturn>;

export interface CascadedOptions extends PatternOptions {
  /** Attempts per wave (default [1, 2, 4]). */
  fanOut?: number[];
}

export async function cascaded(source: Sandbox, task: CascadedTask, options: CascadedOptions = {}): Promise<Outcome> {
  const fanOut = options.fanOut ?? [1, 2, 4];
  if (!fanOut.length || fanOut.some((n) => !Number.isInteger(n) || n < 1)) throw new TforkError('E_USAGE', `fanOut must list positive whole numbers, not ${JSON.stringify(fanOut)}`);
  const run = new PatternRun('cascaded', source, options);
  return run.guard(async () => {
    const feedback: string[] = [];
    for (let w = 0; w < fanOut.length; w++) {
      const seen = [...feedback];
      const first = run.results.length;
      const attempts = Array.from({ length: fanOut[w]! }, (_, i) => (sb: Sandbox) => task(sb, seen, first + i));
      const [winner] = await run.wave(source, attempts, 'first-success', { tag: { wave: w + 1 } });
      if (winner) return run.finish(winner);
      for (const r of run.results.slice(first)) {
        const text = r.feedback ?? r.error?.message;
        if (text) feedback.push(text);
      }
    }
    return run.finish(undefined);
  });
}
