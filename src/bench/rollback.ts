/**
 * Checkpoint and rollback latency of one running container (W1, W2, W3, W4):
 * start a fresh source, then per repetition and contender: note the source's
 * state, checkpoint it, change it (the W1 counter runs on and a file appears;
 * W2 gets a typed line on its screen; W3 rewrites a MiB of its memory; W4 gets
 * text typed into its document), roll it back,
 * and check that it shows the checkpointed state again and runs on. A run that
 * fails any of it is a failure, not a time.
 */
import type { Podman } from '../drivers/podman.js';
import { asTforkError, TforkError } from '../errors.js';
import { randomBytes } from 'node:crypto';
import { containerState, execIn, removeContainers, sleep, startSource } from './containers.js';
import type { WorkloadId } from './options.js';
import { checkpointWith, rollbackWith, ROLLBACK_CONTENDERS, type RollbackContender } from './rollback-ops.js';
import type { RunnerContext } from './runner.js';
import { pixelDiff, screenshot } from './screen.js';
import { summarize, type Summary } from './stats.js';
import { memholdChange, memoryChecksum, readCounter, SCREEN_THRESHOLD, verifyChecksum, verifyCounter, verifyScreen, VerifyError, type Counter } from './verify.js';
import { rollbackTitle } from './format.js';
import { WORKLOADS } from './workloads.js';
import { PauseProbe } from './pause.js';
import { run } from '../drivers/exec.js';
import { typeOnDesktop } from './osworld-workload.js';

export interface RollbackSample {
  workload: WorkloadId;
  /** W3: the memory the source holds. */
  sizeBytes?: number;
  rep: number;
  contender: RollbackContender;
  startedAt: string;
  ok: boolean;
  failedAt?: 'checkpoint' | 'change' | 'rollback' | 'verify';
  error?: string;
  checkpointMs?: number;
  /** What the checkpoint holds on disk (the engine's images, stock's export archive). */
  bytes?: number;
  frozenMs?: number;
  /** The longest stop the source's own probe saw during the checkpoint (ms). */
  pauseMs?: number;
  /** The checkpoint dumped only the pages written since its parent. */
  incremental?: boolean;
  /**
   * engine-incremental: its untimed first checkpoint, the full one that starts the tracking
   * (captured frozen): how long the source stopped, seen from inside, and CRIU's frozen time.
   */
  firstPauseMs?: number;
  firstFrozenMs?: number;
  rollbackMs?: number;
  /** "checkpoint.dump", "rollback.restore", ... (ms). */
  phases?: Record<string, number>;
}

/** How a workload shows that a rollback took it back. */
interface Probe<S, C> {
  /** The state right before the checkpoint. */
  at(podman: Podman, name: string): Promise<S>;
  /** Change the container after the checkpoint, visibly; what it shows then. */
  change(podman: Podman, name: string, at: S): Promise<C>;
  /** The container shows `at` again, not `changed`, and runs on. */
  verify(podman: Podman, name: string, at: S, changed: C): Promise<void>;
  /** A small step between two checkpoints (what an incremental checkpoint then writes). */
  step(podman: Podman, name: string): Promise<void>;
}

const MARKER = '/tmp/tfork-bench-after-checkpoint';

const counterProbe: Probe<Counter, Counter> = {
  at: (podman, name) => readCounter(podman, name),
  async change(podman, name, at) {
    await execIn(podman, name, ['touch', MARKER]);
    // Far enough ahead that the rolled-back counter, read right after the rollback, is clearly behind.
    for (const t0 = Date.now(); ; await sleep(200)) {
      const c = await readCounter(podman, name);
      if (c.value >= at.value + 40) return c;
      if (Date.now() - t0 > 30_000) throw new VerifyError(name, `counter stuck at ${c.value} after the checkpoint`);
    }
  },
  async verify(podman, name, at, changed) {
    const now = await readCounter(podman, name);
    if (now.token === at.token && now.value >= changed.value) throw new VerifyError(name, `counter ${now.value} is not behind ${changed.value}, its value before the rollback: not rolled back`);
    const marker = await podman.run(['exec', name, 'test', '-e', MARKER], { reject: false });
    if (marker.exitCode === 0) throw new VerifyError(name, `${MARKER}, written after the checkpoint, is still there`);
    await verifyCounter(podman, [name], at);
  },
  // The counter runs on by itself.
  step: async () => {
    await sleep(500);
  },
};

const screenProbe: Probe<Buffer, void> = {
  at: (podman, name) => screenshot(podman, name),
  async change(podman, name, at) {
    const line = `yes tfork-bench-rollback-${randomBytes(6).toString("hex")} | head -n 20`;
    await execIn(podman, name, ['sh', '-c', `xdotool search --name tfork-xterm windowactivate --sync; xdotool type --delay 2 "${line}"; xdotool key Return`]);
    await sleep(1000);
    const d = pixelDiff(await screenshot(podman, name), at);
    // Well above what verification tolerates, so a rollback that did nothing cannot pass.
    if (d < 5 * SCREEN_THRESHOLD) throw new VerifyError(name, `typing after the checkpoint changed only ${(d * 100).toFixed(3)}% of the screen: a rollback could not be told from none`);
  },
  verify: (podman, name, at) => verifyScreen(podman, [name], at),
  // A line typed, the issue's "small change".
  async step(podman, name) {
    await execIn(podman, name, ['sh', '-c', `xdotool search --name tfork-xterm windowactivate --sync; xdotool type --delay 2 "echo step-${randomBytes(4).toString('hex')}"; xdotool key Return`]);
    await sleep(500);
  },
};

/** W3: a checksum of tfork-memhold's memory; a change or a step rewrites one MiB of it. */
const memoryProbe: Probe<string, void> = {
  at: (podman, name) => memoryChecksum(podman, name),
  async change(podman, name, at) {
    await memholdChange(podman, name);
    if ((await memoryChecksum(podman, name)) === at) throw new VerifyError(name, 'rewriting a MiB after the checkpoint left the checksum as it was: a rollback could not be told from none');
  },
  verify: (podman, name, at) => verifyChecksum(podman, [name], at),
  // One MiB of 1 GiB rewritten: an agent's step that touched a little of a large memory.
  step: (podman, name) => memholdChange(podman, name),
};

/** W4: the screen, like W2; a change or a step is text typed into the Writer document. */
const desktopProbe: Probe<Buffer, void> = {
  at: (podman, name) => screenshot(podman, name),
  async change(podman, name, at) {
    await typeOnDesktop(podman, name, `tfork-bench-rollback-${randomBytes(6).toString('hex')} `.repeat(4));
    await sleep(1500);
    const d = pixelDiff(await screenshot(podman, name), at);
    if (d < 2 * SCREEN_THRESHOLD) throw new VerifyError(name, `typing after the checkpoint changed only ${(d * 100).toFixed(3)}% of the screen: a rollback could not be told from none`);
  },
  verify: (podman, name, at) => verifyScreen(podman, [name], at),
  // A word typed: an agent's step in the document.
  async step(podman, name) {
    await typeOnDesktop(podman, name, `step-${randomBytes(4).toString('hex')} `);
    await sleep(1000);
  },
};

const PROBES: Partial<Record<WorkloadId, Probe<unknown, unknown>>> = {
  W1: counterProbe as Probe<unknown, unknown>,
  W2: screenProbe as Probe<unknown, unknown>,
  W3: memoryProbe as Probe<unknown, unknown>,
  W4: desktopProbe as Probe<unknown, unknown>,
};

async function measureRollback(ctx: RunnerContext, workload: WorkloadId, sizeBytes: number | undefined, source: string, contender: RollbackContender, rep: number, pause: PauseProbe): Promise<RollbackSample> {
  const probe = PROBES[workload]!;
  const s: RollbackSample = { workload, ...(sizeBytes !== undefined ? { sizeBytes } : {}), rep, contender, startedAt: new Date().toISOString(), ok: false };
  let phase: RollbackSample['failedAt'] = 'checkpoint';
  const removals: (() => Promise<void>)[] = [];
  try {
    // Untimed, as before every clone run: what the run before left to write back (a checkpoint's
    // images, an export, a rollback's placed state) is written now, so no capture pays for it.
    await run('/bin/sync', [], { timeoutMs: 10 * 60_000 });
    if (contender === 'engine-incremental') {
      // The checkpoint before the step (untimed): the measured one writes what the step changed.
      // Its pause is kept: the price of the tracking, paid at the start of every chain (a second
      // short freeze that arms it after a background capture; the whole dump frozen before patch 0023).
      await pause.reset();
      const first = await checkpointWith(contender, ctx, source, rep);
      s.firstPauseMs = await pause.read();
      s.firstFrozenMs = first.frozenMs;
      removals.push(first.remove);
      await probe.step(ctx.podman, source);
    }
    const at = await probe.at(ctx.podman, source);
    await pause.reset();
    const cp = await checkpointWith(contender, ctx, source, rep);
    s.pauseMs = await pause.read();
    s.incremental = cp.incremental;
    removals.unshift(cp.remove);
    phase = 'change';
    const changed = await probe.change(ctx.podman, source, at);
    phase = 'rollback';
    const rb = await rollbackWith(contender, ctx, source, cp.ref);
    phase = 'verify';
    await probe.verify(ctx.podman, source, at, changed);
    const phases: Record<string, number> = {};
    for (const [k, v] of Object.entries(cp.phases)) phases[`checkpoint.${k}`] = v;
    for (const [k, v] of Object.entries(rb.phases)) phases[`rollback.${k}`] = v;
    Object.assign(s, { ok: true, checkpointMs: cp.wallMs, bytes: cp.bytes, frozenMs: cp.frozenMs, rollbackMs: rb.wallMs, phases });
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    s.failedAt = phase;
    s.error = asTforkError(err).message;
  } finally {
    for (const remove of removals) await remove();
  }
  return s;
}

/**
 * One workload's checkpoint/rollback runs on a source of its own (W3 holding `sizeBytes`); a set
 * error when the source itself fails.
 */
export async function runRollbackSet(
  ctx: RunnerContext,
  workload: WorkloadId,
  reps: number,
  samples: RollbackSample[],
  sizeBytes?: number,
): Promise<{ workload: WorkloadId; sizeBytes?: number; source: string; error?: string }> {
  const w = WORKLOADS[workload];
  const title = rollbackTitle({ workload, sizeBytes });
  const source = `tfork-bench-${ctx.run}-rollback-${workload.toLowerCase()}`;
  try {
    if (!PROBES[workload]) throw new TforkError('E_USAGE', `checkpoint/rollback is measured on ${Object.keys(PROBES).join(', ')}, not ${workload}`);
    await startSource(ctx.podman, { name: source, image: w.image, args: w.args(sizeBytes), label: ctx.label });
    await w.prepare(ctx.podman, source);
    // Started before any checkpoint, so every rollback brings it back with its pid.
    const pause = await PauseProbe.start(ctx.podman, source, ctx.pauseProbe);
    for (let rep = 1; rep <= reps; rep++) {
      for (const contender of ROLLBACK_CONTENDERS) {
        ctx.signal?.throwIfAborted();
        const s = await measureRollback(ctx, workload, sizeBytes, source, contender, rep, pause);
        samples.push(s);
        const sec = (ms?: number) => ((ms ?? NaN) / 1000).toFixed(2);
        const mib = (b?: number) => `${((b ?? NaN) / 2 ** 20).toFixed(1)} MiB`;
        ctx.progress(
          `${title} checkpoint+rollback rep ${rep}/${reps} ${contender}: ${s.ok ? `checkpoint ${sec(s.checkpointMs)}s${s.incremental ? ' (changes only)' : ''} ${mib(s.bytes)} (frozen ${sec(s.frozenMs)}s, paused ${sec(s.pauseMs)}s inside), rollback ${sec(s.rollbackMs)}s` : `FAILED at ${s.failedAt}: ${s.error}`}`,
        );
        const state = await containerState(ctx.podman, source);
        if (state !== 'running') throw new TforkError('E_INVALID_STATE', `the source ${source} is ${state} after a failed run; the set stops`);
      }
    }
    return { workload, sizeBytes, source };
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    const error = asTforkError(err).message;
    ctx.progress(`${title} checkpoint+rollback: set failed: ${error}`);
    return { workload, sizeBytes, source, error };
  } finally {
    await removeContainers(ctx.podman, [source]);
  }
}

export interface RollbackRow {
  workload: WorkloadId;
  sizeBytes?: number;
  contender: RollbackContender;
  runs: number;
  failures: number;
  errors: string[];
  checkpointMs?: Summary;
  /** What a checkpoint holds on disk. */
  bytes?: Summary;
  frozenMs?: Summary;
  pauseMs?: Summary;
  /** engine-incremental: its first checkpoint of each chain (RollbackSample.firstPauseMs). */
  firstPauseMs?: Summary;
  firstFrozenMs?: Summary;
  /** How many of the verified runs dumped only the changes. */
  incremental: number;
  rollbackMs?: Summary;
  phases: Record<string, Summary>;
}

export interface RollbackRatio {
  workload: WorkloadId;
  sizeBytes?: number;
  pairs: number;
  /** stock / engine, pair by pair. */
  checkpoint?: Summary;
  rollback?: Summary;
  frozen?: Summary;
  /** The engine's full checkpoint / its incremental one after a small step, pair by pair. */
  incremental?: Summary;
  /** The same for what they hold on disk. */
  incrementalBytes?: Summary;
}

export function aggregateRollback(samples: RollbackSample[]): { rows: RollbackRow[]; ratios: RollbackRatio[] } {
  const workloads = [...new Set(samples.map((s) => s.workload))];
  // One set per workload: W3's at one size.
  const sized = (workload: WorkloadId) => {
    const sizeBytes = samples.find((s) => s.workload === workload)?.sizeBytes;
    return sizeBytes !== undefined ? { sizeBytes } : {};
  };
  const rows = workloads.flatMap((workload) =>
    ROLLBACK_CONTENDERS.map((contender): RollbackRow => {
      const all = samples.filter((s) => s.workload === workload && s.contender === contender);
      const ok = all.filter((s) => s.ok);
      const phases: Record<string, Summary> = {};
      for (const p of new Set(ok.flatMap((s) => Object.keys(s.phases ?? {})))) {
        const sm = summarize(ok.map((s) => s.phases?.[p]));
        if (sm) phases[p] = sm;
      }
      return {
        workload,
        ...sized(workload),
        contender,
        runs: all.length,
        failures: all.length - ok.length,
        errors: all.filter((s) => !s.ok).slice(0, 3).map((s) => `rep ${s.rep} ${s.failedAt}: ${s.error}`),
        checkpointMs: summarize(ok.map((s) => s.checkpointMs)),
        bytes: summarize(ok.map((s) => s.bytes)),
        frozenMs: summarize(ok.map((s) => s.frozenMs)),
        pauseMs: summarize(ok.map((s) => s.pauseMs)),
        firstPauseMs: summarize(ok.map((s) => s.firstPauseMs)),
        firstFrozenMs: summarize(ok.map((s) => s.firstFrozenMs)),
        incremental: ok.filter((s) => s.incremental).length,
        rollbackMs: summarize(ok.map((s) => s.rollbackMs)),
        phases,
      };
    }).filter((r) => r.runs > 0),
  );
  const ratios = workloads.map((workload): RollbackRatio => {
    const of = (c: RollbackContender) => samples.filter((s) => s.workload === workload && s.contender === c && s.ok);
    const pairs = of('engine').flatMap((e) => {
      const b = of('stock').find((x) => x.rep === e.rep);
      return b ? [[e, b] as const] : [];
    });
    const r = (f: (s: RollbackSample) => number | undefined) => summarize(pairs.map(([e, b]) => (f(e) && f(b) ? f(b)! / f(e)! : undefined)));
    // The engine's full checkpoint against its incremental one of the same repetition.
    const full = (f: (s: RollbackSample) => number | undefined) =>
      summarize(
        of('engine').map((e) => {
          const i = of('engine-incremental').find((x) => x.rep === e.rep && x.incremental);
          return i && f(e) && f(i) ? f(e)! / f(i)! : undefined;
        }),
      );
    return {
      workload,
      ...sized(workload),
      pairs: pairs.length,
      checkpoint: r((s) => s.checkpointMs),
      rollback: r((s) => s.rollbackMs),
      frozen: r((s) => s.frozenMs),
      incremental: full((s) => s.checkpointMs),
      incrementalBytes: full((s) => s.bytes),
    };
  });
  return { rows, ratios };
}
