/** podman-tfork's library entry: an explicit list of what it exports. */
export { TforkError, type ErrorCode } from './errors.js';
export { probe, type Capabilities } from './core/probe.js';
export { runSetup, type SetupOptions } from './core/setup/index.js';
export { layout, type Layout } from './drivers/layout.js';
export { Podman } from './drivers/podman.js';
export { cloneLive, type CloneReport, type CopyReport } from './core/clone/engine.js';
export { type CloneOptions, type CloneEvent, type ClonePhase } from './core/clone/plan.js';
export {
  createCheckpoint,
  listCheckpoints,
  removeCheckpoint,
  pruneCheckpoints,
  rollback,
  type CheckpointInfo,
  type CheckpointOptions,
  type RollbackReport,
} from './core/checkpoint/index.js';
export { listStatuses as listDurableCheckpoints, readStatus as durableCheckpointStatus, type PersistStatus } from './core/persist/job.js';
