/** The W1 counter workload and what tests read from it. */
import { exec, podman } from './host.js';

/** A shell variable counting in memory, written to disk every 0.1 s (renamed into place: a reader never sees a half-written file). */
export const COUNTER = ['sh', '-c', 'echo before > /tmp/before; i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done'];

export async function count(name: string): Promise<number> {
  return Number((await exec(name, ['cat', '/tmp/count'])).stdout.trim());
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const idOf = async (name: string) => (await podman().run(['inspect', '-f', '{{.Id}}', name])).stdout.trim();
export const stateOf = async (name: string) => (await podman().run(['inspect', '-f', '{{.State.Status}}', name])).stdout.trim();

/** Remove containers by name (clones carry the test label too; this is for mid-test removal). */
export async function rm(...names: string[]): Promise<void> {
  await podman().run(['rm', '-f', '-t', '0', ...names], { reject: false });
}
