import { runScored, tailOf } from '../../agent/command.js';
import { reflexion } from '../../agent/patterns/reflexion.js';
import type { Critique } from '../../agent/patterns/reflexion.js';
import { TforkError } from '../../errors.js';
import type { Command } from './command.js';
import { CommandRuns, PATTERN_FLAGS, runPatternCommand } from './pattern-cli.js';

export const reflexionCommand: Command = {
  name: 'reflexion',
  usage: 'podman-tfork reflexion [--retries R] [--critique CMD] [--timeout DURATION] [--no-commit] [--json] SOURCE -- CMD [ARG...]',
  summary:
    'run CMD in a live fork of SOURCE, again in a fresh fork after each failure (up to R retries) with TFORK_FEEDBACK set to the critique of the failure: the output of --critique CMD run in the failed fork, or else its error output',
  flags: [
    { name: 'retries', type: 'integer', arg: 'R', default: 2, description: 'attempts after the first one (default 2)' },
    { name: 'critique', type: 'string', arg: 'CMD', description: 'run as `sh -c CMD` in a failed fork (TFORK_ATTEMPT, TFORK_EXIT_CODE set); its stdout is the next attempt\'s TFORK_FEEDBACK' },
    ...PATTERN_FLAGS,
  ],
  async run(parsed, io) {
    const retries = parsed.flags.retries as number;
    if (retries < 0) throw new TforkError('E_USAGE', `--retries must be 0 or more, not ${retries}`);
    const argv = parsed.positionals.slice(1);
    if (!argv.length) throw new TforkError('E_USAGE', 'reflexion needs a command after SOURCE (reflexion SOURCE -- CMD)');
    const critiqueCmd = parsed.flags.critique as string | undefined;
    const runs = new CommandRuns();
    const critique: Critique | undefined = critiqueCmd
      ? async (sb, failed) => {
          const exit = runs.byClone.get(sb.name)?.exitCode;
          const env = { TFORK_ATTEMPT: String(failed.attempt ?? 0), ...(exit !== undefined ? { TFORK_EXIT_CODE: String(exit) } : {}) };
          const r = await runScored(sb, ['sh', '-c', critiqueCmd], { env });
          if (r.exitCode !== 0) return `critique exited with ${r.exitCode}: ${tailOf(r.stderr.trim(), 1024)}`;
          return r.stdout.trim();
        }
      : undefined;
    return runPatternCommand(
      parsed,
      io,
      'reflexion',
      ({ source, options }) =>
        reflexion(
          source,
          (sb, attempt, feedback) => runs.run(sb, argv, { TFORK_ATTEMPT: String(attempt), TFORK_FEEDBACK: tailOf(feedback ?? '', 16_384) }),
          { ...options, retries, ...(critique ? { critique } : {}) },
        ),
      runs,
    );
  },
};
