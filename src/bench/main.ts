/**
 * `npm run bench`: live clone (podman-tfork) side by side with stock podman
 * checkpoint/restore, then checkpoint and rollback of one container side by
 * side with stock podman's export and restore. Prints a table on stdout, writes results.json (every
 * sample), table.txt and SVG charts to the output directory; progress and
 * diagnostics go to stderr. Exit 0 when every run verified, 1 when some
 * failed (the results are written either way), other codes as the CLI's.
 */
import { mkdirSync, rmSync } from 'node:fs';
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
import { buildPauseProbe } from './pause.js';
import { captureMode } from '../core/state/capture-mode.js';
import { graftAvailable } from '../core/clone/tier.js';
import { describeMachine, otherContainers, shortMachineId } from './machine.js';
import { BENCH_FLAGS, parseBenchArgs, type BenchOptions } from './options.js';
import { aggregate } from './report.js';
import { measurementSets, runSet, type Sample, type SetInfo } from './runner.js';
import { aggregateRollback, runRollbackSet, type RollbackSample } from './rollback.js';
import { redraw, RESULT_SCHEMA, writeOutputs, type ResultDoc } from './output.js';

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
  const capture = captureMode(l);
  const graft = graftAvailable(l);
  const contenders = CONTENDERS.filter((c) => (c !== 'engine+persist' || persistent) && (c !== 'engine-frozen' || (capture.mode === 'background' && !graft.ok)) && (c !== 'engine-tier1' || graft.ok));
  const notes: string[] = [];
  if (o.persistent === 'async' && !hasPersistent) notes.push('durable checkpoint (engine): not available, this engine has no --persistent yet');
  notes.push(`capture (engine): ${capture.mode}: ${capture.reason}`);
  notes.push(`tier (engine): ${graft.ok ? '2 graft' : '1 stock-kernel'}: ${graft.reason}`);
  const machine = await describeMachine(l, podman, label);
  const rb = o.rollback.length ? `, checkpoint+rollback on ${o.rollback.join(',')}` : '';
  progress(`run ${runId}: ${measurementSets(o).length} sets x ${o.reps} repetition(s) x ${contenders.length} contenders${rb}; results to ${outDir}`);
  mkdirSync(scratch, { recursive: true });
  const pauseProbe = await buildPauseProbe(scratch);
  const samples: Sample[] = [];
  const sets: SetInfo[] = [];
  const rollbackSamples: RollbackSample[] = [];
  const rollbackSets: ResultDoc['rollbackSets'] = [];
  const ctx = { podman, cli, scratch, signal, label, run: runId, contenders, progress, pauseProbe };
  try {
    for (const key of measurementSets(o)) {
      signal?.throwIfAborted();
      sets.push(await runSet(ctx, key, o.reps, samples));
    }
    for (const w of o.rollback) {
      signal?.throwIfAborted();
      // W3 at the largest of its sizes: where writing only the changes matters most.
      rollbackSets.push(await runRollbackSet(ctx, w, o.reps, rollbackSamples, w === 'W3' ? Math.max(...o.sizes) : undefined));
    }
  } finally {
    await removeByPrefix(podman, `tfork-bench-${runId}`);
    rmSync(scratch, { recursive: true, force: true });
  }
  const doc: ResultDoc = {
    schema: RESULT_SCHEMA,
    run: runId,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    end: { load: os.loadavg()[0]!, otherContainers: await otherContainers(podman, label) },
    options: { ...o, persistent: persistent ? 'async' : 'off' },
    contenders,
    notes,
    sets,
    samples,
    rollbackSets,
    rollbackSamples,
    results: { ...aggregate(samples), rollback: aggregateRollback(rollbackSamples) },
  };
  const table = writeOutputs(doc, outDir);
  const failures = [...samples, ...rollbackSamples].filter((s) => !s.ok).length + [...sets, ...rollbackSets].filter((s) => s.error).length;
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
    if (o.from) {
      process.stdout.write(redraw(o.from));
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
