/**
 * The agent layer's one door to checkpoint and rollback of a container
 * (src/core/checkpoint). Until the core API is merged these stand-ins have its
 * exact signatures and say that it is missing; the swap is this file.
 */
import { TforkError } from '../errors.js';

export interface CheckpointInfo {
  id: string;
  container: { id: string; name: string };
  createdAt: string;
  sizeBytes: number;
  path: string;
  parent?: string;
}

const missing = () =>
  new TforkError('E_CAPABILITY_MISSING', 'checkpoint and rollback are not in this build yet (src/core/checkpoint)', {
    suggestions: ['run patterns with commit: false (--no-commit) until they land'],
  });

export async function createCheckpoint(container: string, opts?: { signal?: AbortSignal; tcpClose?: boolean }): Promise<CheckpointInfo & { timings: Record<string, number> }> {
  void container, opts;
  throw missing();
}

export async function listCheckpoints(container?: string): Promise<CheckpointInfo[]> {
  void container;
  throw missing();
}

export async function removeCheckpoint(id: string): Promise<void> {
  void id;
  throw missing();
}

export async function rollback(container: string, checkpointId: string, opts?: { signal?: AbortSignal }): Promise<{ timings: Record<string, number> }> {
  void container, checkpointId, opts;
  throw missing();
}
