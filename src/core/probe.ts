/**
 * The host's capabilities, probed once into a typed set. Commands check what
 * they need up front; tests gate on the same probe and say why they skip.
 */
import { existsSync } from 'node:fs';
import { layout as defaultLayout, type Layout } from '../drivers/layout.js';
import { run, which } from '../drivers/exec.js';
import { criuCheck, criuFeatures, criuVersion, type CriuCheck } from '../drivers/criu.js';
import { cgroupMode, isRoot, kernelRelease, loadedModules, modulesSupported, type CgroupMode } from '../drivers/host.js';
import { storageState } from './setup/storage.js';
import { CRIU, CRUN, installedBinary } from './setup/toolchain.js';
import { graftAvailable } from './clone/tier.js';

export interface ToolInfo {
  path: string;
  version: string | undefined;
}

export interface Capabilities {
  root: boolean;
  kernel: string;
  cgroupMode: CgroupMode;
  setupDone: boolean;
  podman?: ToolInfo;
  conmon?: ToolInfo;
  crun?: ToolInfo & { criu: boolean; patched: boolean };
  runc?: ToolInfo;
  criu?: ToolInfo & { check: CriuCheck; features: Record<string, boolean> };
  storage: { driver: 'btrfs'; graphroot: string; fs: string; mounted: boolean; loopFile?: string };
  modules: { loadable: boolean; loaded: string[] };
  tier: { level: 0 | 1 | 2 | 3; name: string; reason: string };
  /** What is missing, each with the command that fixes it. */
  missing: { what: string; fix: string }[];
}

/** Kernel modules of the project (criu-modules/kernel/). */
export const PROJECT_MODULES: string[] = ['tfork_graft'];

function firstLine(s: string): string | undefined {
  return s.split('\n').find((l) => l.trim())?.trim();
}

async function version(bin: string | undefined, args: string[], pick: (out: string) => string | undefined): Promise<ToolInfo | undefined> {
  if (!bin || !existsSync(bin)) return undefined;
  const r = await run(bin, args, { reject: false, timeoutMs: 20_000 });
  return { path: bin, version: pick(`${r.stdout}\n${r.stderr}`) };
}

export async function probe(l: Layout = defaultLayout(), o: { criuDetails?: boolean } = {}): Promise<Capabilities> {
  const missing: Capabilities['missing'] = [];
  const root = isRoot();
  const setupDone = existsSync(l.containersConf) && existsSync(l.storageConf);
  const criuBin = installedBinary(l, CRIU);
  const crunBin = installedBinary(l, CRUN);
  const [podman, conmon, crunV, runc, criuV] = await Promise.all([
    version(which('podman', []), ['--version'], (o) => /version (\S+)/.exec(o)?.[1]),
    version(which('conmon', ['/usr/libexec/podman']), ['--version'], (o) => /version (\S+)/.exec(o)?.[1]),
    version(crunBin, ['--version'], (o) => /crun version (\S+)/.exec(o)?.[1]),
    version(which('runc', []), ['--version'], (o) => /runc version (\S+)/.exec(o)?.[1]),
    existsSync(criuBin) ? criuVersion(criuBin) : Promise.resolve(undefined),
  ]);
  let crun: Capabilities['crun'];
  if (crunV) {
    const out = (await run(crunBin, ['--version'], { reject: false })).stdout;
    crun = { ...crunV, criu: /\+CRIU\b/.test(out), patched: crunV.path.startsWith(l.prefix) };
  }
  let criu: Capabilities['criu'];
  if (criuV) {
    const [check, features] = o.criuDetails === false ? [{ ok: true, output: '' }, {}] : await Promise.all([criuCheck(criuBin), criuFeatures(criuBin)]);
    criu = { path: criuBin, version: criuV, check, features };
  }
  const st = existsSync(l.graphroot) ? storageState(l) : { kind: 'native' as const, mounted: false, fs: 'missing' };
  const storage: Capabilities['storage'] = {
    driver: 'btrfs',
    graphroot: l.graphroot,
    fs: st.fs,
    mounted: st.mounted,
    ...(st.kind === 'loop' ? { loopFile: l.storageImage } : {}),
  };
  const modules = { loadable: modulesSupported(), loaded: loadedModules().filter((m) => PROJECT_MODULES.includes(m)) };

  if (!root) missing.push({ what: 'root privileges (checkpoint/restore needs them)', fix: 'sudo podman-tfork ...' });
  if (!podman) missing.push({ what: 'podman', fix: 'podman-tfork setup' });
  if (!conmon) missing.push({ what: 'conmon', fix: 'podman-tfork setup' });
  if (!criu) missing.push({ what: `patched CRIU ${CRIU.version} (${criuBin})`, fix: 'podman-tfork setup' });
  else if (!criu.check.ok && o.criuDetails !== false) missing.push({ what: `a passing \`criu check\` (${firstLine(criu.check.output) ?? 'no output'})`, fix: 'podman-tfork info --format json (see criu.check.output)' });
  if (!crun) missing.push({ what: `patched crun ${CRUN.version} (${crunBin})`, fix: 'podman-tfork setup' });
  else if (!crun.criu) missing.push({ what: 'crun with CRIU support', fix: 'podman-tfork setup' });
  if (!setupDone) missing.push({ what: `podman configuration (${l.etc})`, fix: 'podman-tfork setup' });
  if (st.fs !== 'btrfs' || !st.mounted) missing.push({ what: `btrfs storage at ${l.graphroot}`, fix: 'podman-tfork setup' });

  const engineReady = root && !!podman && !!criu && !!crun?.criu && setupDone && st.fs === 'btrfs';
  const graft = graftAvailable(l);
  const tier: Capabilities['tier'] = !engineReady
    ? { level: 0, name: 'none', reason: 'live clone needs the items listed as missing' }
    : graft.ok
      ? { level: 2, name: 'graft', reason: `CRIU dump without the private anonymous pages + btrfs snapshots + parallel restores grafting them; ${graft.reason}` }
      : { level: 1, name: 'stock-kernel', reason: `CRIU dump once + btrfs snapshots + parallel restores; kernel tier off: ${graft.reason}` };
  return { root, kernel: kernelRelease(), cgroupMode: cgroupMode(), setupDone, podman, conmon, crun, runc, criu, storage, modules, tier, missing };
}
