/**
 * What patterns return and report: one result per candidate, the winner, and
 * progress events. Plain data (sandboxes appear by name), so an outcome can be
 * printed as JSON as it is.
 */
import { asTforkError, type ErrorCode } from '../errors.js';
import type { Sandbox } from './sandbox.js';

/** What a candidate returns: a bare success flag, or success with a score and feedback for later attempts. */
export type CandidateReturn = boolean | { ok: boolean; score?: number; feedback?: string };

/** A candidate works in its own fork of the source; `index` is its position among the candidates. */
export type Candidate = (sandbox: Sandbox, index: number) => CandidateReturn | Promise<CandidateReturn>;

export type CandidateStatus =
  /** returned success */
  | 'succeeded'
  /** returned failure */
  | 'failed'
  /** threw (its command could not run, its container died, ...) */
  | 'crashed'
  /** still running at the timeout: its clone was removed */
  | 'timed-out'
  /** stopped because another candidate won, or the pattern was cancelled */
  | 'cancelled';

export interface CandidateResult {
  /** Position among all candidates of the pattern run (across waves, depths and attempts). */
  index: number;
  /** The clone it ran in. */
  sandbox: string;
  status: CandidateStatus;
  success: boolean;
  /** The candidate's score; successes without one score 1, everything else 0. */
  score: number;
  durationMs: number;
  feedback?: string;
  error?: { code: ErrorCode; message: string };
  /** Tree and beam search: the depth (1 = children of the source); cascaded: the wave (1 = first). */
  depth?: number;
  wave?: number;
  /** Reflexion: the attempt (0 = first). */
  attempt?: number;
  /** Tournament: the round in which it lost (1 = first). */
  eliminatedInRound?: number;
}

export type PatternName = 'speculate' | 'best-of-n' | 'reflexion' | 'tree-of-thoughts' | 'beam-search' | 'tournament' | 'cascaded';

export interface Outcome {
  pattern: PatternName;
  source: { name: string; id: string };
  /** The winning candidate, if any succeeded. */
  winner?: CandidateResult;
  /** Whether the winner's state became the source's. */
  committed: boolean;
  /** Every candidate, in the order they were started. */
  results: CandidateResult[];
  timings: {
    totalMs: number;
    /** Sum of the forks' wall times (each one CRIU dump plus parallel restores). */
    forkMs: number;
    forks: number;
    commitMs?: number;
    /** The commit's steps: checkpoint of the winner, rollback of the source to it, cleanup. */
    commit?: { checkpointMs: number; rollbackMs: number; cleanupMs: number; totalMs: number };
  };
  /** With `keepWinner` and no commit: the winner's sandbox, still running; the caller disposes it. */
  sandbox?: Sandbox;
}

export type AgentEvent =
  | { type: 'fork'; parent: string; copies: string[]; durationMs: number }
  | { type: 'candidate-start'; index: number; sandbox: string }
  | { type: 'candidate-end'; result: CandidateResult }
  | { type: 'winner'; result: CandidateResult }
  | { type: 'commit'; from: string; into: string; durationMs: number }
  | { type: 'discard'; sandbox: string; reason: string };

/** Options every pattern takes. */
export interface PatternOptions {
  /** Commit the winner into the source (default true). With false the source is left untouched. */
  commit?: boolean;
  /** With `commit: false`: keep the winner's sandbox running and return it in the outcome. */
  keepWinner?: boolean;
  /** Per candidate, from the moment its fork is running: at the timeout its clone is removed. */
  timeoutMs?: number;
  signal?: AbortSignal;
  onEvent?: (e: AgentEvent) => void;
}

export function normalizeReturn(v: CandidateReturn): { ok: boolean; score: number; feedback?: string } {
  if (typeof v === 'boolean') return { ok: v, score: v ? 1 : 0 };
  if (v && typeof v === 'object' && 'ok' in v) {
    const ok = Boolean(v.ok);
    const score = typeof v.score === 'number' && Number.isFinite(v.score) ? v.score : ok ? 1 : 0;
    return { ok, score, ...(v.feedback ? { feedback: v.feedback } : {}) };
  }
  return { ok: Boolean(v), score: v ? 1 : 0 };
}

export function errorOf(err: unknown): { code: ErrorCode; message: string } {
  const e = asTforkError(err);
  return { code: e.code, message: e.message };
}

/** The best success: highest score, the earliest on a tie. */
export function best(results: CandidateResult[]): CandidateResult | undefined {
  let top: CandidateResult | undefined;
  for (const r of results) if (r.success && (!top || r.score > top.score)) top = r;
  return top;
}
