/** Planning a live clone: names, limits and the checks made before any work. */
import { TforkError } from '../../errors.js';

export interface CloneOptions {
  /** Number of copies (default 1). */
  copies?: number;
  /** Base name: BASE for one copy, BASE-0 .. BASE-(N-1) for more (default <source>-clone). */
  name?: string;
  /** Largest deleted-but-open file carried into the clones (bytes, default 256 MiB). */
  ghostLimit?: number;
  /** Established TCP connections come back closed in the clones (default true). */
  tcpClose?: boolean;
  /** Also write a durable checkpoint archive: before returning (sync) or in the background (async). */
  persistent?: 'sync' | 'async';
  signal?: AbortSignal;
  onEvent?: (e: CloneEvent) => void;
}

export type ClonePhase = 'validate' | 'freeze' | 'dump' | 'snapshot' | 'register' | 'restore' | 'thaw' | 'persist' | 'cleanup';

export type CloneEvent =
  | { type: 'phase-start'; phase: ClonePhase; copy?: number }
  | { type: 'phase-end'; phase: ClonePhase; copy?: number; durationMs: number }
  | { type: 'copy-ready'; copy: number; name: string; id: string };

export const DEFAULT_GHOST_LIMIT = 256 * 2 ** 20;
export const MAX_COPIES = 64;

export function cloneNames(sourceName: string, copies: number, base?: string): string[] {
  const b = base ?? `${sourceName}-clone`;
  return copies === 1 ? [b] : Array.from({ length: copies }, (_, i) => `${b}-${i}`);
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validateOptions(o: CloneOptions): Required<Pick<CloneOptions, 'copies' | 'ghostLimit' | 'tcpClose'>> & Pick<CloneOptions, 'persistent'> {
  const copies = o.copies ?? 1;
  if (!Number.isInteger(copies) || copies < 1 || copies > MAX_COPIES) {
    throw new TforkError('E_USAGE', `--copies must be an integer from 1 to ${MAX_COPIES}, not ${copies}`);
  }
  if (o.name !== undefined && !NAME_RE.test(o.name)) throw new TforkError('E_USAGE', `invalid clone name ${JSON.stringify(o.name)}`);
  const ghostLimit = o.ghostLimit ?? DEFAULT_GHOST_LIMIT;
  if (!Number.isInteger(ghostLimit) || ghostLimit < 0) throw new TforkError('E_USAGE', `--tfork-ghost-limit must be a byte count, not ${o.ghostLimit}`);
  if (o.persistent !== undefined && o.persistent !== 'sync' && o.persistent !== 'async') {
    throw new TforkError('E_USAGE', `--persistent takes sync or async, not ${JSON.stringify(o.persistent)}`);
  }
  return { copies, ghostLimit, tcpClose: o.tcpClose ?? true, persistent: o.persistent };
}

/** Fault injection for tests (TFORK_FAULT): the phase, and for restore the copy index. */
export function parseFault(v: string | undefined): { phase: string; copy?: number } | undefined {
  if (!v) return undefined;
  const [phase, copy] = v.split(':');
  return { phase: phase!, ...(copy !== undefined ? { copy: Number(copy) } : {}) };
}
