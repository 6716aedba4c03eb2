import { probe, type Capabilities } from '../../core/probe.js';
import { layout } from '../../drivers/layout.js';
import { Podman } from '../../drivers/podman.js';
import { FORMAT_FLAG } from '../flags.js';
import type { Io } from '../render.js';
import type { Command } from './command.js';

interface PodmanInfo {
  host?: { os?: string; kernel?: string; cgroupVersion?: string; cgroupManager?: string; ociRuntime?: { name?: string; path?: string } };
  store?: { graphDriverName?: string; graphRoot?: string; containerStore?: { number?: number }; imageStore?: { number?: number } };
  version?: { Version?: string };
}

async function podmanInfo(caps: Capabilities): Promise<{ info?: PodmanInfo; error?: string }> {
  if (!caps.podman || !caps.setupDone) return { error: 'podman or the project configuration is missing' };
  try {
    return { info: await new Podman().json<PodmanInfo>(['info', '--format', 'json'], { timeoutMs: 60_000 }) };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

const yes = (b: boolean | undefined) => (b ? 'yes' : 'no');

function render(io: Io, c: Capabilities, p: { info?: PodmanInfo; error?: string }): void {
  const w = (s: string) => io.stdout.write(`${s}\n`);
  const tool = (name: string, t: { path: string; version: string | undefined } | undefined, extra = '') =>
    w(`  ${name.padEnd(8)} ${t ? `${t.version ?? '?'}  ${t.path}${extra}` : 'MISSING'}`);
  w('host:');
  w(`  kernel       ${c.kernel}`);
  w(`  cgroups      ${c.cgroupMode} (manager cgroupfs)`);
  w(`  root         ${yes(c.root)}`);
  w(`  modules      ${c.modules.loadable ? `loadable; project modules loaded: ${c.modules.loaded.join(', ') || 'none'}` : 'this kernel cannot load modules'}`);
  w('tools:');
  tool('podman', c.podman);
  tool('conmon', c.conmon);
  tool('crun', c.crun, c.crun ? `  (CRIU support: ${yes(c.crun.criu)}, patched: ${yes(c.crun.patched)})` : '');
  tool('runc', c.runc);
  tool('criu', c.criu);
  if (c.criu) {
    w(`  criu check   ${c.criu.check.ok ? 'passes' : 'FAILS'}`);
    w(`  criu features ${Object.entries(c.criu.features).map(([k, v]) => `${k}=${yes(v)}`).join(' ')}`);
  }
  w('storage:');
  w(`  driver       ${p.info?.store?.graphDriverName ?? c.storage.driver}`);
  w(`  graphroot    ${c.storage.graphroot} (${c.storage.fs}${c.storage.loopFile ? `, loop file ${c.storage.loopFile}` : ''}${c.storage.mounted ? '' : ', NOT MOUNTED'})`);
  if (p.info?.store) w(`  containers   ${p.info.store.containerStore?.number ?? 0}, images ${p.info.store.imageStore?.number ?? 0}`);
  if (p.info?.host?.ociRuntime) w(`  oci runtime  ${p.info.host.ociRuntime.name} (${p.info.host.ociRuntime.path})`);
  if (p.error) w(`  podman info  unavailable: ${p.error.split('\n')[0]}`);
  w(`clone tier: ${c.tier.level} ${c.tier.name}: ${c.tier.reason}`);
  if (c.missing.length) {
    w('missing:');
    for (const m of c.missing) w(`  ${m.what}\n    fix: ${m.fix}`);
  }
}

export const infoCommand: Command = {
  name: 'info',
  usage: 'podman-tfork info [--format json]',
  summary: "podman's host info plus the tfork wiring: tools, CRIU features, storage, cgroups, clone tier",
  flags: [FORMAT_FLAG],
  async run({ flags }, io) {
    const caps = await probe(layout());
    const p = await podmanInfo(caps);
    if (flags.format === 'json') io.stdout.write(`${JSON.stringify({ tfork: caps, podman: p.info ?? null, podmanError: p.error }, null, 2)}\n`);
    else render(io, caps, p);
    return 0;
  },
};
