import { executeCleanup, planCleanup } from '../../core/cleanup.js';
import { layout } from '../../drivers/layout.js';
import { Podman } from '../../drivers/podman.js';
import { TforkError } from '../../errors.js';
import { isRoot } from '../../drivers/host.js';
import { FORMAT_FLAG } from '../flags.js';
import type { Command } from './command.js';

export const cleanupCommand: Command = {
  name: 'cleanup',
  usage: 'podman-tfork cleanup [--dry-run] [--format json]',
  summary: 'remove what crashed commands left behind: orphaned subvolumes, staging snapshots, empty cgroups, stale mounts, locks of dead processes, records of removed containers',
  flags: [{ name: 'dry-run', type: 'boolean', description: 'list what would be removed, remove nothing' }, FORMAT_FLAG],
  async run({ flags }, io) {
    if (!isRoot()) throw new TforkError('E_NOT_ROOT', 'podman-tfork cleanup must run as root');
    const l = layout();
    const ids = (await new Podman(l).run(['ps', '-a', '--no-trunc', '--format', '{{.ID}}'])).stdout.split('\n').filter(Boolean);
    const plan = await planCleanup(l, new Set(ids));
    const results = flags['dry-run'] ? plan.map((p) => ({ ...p, removed: false })) : await executeCleanup(plan);
    if (flags.format === 'json') io.stdout.write(`${JSON.stringify({ dryRun: !!flags['dry-run'], items: results }, null, 2)}\n`);
    else {
      if (!results.length) io.stderr.write('nothing to clean up\n');
      for (const r of results) {
        const verb = flags['dry-run'] ? 'would remove' : r.removed ? 'removed' : 'FAILED to remove';
        io.stdout.write(`${verb} ${r.kind} ${r.path} (${r.reason})${'error' in r && r.error ? `: ${r.error}` : ''}\n`);
      }
    }
    return results.some((r) => 'error' in r && r.error) ? 125 : 0;
  },
};
