/**
 * Container-level podman operations the clone engine needs, translated into
 * the project's own types (core/ never sees podman's JSON shapes).
 */
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Podman } from './podman.js';
import type { RunOptions } from './exec.js';
import { TforkError } from '../errors.js';

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
  };
}

/** One `podman container inspect`; a container that does not exist is E_NOT_FOUND. */
export async function inspectContainer(podman: Podman, name: string, opts: RunOptions = {}): Promise<ContainerInfo> {
  const r = await podman.run(['container', 'inspect', name], { ...opts, reject: false });
  if (r.exitCode !== 0) throw new TforkError('E_NOT_FOUND', `no such container: ${name}`);
  return toInfo((JSON.parse(r.stdout) as RawInspect[])[0]!);
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
  const r = await podman.run(['ps', '-a', '--format', '{{.Names}}'], opts);
  const all = new Set(r.stdout.split('\n').map((s) => s.trim()));
  return names.filter((n) => all.has(n));
}

/** The parent layer (the image's top layer) of a storage layer, from containers/storage's record. */
export function layerParent(graphroot: string, layerId: string): string | undefined {
  const file = path.join(graphroot, 'btrfs-layers', 'layers.json');
  const list = JSON.parse(readFileSync(file, 'utf8')) as { id: string; parent?: string }[];
  return list.find((x) => x.id === layerId)?.parent;
}
