/**
 * `npm run bench`: live clone (podman-tfork) side by side with stock podman
 * checkpoint/restore. Prints a table on stdout, writes results.json (every
 * sample), table.txt and SVG charts to the output directory; progress and
 * diagnostics go to stderr. Exit 0 when every run verified, 1 when some
 * failed (the results are written either way), other codes as the CLI's.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { probe } from '../core/probe.js';
import { run } from '../drivers/exec.js';
import { layout } from '../drivers/layout.js';
import { Podman } from '../drivers/podman.js';
import { asTforkError, TforkError } from '../errors.js';
import { exitCodeFor } from '../cli/exit-codes.js';
import { BENCH_LABEL_KEY, removeByPrefix } from './containers.js';
import { CONTENDERS } from './contenders.js';
import { charts } from './charts.js';
import { describeMachine, otherContainers, shortMachineId } from './machine.js';
import { BENCH_FLAGS, parseBenchArgs, type BenchOptions } from './options.js';
import { aggregate } from './report.js';
import { measurementSets, runSet, type Sample, type SetInfo } from './runner.js';
import { renderTable } from './table.js';

export const RESULT_SCHEMA = 1;

async function preflight(l: ReturnType<typeof layout>): Promise<void> {
  const c = await probe(l);
  const missing = [
    !c.root && 'root (CRIU)',
    !c.podman && 'podman',
    !c.criu?.check.ok && 'a working patched CRIU',
    !c.crun?.criu && 'crun with CRIU support',
    !c.setupDone && 'podman-tfork setup',
    c.storage.fs !== 'btrfs' && 'btrfs storage',
  ].filter(Boolean);
  if (missing.length) {
    throw new TforkError('E_CAPABILITY_MISSING', `the benchmark needs ${missing.join(', ')}`, { suggestions: ['run `npm run setup` as root'] });
  }
}

/** Whether this engine has `--persistent` (and so `persist wait`). */
async function engineHasPersistent(cli: string): Promise<boolean> {
  const r = await run(process.execPath, [cli, '--tfork-help'], { reject: false });
  return /--persistent/.test(r.stdout) && /persist wait/.test(r.stdout);
}

export async function bench(o: BenchOptions, signal?: AbortSignal): Promise<{ outDir: string; failures: number; table: string }> {
  const l = layout();
  await preflight(l);
  const podman = new Podman(l);
  const cli = path.join(l.packageDir, 'bin', 'podman-tfork.js');
  const runId = `${Date.now().toString(36)}`;
  const label = `${BENCH_LABEL_KEY}=${runId}`;
  const startedAt = new Date().toISOString();
  const outDir = path.resolve(o.out ?? path.join('bench-output', `${startedAt.slice(0, 10)}-${shortMachineId()}`));
  const scratch = path.join(l.root, 'bench-tmp', runId);
  const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);
  const hasPersistent = await engineHasPersistent(cli);
  const persistent = o.persistent === 'async' && hasPersistent;
  const contenders = CONTENDERS.filter((c) => c !== 'engine+persist' || persistent);
  const notes: string[] = [];
  if (o.persistent === 'async' && !hasPersistent) notes.push('durable checkpoint (engine): not available, this engine has no --persistent yet');
  const machine = await describeMachine(l, podman, label);
  progress(`run ${runId}: ${measurementSets(o).length} sets x ${o.reps} repetition(s) x ${contenders.length} contenders; results to ${outDir}`);
  mkdirSync(scratch, { recursive: true });
  const samples: Sample[] = [];
  const sets: SetInfo[] = [];
  try {
    for (const key of measurementSets(o)) {
      signal?.throwIfAborted();
      sets.push(await runSet({ podman, cli, scratch, signal, label, run: runId, contenders, progress }, key, o.reps, samples));
    }
  } finally {
    await removeByPrefix(podman, `tfork-bench-${runId}`);
    rmSync(scratch, { recursive: true, force: true });
  }
  const results = aggregate(samples);
  const table = renderTable({
    machine,
    startedAt,
    run: runId,
    reps: o.reps,
    contenders,
    results,
    loadAtEnd: os.loadavg()[0]!,
    otherContainersAtEnd: await otherContainers(podman, label),
  }) + notes.map((n) => `note: ${n}\n`).join('');
  mkdirSync(outDir, { recursive: true });
  const files = charts(results, machine);
  for (const c of files) writeFileSync(path.join(outDir, c.file), c.svg);
  writeFileSync(path.join(outDir, 'table.txt'), table);
  const doc = { schema: RESULT_SCHEMA, run: runId, startedAt, finishedAt: new Date().toISOString(), machine, options: { ...o, persistent: persistent ? 'async' : 'off' }, contenders, notes, sets, samples, results, charts: files.map((c) => ({ file: c.file, title: c.title })) };
  writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(doc, null, 2)}\n`);
  const failures = samples.filter((s) => !s.ok).length + sets.filter((s) => s.error).length;
  return { outDir, failures, table };
}

function benchHelp(): string {
  const lines = [
    'npm run bench -- [flags]: live clones (podman-tfork) against stock podman checkpoint/restore',
    '',
    ...BENCH_FLAGS.map((f) => `  --${f.name}${f.type === 'boolean' ? '' : ` ${f.arg ?? 'VALUE'}`}`.padEnd(28) + ` ${f.description}`),
  ];
  return `${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const ac = new AbortController();
  const stop = () => {
    process.stderr.write('[bench] interrupted: removing what this run created\n');
    ac.abort(new TforkError('E_CANCELLED', 'interrupted'));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const o = parseBenchArgs(argv);
    if (o.help) {
      process.stdout.write(benchHelp());
      return 0;
    }
    const r = await bench(o, ac.signal);
    process.stdout.write(r.table);
    process.stderr.write(`[bench] results in ${r.outDir}${r.failures ? ` (${r.failures} failed run(s))` : ''}\n`);
    return r.failures ? 1 : 0;
  } catch (err) {
    const e = asTforkError(err);
    process.stderr.write(`Error: ${e.message}\n${e.suggestions.map((s) => `  hint: ${s}\n`).join('')}`);
    return exitCodeFor(e.code);
  }
}

process.exitCode = await main(process.argv.slice(2));
