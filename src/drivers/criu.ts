/** CRIU: version, `criu check`, features. */
import { run, type RunOptions } from './exec.js';

/** Features that matter to live cloning, in the order `info` shows them. */
export const CRIU_FEATURES = [
  'uffd',
  'uffd-noncoop',
  'clone3_set_tid',
  'mem_dirty_track',
  'pidfd_store',
  'timens',
  'network_lock_nftables',
  'move_mount_set_group',
  'memfd_hugetlb',
] as const;

export function parseCriuVersion(text: string): string | undefined {
  return /Version:\s*(\S+)/.exec(text)?.[1];
}

export async function criuVersion(bin: string, opts: RunOptions = {}): Promise<string | undefined> {
  const r = await run(bin, ['--version'], { ...opts, reject: false });
  return parseCriuVersion(r.stdout);
}

export interface CriuCheck {
  ok: boolean;
  /** The last lines of `criu check` (warnings or the reason it failed). */
  output: string;
}

export async function criuCheck(bin: string, opts: RunOptions = {}): Promise<CriuCheck> {
  const r = await run(bin, ['check'], { ...opts, reject: false });
  const output = `${r.stdout}${r.stderr}`.trim();
  return { ok: r.exitCode === 0 && /Looks good/.test(output), output };
}

export async function criuFeatures(bin: string, opts: RunOptions = {}): Promise<Record<string, boolean>> {
  const entries = await Promise.all(
    CRIU_FEATURES.map(async (f) => [f, (await run(bin, ['check', '--feature', f], { ...opts, reject: false })).exitCode === 0] as const),
  );
  return Object.fromEntries(entries);
}
