/** Container chores of the benchmark, through the project's podman: exec, wait, start, remove. */
import type { Podman } from '../drivers/podman.js';
import { TforkError } from '../errors.js';

export const BENCH_LABEL_KEY = 'io.podman-tfork.bench';
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run a command in a container; its stdout, or an error naming the container and the command. */
export async function execIn(podman: Podman, name: string, argv: string[], timeoutMs = 60_000): Promise<string> {
  const r = await podman.run(['exec', name, ...argv], { reject: false, timeoutMs });
  if (r.exitCode !== 0) {
    throw new TforkError('E_TOOL_FAILED', `podman exec ${name} ${argv.join(' ').slice(0, 80)} exited ${r.exitCode}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
  }
  return r.stdout;
}

/** Poll a command in the container until it succeeds. */
export async function waitUntil(podman: Podman, name: string, argv: string[], what: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const r = await podman.run(['exec', name, ...argv], { reject: false, timeoutMs: 30_000 });
    if (r.exitCode === 0) return;
    if (Date.now() - t0 > timeoutMs) throw new TforkError('E_TIMEOUT', `${name}: ${what} did not happen within ${timeoutMs / 1000}s (${r.stderr.trim().split('\n').pop() ?? ''})`);
    await sleep(200);
  }
}

export async function startSource(podman: Podman, o: { name: string; image: string; args: string[]; label: string }): Promise<void> {
  const r = await podman.run(['run', '-d', '--label', o.label, '--name', o.name, o.image, ...o.args], { reject: false, timeoutMs: 120_000 });
  if (r.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman run ${o.image} (${o.name}) failed: ${r.stderr.trim()}`);
}

export async function removeContainers(podman: Podman, names: string[]): Promise<void> {
  if (names.length) await podman.run(['rm', '-f', '-t', '0', '--ignore', ...names], { reject: false, timeoutMs: 300_000 });
}

/** Remove every container whose name starts with the prefix (sources and clones of one run). */
export async function removeByPrefix(podman: Podman, prefix: string): Promise<string[]> {
  const r = await podman.run(['ps', '-a', '--filter', `name=^${prefix}`, '--format', '{{.Names}}'], { reject: false });
  const names = r.stdout.split('\n').map((n) => n.trim()).filter((n) => n.startsWith(prefix));
  await removeContainers(podman, names);
  return names;
}

export async function containerState(podman: Podman, name: string): Promise<string> {
  const r = await podman.run(['inspect', '-f', '{{.State.Status}}', name], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : 'missing';
}
