/**
 * The source's pause as its own processes feel it: bench/pause-probe.c runs
 * in the source, wakes every millisecond and keeps the longest gap between
 * two wake-ups. The benchmark resets it before a run and reads it after; the
 * gap is what a person watching the desktop or a program serving requests
 * saw, whatever CRIU's statistics say.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Podman } from '../drivers/podman.js';
import { compileStatic } from '../drivers/image-build.js';
import { TforkError } from '../errors.js';
import { execIn } from './containers.js';

const PROBE_SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/pause-probe.c');
const IN_CONTAINER = '/tmp/tfork-pause-probe';
const OUT = '/tmp/tfork-pause.max';

/** Build the probe once per benchmark run (a static binary runs in every source image). */
export async function buildPauseProbe(scratch: string): Promise<string> {
  const bin = path.join(scratch, 'tfork-pause-probe');
  if (!existsSync(bin)) await compileStatic(PROBE_SRC, bin, { timeoutMs: 120_000 });
  return bin;
}

export class PauseProbe {
  private constructor(
    private readonly podman: Podman,
    private readonly name: string,
    private readonly pid: string,
  ) {}

  /** Copy the probe into the running source and start it there, in a session of its own. */
  static async start(podman: Podman, name: string, bin: string): Promise<PauseProbe> {
    const cp = await podman.run(['cp', bin, `${name}:${IN_CONTAINER}`], { reject: false, timeoutMs: 60_000 });
    if (cp.exitCode !== 0) throw new TforkError('E_TOOL_FAILED', `podman cp of the pause probe into ${name} failed: ${cp.stderr.trim()}`);
    const out = await execIn(podman, name, ['sh', '-c', `setsid ${IN_CONTAINER} </dev/null >/dev/null 2>&1 & echo $!`]);
    const pid = out.trim();
    if (!/^\d+$/.test(pid)) throw new TforkError('E_TOOL_FAILED', `the pause probe in ${name} did not start (${out.trim()})`);
    const probe = new PauseProbe(podman, name, pid);
    await probe.read();
    return probe;
  }

  /** The longest gap since the last read, in ms (the probe's own 1 ms sleep included); starts the next interval. */
  async read(): Promise<number> {
    const script = `rm -f ${OUT}; kill -USR1 ${this.pid} || exit 3; i=0; while [ ! -s ${OUT} ]; do i=$((i+1)); [ $i -gt 500 ] && exit 4; sleep 0.01; done; cat ${OUT}`;
    const out = (await execIn(this.podman, this.name, ['sh', '-c', script])).trim();
    if (!/^\d+$/.test(out)) throw new TforkError('E_TOOL_FAILED', `the pause probe in ${this.name} answered "${out}"`);
    return Number(out) / 1000;
  }

  /** Start the interval a run is measured in. */
  async reset(): Promise<void> {
    await this.read();
  }
}
