/**
 * What the pattern commands (speculate, best-of-n, reflexion) share: their
 * common flags, commands run as candidates inside the clones, Ctrl-C turned
 * into a cancellation that removes every clone, and the report of an outcome.
 */
import { isRoot } from '../../drivers/host.js';
import { TforkError } from '../../errors.js';
import { asCandidateReturn, runScored, tailOf, type CommandResult } from '../../agent/command.js';
import type { AgentEvent, Candidate, CandidateReturn, Outcome, PatternOptions } from '../../agent/results.js';
import { Sandbox } from '../../agent/sandbox.js';
import { FORMAT_FLAG, type FlagDef, type Parsed } from '../flags.js';
import { interruptSignal, ms, type Io } from '../render.js';

export const PATTERN_FLAGS: FlagDef[] = [
  { name: 'timeout', type: 'string', arg: 'DURATION', description: 'per candidate: at the timeout its clone is removed with all it runs (seconds, or 500ms, 2m, 1h)' },
  { name: 'no-commit', type: 'boolean', description: 'leave the source untouched: report every result, remove every clone' },
  { name: 'json', type: 'boolean', description: 'print the outcome as JSON (same as --format json)' },
  FORMAT_FLAG,
];

/** Exit status when no candidate succeeded (the candidates' commands failed; podman-tfork did not). */
export const NO_WINNER = 1;

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new TforkError('E_USAGE', `--timeout takes a duration such as 30, 30s, 500ms or 2m, not ${JSON.stringify(text)}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

/** Commands of one pattern run: each candidate's command result, by clone name. */
export class CommandRuns {
  readonly byClone = new Map<string, CommandResult>();

  /** Run argv in the clone (fd 3 open for a score) and keep its result. */
  async run(sb: Sandbox, argv: string[], env: Record<string, string>): Promise<CandidateReturn> {
    const r = await runScored(sb, argv, { env });
    this.byClone.set(sb.name, r);
    return asCandidateReturn(r);
  }

  /** A candidate that runs argv in its clone with TFORK_ATTEMPT set to its index. */
  candidate(argv: string[]): Candidate {
    return (sb, index) => this.run(sb, argv, { TFORK_ATTEMPT: String(index) });
  }
}

export interface PatternContext {
  source: Sandbox;
  options: PatternOptions;
  json: boolean;
}

/** Attach the source, wire timeout, --no-commit, events and Ctrl-C, run the pattern, report, and give the exit status. */
export async function runPatternCommand(parsed: Parsed, io: Io, name: string, body: (ctx: PatternContext) => Promise<Outcome>, runs: CommandRuns): Promise<number> {
  const f = parsed.flags;
  const sourceName = parsed.positionals[0];
  if (!sourceName) throw new TforkError('E_USAGE', `${name} needs a SOURCE container`, { suggestions: [`see podman-tfork ${name} --help`] });
  if (!isRoot()) throw new TforkError('E_NOT_ROOT', `${name} forks live containers, which needs root (CRIU)`);
  const json = f.json === true || f.format === 'json';
  const signal = interruptSignal();
  const source = await Sandbox.attach(sourceName, { signal });
  const options: PatternOptions = {
    commit: f['no-commit'] !== true,
    signal,
    ...(f.timeout !== undefined ? { timeoutMs: parseDuration(String(f.timeout)) } : {}),
    ...(json ? {} : { onEvent: progress(io) }),
  };
  const outcome = await body({ source, options, json });
  if (json) io.stdout.write(`${JSON.stringify(withCommands(outcome, runs), null, 2)}\n`);
  else report(io, outcome, runs);
  return outcome.winner ? 0 : NO_WINNER;
}

function progress(io: Io): (e: AgentEvent) => void {
  return (e) => {
    if (e.type === 'fork') io.stderr.write(`forked ${e.parent} into ${e.copies.length} in ${ms(e.durationMs)}\n`);
    if (e.type === 'candidate-end') {
      const r = e.result;
      io.stderr.write(`  #${r.index} ${r.status}${r.success ? ` (score ${r.score})` : r.error ? `: ${r.error.message.split('\n')[0]}` : ''} after ${ms(r.durationMs)}\n`);
    }
    if (e.type === 'commit') io.stderr.write(`committed ${e.from} into ${e.into} in ${ms(e.durationMs)}\n`);
  };
}

function withCommands(outcome: Outcome, runs: CommandRuns): unknown {
  return {
    ...outcome,
    results: outcome.results.map((r) => {
      const c = runs.byClone.get(r.sandbox);
      return c ? { ...r, exitCode: c.exitCode, stdout: tailOf(c.stdout), stderr: tailOf(c.stderr), ...(c.badScore !== undefined ? { badScore: c.badScore } : {}) } : r;
    }),
  };
}

function report(io: Io, outcome: Outcome, runs: CommandRuns): void {
  const rows = outcome.results.map((r) => [
    String(r.index),
    r.status,
    String(runs.byClone.get(r.sandbox)?.exitCode ?? '-'),
    r.success ? String(r.score) : '-',
    ms(r.durationMs),
    r === outcome.winner ? 'winner' : '',
  ]);
  const table = [['#', 'STATUS', 'EXIT', 'SCORE', 'TIME', ''], ...rows];
  const widths = table[0]!.map((_, k) => Math.max(...table.map((row) => row[k]!.length)));
  for (const row of table) io.stdout.write(`${row.map((c, k) => c.padEnd(widths[k]!)).join('  ').trimEnd()}\n`);
  const w = outcome.winner;
  io.stdout.write(
    w
      ? `candidate ${w.index} won; ${outcome.committed ? `its state is now ${outcome.source.name}'s` : `${outcome.source.name} left untouched`}\n`
      : `no candidate succeeded; ${outcome.source.name} left untouched\n`,
  );
}
