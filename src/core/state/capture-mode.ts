/**
 * How a capture treats the source's memory:
 *
 *   background  the source is frozen while CRIU drains its pages into pipes
 *               and write-protects them (userfaultfd); it runs on while the
 *               pages are written, a first write to a page copying it first
 *               (criu-modules/patches/0003). The pause no longer grows with
 *               the time it takes to write the memory.
 *   frozen      the stock dump: frozen until every page is written.
 *   graft       (live clones on tier 2, clone/tier.ts) the private anonymous
 *               pages are not written; the source stays frozen until its
 *               copies have grafted them.
 *
 * Background capture needs /dev/userfaultfd (Linux 6.1+) and a CRIU built
 * with the patch. It costs a little work of its own (registering every VMA,
 * copying what cannot be write-protected, a fault per first write), so by
 * default (TFORK_CAPTURE=auto) it is used for sources holding at least
 * BACKGROUND_MIN_BYTES: below that the pages are written about as fast as
 * they are protected (a 100 MiB desktop paused 0.19 s either way, and the
 * stock dump finished 75 ms sooner). TFORK_CAPTURE=background uses it for
 * every source, TFORK_CAPTURE=frozen for none.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';
import { CRIU, installedBinary } from '../setup/toolchain.js';

export type CaptureMode = 'background' | 'frozen' | 'graft';

export interface CaptureModeInfo {
  mode: CaptureMode;
  /** Why this mode: what made the background capture unavailable, or what it does. */
  reason: string;
}

/** The CRIU option of patch 0003. */
export const BACKGROUND_PAGES_OPTION = 'background-pages';
export const USERFAULTFD_DEVICE = '/dev/userfaultfd';
/** auto: background capture from this much anonymous and shared memory in the source. */
export const BACKGROUND_MIN_BYTES = 256 * 2 ** 20;

/**
 * Whether the installed CRIU knows `--<option>` (an option of one of the
 * project's patches): its binary carries the option's name. Read once per
 * build of the binary (the answer is kept beside the stamps, keyed by size
 * and mtime), since a clone must not pay a 6 MB read.
 */
export function criuHasOption(l: Layout, option: string): boolean {
  const bin = installedBinary(l, CRIU);
  let key: string;
  try {
    const st = statSync(bin);
    key = `${st.size}:${st.mtimeMs}`;
  } catch {
    return false;
  }
  const memo = path.join(l.stampDir, `criu-option-${option}`);
  try {
    const [k, v] = readFileSync(memo, 'utf8').trim().split(' ');
    if (k === key) return v === 'yes';
  } catch {
    // not recorded yet
  }
  const has = readFileSync(bin).includes(`--${option}`);
  try {
    mkdirSync(l.stampDir, { recursive: true });
    writeFileSync(memo, `${key} ${has ? 'yes' : 'no'}\n`);
  } catch {
    // a read-only state directory only costs the next command the same read
  }
  return has;
}

/** Whether the installed CRIU has background capture (patch 0003). */
export const criuHasBackgroundPages = (l: Layout): boolean => criuHasOption(l, BACKGROUND_PAGES_OPTION);

/**
 * The mode a capture of a source holding `sourceBytes` (anonymous and shared
 * memory; undefined: unknown) runs in here, and why.
 */
export function captureMode(l: Layout, env: NodeJS.ProcessEnv = process.env, sourceBytes?: number): CaptureModeInfo {
  const asked = env.TFORK_CAPTURE;
  if (asked && asked !== 'background' && asked !== 'frozen' && asked !== 'auto') {
    return { mode: 'frozen', reason: `TFORK_CAPTURE=${asked} is not one of auto, background, frozen: using the stock dump` };
  }
  if (asked === 'frozen') return { mode: 'frozen', reason: 'TFORK_CAPTURE=frozen: the source stays frozen until every page is written' };
  if (!existsSync(USERFAULTFD_DEVICE)) {
    return { mode: 'frozen', reason: `no ${USERFAULTFD_DEVICE} (Linux 6.1+ with CONFIG_USERFAULTFD): the source stays frozen until every page is written` };
  }
  if (!criuHasBackgroundPages(l)) {
    return { mode: 'frozen', reason: `the installed CRIU lacks --${BACKGROUND_PAGES_OPTION} (run podman-tfork setup): the source stays frozen until every page is written` };
  }
  if (asked !== 'background' && sourceBytes !== undefined && sourceBytes < BACKGROUND_MIN_BYTES) {
    return {
      mode: 'frozen',
      reason: `the source holds ${Math.round(sourceBytes / 2 ** 20)} MiB, under ${BACKGROUND_MIN_BYTES / 2 ** 20} MiB: its pages are written about as fast as they are protected (TFORK_CAPTURE=background to protect them anyway)`,
    };
  }
  return { mode: 'background', reason: 'pages are drained and write-protected while frozen, written after the source runs on (userfaultfd)' };
}
