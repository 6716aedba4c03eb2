/**
 * `podman-tfork setup`: everything podman-tfork stands on, installed and
 * built from Debian's packages and source archive, idempotently. A second
 * run on a set-up machine skips every step whose inputs did not change.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';
import { aptInstall, aptUpdate, missingPackages } from '../../drivers/apt.js';
import { fsType, isRoot } from '../../drivers/host.js';
import { Podman } from '../../drivers/podman.js';
import { TforkError } from '../../errors.js';
import { containersConf, storageConf } from '../podman-config.js';
import { buildImage, imageDefs } from './images.js';
import { runSteps, type Step, type StepEvent, type StepReport } from './steps.js';
import { ensureStorage } from './storage.js';
import { buildComponent, componentStamp, CRIU, CRUN, installedBinary, PACKAGES } from './toolchain.js';
import { hookConfigs } from './hooks.js';
import { ensureGraftModule } from './kernel-module.js';
import { buildCriuDispatcher } from '../../drivers/criu-shim.js';
import { run } from '../../drivers/exec.js';
import { cachedRlimits, probeRlimits, rlimitsProbed, type GrantedRlimits } from './rlimits.js';
import { imageRef } from './images.js';

/** The filesystem type at `p`, or undefined where there is nothing to ask. */
function fsTypeOf(p: string): string | undefined {
  try {
    return fsType(p);
  } catch {
    return undefined;
  }
}

/**
 * Where CRIU keeps its kernel facts when /run is not a tmpfs: beside the directory of images kept
 * in memory (not in it: cleanup owns what is there), one directory per build of CRIU (a cache
 * written by another build is never read; those of earlier builds are removed). None when that
 * place is not a tmpfs either: CRIU would refuse it.
 */
function kdatCacheDir(l: Layout): string | undefined {
  if (fsTypeOf('/run') === 'tmpfs') return undefined;
  const base = path.dirname(l.shmStaging);
  if (fsTypeOf(base) !== 'tmpfs') return undefined;
  const prefix = `${path.basename(l.shmStaging)}-kdat-`;
  const dir = path.join(base, `${prefix}${componentStamp(l, CRIU).slice(0, 12)}`);
  for (const f of readdirSync(base)) if (f.startsWith(prefix) && path.join(base, f) !== dir) rmSync(path.join(base, f), { recursive: true, force: true });
  return dir;
}

export interface SetupOptions {
  layout: Layout;
  /** Size of the loop-file btrfs when one has to be created (default 40G). */
  storageSize?: string;
  /** Skip building the reference images. */
  skipImages?: boolean;
  /** On-demand images (osworld) to build as well. */
  images?: string[];
  signal?: AbortSignal;
}

/** Write a file only when its content changes; returns true when it wrote. */
export function writeIfChanged(file: string, content: string): boolean {
  if (existsSync(file) && readFileSync(file, 'utf8') === content) return false;
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return true;
}

function describe(g: GrantedRlimits): string {
  return `nofile=${g.nofile.hard} nproc=${g.nproc.hard}`;
}

function writeContainersConf(l: Layout): boolean {
  return writeIfChanged(
    l.containersConf,
    containersConf({
      layout: l,
      runtimes: { crun: installedBinary(l, CRUN), runc: '/usr/bin/runc' },
      defaultRuntime: 'crun',
      rlimits: cachedRlimits(l),
    }),
  );
}

export function setupSteps(o: SetupOptions): Step[] {
  const l = o.layout;
  const steps: Step[] = [
    {
      id: 'packages',
      title: 'Debian packages',
      async run(ctx) {
        const missing = await missingPackages(PACKAGES);
        if (missing.length === 0) return { skipped: true, note: `${PACKAGES.length} installed` };
        ctx.detail(`installing ${missing.join(' ')}`);
        const opts = { onLine: ctx.onLine, signal: ctx.signal };
        await aptUpdate(opts);
        await aptInstall(missing, opts);
        return { note: `installed ${missing.length}` };
      },
    },
    {
      id: 'criu',
      title: `CRIU ${CRIU.version} (patched)`,
      async run(ctx) {
        return (await buildComponent(ctx, CRIU)) ? { note: installedBinary(l, CRIU) } : { skipped: true, note: 'up to date' };
      },
    },
    {
      id: 'crun',
      title: `crun ${CRUN.version} (patched, with libcriu)`,
      async run(ctx) {
        const built = await buildComponent(ctx, CRUN, [componentStamp(l, CRIU)]);
        return built ? { note: installedBinary(l, CRUN) } : { skipped: true, note: 'up to date' };
      },
    },
    {
      id: 'kernel-module',
      title: 'tfork_graft kernel module (kernel tier)',
      run: ensureGraftModule,
    },
    {
      id: 'storage',
      title: 'btrfs storage',
      async run() {
        const r = await ensureStorage(l, { create: true, size: o.storageSize });
        return r === 'ready' ? { skipped: true, note: l.graphroot } : { note: `${r} ${l.graphroot}` };
      },
    },
    {
      id: 'config',
      title: 'podman configuration',
      async run() {
        let changed = writeContainersConf(l);
        changed = writeIfChanged(l.storageConf, storageConf({ layout: l })) || changed;
        const hooks = hookConfigs(l);
        mkdirSync(l.hooksDir, { recursive: true });
        for (const f of readdirSync(l.hooksDir)) if (!(f in hooks)) rmSync(path.join(l.hooksDir, f));
        for (const [f, text] of Object.entries(hooks)) changed = writeIfChanged(path.join(l.hooksDir, f), text) || changed;
        mkdirSync(l.shimDir, { recursive: true });
        const shim = path.join(l.shimDir, 'criu');
        const criuBin = installedBinary(l, CRIU);
        const criuVersionText = existsSync(criuBin) ? (await run(criuBin, ['--version'], { reject: false })).stdout : undefined;
        changed = (await buildCriuDispatcher(shim, criuBin, { kdatDir: kdatCacheDir(l), criuVersionText })) || changed;
        // A running podman service keeps the configuration it started with.
        if (changed) new Podman(l).api.stop();
        return changed ? { note: l.etc } : { skipped: true, note: 'unchanged' };
      },
    },
  ];
  if (!o.skipImages) {
    steps.push({
      id: 'images',
      title: 'reference images',
      async run(ctx) {
        const podman = new Podman(l);
        const built: string[] = [];
        const wanted = new Set(o.images ?? []);
        for (const d of imageDefs(l)) wanted.delete(d.name);
        if (wanted.size) throw new TforkError('E_NOT_FOUND', `no image definition for ${[...wanted].join(', ')}`, { suggestions: [`known: ${imageDefs(l).map((d) => d.name).join(', ')}`] });
        for (const d of imageDefs(l)) {
          if (d.onDemand && !o.images?.includes(d.name)) continue;
          if (await buildImage(ctx, podman, d)) built.push(d.name);
        }
        return built.length ? { note: `built ${built.join(', ')}` } : { skipped: true, note: 'up to date' };
      },
    });
    steps.push({
      id: 'rlimits',
      title: 'container rlimits this host grants',
      async run() {
        if (rlimitsProbed(l)) return { skipped: true, note: describe(cachedRlimits(l)) };
        const g = await probeRlimits(l, new Podman(l), imageRef('tiny'));
        writeContainersConf(l);
        return { note: describe(g) };
      },
    });
  }
  return steps;
}

export async function runSetup(o: SetupOptions, emit: (e: StepEvent) => void): Promise<StepReport[]> {
  if (!isRoot()) throw new TforkError('E_NOT_ROOT', 'podman-tfork setup must run as root', { suggestions: ['run it with sudo'] });
  return runSteps(setupSteps(o), { layout: o.layout, signal: o.signal }, emit);
}
