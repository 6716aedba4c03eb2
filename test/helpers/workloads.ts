/** The W1 counter and tfork-memhold workloads, and what tests read from them. */
import { expect } from 'vitest';
import { exec, podman, startContainer, waitFor } from './host.js';
import { MEMHOLD_CHANGE_SCRIPT } from '../../src/bench/verify.js';

/** A shell variable counting in memory, written to disk every 0.1 s (renamed into place: a reader never sees a half-written file). */
export const COUNTER = ['sh', '-c', 'echo before > /tmp/before; i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done'];

export async function count(name: string): Promise<number> {
  return Number((await exec(name, ['cat', '/tmp/count'])).stdout.trim());
}

/** The word of tfork-memwrite, tfork-cowshare or tfork-relro (the memory image): its count, or an error naming what broke. */
export async function checkerCount(name: string, program: 'memwrite' | 'cowshare' | 'relro'): Promise<number> {
  const r = await exec(name, ['sh', '-c', `kill -USR1 1; sleep 0.2; cat /tmp/${program}.status`]);
  const line = r.stdout.trim();
  const m = /^ok (\d+)$/.exec(line);
  if (!m) throw new Error(`${name}: tfork-${program} says "${line}"`);
  return Number(m[1]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const idOf = async (name: string) => (await podman().run(['inspect', '-f', '{{.Id}}', name])).stdout.trim();
export const stateOf = async (name: string) => (await podman().run(['inspect', '-f', '{{.State.Status}}', name])).stdout.trim();

/** Remove containers by name (clones carry the test label too; this is for mid-test removal). */
export async function rm(...names: string[]): Promise<void> {
  await podman().run(['rm', '-f', '-t', '0', ...names], { reject: false });
}

/**
 * tfork-memhold (localhost/tfork/memory) as pid 1: the hash of its whole
 * region, now (SIGUSR1). Polls up to 60 s (a guest under TCG hashes slowly).
 */
export async function memholdSum(name: string): Promise<string> {
  const script = 'rm -f /tmp/memhold.sum; kill -USR1 1; i=0; while [ ! -s /tmp/memhold.sum ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 3; sleep 0.05; done; cat /tmp/memhold.sum';
  const r = await exec(name, ['sh', '-c', script]);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout.trim();
}

/** Have tfork-memhold rewrite one more MiB (SIGUSR2); returns once it did. */
export async function memholdChange(name: string): Promise<void> {
  const r = await exec(name, ['sh', '-c', MEMHOLD_CHANGE_SCRIPT]);
  expect(r.exitCode, r.stderr).toBe(0);
}

/**
 * A python script run in a desktop-image container: it writes its pid to /tmp/<name>.ready and,
 * on SIGUSR1, its answer to /tmp/<name>.res (through a rename); ask() sends the signal and waits,
 * in the source or in a copy of it (the same pid there).
 */
export async function startScript(
  name: string,
  script: string,
): Promise<{ src: string; pid: string; ask: (container?: string) => Promise<string>; change: () => Promise<string> }> {
  const src = await startContainer('localhost/tfork/desktop');
  await exec(src, ['sh', '-c', `printf '%s\\n' '${script}' > /tmp/${name}.py && setsid python3 /tmp/${name}.py </dev/null >/dev/null 2>&1 &`]);
  await waitFor(src, ['test', '-s', `/tmp/${name}.ready`], 60_000);
  const pid = (await exec(src, ['cat', `/tmp/${name}.ready`])).stdout.trim();
  const res = `/tmp/${name}.res`;
  const ask = async (container = src) => {
    const r = await exec(container, ['sh', '-c', `rm -f ${res}; kill -USR1 ${pid}; i=0; while [ ! -s ${res} ]; do i=$((i+1)); [ $i -gt 400 ] && exit 3; sleep 0.05; done; cat ${res}`]);
    expect(r.exitCode, r.stderr).toBe(0);
    return r.stdout.trim();
  };
  // SIGUSR2 is the script's change, when it has one: the answer once it is another.
  const change = async () => {
    const before = await ask();
    await exec(src, ['kill', '-USR2', pid]);
    for (let i = 0; i < 100; i++, await sleep(50)) {
      const now = await ask();
      if (now !== before) return now;
    }
    throw new Error(`${name}: its answer was the same 5 s after SIGUSR2`);
  };
  return { src, pid, ask, change };
}

/**
 * Python lines that make three SysV shared memory segments of N = 4 MiB, attached as `segs`,
 * each filled with `fill` (an expression of k, the segment's number, and N).
 */
export function sysvSegmentsPy(fill: string): string[] {
  return [
    'import ctypes, hashlib, os, signal, time',
    'libc = ctypes.CDLL(None)',
    'libc.shmat.restype = ctypes.c_void_p',
    'libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]',
    'N = 4 << 20',
    'segs = []',
    'for k in range(3):',
    '    b = (ctypes.c_char * N).from_address(libc.shmat(libc.shmget(0, N, 0o1600), None, 0))',
    `    b[:] = ${fill}`,
    '    segs.append(b)',
  ];
}
