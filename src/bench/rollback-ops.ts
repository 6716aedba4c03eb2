/**
 * Checkpoint and rollback of one running container, each timed from the
 * command's start to its end:
 *   engine  podman-tfork checkpoint create --format json C (the container keeps running), a full
 *           checkpoint (TFORK_INCREMENTAL=0); podman-tfork rollback --format json C ID (same
 *           container: name and id stay)
 *   engine-incremental
 *           the same, against a checkpoint taken (untimed) before a small step: only the pages
 *           written since are dumped, where the host tracks them (checkpoint/tracking.ts)
 *   stock   podman container checkpoint --leave-running --file-locks --export F --compress none C
 *           podman rm -f C, then podman container restore --file-locks --import F --name C
 *           (stock podman's way back to one of several checkpoints: the container is made anew)
 */
import { rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { run } from '../drivers/exec.js';
import { parseRestoreStats, type CheckpointStats } from '../drivers/podman-stats.js';
import { TforkError } from '../errors.js';
import { cliError, lastLine, stockBundle, stockExport, type ContenderContext } from './contenders.js';

export type RollbackContender = 'engine' | 'engine-incremental' | 'stock';
export const ROLLBACK_CONTENDERS: RollbackContender[] = ['engine', 'engine-incremental', 'stock'];

export interface Timed {
  wallMs: number;
  /** Named parts (ms), as each tool reports them. */
  phases: Record<string, number>;
}

export interface TakenCheckpoint extends Timed {
  frozenMs?: number;
  /** What the rollback takes back to this checkpoint. */
  ref: string;
  /** Remove the checkpoint (engine store entry or export file). */
  remove(): Promise<void>;
  /** The engine's account of the memory it wrote (full, or the changes since a checkpoint). */
  memory?: string;
  /** Only the pages written since its parent were dumped. */
  incremental?: boolean;
  /** What it holds on disk: the engine's images (those of its own, not its parent's), stock's export archive. */
  bytes?: number;
}

const TIMEOUT = 10 * 60_000;

async function cliJson<T>(ctx: ContenderContext, argv: string[], env: Record<string, string> = {}): Promise<{ ms: number; out: T }> {
  const t0 = performance.now();
  const r = await run(process.execPath, [ctx.cli, ...argv], { reject: false, timeoutMs: TIMEOUT, signal: ctx.signal, env });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman-tfork ${argv[0]} exited ${r.exitCode}: ${cliError(r)}`);
  return { ms, out: JSON.parse(r.stdout) as T };
}

async function engineCheckpoint(ctx: ContenderContext, container: string, incremental: boolean): Promise<TakenCheckpoint> {
  type Report = { id: string; sizeBytes?: number; memory?: string; imagesParent?: string; timings: { dumpMs: number; frozenMs?: number; snapshotMs?: number; totalMs: number } };
  const { ms, out } = await cliJson<Report>(ctx, ['checkpoint', 'create', '--format', 'json', container], incremental ? {} : { TFORK_INCREMENTAL: '0' });
  const t = out.timings;
  return {
    wallMs: ms,
    frozenMs: t.frozenMs,
    phases: { dump: t.dumpMs, ...(t.snapshotMs !== undefined ? { snapshot: t.snapshotMs } : {}), store: t.totalMs - t.dumpMs, process: ms - t.totalMs },
    ref: out.id,
    memory: out.memory ?? 'full',
    incremental: !!out.imagesParent,
    bytes: out.sizeBytes,
    remove: async () => {
      await run(process.execPath, [ctx.cli, 'checkpoint', 'rm', out.id], { reject: false, timeoutMs: 120_000 });
    },
  };
}

async function engineRollback(ctx: ContenderContext, container: string, ref: string): Promise<Timed> {
  type Report = { timings: { stopMs: number; placeMs: number; restoreMs: number; totalMs: number } };
  const { ms, out } = await cliJson<Report>(ctx, ['rollback', '--format', 'json', container, ref]);
  const t = out.timings;
  return { wallMs: ms, phases: { stop: t.stopMs, place: t.placeMs, restore: t.restoreMs, process: ms - t.totalMs } };
}

async function stockCheckpoint(ctx: ContenderContext, container: string, rep: number): Promise<TakenCheckpoint> {
  const file = path.join(ctx.scratch, `${container}-rollback-${rep}.tar`);
  const remove = async () => rmSync(file, { force: true });
  const bundle = await stockBundle(ctx, container);
  const t0 = performance.now();
  let st: CheckpointStats;
  try {
    st = await stockExport(ctx, container, bundle, file);
  } catch (err) {
    await remove();
    throw err;
  }
  const wallMs = performance.now() - t0;
  return { wallMs, frozenMs: st.frozenMs, phases: { runtime: st.runtimeMs, export: st.podmanMs - st.runtimeMs }, ref: file, remove, bytes: statSync(file).size };
}

async function stockRollback(ctx: ContenderContext, container: string, file: string): Promise<Timed> {
  const opts = { reject: false, timeoutMs: TIMEOUT, signal: ctx.signal };
  const t0 = performance.now();
  const rm = await ctx.podman.run(['rm', '-f', '-t', '0', container], opts);
  const t1 = performance.now();
  if (rm.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman rm -f ${container} exited ${rm.exitCode}: ${lastLine(rm.stderr)}`);
  const r = await ctx.podman.run(['container', 'restore', '--file-locks', '--import', file, '--name', container, '--print-stats'], opts);
  const t2 = performance.now();
  if (r.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman container restore --import ${path.basename(file)} --name ${container} exited ${r.exitCode}: ${lastLine(r.stderr)}`);
  const st = parseRestoreStats(r.stdout);
  return { wallMs: t2 - t0, phases: { rm: t1 - t0, restore: t2 - t1, runtime: st.runtimeMs } };
}

export function checkpointWith(c: RollbackContender, ctx: ContenderContext, container: string, rep: number): Promise<TakenCheckpoint> {
  return c === 'stock' ? stockCheckpoint(ctx, container, rep) : engineCheckpoint(ctx, container, c === 'engine-incremental');
}

export function rollbackWith(c: RollbackContender, ctx: ContenderContext, container: string, ref: string): Promise<Timed> {
  return c === 'stock' ? stockRollback(ctx, container, ref) : engineRollback(ctx, container, ref);
}
