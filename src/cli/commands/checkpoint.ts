/** `podman-tfork checkpoint create|list|rm` and `podman-tfork rollback`. */
import { createCheckpoint, heldCheckpoints, listCheckpoints, pruneCheckpoints, removeCheckpoint, rollback, type CheckpointInfo } from '../../core/checkpoint/index.js';
import { isRoot } from '../../drivers/host.js';
import { TforkError } from '../../errors.js';
import { FORMAT_FLAG } from '../flags.js';
import { interruptSignal, isInteractive, ms, type Io } from '../render.js';
import type { Command } from './command.js';

function needRoot(what: string): void {
  if (!isRoot()) throw new TforkError('E_NOT_ROOT', `${what} needs root (CRIU)`);
}

function age(iso: string): string {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  return s < 120 ? `${Math.round(s)}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
}

function table(io: Io, list: CheckpointInfo[]): void {
  io.stdout.write(`${['ID', 'CONTAINER', 'AGE', 'SIZE', 'FROZEN', 'PARENT', 'MEMORY'].join('\t')}\n`);
  for (const c of list) {
    const frozen = c.timings.frozenMs !== undefined ? ms(c.timings.frozenMs) : '-';
    const memory = c.imagesParent ? `changes since ${c.imagesParent}` : 'full';
    io.stdout.write(`${[c.id, c.container.name, age(c.createdAt), `${(c.sizeBytes / 2 ** 20).toFixed(1)}MiB`, frozen, c.parent ?? '-', memory].join('\t')}\n`);
  }
}

export const checkpointCreateCommand: Command = {
  name: 'checkpoint create',
  usage: 'podman-tfork checkpoint create [--keep-last K] [--format json] CONTAINER',
  summary: 'capture a running container (memory, processes, files) as a checkpoint; it keeps running',
  flags: [{ name: 'keep-last', type: 'integer', arg: 'K', description: "afterwards keep only the container's K newest checkpoints" }, FORMAT_FLAG],
  async run({ flags, positionals }, io) {
    if (positionals.length !== 1) throw new TforkError('E_USAGE', 'checkpoint create takes one CONTAINER');
    needRoot('checkpoint create');
    const c = await createCheckpoint(positionals[0]!, { signal: interruptSignal() });
    const pruned = flags['keep-last'] !== undefined ? await pruneCheckpoints(c.container.id, { keepLast: flags['keep-last'] as number }) : [];
    if (flags.format === 'json') io.stdout.write(`${JSON.stringify({ ...c, pruned }, null, 2)}\n`);
    else {
      io.stdout.write(`${c.id}\n`);
      if (isInteractive(io)) io.stderr.write(`checkpoint of ${c.container.name} in ${ms(c.timings.totalMs)} (frozen ${ms(c.timings.frozenMs ?? 0)})\n`);
    }
    return 0;
  },
};

export const checkpointListCommand: Command = {
  name: 'checkpoint list',
  usage: 'podman-tfork checkpoint list [--format json] [CONTAINER]',
  summary: 'list checkpoints with their age and size, oldest first',
  flags: [FORMAT_FLAG],
  async run({ flags, positionals }, io) {
    const list = await listCheckpoints(positionals[0]);
    if (flags.format === 'json') io.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    else table(io, list);
    // Removed ones later incremental checkpoints still read take disk space the listing does not show.
    const held = await heldCheckpoints(positionals[0]);
    if (held.length) {
      const mib = held.reduce((n, c) => n + c.sizeBytes, 0) / 2 ** 20;
      io.stderr.write(`${held.length} removed checkpoint(s) (${mib.toFixed(1)}MiB of images) kept on disk: incremental checkpoints listed here read their pages; they go with the last of those\n`);
    }
    return 0;
  },
};

export const checkpointRemoveCommand: Command = {
  name: 'checkpoint rm',
  usage: 'podman-tfork checkpoint rm ID...',
  summary: 'delete checkpoints',
  flags: [],
  async run({ positionals }, io) {
    if (!positionals.length) throw new TforkError('E_USAGE', 'checkpoint rm needs at least one checkpoint ID');
    needRoot('checkpoint rm');
    for (const id of positionals) {
      await removeCheckpoint(id);
      io.stdout.write(`${id}\n`);
    }
    return 0;
  },
};

export const rollbackCommand: Command = {
  name: 'rollback',
  usage: 'podman-tfork rollback [--format json] CONTAINER CHECKPOINT',
  summary: "replace a container's running state with a checkpoint's (same name and id)",
  flags: [FORMAT_FLAG],
  async run({ flags, positionals }, io) {
    if (positionals.length !== 2) throw new TforkError('E_USAGE', 'rollback takes CONTAINER and CHECKPOINT');
    needRoot('rollback');
    const r = await rollback(positionals[0]!, positionals[1]!, { signal: interruptSignal() });
    if (flags.format === 'json') io.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else {
      io.stdout.write(`${r.container.name}\n`);
      if (isInteractive(io)) io.stderr.write(`rolled back to ${r.checkpoint} in ${ms(r.timings.totalMs)} (stop ${ms(r.timings.stopMs)}, restore ${ms(r.timings.restoreMs)})\n`);
    }
    return 0;
  },
};
