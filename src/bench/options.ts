/**
 * The benchmark's flags, declared as data and read by the CLI's own parser;
 * lists (workloads, copies, sizes) are comma-separated.
 */
import { parseFlags, type FlagDef } from '../cli/flags.js';
import { parseSize } from '../core/setup/storage.js';
import { TforkError } from '../errors.js';

export type WorkloadId = 'W1' | 'W2' | 'W3' | 'W4';
/** W4 (the osworld image, built on demand) runs only when asked for. */
export const WORKLOAD_IDS: WorkloadId[] = ['W1', 'W2', 'W3', 'W4'];

export interface BenchOptions {
  workloads: WorkloadId[];
  copies: number[];
  reps: number;
  /** W3 memory sizes in bytes. */
  sizes: number[];
  /** Output directory; default bench-output/<date>-<machine>. */
  out?: string;
  /** Also run the engine with `--persistent=async` (a third contender) and time the durable checkpoint, when the engine has the flag. */
  persistent: 'async' | 'off';
  quick: boolean;
  /** Measure nothing: draw the charts and table again from this results.json. */
  from?: string;
  /** Workloads whose checkpoint and rollback of one container are timed (none: empty). */
  rollback: WorkloadId[];
}

export const DEFAULTS: BenchOptions = {
  workloads: ['W1', 'W2', 'W3'],
  copies: [1, 4, 8],
  reps: 3,
  sizes: [256 * 2 ** 20, 512 * 2 ** 20, 2 ** 30],
  persistent: 'async',
  quick: false,
  rollback: ['W1', 'W2', 'W3'],
};

/** --quick: W1 and a small W3, one and two copies, one repetition, W1's checkpoint and rollback (about a minute). */
export const QUICK: Omit<BenchOptions, 'out' | 'persistent'> = {
  workloads: ['W1', 'W3'],
  copies: [1, 2],
  reps: 1,
  sizes: [64 * 2 ** 20],
  quick: true,
  rollback: ['W1'],
};

export const BENCH_FLAGS: FlagDef[] = [
  { name: 'quick', type: 'boolean', description: 'small configuration: W1 and a 64 MiB W3, 1 and 2 copies, 1 repetition; checkpoint+rollback on W1' },
  { name: 'workloads', type: 'string', arg: 'W1,W2,W3', description: 'workloads to run (W1 tiny counter, W2 desktop, W3 memory; W4 OSWorld desktop with chromium and a document, opt-in, needs `setup --image osworld`)' },
  { name: 'copies', type: 'string', arg: 'N,...', description: 'numbers of copies (default 1,4,8)' },
  { name: 'reps', type: 'integer', arg: 'R', description: 'repetitions of each contender per configuration (default 3)' },
  { name: 'sizes', type: 'string', arg: 'SIZE,...', description: 'W3 memory sizes, K/M/G suffixes (default 256M,512M,1G)' },
  { name: 'rollback', type: 'string', arg: 'W1,W2,W3,W4|none', description: 'workloads to time checkpoint and rollback of one container on (default: W1, W2 and W3 among --workloads; W3 at the largest of --sizes; W4 when asked)' },
  { name: 'out', type: 'string', arg: 'DIR', description: 'where the JSON, table and charts go (default bench-output/<date>-<machine>)' },
  { name: 'persistent', type: 'string', arg: 'async|off', choices: ['async', 'off'], description: 'async: also run the engine with --persistent=async and time its durable checkpoint (default, when the engine has it)' },
  { name: 'from', type: 'string', arg: 'FILE', description: 'measure nothing: draw the charts and the table of an earlier run again from its results.json, next to it' },
  { name: 'help', type: 'boolean', description: 'show this help' },
];

function list<T>(flag: string, value: string, parse: (s: string) => T): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!items.length) throw new TforkError('E_USAGE', `--${flag} needs at least one value`);
  return items.map(parse);
}

export function parseWorkload(s: string): WorkloadId {
  const id = s.toUpperCase();
  if (!(WORKLOAD_IDS as string[]).includes(id)) throw new TforkError('E_USAGE', `unknown workload ${JSON.stringify(s)} (expected ${WORKLOAD_IDS.join(', ')})`);
  return id as WorkloadId;
}

function positiveInt(flag: string): (s: string) => number {
  return (s) => {
    if (!/^\d+$/.test(s) || Number(s) < 1) throw new TforkError('E_USAGE', `--${flag} takes positive integers, not ${JSON.stringify(s)}`);
    return Number(s);
  };
}

/** Flags to options; explicit flags win over --quick, which wins over the defaults. */
export function parseBenchArgs(argv: string[]): BenchOptions & { help: boolean } {
  const { flags: f, positionals } = parseFlags(argv, BENCH_FLAGS, 'bench');
  if (positionals.length) throw new TforkError('E_USAGE', `bench takes no positional arguments, got ${positionals.join(' ')}`);
  const base = f.quick ? { ...DEFAULTS, ...QUICK } : DEFAULTS;
  const uniq = <T>(xs: T[]) => [...new Set(xs)];
  const workloads = f.workloads !== undefined ? uniq(list('workloads', String(f.workloads), parseWorkload)) : base.workloads;
  const o: BenchOptions = {
    workloads,
    copies: f.copies !== undefined ? uniq(list('copies', String(f.copies), positiveInt('copies'))).sort((a, b) => a - b) : base.copies,
    reps: f.reps !== undefined ? positiveInt('reps')(String(f.reps)) : base.reps,
    sizes: f.sizes !== undefined ? uniq(list('sizes', String(f.sizes), parseSize)).sort((a, b) => a - b) : base.sizes,
    out: f.out as string | undefined,
    persistent: (f.persistent as BenchOptions['persistent'] | undefined) ?? base.persistent,
    quick: !!f.quick,
    from: f.from as string | undefined,
    // Without --rollback, the default's workloads among those asked for.
    rollback: f.rollback === undefined ? base.rollback.filter((w) => workloads.includes(w)) : String(f.rollback) === 'none' ? [] : uniq(list('rollback', String(f.rollback), parseWorkload)),
  };
  if (o.sizes.some((s) => s < 2 ** 20)) throw new TforkError('E_USAGE', '--sizes must be at least 1M each');
  return { ...o, help: !!f.help };
}
