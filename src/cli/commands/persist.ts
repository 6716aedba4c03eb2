/** `podman-tfork persist ls|wait|rm`: the durable checkpoints --persistent writes. */
import { layout } from '../../drivers/layout.js';
import { listStatuses, readStatus, removePersisted, type PersistStatus } from '../../core/persist/job.js';
import { TforkError } from '../../errors.js';
import { FORMAT_FLAG } from '../flags.js';
import { ms, type Io } from '../render.js';
import type { Command } from './command.js';

function table(io: Io, list: PersistStatus[]): void {
  io.stdout.write(`${['ID', 'SOURCE', 'STATE', 'SIZE', 'WRITE', 'PATH'].join('\t')}\n`);
  for (const s of list) {
    const size = s.sizeBytes !== undefined ? `${(s.sizeBytes / 2 ** 20).toFixed(1)}MiB` : '-';
    io.stdout.write(`${[s.id, s.source.name, s.state, size, s.writeMs !== undefined ? ms(s.writeMs) : '-', s.path].join('\t')}\n`);
    if (s.error) io.stdout.write(`\t${s.error.split('\n')[0]}\n`);
  }
}

export const persistListCommand: Command = {
  name: 'persist ls',
  usage: 'podman-tfork persist ls [--format json]',
  summary: 'list durable checkpoints written by clone --persistent, with their state (in-flight, done, failed)',
  flags: [FORMAT_FLAG],
  async run({ flags }, io) {
    const list = listStatuses(layout());
    if (flags.format === 'json') io.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    else table(io, list);
    return 0;
  },
};

export const persistWaitCommand: Command = {
  name: 'persist wait',
  usage: 'podman-tfork persist wait [--timeout SECONDS] [--format json] ID...',
  summary: 'wait until durable checkpoints are complete; exit 0 when all are done, 125 when one failed',
  flags: [{ name: 'timeout', type: 'integer', arg: 'SECONDS', default: 600, description: 'give up after this long (exit 125)' }, FORMAT_FLAG],
  async run({ flags, positionals }, io) {
    if (!positionals.length) throw new TforkError('E_USAGE', 'persist wait needs at least one checkpoint ID');
    const l = layout();
    const deadline = Date.now() + (flags.timeout as number) * 1000;
    const final: PersistStatus[] = [];
    for (const id of positionals) {
      let s = readStatus(l, id);
      while (s.state === 'in-flight') {
        if (Date.now() > deadline) throw new TforkError('E_TIMEOUT', `durable checkpoint ${s.id} is still in flight after ${flags.timeout}s`);
        await new Promise((r) => setTimeout(r, 100));
        s = readStatus(l, id);
      }
      final.push(s);
    }
    if (flags.format === 'json') io.stdout.write(`${JSON.stringify(final, null, 2)}\n`);
    else for (const s of final) io.stdout.write(s.state === 'done' ? `${s.path}\n` : `${s.id}: failed: ${s.error}\n`);
    return final.every((s) => s.state === 'done') ? 0 : 125;
  },
};

export const persistRemoveCommand: Command = {
  name: 'persist rm',
  usage: 'podman-tfork persist rm ID...',
  summary: 'remove durable checkpoints (archive and status)',
  flags: [],
  async run({ positionals }, io) {
    if (!positionals.length) throw new TforkError('E_USAGE', 'persist rm needs at least one checkpoint ID');
    for (const id of positionals) {
      removePersisted(layout(), id);
      io.stdout.write(`${id}\n`);
    }
    return 0;
  },
};
