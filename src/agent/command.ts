/**
 * Commands as candidates (what the CLI runs): exit 0 is success, and the
 * command may write its score to file descriptor 3. Inside the container a
 * small `sh` wrapper points fd 3 at a scratch file and, after the command,
 * appends what it holds to stderr behind a marker that is stripped here; the
 * scratch file is removed before the candidate ends, so it never reaches a
 * committed state.
 */
import { TforkError } from '../errors.js';
import type { CandidateReturn } from './results.js';
import type { ExecOptions, Sandbox } from './sandbox.js';

const MARK = '@@tfork-score@@';
const WRAP = `f=/tmp/.tfork-score-$$; "$@" 3>"$f"; rc=$?; if [ -s "$f" ]; then printf '\\n${MARK}%s\\n' "$(head -n 1 "$f")" >&2; fi; rm -f "$f"; exit $rc`;
const TAIL = 4096;

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** What the command wrote to fd 3, when it is a number. */
  score?: number;
  /** What it wrote to fd 3, when that is not a number. */
  badScore?: string;
  durationMs: number;
}

/** Run argv in the sandbox with fd 3 open for a score (needs `sh` in the container). */
export async function runScored(sb: Sandbox, argv: string[], o: ExecOptions = {}): Promise<CommandResult> {
  const r = await sb.exec(['sh', '-c', WRAP, 'tfork', ...argv], o);
  const at = r.stderr.lastIndexOf(`\n${MARK}`);
  if (at < 0) return r;
  const line = r.stderr.slice(at + 1 + MARK.length).split('\n')[0]!;
  const written = line.trim();
  const stderr = r.stderr.slice(0, at) + r.stderr.slice(at + 1 + MARK.length + line.length + 1);
  const score = Number(written);
  return { ...r, stderr, ...(written !== '' && Number.isFinite(score) ? { score } : { badScore: written }) };
}

/** Last part of a command's output, for results and feedback. */
export function tailOf(text: string, max = TAIL): string {
  return text.length > max ? `…${text.slice(text.length - max)}` : text;
}

/**
 * A command's run as a candidate's return: success on exit 0, its fd 3 score,
 * its error output as feedback. A command killed by a signal (exit 129-192)
 * crashed: that is thrown.
 */
export function asCandidateReturn(r: CommandResult): CandidateReturn {
  const ok = r.exitCode === 0;
  const out = tailOf((r.stderr.trim() || r.stdout.trim())).trim();
  if (r.exitCode > 128 && r.exitCode <= 192) {
    throw new TforkError('E_TOOL_FAILED', `the command was killed by signal ${r.exitCode - 128} (exit code ${r.exitCode})${out ? `\n${tailOf(out, 1024)}` : ''}`);
  }
  const feedback = ok ? undefined : `exit code ${r.exitCode}${out ? `\n${out}` : ''}`;
  return { ok, ...(r.score !== undefined ? { score: r.score } : {}), ...(feedback ? { feedback } : {}) };
}
