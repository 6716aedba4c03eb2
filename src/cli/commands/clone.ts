import { cloneLive, type CloneReport } from '../../core/clone/engine.js';
import { DEFAULT_GHOST_LIMIT, type CloneEvent } from '../../core/clone/plan.js';
import { parseSize } from '../../core/setup/storage.js';
import { TforkError } from '../../errors.js';
import { isRoot } from '../../drivers/host.js';
import { FORMAT_FLAG, type FlagDef } from '../flags.js';
import { interruptSignal, isInteractive, ms, type Io } from '../render.js';
import type { Command } from './command.js';

const flags: FlagDef[] = [
  { name: 'live', type: 'boolean', description: 'clone the running state (processes, memory, files), not just the configuration' },
  { name: 'copies', type: 'integer', arg: 'N', default: 1, description: 'number of running copies (names BASE-0 .. BASE-(N-1) when N > 1)' },
  { name: 'name', type: 'string', arg: 'BASE', description: 'name of the clone, or base of the names (default <source>-clone)' },
  {
    name: 'persistent',
    type: 'string',
    arg: 'async|sync',
    bareValue: 'async',
    choices: ['async', 'sync'],
    description: 'also write a durable checkpoint archive (stock `podman container restore --import` restores it): sync before returning, async (bare flag) in the background; see `persist ls|wait`',
  },
  { name: 'tfork-ghost-limit', type: 'string', arg: 'BYTES', description: `largest deleted-but-open file carried into the clones (default ${DEFAULT_GHOST_LIMIT / 2 ** 20}MiB; K/M/G suffixes)` },
  { name: 'tfork-tcp-close', type: 'boolean', default: true, description: 'established TCP connections come back closed in the clones; =false keeps CRIU refusing to dump them' },
  FORMAT_FLAG,
];

/** Progress on stderr: one line rewritten in place on a terminal, plain lines elsewhere (CI, logs, scripts). */
function progress(io: Io): (e: CloneEvent) => void {
  const [pre, post] = isInteractive(io) ? ['\r\x1b[2K', ''] : ['', '\n'];
  return (e) => {
    if (e.type === 'phase-start' && e.copy === undefined) io.stderr.write(`${pre}… ${e.phase}${post}`);
    if (e.type === 'copy-ready') io.stderr.write(`${pre}… copy ${e.name} running${post}`);
  };
}

function summary(io: Io, r: CloneReport): void {
  const t = r.timings;
  const restores = r.copies.map((c) => c.restoreMs ?? 0);
  io.stderr.write(
    `${isInteractive(io) ? '\r\x1b[2K' : ''}cloned ${r.source.name} into ${r.copies.length} in ${ms(t.totalMs)}: dump ${ms(t.dumpMs)}` +
      (t.frozenMs !== undefined ? ` (source frozen ${ms(t.frozenMs)}, snapshot ${ms(t.snapshotMs ?? 0)})` : '') +
      `, copies ${ms(t.copiesMs)} (restore max ${ms(Math.max(...restores))})` +
      `; tier ${r.tier.level} (${r.tier.name})` +
      (r.persistent ? `; durable checkpoint ${r.persistent.state}${t.persistMs !== undefined ? ` in ${ms(t.persistMs)}` : ''}: ${r.persistent.path}` : '') +
      '\n',
  );
}

export const cloneCommand: Command = {
  name: 'container clone',
  usage: 'podman-tfork container clone --live [--copies=N] [--name BASE] [--persistent[=async|sync]] [--tfork-ghost-limit BYTES] [--tfork-tcp-close[=BOOL]] [--format json] SOURCE',
  summary: 'fork a running container into N running copies that continue from the same instant',
  flags,
  async run({ flags: f, positionals }, io) {
    if (positionals.length !== 1) throw new TforkError('E_USAGE', `container clone --live takes exactly one SOURCE container, got ${positionals.length}`);
    if (!isRoot()) throw new TforkError('E_NOT_ROOT', 'live clones need root (CRIU)');
    const json = f.format === 'json';
    const report = await cloneLive(positionals[0]!, {
      copies: f.copies as number,
      name: f.name as string | undefined,
      ghostLimit: f['tfork-ghost-limit'] !== undefined ? parseSize(String(f['tfork-ghost-limit'])) : undefined,
      tcpClose: f['tfork-tcp-close'] as boolean,
      persistent: f.persistent as 'sync' | 'async' | undefined,
      signal: interruptSignal(),
      onEvent: json ? undefined : progress(io),
    });
    if (json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      for (const c of report.copies) io.stdout.write(`${c.name}\n`);
      summary(io, report);
    }
    return 0;
  },
};
