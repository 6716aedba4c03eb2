/**
 * The measurement loop. For each workload, W3 size and number of copies (a
 * measurement set): start a fresh source, then run the contenders in turn
 * (engine, stock[, engine+persist], engine, stock, ...) for the repetitions. Each run: capture
 * the source's state, clone, measure the clones' memory, verify them, remove
 * them. A run that fails to clone or to verify is a failure, not a time.
 */
import { cloneNames } from '../core/clone/plan.js';
import type { Podman } from '../drivers/podman.js';
import { asTforkError } from '../errors.js';
import { run } from '../drivers/exec.js';
import { removeContainers, startSource } from './containers.js';
import { podmanRestoreOf, runEngine, runStock, type ContenderContext, type ContenderId, type ContenderRun } from './contenders.js';
import { containerMemory, meanMemory, type MemoryUse } from './memory.js';
import type { BenchOptions, WorkloadId } from './options.js';
import { WORKLOADS } from './workloads.js';
import { PauseProbe } from './pause.js';
import { seconds, setTitle } from './format.js';

export interface SetKey {
  workload: WorkloadId;
  /** W3 only. */
  sizeBytes?: number;
  copies: number;
}

export interface Sample extends SetKey {
  rep: number;
  contender: ContenderId;
  startedAt: string;
  ok: boolean;
  /** Where a failed run failed, and the tool's or the check's words. */
  failedAt?: 'capture' | 'clone' | 'verify';
  error?: string;
  wallMs?: number;
  frozenMs?: number;
  sourceMs?: number;
  copiesMs?: number;
  restoreMaxMs?: number;
  /** W3 engine runs: podman's own `container restore` of the first clone's state, checkpointed after the run. */
  podmanRestoreMs?: number;
  durableMs?: number;
  phases?: Record<string, number>;
  /** Mean over the clones, right after cloning. */
  memoryPerClone?: MemoryUse;
  /**
   * Memory the clone added, per copy: the PSS of the copies and the source
   * right after cloning, less the source's PSS right before. Where copies share
   * the source's pages (tier 2) PSS splits them among all, and this is what
   * the copies cost.
   */
  addedPerCloneKiB?: number;
  verifyMs?: number;
  /** The longest stop the source's own probe saw during the run (bench/pause-probe.c), ms. */
  pauseMs?: number;
}

export interface SetInfo extends SetKey {
  source: string;
  /** The source's own memory when it was ready. */
  sourceMemory?: MemoryUse;
  error?: string;
}

export interface RunnerContext extends ContenderContext {
  /** The static pause probe copied into every source (pause.ts). */
  pauseProbe: string;
  podman: Podman;
  /** Label value of this benchmark run (`io.podman-tfork.bench=<run>`). */
  label: string;
  run: string;
  contenders: ContenderId[];
  progress(line: string): void;
}

export function measurementSets(o: BenchOptions): SetKey[] {
  return o.workloads.flatMap((workload) =>
    (workload === 'W3' ? o.sizes : [undefined]).flatMap((sizeBytes) => o.copies.map((copies) => ({ workload, sizeBytes, copies }))),
  );
}


export async function runSet(ctx: RunnerContext, key: SetKey, reps: number, samples: Sample[]): Promise<SetInfo> {
  const w = WORKLOADS[key.workload];
  const tag = `${key.workload.toLowerCase()}${key.sizeBytes !== undefined ? `-${Math.round(key.sizeBytes / 2 ** 20)}m` : ''}-n${key.copies}`;
  const source = `tfork-bench-${ctx.run}-${tag}`;
  const info: SetInfo = { ...key, source };
  try {
    await startSource(ctx.podman, { name: source, image: w.image, args: w.args(key.sizeBytes), label: ctx.label });
    await w.prepare(ctx.podman, source);
    info.sourceMemory = await containerMemory(ctx.podman, source);
    const pause = await PauseProbe.start(ctx.podman, source, ctx.pauseProbe);
    for (let rep = 1; rep <= reps; rep++) {
      for (const contender of ctx.contenders) {
        ctx.signal?.throwIfAborted();
        const s = await measure(ctx, key, source, contender, rep, pause);
        samples.push(s);
        const what = s.ok ? `${seconds(s.wallMs)}s (frozen ${seconds(s.frozenMs)}s, paused ${seconds(s.pauseMs)}s inside)` : `FAILED at ${s.failedAt}: ${s.error}`;
        ctx.progress(`${setTitle(key)} rep ${rep}/${reps} ${contender}: ${what}`);
      }
    }
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    info.error = asTforkError(err).message;
    ctx.progress(`${setTitle(key)}: set failed: ${info.error}`);
  } finally {
    await removeContainers(ctx.podman, [source]);
  }
  return info;
}

async function measure(ctx: RunnerContext, key: SetKey, source: string, contender: ContenderId, rep: number, pause: PauseProbe): Promise<Sample> {
  const base = `${source}-${{ engine: 'a', stock: 'b', 'engine+persist': 'c', 'engine-frozen': 'd', 'engine-tier1': 'e' }[contender]}${rep}`;
  const names = cloneNames(source, key.copies, base);
  const sample: Sample = { ...key, rep, contender, startedAt: new Date().toISOString(), ok: false };
  let result: ContenderRun | undefined;
  try {
    sample.failedAt = 'capture';
    const verify = await WORKLOADS[key.workload].check(ctx.podman, source);
    sample.failedAt = undefined;
    // Untimed: what the previous run left to write back (an export, imported images) is written
    // now, so no contender pays for another's writeback.
    await run('/bin/sync', [], { timeoutMs: 10 * 60_000 });
    await pause.reset();
    const sourceBefore = await containerMemory(ctx.podman, source);
    try {
      result =
        contender === 'stock'
          ? await runStock(ctx, source, names)
          : await runEngine(ctx, source, base, key.copies, { persistent: contender === 'engine+persist', frozen: contender === 'engine-frozen', stockTier: contender === 'engine-tier1' });
    } catch (err) {
      sample.failedAt = 'clone';
      throw err;
    }
    sample.pauseMs = await pause.read();
    Object.assign(sample, {
      wallMs: result.wallMs,
      frozenMs: result.frozenMs,
      sourceMs: result.sourceMs,
      copiesMs: result.copiesMs,
      restoreMaxMs: result.restoreMaxMs,
      durableMs: result.durableMs,
      phases: result.phases,
    });
    sample.memoryPerClone = await meanMemory(ctx.podman, names);
    if (sample.memoryPerClone) {
      const sourceAfter = await containerMemory(ctx.podman, source);
      sample.addedPerCloneKiB = (sample.memoryPerClone.pssKiB * names.length + sourceAfter.pssKiB - sourceBefore.pssKiB) / names.length;
    }
    const v0 = performance.now();
    try {
      await verify(names);
    } catch (err) {
      sample.failedAt = 'verify';
      throw err;
    }
    sample.verifyMs = performance.now() - v0;
    sample.ok = true;
    if (key.workload === 'W3' && contender === 'engine') {
      sample.podmanRestoreMs = await podmanRestoreOf(ctx, names[0]!).catch((err) => {
        ctx.progress(`${setTitle(key)} rep ${rep}: podman's own restore of ${names[0]} failed: ${asTforkError(err).message}`);
        return undefined;
      });
    }
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    sample.failedAt ??= 'clone';
    sample.error = asTforkError(err).message;
  } finally {
    await removeContainers(ctx.podman, names);
    await result?.cleanup();
  }
  return sample;
}
