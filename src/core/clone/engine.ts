/**
 * The live clone engine (stock-kernel tier):
 *
 *   validate -> freeze + dump (CRIU, once, source left running)
 *            -> snapshot (read-only btrfs snapshot of the rootfs, taken by a
 *               CRIU action script while the source is still frozen)
 *            -> thaw (CRIU resumes the source; verified, forced if needed)
 *            -> per copy, in parallel: register (podman container clone),
 *               rootfs (writable snapshot), images (reflink copy), restore
 *
 * Every step registers its undo in a Transaction; any failure unwinds it,
 * thaws the source and names the phase with the tool's log excerpt.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { layout as defaultLayout, type Layout } from '../../drivers/layout.js';
import { Podman } from '../../drivers/podman.js';
import { deleteSubvolume, isSubvolume, snapshot } from '../../drivers/btrfs.js';
import { inspectContainer, storageLayer, takenNames, writeCloneConfig, type ContainerInfo } from '../../drivers/containers.js';
import { parseDumpTimes, writeCriuShim, writeSnapshotScript } from '../../drivers/criu-shim.js';
import { reflinkCopy, removeTree } from '../../drivers/files.js';
import { thaw } from '../../drivers/freezer.js';
import { asTforkError, TforkError } from '../../errors.js';
import { CRIU, installedBinary } from '../setup/toolchain.js';
import { CLONE_ANNOTATION } from '../setup/hooks.js';
import { Transaction } from './transaction.js';
import { cloneNames, parseFault, validateOptions, type CloneEvent, type CloneOptions, type ClonePhase } from './plan.js';

export interface CopyReport {
  name: string;
  id: string;
  state: 'running' | 'failed' | 'not-created';
  error?: string;
  restoreMs?: number;
}

export interface CloneReport {
  source: { name: string; id: string };
  copies: CopyReport[];
  timings: {
    validateMs: number;
    /** podman checkpoint: freeze + dump + snapshot + resume. */
    dumpMs: number;
    /** Source frozen: from CRIU's pre-dump hook to the end of the snapshot (an upper bound of the freeze). */
    frozenMs?: number;
    snapshotMs?: number;
    thawMs: number;
    /** Wall time of the parallel per-copy work (register + rootfs + images + restore). */
    copiesMs: number;
    totalMs: number;
  };
}

const BTRFS = '/usr/bin/btrfs';

/** Fork a running container into N running copies that continue from the same instant. */
export async function cloneLive(sourceName: string, options: CloneOptions = {}, deps: { layout?: Layout; podman?: Podman } = {}): Promise<CloneReport> {
  const l = deps.layout ?? defaultLayout();
  const podman = deps.podman ?? new Podman(l);
  const o = validateOptions(options);
  const signal = options.signal;
  const emit = (e: CloneEvent) => options.onEvent?.(e);
  const fault = parseFault(process.env.TFORK_FAULT);
  const t0 = performance.now();
  const tx = new Transaction();
  let phase: ClonePhase = 'validate';
  let source: ContainerInfo | undefined;
  const timed = async <T>(p: ClonePhase, fn: () => Promise<T>, copy?: number): Promise<[T, number]> => {
    if (copy === undefined) phase = p;
    emit({ type: 'phase-start', phase: p, copy });
    const s = performance.now();
    const v = await fn();
    const ms = performance.now() - s;
    emit({ type: 'phase-end', phase: p, copy, durationMs: ms });
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
      const src = await inspectContainer(podman, sourceName, { signal });
      if (src.state !== 'running' || src.paused) {
        throw new TforkError('E_INVALID_STATE', `container ${src.name} is ${src.paused ? 'paused' : src.state}: only a running container can be cloned live`, {
          suggestions: [src.paused ? `podman-tfork unpause ${src.name}` : `podman-tfork start ${src.name}`],
        });
      }
      if (src.graphDriver !== 'btrfs' || !src.rootfs || !(await isSubvolume(src.rootfs))) {
        throw new TforkError('E_CAPABILITY_MISSING', `container ${src.name} is not on btrfs storage (driver ${src.graphDriver})`, {
          suggestions: ['create the source with podman-tfork, whose storage is btrfs'],
        });
      }
      if (src.publishedPorts.length) {
        throw new TforkError('E_CAPABILITY_MISSING', `container ${src.name} publishes ports (${src.publishedPorts.join(', ')}): live clones of sources with published ports are not supported yet`);
      }
      const names = cloneNames(src.name, o.copies, options.name);
      const taken = await takenNames(podman, names, { signal });
      if (taken.length) throw new TforkError('E_EXISTS', `the name${taken.length > 1 ? 's' : ''} ${taken.join(', ')} ${taken.length > 1 ? 'are' : 'is'} already in use`, { suggestions: ['choose another base with --name'] });
      return { src, names };
    });
    source = v.src;
    const src = v.src;
    const names = v.names;

    // ---- scratch directory of this operation, on the storage filesystem.
    const op = path.join(l.staging, `${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`);
    mkdirSync(op, { recursive: true });
    writeFileSync(path.join(op, 'owner'), `${process.pid}\n`);
    tx.onRollback('scratch directory', async () => {
      if (await isSubvolume(path.join(op, 'rootfs'))) await deleteSubvolume(path.join(op, 'rootfs'));
      await removeTree(op);
    });
    const criuBin = installedBinary(l, CRIU);

    // ---- freeze + dump + snapshot: one CRIU dump; the source keeps running.
    const rootSnap = path.join(op, 'rootfs');
    const timesFile = path.join(op, 'dump-times');
    writeSnapshotScript(path.join(op, 'dump-hook'), { rootfs: src.rootfs, snapshot: rootSnap, timesFile, btrfs: BTRFS, fail: fault?.phase === 'snapshot' });
    const dumpConf = [`action-script ${path.join(op, 'dump-hook')}`, `ghost-limit ${o.ghostLimit}`, ...(fault?.phase === 'dump' ? ['fault-injected-unknown-option'] : [])];
    const dumpBin = writeCriuShim(path.join(op, 'bin-dump'), criuBin, path.join(op, 'dump.conf'), dumpConf);
    const srcImages = path.join(src.bundle, 'checkpoint');
    tx.onRollback('source checkpoint images', async () => removeTree(srcImages));
    const [, dumpMs] = await timed('dump', async () => {
      inject('freeze');
      const r = await podman.run(['container', 'checkpoint', '--leave-running', ...(o.tcpClose ? ['--tcp-established'] : []), src.id], {
        signal,
        reject: false,
        env: { PATH: `${dumpBin}:${podman.env.PATH}` },
        timeoutMs: 10 * 60_000,
      });
      if (r.exitCode !== 0) {
        const where = parseDumpTimes(existsSync(timesFile) ? readFileSync(timesFile, 'utf8') : '').snapshotStart ? 'snapshot' : 'dump';
        phase = where;
        throw new TforkError('E_TOOL_FAILED', `podman container checkpoint failed:\n${criuLogExcerpt(src.bundle, r.stderr)}`);
      }
    });
    const times = parseDumpTimes(readFileSync(timesFile, 'utf8'));
    const frozenMs = times.preDump && times.snapshotEnd ? times.snapshotEnd - times.preDump : undefined;
    const snapshotMs = times.snapshotStart && times.snapshotEnd ? times.snapshotEnd - times.snapshotStart : undefined;
    const images = path.join(op, 'images');
    renameSync(srcImages, images);

    // ---- thaw: CRIU resumed the source; make sure of it.
    const [, thawMs] = await timed('thaw', async () => {
      inject('thaw');
      thaw(src.id);
      const now = await inspectContainer(podman, src.id, { signal });
      if (now.state !== 'running') throw new TforkError('E_INVALID_STATE', `the source is ${now.state} after the dump`);
    });

    // ---- per copy, in parallel: register, rootfs, images, restore.
    const reports: CopyReport[] = names.map((name) => ({ name, id: '', state: 'not-created' }));
    const [, copiesMs] = await timed('restore', async () => {
      const results = await Promise.allSettled(
        names.map((name, i) => makeCopy(i, name)),
      );
      const failed = results.findIndex((r) => r.status === 'rejected');
      if (failed >= 0) throw (results[failed] as PromiseRejectedResult).reason;
    });

    async function makeCopy(i: number, name: string): Promise<void> {
      const rep = reports[i]!;
      phase = 'register';
      const reg = await podman.run(['container', 'clone', src.id, name], { signal, reject: false });
      if (reg.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman container clone ${name} failed:\n${reg.stderr.trim()}`, { phase: 'register' });
      const id = reg.stdout.trim().split('\n').pop()!;
      rep.id = id;
      tx.onRollback(`clone ${name}`, async () => {
        await podman.run(['rm', '-f', '-t', '0', id], { reject: false });
      });
      try {
        inject('register', i);
        const cloneRoot = path.join(l.graphroot, 'btrfs', 'subvolumes', storageLayer(l.graphroot, id));
        const bundle = path.join(l.graphroot, 'btrfs-containers', id, 'userdata');
        // Its root filesystem becomes a writable snapshot of the source's at T.
        await deleteSubvolume(cloneRoot, { signal });
        await snapshot(rootSnap, cloneRoot, { signal });
        await reflinkCopy(images, path.join(bundle, 'checkpoint'), { signal });
        writeCloneConfig({
          sourceBundle: src.bundle,
          cloneBundle: bundle,
          replacements: [
            [src.id, id],
            [src.rootfs, cloneRoot],
          ],
          annotation: [CLONE_ANNOTATION, src.id],
        });
      } catch (err) {
        throw asTforkError(err).inPhase('register');
      }
      const restoreConf = [...(o.tcpClose ? ['tcp-close'] : []), ...(fault?.phase === 'restore' && fault.copy === i ? ['fault-injected-unknown-option'] : [])];
      const binDir = writeCriuShim(path.join(op, `bin-restore-${i}`), criuBin, path.join(op, `restore-${i}.conf`), restoreConf);
      emit({ type: 'phase-start', phase: 'restore', copy: i });
      const s = performance.now();
      const r = await podman.run(['container', 'restore', id], { signal, reject: false, env: { PATH: `${binDir}:${podman.env.PATH}` }, timeoutMs: 10 * 60_000 });
      rep.restoreMs = performance.now() - s;
      emit({ type: 'phase-end', phase: 'restore', copy: i, durationMs: rep.restoreMs });
      if (r.exitCode !== 0) {
        rep.state = 'failed';
        rep.error = r.stderr.trim();
        const bundle = path.join(l.graphroot, 'btrfs-containers', id, 'userdata');
        throw new TforkError('E_TOOL_FAILED', `restore of copy ${i} (${name}) failed:\n${criuLogExcerpt(bundle, r.stderr, 'restore.log')}`, { phase: `restore:${i}` });
      }
      rep.state = 'running';
      emit({ type: 'copy-ready', copy: i, name, id });
    }

    // ---- done: keep the clones, drop the scratch images.
    tx.commit();
    phase = 'cleanup';
    await deleteSubvolume(rootSnap).catch(() => undefined);
    await removeTree(op).catch(() => undefined);
    return {
      source: { name: src.name, id: src.id },
      copies: reports,
      timings: { validateMs, dumpMs, frozenMs, snapshotMs, thawMs, copiesMs, totalMs: performance.now() - t0 },
    };
  } catch (err) {
    const e = asTforkError(err).inPhase(phase);
    const undo = await tx.rollback();
    if (source) thaw(source.id);
    if (undo.length) e.detail.rollbackFailures = undo;
    throw e;
  }
}

/** The tool's own words: podman's stderr plus the tail of CRIU's log when one was written. */
function criuLogExcerpt(bundle: string, stderr: string, log = 'dump.log'): string {
  const lines = [stderr.trim()];
  for (const f of [path.join(bundle, 'checkpoint', log), path.join(bundle, log)]) {
    if (!existsSync(f)) continue;
    const errs = readFileSync(f, 'utf8').split('\n').filter((x) => /Error|error|fail/i.test(x)).slice(-8);
    if (errs.length) lines.push(`CRIU log ${f}:`, ...errs.map((x) => `  ${x}`));
    break;
  }
  return lines.filter(Boolean).join('\n');
}
