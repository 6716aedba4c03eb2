import { bestOfN } from '../../agent/patterns/best-of-n.js';
import { TforkError } from '../../errors.js';
import type { Command } from './command.js';
import { CommandRuns, PATTERN_FLAGS, runPatternCommand } from './pattern-cli.js';

export const bestOfNCommand: Command = {
  name: 'best-of-n',
  usage: 'podman-tfork best-of-n -n N [--timeout DURATION] [--no-commit] [--json] SOURCE -- CMD [ARG...]',
  summary: 'run CMD in N live forks of SOURCE (TFORK_ATTEMPT=0..N-1); the highest score written to fd 3 among those exiting 0 wins (default score 1)',
  flags: [{ name: 'copies', short: 'n', type: 'integer', arg: 'N', description: 'how many forks run CMD' }, ...PATTERN_FLAGS],
  async run(parsed, io) {
    const n = parsed.flags.copies as number | undefined;
    if (n === undefined || n < 1) throw new TforkError('E_USAGE', 'best-of-n needs -n N (at least 1)');
    const argv = parsed.positionals.slice(1);
    if (!argv.length) throw new TforkError('E_USAGE', 'best-of-n needs a command after SOURCE (best-of-n -n N SOURCE -- CMD)');
    const runs = new CommandRuns();
    const candidates = Array.from({ length: n }, () => runs.candidate(argv));
    return runPatternCommand(parsed, io, 'best-of-n', ({ source, options }) => bestOfN(source, candidates, options), runs);
  },
};
