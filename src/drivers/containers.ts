/**
 * Container-level podman operations the clone engine needs, translated into
 * the project's own types (core/ never sees podman's JSON shapes).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Podman } from './podman.js';
import type { RunOptions } from './exec.js';
import { TforkError } from '../errors.js';
import { apiErrorMessage } from './podman-api.js';

export interface ContainerInfo {
  id: string;
  name: string;
  state: string;
  paused: boolean;
  pid: number;
  image: string;
  graphDriver: string;
  /** The container's userdata (OCI bundle) directory. */
  bundle: string;
  /** Host path of its root filesystem (a btrfs subvolume with the btrfs driver). */
  rootfs: string;
  /** Ports published on the host. */
  ports: PublishedPort[];
  labels: Record<string, string>;
  /**
   * A digest of what inspect shows of its configuration (host and container
   * configuration, networks): what a copy is registered from changes with it.
   */
  configDigest: string;
}

export interface PublishedPort {
  containerPort: number;
  protocol: string;
  hostPort: number;
  hostIp?: string;
}

/** podman's --publish syntax: [IP:]HOSTPORT:CONTAINERPORT/PROTOCOL */
export function publishArg(p: PublishedPort): string {
  return `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort}:${p.containerPort}/${p.protocol}`;
}

interface RawInspect {
  Id: string;
  Name: string;
  State: { Status: string; Paused: boolean; Pid: number };
  ImageName: string;
  GraphDriver: { Name: string };
  StaticDir: string;
  OCIConfigPath?: string;
  HostConfig?: { PortBindings?: Record<string, { HostPort: string; HostIp?: string }[] | null> };
  Config?: { Labels?: Record<string, string> | null };
  NetworkSettings?: { Networks?: Record<string, unknown> | null };
}

function rootfsOf(bundle: string): string {
  const cfg = path.join(bundle, 'config.json');
  if (!existsSync(cfg)) return '';
  return (JSON.parse(readFileSync(cfg, 'utf8')) as { root?: { path?: string } }).root?.path ?? '';
}

function toInfo(r: RawInspect): ContainerInfo {
  return {
    id: r.Id,
    name: r.Name,
    state: r.State.Status,
    paused: r.State.Paused,
    pid: r.State.Pid,
    image: r.ImageName,
    graphDriver: r.GraphDriver.Name,
    bundle: r.StaticDir,
    rootfs: rootfsOf(r.StaticDir),
    ports: Object.entries(r.HostConfig?.PortBindings ?? {}).flatMap(([key, b]) => {
      const [port, protocol = 'tcp'] = key.split('/');
      return (b ?? []).map((x) => ({ containerPort: Number(port), protocol, hostPort: Number(x.HostPort), ...(x.HostIp ? { hostIp: x.HostIp } : {}) }));
    }),
    labels: r.Config?.Labels ?? {},
    configDigest: createHash('sha256')
      .update(JSON.stringify([r.HostConfig ?? null, r.Config ?? null, Object.keys(r.NetworkSettings?.Networks ?? {}).sort()]))
      .digest('hex')
      .slice(0, 16),
  };
}

/** One inspect; a container that does not exist is E_NOT_FOUND. */
export async function inspectContainer(podman: Podman, name: string, opts: RunOptions = {}): Promise<ContainerInfo> {
  if (podman.mode === 'rest') {
    const r = await podman.api.call('GET', `/containers/${encodeURIComponent(name)}/json`, { signal: opts.signal });
    if (r.status === 404) throw new TforkError('E_NOT_FOUND', `no such container: ${name}`);
    if (r.status !== 200) throw new TforkError('E_TOOL_FAILED', `podman inspect ${name} failed: ${apiErrorMessage(r)}`);
    return toInfo(JSON.parse(r.body) as RawInspect);
  }
  const r = await podman.run(['container', 'inspect', name], { ...opts, reject: false });
  if (r.exitCode !== 0) throw new TforkError('E_NOT_FOUND', `no such container: ${name}`);
  return toInfo((JSON.parse(r.stdout) as RawInspect[])[0]!);
}

/**
 * How copies of a container are registered: podman's own description of it
 * (`podman generate spec`, the specgen `podman container clone` builds too),
 * read once per operation, from which each copy is created by the service.
 */
export interface CloneSpec {
  sourceId: string;
  spec: Record<string, unknown>;
}

export async function cloneSpec(podman: Podman, src: { id: string; configDigest: string }, opts: RunOptions = {}): Promise<CloneSpec | undefined> {
  if (podman.mode !== 'rest') return undefined;
  const cache = specCache(podman, src.id, src.configDigest);
  const kept = cache.read();
  if (kept) return { sourceId: src.id, spec: kept };
  const r = await podman.run(['generate', 'spec', src.id], { ...opts, reject: false });
  if (r.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman generate spec failed:\n${r.stderr.trim()}`);
  const spec = JSON.parse(r.stdout) as Record<string, unknown>;
  cache.write(spec);
  return { sourceId: src.id, spec };
}

/**
 * The spec of a container, kept for its next clone: a container's
 * configuration does not change after it is created, and `podman generate
 * spec` is a podman process (~0.1 s of CPU, beside the source's dump) that an
 * agent forking one container at every step would pay every step. Kept under
 * the run directory (gone at reboot), valid for one podman build (an upgrade
 * may spell specs differently) and one configuration as inspect shows it
 * (`podman update`, `podman network connect` change it); the entries of
 * containers that no longer exist go when another is written.
 */
function specCache(podman: Podman, id: string, configDigest: string): { read(): Record<string, unknown> | undefined; write(spec: Record<string, unknown>): void } {
  const dir = path.join(podman.layout.runDir, 'specs');
  const file = path.join(dir, `${id}.json`);
  const stamp = `${podmanStamp(podman.bin)}:${configDigest}`;
  const containers = path.join(podman.layout.graphroot, 'btrfs-containers');
  return {
    read() {
      try {
        const kept = JSON.parse(readFileSync(file, 'utf8')) as { podman: string; spec: Record<string, unknown> };
        return kept.podman === stamp ? kept.spec : undefined;
      } catch {
        return undefined;
      }
    },
    write(spec) {
      try {
        mkdirSync(dir, { recursive: true });
        for (const k of specIds(podman.layout)) if (!existsSync(path.join(containers, k.id))) rmSync(k.path, { force: true });
        const tmp = `${file}.${process.pid}`;
        writeFileSync(tmp, JSON.stringify({ podman: stamp, spec }));
        renameSync(tmp, file);
      } catch {
        // A cache only: the next clone asks podman again.
      }
    },
  };
}

/** The kept specs (specCache), by container id: `cleanup` removes those of removed containers. */
export function specIds(l: { runDir: string }): { id: string; path: string }[] {
  const dir = path.join(l.runDir, 'specs');
  try {
    return readdirSync(dir).map((f) => ({ id: f.replace(/\.json.*$/, ''), path: path.join(dir, f) }));
  } catch {
    return [];
  }
}

function podmanStamp(bin: string): string {
  const st = statSync(bin);
  return `${bin}:${st.size}:${st.mtimeMs}`;
}

/** Register a new container NAME with the source's configuration (not started); returns its id. */
export async function registerCopy(podman: Podman, src: { id: string }, spec: CloneSpec | undefined, name: string, opts: RunOptions = {}): Promise<string> {
  if (!spec) {
    const r = await podman.run(['container', 'clone', src.id, name], { ...opts, reject: false });
    if (r.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman container clone ${name} failed:\n${r.stderr.trim()}`);
    return r.stdout.trim().split('\n').pop()!;
  }
  const body: Record<string, unknown> = { ...spec.spec, name };
  // podman names every container by its short id on its networks; the copy gets its own.
  const nets = body.Networks as Record<string, { aliases?: string[] }> | undefined;
  if (nets) {
    body.Networks = Object.fromEntries(Object.entries(nets).map(([k, v]) => [k, { ...v, aliases: (v.aliases ?? []).filter((a) => a !== spec.sourceId.slice(0, 12)) }]));
  }
  // Not cancelled half-way: podman would finish the create unseen. The caller registers
  // the new container's removal and notices the cancellation at its next step.
  const r = await podman.api.call('POST', '/containers/create', { body });
  if (r.status !== 201 && r.status !== 200) throw new TforkError('E_TOOL_FAILED', `podman create ${name} failed: ${apiErrorMessage(r)}`);
  return (JSON.parse(r.body) as { Id: string }).Id;
}

/** `podman container restore ID` of a registered container whose bundle holds the state; failure text in `error`. */
export async function restoreRegistered(podman: Podman, id: string, opts: RunOptions & { env?: Record<string, string> } = {}): Promise<{ ok: boolean; error: string }> {
  if (podman.mode === 'rest') {
    // Runs to its end once asked for (podman would go on without us); a cancellation shows after it.
    // fileLocks: crun passes CRIU's file-locks from podman's flag, over any configuration file.
    const r = await podman.api.call('POST', `/containers/${id}/restore?fileLocks=true`, { timeoutMs: opts.timeoutMs });
    cancelledDuring(opts.signal, 'restore');
    return { ok: r.status === 200, error: r.status === 200 ? '' : apiErrorMessage(r) };
  }
  const r = await podman.run(['container', 'restore', '--file-locks', id], { ...opts, reject: false });
  return { ok: r.exitCode === 0, error: r.stderr.trim() };
}

/**
 * `podman container checkpoint --print-stats`: through the service when there
 * is no export (podman would stream the archive back), else a podman process.
 * `stats` is podman's --print-stats JSON (one container), `error` the failure's text.
 */
export async function checkpointContainer(
  podman: Podman,
  id: string,
  o: { leaveRunning: boolean; tcpEstablished: boolean; exportTo?: string; signal?: AbortSignal; timeoutMs?: number },
): Promise<{ ok: boolean; stats: string; error: string }> {
  if (podman.mode === 'rest' && !o.exportTo) {
    // fileLocks: crun sets CRIU's file-locks from podman's flag, over the bundle's configuration file.
    const q = `leaveRunning=${o.leaveRunning}&tcpEstablished=${o.tcpEstablished}&fileLocks=true&printStats=true`;
    // As for restores: the dump runs to its end, so that podman leaves nothing behind us in the bundle.
    const r = await podman.api.call('POST', `/containers/${id}/checkpoint?${q}`, { timeoutMs: o.timeoutMs });
    cancelledDuring(o.signal, 'checkpoint');
    if (r.status !== 200) return { ok: false, stats: '', error: apiErrorMessage(r) };
    return { ok: true, stats: JSON.stringify({ container_statistics: [JSON.parse(r.body)] }), error: '' };
  }
  const args = ['container', 'checkpoint', '--print-stats', '--file-locks', ...(o.leaveRunning ? ['--leave-running'] : []), ...(o.tcpEstablished ? ['--tcp-established'] : [])];
  if (o.exportTo) args.push('--export', o.exportTo, '--compress', 'none', '--ignore-rootfs');
  const r = await podman.run([...args, id], { signal: o.signal, timeoutMs: o.timeoutMs, reject: false });
  return { ok: r.exitCode === 0, stats: r.stdout, error: r.stderr };
}

/** `podman unpause` when paused, then `podman stop -t 0`: the container is stopped on return. */
export async function stopContainer(podman: Podman, c: { id: string; state: string; paused: boolean }, opts: RunOptions = {}): Promise<void> {
  if (podman.mode === 'rest') {
    for (const [on, verb] of [[c.paused, 'unpause'], [c.state === 'running' || c.paused, 'stop?timeout=0']] as const) {
      if (!on) continue;
      const r = await podman.api.call('POST', `/containers/${c.id}/${verb}`, { signal: opts.signal });
      // 304: already in that state.
      if (r.status !== 204 && r.status !== 200 && r.status !== 304) throw new TforkError('E_TOOL_FAILED', `podman ${verb.split('?')[0]} ${c.id} failed: ${apiErrorMessage(r)}`);
    }
    return;
  }
  if (c.paused) await podman.run(['unpause', c.id], opts);
  if (c.state === 'running' || c.paused) await podman.run(['stop', '-t', '0', c.id], opts);
}

function cancelledDuring(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new TforkError('E_CANCELLED', `cancelled during podman ${what}`);
}

/** `podman rm -f -t 0`: a container that is already gone is fine. */
export async function removeContainer(podman: Podman, nameOrId: string, opts: RunOptions = {}): Promise<void> {
  if (podman.mode === 'rest') {
    const r = await podman.api.call('DELETE', `/containers/${encodeURIComponent(nameOrId)}?force=true&timeout=0`, { signal: opts.signal });
    if (r.status === 200 || r.status === 204 || r.status === 404) return;
    throw new TforkError('E_TOOL_FAILED', `podman rm ${nameOrId} failed: ${apiErrorMessage(r)}`);
  }
  await podman.run(['rm', '-f', '-t', '0', nameOrId], { ...opts, reject: false });
}

/**
 * Write a container's bundle config.json from a captured one: the captured
 * container's id and rootfs path become the target's, and annotations are
 * added (OCI hooks match on them).
 */
export function writeCloneConfig(o: { sourceConfig: string; cloneBundle: string; replacements: [string, string][]; annotations: Record<string, string> }): void {
  let text = readFileSync(o.sourceConfig, 'utf8');
  for (const [from, to] of o.replacements) text = text.split(from).join(to);
  const cfg = JSON.parse(text) as { annotations?: Record<string, string> };
  cfg.annotations = { ...cfg.annotations, ...o.annotations };
  writeFileSync(path.join(o.cloneBundle, 'config.json'), JSON.stringify(cfg));
}

/** The storage layer (btrfs subvolume id) of a container, from containers/storage's own record. */
export function storageLayer(graphroot: string, containerId: string): string {
  const file = path.join(graphroot, 'btrfs-containers', 'containers.json');
  const list = JSON.parse(readFileSync(file, 'utf8')) as { id: string; layer: string }[];
  const c = list.find((x) => x.id === containerId);
  if (!c) throw new TforkError('E_NOT_FOUND', `container ${containerId} has no storage record in ${file}`);
  return c.layer;
}

/** Which of the names are taken by existing containers. */
export async function takenNames(podman: Podman, names: string[], opts: RunOptions = {}): Promise<string[]> {
  let all: Set<string>;
  if (podman.mode === 'rest') {
    const r = await podman.api.call('GET', '/containers/json?all=true', { signal: opts.signal });
    if (r.status !== 200) throw new TforkError('E_TOOL_FAILED', `podman ps failed: ${apiErrorMessage(r)}`);
    all = new Set((JSON.parse(r.body) as { Names?: string[] }[]).flatMap((c) => c.Names ?? []));
  } else {
    const r = await podman.run(['ps', '-a', '--format', '{{.Names}}'], opts);
    all = new Set(r.stdout.split('\n').map((s) => s.trim()));
  }
  return names.filter((n) => all.has(n));
}

/** The parent layer (the image's top layer) of a storage layer, from containers/storage's record. */
export function layerParent(graphroot: string, layerId: string): string | undefined {
  const file = path.join(graphroot, 'btrfs-layers', 'layers.json');
  const list = JSON.parse(readFileSync(file, 'utf8')) as { id: string; parent?: string }[];
  return list.find((x) => x.id === layerId)?.parent;
}
