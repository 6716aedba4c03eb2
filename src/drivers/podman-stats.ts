/**
 * podman's `--print-stats` output of checkpoint and restore (podman 4.x: JSON,
 * durations in microseconds), as our own types in milliseconds.
 */
import { TforkError } from '../errors.js';

export interface CheckpointStats {
  /** podman's whole checkpoint, export included. */
  podmanMs: number;
  /** The runtime's part (crun + CRIU dump). */
  runtimeMs: number;
  /** CRIU: time to freeze the tasks, and how long they stayed frozen. */
  freezingMs?: number;
  frozenMs?: number;
  memdumpMs?: number;
  memwriteMs?: number;
  pagesWritten?: number;
}

export interface RestoreStats {
  podmanMs: number;
  runtimeMs: number;
  /** CRIU's own restore time. */
  criuRestoreMs?: number;
}

type Raw = Record<string, unknown>;
const us = (v: unknown) => (typeof v === 'number' ? v / 1000 : undefined);

function firstContainer(text: string, what: string): { top: Raw; c: Raw; criu: Raw } {
  let top: Raw;
  try {
    top = JSON.parse(text) as Raw;
  } catch (err) {
    throw new TforkError('E_TOOL_FAILED', `podman container ${what} --print-stats printed output that is not JSON: ${text.slice(0, 200)}`, { cause: err });
  }
  const c = ((top.container_statistics as Raw[] | undefined) ?? [])[0] ?? {};
  return { top, c, criu: (c.criu_statistics as Raw | undefined) ?? {} };
}

export function parseCheckpointStats(text: string): CheckpointStats {
  const { top, c, criu } = firstContainer(text, 'checkpoint');
  return {
    podmanMs: us(top.podman_checkpoint_duration) ?? NaN,
    runtimeMs: us(c.runtime_checkpoint_duration) ?? NaN,
    freezingMs: us(criu.freezing_time),
    frozenMs: us(criu.frozen_time),
    memdumpMs: us(criu.memdump_time),
    memwriteMs: us(criu.memwrite_time),
    pagesWritten: typeof criu.pages_written === 'number' ? criu.pages_written : undefined,
  };
}

export function parseRestoreStats(text: string): RestoreStats {
  const { top, c, criu } = firstContainer(text, 'restore');
  return { podmanMs: us(top.podman_restore_duration) ?? NaN, runtimeMs: us(c.runtime_restore_duration) ?? NaN, criuRestoreMs: us(criu.restore_time) };
}
