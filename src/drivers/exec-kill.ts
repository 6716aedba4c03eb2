/**
 * Killing what `podman exec` started. Stopping the podman client does not stop
 * the command inside the container (conmon keeps it), so every exec of a
 * sandbox carries a unique TFORK_EXEC_ID in its environment; on timeout or
 * cancellation the processes that inherited it are found in the host's /proc
 * and killed, children included. Needs no tool inside the container.
 */
import { readdirSync, readFileSync } from 'node:fs';

export const EXEC_ID_VAR = 'TFORK_EXEC_ID';

/** Host PIDs of the processes whose initial environment holds `${EXEC_ID_VAR}=token`. */
export function pidsOfExec(token: string, proc = '/proc'): number[] {
  const needle = Buffer.from(`\0${EXEC_ID_VAR}=${token}\0`);
  const first = Buffer.from(`${EXEC_ID_VAR}=${token}\0`);
  const pids: number[] = [];
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    let env: Buffer;
    try {
      env = readFileSync(`${proc}/${entry}/environ`);
    } catch {
      continue; // gone, or a kernel thread
    }
    if (env.includes(needle) || env.subarray(0, first.length).equals(first)) pids.push(Number(entry));
  }
  return pids;
}

/** SIGKILL every process of the exec; returns how many were killed. */
export function killExec(token: string): number {
  let n = 0;
  for (const pid of pidsOfExec(token)) {
    try {
      process.kill(pid, 'SIGKILL');
      n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}
