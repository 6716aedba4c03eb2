import { speculate } from '../../agent/patterns/speculate.js';
import { TforkError } from '../../errors.js';
import type { Command } from './command.js';
import { CommandRuns, PATTERN_FLAGS, runPatternCommand } from './pattern-cli.js';

export const speculateCommand: Command = {
  name: 'speculate',
  usage: 'podman-tfork speculate [--timeout DURATION] [--no-commit] [--json] SOURCE -c CMD -c CMD ...',
  summary: 'race shell commands, each in its own live fork of SOURCE; the first to exit 0 wins and its state becomes SOURCE\'s (exit 1: none succeeded)',
  flags: [{ name: 'command', short: 'c', type: 'string', multiple: true, arg: 'CMD', description: 'a candidate, run as `sh -c CMD` in its fork (repeat for each)' }, ...PATTERN_FLAGS],
  async run(parsed, io) {
    const cmds = (parsed.flags.command as string[] | undefined) ?? [];
    if (!cmds.length) throw new TforkError('E_USAGE', 'speculate needs at least one -c CMD');
    if (parsed.positionals.length > 1) throw new TforkError('E_USAGE', `speculate takes one SOURCE and commands as -c CMD, not ${parsed.positionals.slice(1).join(' ')}`);
    const runs = new CommandRuns();
    return runPatternCommand(parsed, io, 'speculate', ({ source, options }) => speculate(source, cmds.map((c) => runs.candidate(['sh', '-c', c])), options), runs);
  },
};
