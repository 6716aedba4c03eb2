/**
 * Entry of the detached durable-checkpoint writer: `node persist-writer.js JOB.json`.
 * Started by `container clone --live --persistent=async`; lives on after the
 * command exits; records its outcome in the checkpoint's status file.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { layout } from '../drivers/layout.js';
import { claimJob, runPersist } from '../core/persist/writer.js';
import type { PersistJob } from '../core/persist/job.js';

const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as PersistJob;
const l = layout();
try {
  claimJob(job);
  await runPersist(l, job);
  rmSync(path.join(l.checkpoints, `.${job.id}.log`), { force: true });
  process.exitCode = 0;
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
