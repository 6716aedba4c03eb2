/**
 * Entry of the detached durable-checkpoint writer: `node persist-writer.js JOB.json`.
 * Started by `container clone --live --persistent=async`; lives on after the
 * command exits; records its outcome in the checkpoint's status file.
 */
import { readFileSync } from 'node:fs';
import { claimJob, logFile, runPersist } from '../core/persist/writer.js';
import type { PersistJob } from '../core/persist/job.js';

const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as PersistJob;
try {
  claimJob(job);
  // The log only matters if this process dies before recording its outcome.
  await runPersist(job, { alsoRemove: [logFile(job)] });
  process.exitCode = 0;
} catch {
  // runPersist recorded the failure in the status file.
  process.exitCode = 1;
}
