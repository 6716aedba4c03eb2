/**
 * The live clone engine:
 *
 *   validate -> register (the N copies, from the source's spec, through the
 *               podman service, while the next steps run)
 *            -> [tier 2: freeze the source's cgroup]
 *            -> capture (one CRIU dump, images on tmpfs when they fit;
 *               read-only btrfs snapshot of the rootfs while the source is
 *               frozen; tier 1 writes the pages, tier 2 leaves the private
 *               anonymous ones in the source)
 *            -> thaw (tier 1: CRIU resumed the source; verified, forced if
 *               needed)
 *            -> per copy, in parallel: place the state (writable snapshot,
 *               links to the one image set), restore (tier 2: the restorer
 *               grafts the frozen source's pages copy-on-write)
 *            -> [tier 2: thaw, once every copy has grafted]
 *            -> persist (optional: a durable archive stock podman restores,
 *               written inline or by a detached writer)
 *
 * The tier (clone/tier.ts) is chosen per clone and reported with its reason.
 * Every step registers its undo in a Transaction; any failure unwinds it,
 * thaws the source and names the phase with the tool's log excerpt. The
 * Transaction is journaled (core/journal.ts): what a step is about to make is
 * recorded durably first, so a killed clone is rolled back by `cleanup` or by
 * the next clone of the same source (core/recover.ts). Clones get their start
 * time in podman's state once they run (drivers/podman-state.ts).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { layout as defaultLayout, type Layout } from '../../drivers/layout.js';
import { Podman } from '../../drivers/podman.js';
import { cloneSpec, inspectContainer, publishArg, registerCopy, removeContainer, takenNames, type ContainerInfo, type PublishedPort } from '../../drivers/containers.js';
import { freePort } from '../../drivers/ports.js';
import { thaw } from '../../drivers/freezer.js';
import { asTforkError, TforkError } from '../../errors.js';
import { Transaction } from './transaction.js';
import { Journal } from '../journal.js';
import { killPoint } from '../fault.js';
import { recoverContainer } from '../recover.js';
import { setStartedNow } from '../../drivers/podman-state.js';
import { cloneNames, parseFault, validateOptions, type CloneEvent, type CloneOptions, type ClonePhase } from './plan.js';
import { assertCapturable, captureState, discardScratch, inspectForCapture, memoryScratch, scratchDir } from '../state/capture.js';
import { placeState, restoreContainer, restoreImported, targetOf } from '../state/place.js';
import { preparePersist, type PersistStatus } from '../persist/job.js';
import { runPersist, startDetachedWriter } from '../persist/writer.js';
import { captureMode, type CaptureModeInfo } from '../state/capture-mode.js';
import { holderPid, keepsTrackingInBackground, trackDir, withTrackingLock } from '../checkpoint/tracking.js';
import { containerMemoryBytes } from '../../drivers/memory.js';
import { cloneTier, graftAvailable, type CloneTier } from './tier.js';

export interface CopyReport {
  name: string;
  id: string;
  state: 'running' | 'failed' | 'not-created';
  error?: string;
  restoreMs?: number;
  /** Host ports of a copy whose source publishes ports ([IP:]HOST:CONTAINER/PROTO). */
  ports?: string[];
}

export interface CloneReport {
  source: { name: string; id: string };
  copies: CopyReport[];
  /** Where the CRIU images every copy read were kept: memory (tmpfs) or disk (the storage filesystem). */
  imagesIn: 'memory' | 'disk';
  /** How the source's memory was captured (capture-mode.ts) and why. */
  capture: CaptureModeInfo;
  /** Which tier made the copies (clone/tier.ts) and why. */
  tier: CloneTier;
  timings: {
    validateMs: number;
    /** podman checkpoint: freeze + dump + snapshot + resume. */
    dumpMs: number;
    /** Source frozen: CRIU's frozen time (tier 1); from the freeze to the thaw after the last graft (tier 2). */
    frozenMs?: number;
    /** CRIU's freezing_time: from asking the cgroup freezer to all processes frozen. */
    freezingMs?: number;
    snapshotMs?: number;
    thawMs: number;
    /** Wall time of the parallel per-copy work (register + rootfs + images + restore). */
    copiesMs: number;
    /** --persistent=sync: writing the durable archive. */
    persistMs?: number;
    totalMs: number;
  };
  /** The durable checkpoint (--persistent): where, and whether it is complete. */
  persistent?: PersistStatus;
}

/** Fork a running container into N running copies that continue from the same instant. */
export async function cloneLive(sourceName: string, options: CloneOptions = {}, deps: { layout?: Layout; podman?: Podman } = {}): Promise<CloneReport> {
  const l = deps.layout ?? defaultLayout();
  const podman = deps.podman ?? new Podman(l);
  const o = validateOptions(options);
  const signal = options.signal;
  const emit = (e: CloneEvent) => options.onEvent?.(e);
  const fault = parseFault(process.env.TFORK_FAULT);
  const t0 = performance.now();
  let tx = new Transaction();
  let phase: ClonePhase = 'validate';
  let source: ContainerInfo | undefined;
  let settle: () => Promise<unknown> = async () => undefined;
  const timed = async <T>(p: ClonePhase, fn: () => Promise<T>): Promise<[T, number]> => {
    phase = p;
    emit({ type: 'phase-start', phase: p });
    const s = performance.now();
    const v = await fn();
    const ms = performance.now() - s;
    emit({ type: 'phase-end', phase: p, durationMs: ms });
    return [v, ms];
  };
  const inject = (p: string, copy?: number) => {
    if (fault?.phase === p && (fault.copy === undefined || fault.copy === copy)) {
      throw new TforkError('E_TOOL_FAILED', `fault injected (TFORK_FAULT=${process.env.TFORK_FAULT})`);
    }
  };

  try {
    // ---- validate: everything that can be checked before touching anything.
    const [v, validateMs] = await timed('validate', async () => {
      const found = await inspectForCapture(podman, l, sourceName, signal);
      // What a killed earlier operation on this source left (clones holding the names, a frozen source) is rolled back first.
      const src = (await recoverContainer(l, podman, found.id, { signal })).length ? await inspectContainer(podman, found.id, { signal }) : found;
      await assertCapturable(src);
      const names = cloneNames(src.name, o.copies, options.name);
      // The copies' spec (a podman process, ~70 ms) is needed only to register them, which overlaps
      // the dump: it is made meanwhile, and a failure fails the registration.
      const spec = src.ports.length ? Promise.resolve(undefined) : cloneSpec(podman, src, { signal });
      spec.catch(() => undefined); // awaited (and reported) by the registrations
      const taken = await takenNames(podman, names, { signal });
      if (taken.length) throw new TforkError('E_EXISTS', `the name${taken.length > 1 ? 's' : ''} ${taken.join(', ')} ${taken.length > 1 ? 'are' : 'is'} already in use`, { suggestions: ['choose another base with --name'] });
      return { src, names, spec };
    });
    source = v.src;
    const src = v.src;
    const names = v.names;
    tx = new Transaction(Journal.begin(l, 'clone', { id: src.id, name: src.name }));
    killPoint('validate');

    // ---- scratch directory of this operation, on the storage filesystem.
    const scratch = scratchDir(l, 'clone');
    tx.onRollback('scratch directory', () => discardScratch(scratch), tx.intend({ kind: 'scratch', path: scratch }));
    // A source that publishes ports is cloned through a checkpoint archive, so
    // that each copy gets its own host ports (restore --import --publish).
    const viaImport = src.ports.length > 0;
    const persist = o.persistent || viaImport ? preparePersist(l, src, o.persistent ?? 'sync', o.persistent ? undefined : scratch) : undefined;
    if (persist) {
      const j = persist.job;
      tx.onRollback('durable checkpoint', () => persist.discard(), tx.intend({ kind: 'persist', partFile: j.partFile, archive: j.archive, statusFile: j.statusFile, dir: j.dir }));
    }
    tx.intend({ kind: 'thaw', containerId: src.id, name: src.name, bundle: src.bundle });
    // The images every copy reads: in memory when they fit (podman archives them from the bundle when it exports).
    // The source's anonymous and shared memory, read once: it decides where the images go and how memory is captured.
    const sourceBytes = containerMemoryBytes(src.pid);
    const shm = !persist ? memoryScratch(l, sourceBytes) : undefined;
    if (shm) tx.onRollback('images in memory', () => discardScratch(shm), tx.intend({ kind: 'scratch', path: shm }));
    const imagesIn: 'memory' | 'disk' = shm ? 'memory' : 'disk';
    const tracked = !!holderPid(trackDir(l, src.id));
    const tier = cloneTier(graftAvailable(l), { persistent: !!o.persistent, viaImport, tracked });
    const grafted = tier.level === 2;
    let capture: CaptureModeInfo = grafted
      ? { mode: 'graft', reason: 'the private anonymous pages stay in the frozen source, and every copy grafts them' }
      : keepTracking(tracked, keepsTrackingInBackground(l), captureMode(l, process.env));
    // A tracked source captured in the background lends its tracking to CRIU and gets it back
    // (patch 0028); no checkpoint may swap the holder meanwhile.
    const lendTracking = tracked && capture.mode === 'background';

    // ---- register: the copies are made known to podman while the source is being dumped.
    // Each name is journaled before podman is asked for it, its id once podman gave it.
    const reports: CopyReport[] = names.map((name) => ({ name, id: '', state: 'not-created' }));
    const registrations = viaImport
      ? []
      : names.map((name, i) => {
          const key = tx.intend({ kind: 'container', name });
          const registering = v.spec.then((spec) => registerCopy(podman, src, spec, name, { signal })).then((id) => {
            reports[i]!.id = id;
            if (key) tx.journal?.update(key, { id });
            tx.onRollback(`clone ${name}`, () => removeContainer(podman, id), key);
            return id;
          });
          killPoint(`register:${i}`);
          return registering;
        });
    // A registration that fails is reported when its copy is made; none is left unawaited.
    for (const r of registrations) r.catch(() => undefined);
    settle = () => Promise.allSettled(registrations);

    // ---- freeze + dump + snapshot: one CRIU dump. On tier 1 the source keeps running; on
    // tier 2 it is frozen first and stays frozen (CRIU leaves a frozen cgroup frozen) until
    // every copy has grafted its pages.
    const [state] = await timed('dump', async () => {
      inject('freeze');
      const dump = () => captureState(podman, l, src, scratch, {
        leaveRunning: true,
        tcpClose: o.tcpClose,
        ghostLimit: o.ghostLimit,
        exportTo: persist?.partFile,
        imagesDir: shm ? path.join(shm, 'images') : undefined,
        background: capture.mode === 'background',
        keepTracking: lendTracking ? trackDir(l, src.id) : undefined,
        graft: grafted,
        signal,
        fault: fault?.phase === 'dump' || fault?.phase === 'snapshot' ? fault.phase : undefined,
      });
      return (lendTracking ? withTrackingLock(l, src, signal, dump) : dump()).catch((err) => {
        const e = asTforkError(err);
        if (e.phase) phase = e.phase as ClonePhase;
        throw e;
      });
    });

    if (state.retriedFrozen) capture = { mode: 'frozen', reason: `the background capture could not keep the instant once the source ran on, and was taken again frozen: ${state.retriedFrozen}` };

    // ---- thaw: CRIU resumed the source (tier 1; tier 2 thaws after the grafts); make sure of it.
    const thawSource = () =>
      timed('thaw', async () => {
        inject('thaw');
        killPoint('thaw');
        thaw(src.id);
        const now = await inspectContainer(podman, src.id, { signal });
        if (now.state !== 'running') throw new TforkError('E_INVALID_STATE', `the source is ${now.state} after the dump`);
      });
    let thawMs = 0;
    if (!grafted) [, thawMs] = await thawSource();

    // ---- the archive first when the copies are made from it.
    let persistMs: number | undefined;
    let persistent: PersistStatus | undefined;
    if (persist && viaImport) {
      await persist.snapshotFrom(state);
      [persistent, persistMs] = await timed('persist', () => runPersist(persist.job, { fault: fault?.phase === 'persist' }));
    }

    // ---- per copy, in parallel: place the state, restore.
    const hostPorts = viaImport ? await freeHostPorts(src.ports, names.length) : [];
    const linksIn = path.join(shm ?? scratch, 'links');
    // Tier 2: each restore marks when its tasks have grafted (CRIU's post-restore action, after every
    // restorer's grafts); the source is thawed once all are marked, while the restores finish.
    const grafts = names.map((_, i) => path.join(scratch, `grafted-${i}`));
    let frozenMs = state.timings.frozenMs;
    let thawed = !grafted;
    const thawGrafted = async () => {
      if (thawed) return;
      thawed = true;
      [, thawMs] = await thawSource();
      frozenMs = performance.now() - state.timings.frozenSince!;
    };
    const [, copiesMs] = await timed('restore', async () => {
      const making = Promise.allSettled(names.map((name, i) => (viaImport ? makeImportedCopy(i, name) : makeCopy(i, name))));
      // A failed thaw is reported once the restores are done, so that the unwinding never races them.
      let thawFailure: { error: unknown } | undefined;
      if (grafted && (await untilFilesExist(grafts, making))) await thawGrafted().catch((error) => (thawFailure = { error }));
      const results = await making;
      if (thawFailure) throw thawFailure.error;
      const failed = results.findIndex((r) => r.status === 'rejected');
      if (failed >= 0) throw (results[failed] as PromiseRejectedResult).reason;
    });
    await thawGrafted();

    async function makeCopy(i: number, name: string): Promise<void> {
      const rep = reports[i]!;
      const target = await (async () => {
        const id = await registrations[i]!;
        inject('register', i);
        const t = targetOf(l, id);
        await placeState(state, t, { signal, cloneOf: src.id, linksIn });
        killPoint(`place:${i}`);
        return t;
      })().catch((err) => {
        throw asTforkError(err).inPhase('register');
      });
      emit({ type: 'phase-start', phase: 'restore', copy: i });
      try {
        rep.restoreMs = await restoreContainer(podman, target, {
          scratch,
          tag: String(i),
          tcpClose: o.tcpClose,
          signal,
          fault: fault?.phase === 'restore' && fault.copy === i,
          ...(grafted ? { graftFrom: src.pid, graftedMarker: grafts[i], graftFault: fault?.phase === 'graft' && (fault.copy === undefined || fault.copy === i) } : {}),
        });
      } catch (err) {
        rep.state = 'failed';
        rep.error = asTforkError(err).message;
        throw asTforkError(err).inPhase(`restore:${i}`);
      }
      emit({ type: 'phase-end', phase: 'restore', copy: i, durationMs: rep.restoreMs });
      rep.state = 'running';
      emit({ type: 'copy-ready', copy: i, name, id: rep.id });
    }

    async function makeImportedCopy(i: number, name: string): Promise<void> {
      const rep = reports[i]!;
      const ports = hostPorts[i]!.map(publishArg);
      tx.onRollback(`clone ${name}`, () => removeContainer(podman, name), tx.intend({ kind: 'container', name }));
      inject('register', i);
      emit({ type: 'phase-start', phase: 'restore', copy: i });
      try {
        const r = await restoreImported(podman, l, persist!.job.archive, name, ports, { scratch, tag: String(i), tcpClose: o.tcpClose, signal, fault: fault?.phase === 'restore' && fault.copy === i });
        Object.assign(rep, { id: r.id, restoreMs: r.ms, ports, state: 'running' });
      } catch (err) {
        rep.state = 'failed';
        rep.error = asTforkError(err).message;
        throw asTforkError(err).inPhase(`restore:${i}`);
      }
      emit({ type: 'phase-end', phase: 'restore', copy: i, durationMs: rep.restoreMs! });
      emit({ type: 'copy-ready', copy: i, name, id: rep.id });
    }

    // Clones show when they started running (podman keeps no start time for a restore).
    await setStartedNow(l, reports.map((r) => r.id)).catch(() => undefined);

    // ---- persist: sync writes the archive now; async hands it to a detached writer.
    killPoint('persist');
    if (persist && !viaImport) {
      await persist.snapshotFrom(state);
      if (o.persistent === 'sync') {
        [persistent, persistMs] = await timed('persist', () => runPersist(persist.job, { fault: fault?.phase === 'persist' }));
      } else {
        persistent = startDetachedWriter(l, persist.job, { fault: fault?.phase === 'persist' });
      }
    }

    // ---- done: keep the clones, drop the scratch images (unless cancelled meanwhile: then unwind).
    if (signal?.aborted) throw new TforkError('E_CANCELLED', 'cancelled');
    tx.commit();
    phase = 'cleanup';
    await discardScratch(scratch).catch(() => undefined);
    if (shm) await discardScratch(shm).catch(() => undefined);
    return {
      source: { name: src.name, id: src.id },
      copies: reports,
      imagesIn,
      capture,
      tier,
      timings: { validateMs, dumpMs: state.timings.dumpMs, frozenMs, freezingMs: state.timings.freezingMs, snapshotMs: state.timings.snapshotMs, thawMs, copiesMs, persistMs, totalMs: performance.now() - t0 },
      ...(persistent && o.persistent ? { persistent } : {}),
    };
  } catch (err) {
    const e = asTforkError(err).inPhase(phase);
    // Registrations still in flight register their undo first.
    await settle();
    const undo = await tx.rollback();
    if (source) thaw(source.id);
    if (undo.length) e.detail.rollbackFailures = undo;
    throw e;
  }
}

/** Wait until every file exists (true), or `done` settles first (false). */
async function untilFilesExist(files: string[], done: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void done.then(() => (settled = true));
  for (let step = 2; !settled; step = Math.min(step * 2, 20)) {
    if (files.every((f) => existsSync(f))) return true;
    await new Promise((r) => setTimeout(r, step));
  }
  return files.every((f) => existsSync(f));
}

/** For each copy, the source's published ports on new free host ports (all distinct). */
async function freeHostPorts(ports: PublishedPort[], copies: number): Promise<PublishedPort[][]> {
  const used = new Set<string>();
  const out: PublishedPort[][] = [];
  for (let i = 0; i < copies; i++) {
    const mine: PublishedPort[] = [];
    for (const p of ports) {
      let port: number;
      do port = await freePort(p.protocol, p.hostIp || undefined);
      while (used.has(`${p.protocol}/${port}`));
      used.add(`${p.protocol}/${port}`);
      mine.push({ ...p, hostPort: port });
    }
    out.push(mine);
  }
  return out;
}

/**
 * A source whose checkpoints track written pages (checkpoint/tracking.ts):
 * background capture needs the userfaultfd the tracking holds. CRIU with
 * patch 0028 borrows it and gives the tracking back as it was; without it the
 * source is captured frozen, since ending the tracking would make its next
 * checkpoint a full one.
 */
function keepTracking(tracked: boolean, canLend: boolean, m: CaptureModeInfo): CaptureModeInfo {
  if (m.mode !== 'background' || !tracked) return m;
  if (canLend) return { mode: 'background', reason: `${m.reason}; the tracking of written pages for the source's incremental checkpoints is lent to the capture and given back` };
  return { mode: 'frozen', reason: "the source's checkpoints track its written pages (incremental): background capture would end that, so the source stays frozen until every page is written" };
}
