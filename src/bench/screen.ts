/** Screenshots of a container's X display, taken inside it, and how much two of them differ. */
import type { Podman } from '../drivers/podman.js';
import { TforkError } from '../errors.js';

/** Raw 8-bit RGB of the root window (ImageMagick's `import` inside the container). */
export async function screenshot(podman: Podman, name: string, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
  const r = await podman.run(['exec', name, 'import', '-window', 'root', '-depth', '8', 'rgb:-'], { binary: true, reject: false, timeoutMs: 60_000, ...opts });
  if (r.exitCode !== 0 || !r.stdoutBuffer?.length) {
    throw new TforkError('E_TOOL_FAILED', `screenshot of ${name} failed (import exited ${r.exitCode}): ${r.stderr.trim().split('\n').pop() ?? ''}`);
  }
  return r.stdoutBuffer;
}

/** Fraction of pixels that differ between two RGB screenshots (1 when their sizes differ). */
export function pixelDiff(a: Buffer, b: Buffer): number {
  if (a.length !== b.length || a.length === 0) return 1;
  let diff = 0;
  for (let i = 0; i < a.length; i += 3) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) diff++;
  return diff / (a.length / 3);
}
