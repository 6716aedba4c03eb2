/**
 * The agent layer's one door to checkpoint and rollback of a container: the
 * core API (src/core/checkpoint), named here so the agent layer depends on
 * these functions only.
 */
export { createCheckpoint, listCheckpoints, removeCheckpoint, pruneCheckpoints, rollback, type CheckpointInfo } from '../core/checkpoint/index.js';
