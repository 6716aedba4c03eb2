/** Processes that outlive the command that started them (the durable checkpoint writer). */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/** Start `file args` in its own session, output to `logFile`; returns its pid. */
export function spawnDetached(file: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const fd = openSync(logFile, 'a');
  try {
    // In /, as daemons do: the caller's directory may be deleted while the process lives on, and a
    // podman service in a deleted directory fails every restore ("write child: broken pipe").
    const child = spawn(file, args, { detached: true, cwd: '/', stdio: ['ignore', fd, fd], ...(env ? { env } : {}) });
    child.unref();
    if (!child.pid) throw new Error(`could not start ${file}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}
