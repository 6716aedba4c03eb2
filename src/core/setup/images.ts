/**
 * Reference images, each defined under images/<name>/image.yaml and tagged
 * localhost/tfork/<name>; rebuilt only when their definition changes (or the
 * image is missing from storage).
 */
import { readFileSync, readdirSync, existsSync, copyFileSync, chmodSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Layout } from '../../drivers/layout.js';
import type { Podman } from '../../drivers/podman.js';
import { busyboxRootfs, compileStatic, debootstrap, importRootfs } from '../../drivers/image-build.js';
import { computeStamp, StampStore } from '../stamps.js';
import { TforkError } from '../../errors.js';
import type { StepContext } from './steps.js';

export interface ImageDef {
  name: string;
  dir: string;
  base: 'busybox' | 'debootstrap';
  suite?: string;
  variant?: string;
  packages: string[];
  files: { src: string; dest: string; mode?: string }[];
  /** C programs compiled on the host (static) into the image. */
  compile: { src: string; dest: string }[];
  env: Record<string, string>;
  expose: number[];
  cmd: string[];
}

export const IMAGE_PREFIX = 'localhost/tfork/';
/** Bumped when the builder itself changes in a way that changes images. */
const BUILDER_VERSION = '1';

export function imageRef(name: string): string {
  return `${IMAGE_PREFIX}${name}`;
}

export function parseImageDef(name: string, dir: string, text: string): ImageDef {
  // Loaded here: only setup reads image definitions, and every other command starts faster without it.
  const YAML = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  const y = (YAML.parse(text) ?? {}) as Partial<ImageDef>;
  if (y.base !== 'busybox' && y.base !== 'debootstrap') {
    throw new TforkError('E_USAGE', `images/${name}/image.yaml: base must be busybox or debootstrap`);
  }
  if (!Array.isArray(y.cmd) || y.cmd.length === 0) throw new TforkError('E_USAGE', `images/${name}/image.yaml: cmd must be a non-empty list`);
  return {
    name,
    dir,
    base: y.base,
    suite: y.suite ?? 'bookworm',
    variant: y.variant ?? 'minbase',
    packages: y.packages ?? [],
    files: y.files ?? [],
    compile: y.compile ?? [],
    env: y.env ?? {},
    expose: y.expose ?? [],
    cmd: y.cmd,
  };
}

export function imageDefs(l: Layout): ImageDef[] {
  const root = path.join(l.packageDir, 'images');
  return readdirSync(root)
    .filter((n) => existsSync(path.join(root, n, 'image.yaml')))
    .sort()
    .map((n) => parseImageDef(n, path.join(root, n), readFileSync(path.join(root, n, 'image.yaml'), 'utf8')));
}

/** The `podman import --change` instructions of an image. */
export function importChanges(d: ImageDef): string[] {
  return [
    ...Object.entries(d.env).map(([k, v]) => `ENV ${k}=${v}`),
    ...d.expose.map((p) => `EXPOSE ${p}`),
    `LABEL io.podman-tfork.image=${d.name}`,
    `CMD ${JSON.stringify(d.cmd)}`,
  ];
}

export function imageStamp(d: ImageDef): string {
  return computeStamp([BUILDER_VERSION, { dir: d.dir }]);
}

/** Build one image if needed. Returns true when it built. */
export async function buildImage(ctx: StepContext, podman: Podman, d: ImageDef): Promise<boolean> {
  const stamps = new StampStore(ctx.layout.stampDir);
  const stamp = imageStamp(d);
  const ref = imageRef(d.name);
  if (stamps.matches(`image-${d.name}`, stamp) && (await podman.imageExists(ref))) return false;
  const opts = { onLine: ctx.onLine, signal: ctx.signal };
  const rootfs = path.join(ctx.layout.buildDir, 'images', d.name);
  ctx.detail(`${d.name}: building the root filesystem (${d.base}${d.packages.length ? ` + ${d.packages.length} packages` : ''})`);
  if (d.base === 'busybox') await busyboxRootfs(rootfs, opts);
  else await debootstrap(rootfs, { suite: d.suite!, variant: d.variant!, packages: d.packages }, opts);
  for (const f of d.files) {
    const dest = path.join(rootfs, f.dest);
    mkdirSync(path.dirname(dest), { recursive: true });
    copyFileSync(path.join(d.dir, f.src), dest);
    if (f.mode) chmodSync(dest, parseInt(f.mode, 8));
  }
  for (const c of d.compile) await compileStatic(path.join(d.dir, c.src), path.join(rootfs, c.dest), opts);
  ctx.detail(`${d.name}: importing as ${ref}`);
  await importRootfs(podman, rootfs, ref, importChanges(d), opts);
  rmSync(rootfs, { recursive: true, force: true });
  stamps.set(`image-${d.name}`, stamp);
  return true;
}
