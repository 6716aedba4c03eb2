/**
 * The contenders, each timed from the command's start to N running copies:
 *   engine          podman-tfork container clone --live --copies=N --format json (the CLI, as a user runs it)
 *   engine+persist  the same with --persistent=async, then `persist wait` for the durable archive
 *   engine-frozen   the engine with TFORK_CAPTURE=frozen: the stock full dump, the source frozen until
 *                   every page is written (the engine's own way before background capture)
 *   engine-tier1    the engine with TFORK_GRAFT=0, where the engine grafts (tier 2, clone/tier.ts):
 *                   every copy restores the source's pages
 *   stock           podman container checkpoint --leave-running --file-locks --export F --compress none,
 *                   then N x podman container restore --file-locks --import F --name NAME, all at once
 *                   (the engine restores all copies at once too, and carries file locks too); CRIU's
 *                   ghost-limit raised to the engine's through CRIU's configuration file, as a user of
 *                   stock podman would have to (chromium keeps 2 MiB deleted files; the default is 1 MiB)
 * All use the project's podman configuration (storage, runtime, CRIU).
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { CloneReport } from '../core/clone/engine.js';
import { DEFAULT_GHOST_LIMIT } from '../core/clone/plan.js';
import { removeContainerCriuConf, writeContainerCriuConf } from '../drivers/criu-shim.js';
import type { PersistStatus } from '../core/persist/job.js';
import { run } from '../drivers/exec.js';
import type { Podman } from '../drivers/podman.js';
import { TforkError } from '../errors.js';
import { parseCheckpointStats, parseRestoreStats, type CheckpointStats } from '../drivers/podman-stats.js';

export type ContenderId = 'engine' | 'stock' | 'engine-frozen' | 'engine-tier1' | 'engine+persist';
/**
 * In the order they run within a repetition (engine+persist only when asked for and available;
 * engine-frozen, the engine with TFORK_CAPTURE=frozen, only where the engine captures in the background;
 * engine-tier1 only where the engine grafts, and then not engine-frozen: a graft capture is frozen anyway).
 */
export const CONTENDERS: ContenderId[] = ['engine', 'stock', 'engine-frozen', 'engine-tier1', 'engine+persist'];

export interface ContenderRun {
  /** From the command's start until all N copies run (what a user waits for). */
  wallMs: number;
  /** How long the source was frozen (engine report; CRIU's frozen_time for stock). */
  frozenMs?: number;
  /** Work on the source's side: engine validate + dump + thaw; stock the whole checkpoint with its export. */
  sourceMs: number;
  /** Wall time of making the copies once the dump exists. */
  copiesMs: number;
  /** The slowest single copy's restore. */
  restoreMaxMs?: number;
  /** Everything else each tool reports, by name (ms). */
  phases: Record<string, number>;
  /** From the command's start until a durable checkpoint of the instant exists. */
  durableMs?: number;
  /** Undo what the run left besides its clones (export file, durable checkpoint). */
  cleanup(): Promise<void>;
}

export interface ContenderContext {
  podman: Podman;
  /** bin/podman-tfork.js */
  cli: string;
  /** Scratch directory for export files, on the host. */
  scratch: string;
  signal?: AbortSignal;
}

const TIMEOUT = 20 * 60_000;

export function lastLine(s: string): string {
  return s.trim().split('\n').filter(Boolean).pop() ?? '';
}

/** What a failed `podman-tfork ... --format json` said: its JSON error's message, else its last line. */
export function cliError(r: { stdout: string; stderr: string }): string {
  try {
    const message = (JSON.parse(r.stdout) as { error?: { message?: string } }).error?.message;
    if (message) return message;
  } catch {
    /* not a JSON report */
  }
  return lastLine(r.stderr || r.stdout);
}

/**
 * The engine; with `persistent`, also a durable archive written in the background, waited for;
 * with `frozen`, capturing the stock way (TFORK_CAPTURE=frozen); with `stockTier`, every copy
 * restoring its pages (TFORK_GRAFT=0).
 */
export async function runEngine(ctx: ContenderContext, source: string, base: string, copies: number, o: { persistent?: boolean; frozen?: boolean; stockTier?: boolean } = {}): Promise<ContenderRun> {
  const persistent = !!o.persistent;
  const argv = [ctx.cli, 'container', 'clone', '--live', `--copies=${copies}`, '--name', base, '--format', 'json', ...(persistent ? ['--persistent=async'] : []), source];
  const t0 = performance.now();
  const r = await run(process.execPath, argv, { reject: false, timeoutMs: TIMEOUT, signal: ctx.signal, env: { ...(o.frozen ? { TFORK_CAPTURE: 'frozen' } : {}), ...(o.stockTier ? { TFORK_GRAFT: '0' } : {}) } });
  const wallMs = performance.now() - t0;
  let report: CloneReport & { error?: { message?: string } };
  try {
    report = JSON.parse(r.stdout);
  } catch {
    throw new TforkError('E_TOOL_FAILED', `podman-tfork container clone exited ${r.exitCode} without a JSON report: ${lastLine(r.stderr || r.stdout)}`);
  }
  if (r.exitCode !== 0 || report.error) throw new TforkError('E_TOOL_FAILED', `podman-tfork container clone exited ${r.exitCode}: ${cliError(r)}`);
  const t = report.timings;
  const phased = t.validateMs + t.dumpMs + t.thawMs + t.copiesMs + (t.persistMs ?? 0);
  const phases: Record<string, number> = {
    validate: t.validateMs,
    dump: t.dumpMs,
    thaw: t.thawMs,
    copies: t.copiesMs,
    // Between the engine's phases: scratch directories, persist hand-off, cleanup.
    other: t.totalMs - phased,
    total: t.totalMs,
    // Outside the engine: node's start and module loading, report printing.
    process: wallMs - t.totalMs,
  };
  if (t.snapshotMs !== undefined) phases.snapshot = t.snapshotMs;
  if (t.freezingMs !== undefined) phases.freezing = t.freezingMs;
  if (t.persistMs !== undefined) phases.persist = t.persistMs;
  const restores = report.copies.map((c) => c.restoreMs).filter((x): x is number => x !== undefined);
  const p: PersistStatus | undefined = report.persistent;
  const removeArchive = async () => {
    if (p) await run(process.execPath, [ctx.cli, 'persist', 'rm', p.id], { reject: false, timeoutMs: 120_000 });
  };
  let durableMs: number | undefined;
  if (persistent) {
    try {
      if (!p) throw new TforkError('E_TOOL_FAILED', 'podman-tfork container clone --persistent=async reported no durable checkpoint');
      if (p.state === 'in-flight') {
        const w = await run(process.execPath, [ctx.cli, 'persist', 'wait', '--format', 'json', p.id], { reject: false, timeoutMs: TIMEOUT, signal: ctx.signal });
        if (w.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman-tfork persist wait ${p.id} exited ${w.exitCode}: ${lastLine(w.stderr || w.stdout)}`);
      } else if (p.state === 'failed') throw new TforkError('E_TOOL_FAILED', `the durable checkpoint ${p.id} failed: ${p.error ?? ''}`);
      durableMs = performance.now() - t0;
    } catch (err) {
      await removeArchive();
      throw err;
    }
  }
  return {
    wallMs,
    frozenMs: t.frozenMs,
    sourceMs: t.validateMs + t.dumpMs + t.thawMs,
    copiesMs: t.copiesMs,
    restoreMaxMs: restores.length ? Math.max(...restores) : undefined,
    phases,
    durableMs,
    cleanup: removeArchive,
  };
}

/** The bundle of a stock contender's source, looked up before its timed work (stockExport). */
export async function stockBundle(ctx: ContenderContext, source: string): Promise<string> {
  return (await ctx.podman.run(['inspect', '-f', '{{.StaticDir}}', source], { timeoutMs: TIMEOUT, signal: ctx.signal })).stdout.trim();
}

/**
 * Stock podman's checkpoint into an export archive, the source left running; CRIU's and podman's stats.
 * podman has no flag for CRIU's ghost-limit (deleted files still open are carried up to 1 MiB each):
 * the limit the engine uses goes in a CRIU configuration file in the source's `bundle` (stockBundle),
 * where a user of stock podman would put it in CRIU's own (`/etc/criu/default.conf`).
 */
export async function stockExport(ctx: ContenderContext, source: string, bundle: string, file: string): Promise<CheckpointStats> {
  writeContainerCriuConf(bundle, [`ghost-limit ${DEFAULT_GHOST_LIMIT}`]);
  try {
    const ck = await ctx.podman.run(['container', 'checkpoint', '--leave-running', '--file-locks', '--export', file, '--compress', 'none', '--print-stats', source], {
      reject: false,
      timeoutMs: TIMEOUT,
      signal: ctx.signal,
    });
    if (ck.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman container checkpoint --export exited ${ck.exitCode}: ${lastLine(ck.stderr)}`);
    return parseCheckpointStats(ck.stdout);
  } finally {
    removeContainerCriuConf(bundle);
  }
}

export async function runStock(ctx: ContenderContext, source: string, names: string[]): Promise<ContenderRun> {
  const file = path.join(ctx.scratch, `${names[0]}.tar`);
  const opts = { reject: false, timeoutMs: TIMEOUT, signal: ctx.signal };
  const cleanup = async () => rmSync(file, { force: true });
  const bundle = await stockBundle(ctx, source);
  const t0 = performance.now();
  try {
    const cs = await stockExport(ctx, source, bundle, file);
    const t1 = performance.now();
    const restores = await Promise.all(names.map((name) => ctx.podman.run(['container', 'restore', '--file-locks', '--import', file, '--name', name, '--print-stats'], opts)));
    const t2 = performance.now();
    restores.forEach((x, i) => {
      if (x.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman container restore --import --name ${names[i]} exited ${x.exitCode}: ${lastLine(x.stderr)}`);
    });
    const rs = restores.map((x) => parseRestoreStats(x.stdout));
    const phases: Record<string, number> = {
      checkpoint: t1 - t0,
      runtimeCheckpoint: cs.runtimeMs,
      export: cs.podmanMs - cs.runtimeMs,
      restores: t2 - t1,
      runtimeRestoreMax: Math.max(...rs.map((x) => x.runtimeMs)),
    };
    for (const [k, v] of Object.entries({ freezing: cs.freezingMs, memdump: cs.memdumpMs, memwrite: cs.memwriteMs, criuRestoreMax: Math.max(...rs.map((x) => x.criuRestoreMs ?? NaN)) })) {
      if (v !== undefined && Number.isFinite(v)) phases[k] = v;
    }
    return {
      wallMs: t2 - t0,
      frozenMs: cs.frozenMs,
      sourceMs: t1 - t0,
      copiesMs: t2 - t1,
      restoreMaxMs: Math.max(...rs.map((x) => x.podmanMs)),
      phases,
      // The export file is complete when checkpoint returns.
      durableMs: t1 - t0,
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * podman's own restore of one clone's state, for comparison with the
 * engine's restore of a copy: `podman container checkpoint NAME` (it stops,
 * its images stay in its bundle), then `podman container restore NAME`;
 * podman's reported restore duration (its CLI start not counted).
 */
export async function podmanRestoreOf(ctx: ContenderContext, name: string): Promise<number> {
  const opts = { reject: false, timeoutMs: TIMEOUT, signal: ctx.signal };
  const ck = await ctx.podman.run(['container', 'checkpoint', '--file-locks', name], opts);
  if (ck.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman container checkpoint ${name} exited ${ck.exitCode}: ${lastLine(ck.stderr)}`);
  const r = await ctx.podman.run(['container', 'restore', '--file-locks', '--print-stats', name], opts);
  if (r.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman container restore ${name} exited ${r.exitCode}: ${lastLine(r.stderr)}`);
  return parseRestoreStats(r.stdout).podmanMs;
}
