import { trackingSupport, type TrackingSupport } from '../../core/checkpoint/tracking.js';
import { captureMode, type CaptureModeInfo } from '../../core/state/capture-mode.js';
import { probe, type Capabilities } from '../../core/probe.js';
import { layout, type Layout } from '../../drivers/layout.js';
import { Podman } from '../../drivers/podman.js';
import { DEFAULT_IDLE_SECONDS } from '../../drivers/podman-api.js';
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

interface ServiceInfo {
  /** How the engine calls podman for per-copy work (TFORK_PODMAN_API). */
  api: 'rest' | 'cli';
  socket: string;
  /** Pid of the running service; absent when it is not running (it starts on the next clone). */
  pid?: number;
  idleSeconds: number;
  capture: { freezer: string; images: string; memory: CaptureModeInfo; checkpoints: TrackingSupport };
}

function serviceInfo(): ServiceInfo {
  const podman = new Podman();
  const api = podman.api;
  return {
    api: podman.mode,
    socket: api.paths.socket,
    pid: api.pid(),
    idleSeconds: Number(process.env.TFORK_PODMAN_SERVICE_IDLE) > 0 ? Number(process.env.TFORK_PODMAN_SERVICE_IDLE) : DEFAULT_IDLE_SECONDS,
    capture: {
      freezer: 'polled from 50 us, doubling (criu-modules/patches/0002)',
      memory: captureMode(podman.layout),
      checkpoints: trackingSupport(podman.layout),
      images: process.env.TFORK_IMAGES_IN === 'disk' ? 'storage filesystem (TFORK_IMAGES_IN=disk)' : `${podman.layout.shmStaging} when they fit in a quarter of free memory, else the storage filesystem`,
    },
  };
}

function render(io: Io, c: Capabilities, p: { info?: PodmanInfo; error?: string }, s?: ServiceInfo): void {
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
  if (s) {
    w('engine:');
    w(`  podman api   ${s.api === 'rest' ? `rest, service ${s.pid ? `running (pid ${s.pid})` : 'not running (starts on first use)'} on ${s.socket}, exits after ${s.idleSeconds}s idle` : 'cli (a podman process per call, TFORK_PODMAN_API=cli)'}`);
    w(`  images       ${s.capture.images}`);
    w(`  freezer      ${s.capture.freezer}`);
    w(`  capture      ${s.capture.memory.mode}: ${s.capture.memory.reason}`);
    w(`  checkpoints  ${s.capture.checkpoints.ok ? 'incremental' : 'full'}: ${s.capture.checkpoints.reason}`);
  }
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
    const s = caps.podman ? serviceInfo() : undefined;
    if (flags.format === 'json') io.stdout.write(`${JSON.stringify({ tfork: caps, engine: s ?? null, podman: p.info ?? null, podmanError: p.error }, null, 2)}\n`);
    else render(io, caps, p, s);
    return 0;
  },
};
