/**
 * The agent layer's one door to checkpoint and rollback of a container: the
 * core API (src/core/checkpoint), named here so the agent layer depends on
 * these four functions only.
 */
export { createCheckpoint, listCheckpoints, removeCheckpoint, rollback, type CheckpointInfo } from '../core/checkpoint/index.js';
