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
 * with the patch. It is the default (TFORK_CAPTURE=auto, the same as
 * background) for every source: since patches 0010-0013 copy little while
 * frozen, it pauses even a small source less than the stock dump and the
 * clone ends sooner (tiny W1: 33 ms against 39 ms frozen; W2 desktop, 32 MiB,
 * 4 copies: 128 ms against 162 ms, 1.08 s against 1.15 s for the clone;
 * medians of 6 interleaved pairs). Until then sources under 256 MiB got the
 * stock dump. TFORK_CAPTURE=frozen keeps the stock dump for every source.
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

/**
 * Whether the installed CRIU knows `--<option>` (an option of one of the
 * project's patches): its binary carries the option's name.
 */
export const criuHasOption = (l: Layout, option: string): boolean => criuCarries(l, `--${option}`, `option-${option}`);

/**
 * Whether the installed CRIU's binary carries `text` (a patch's option or
 * help line). Read once per build of the binary (the answer is kept beside
 * the stamps under `key`, keyed by size and mtime), since a clone must not
 * pay a 6 MB read.
 */
export function criuCarries(l: Layout, text: string, key: string): boolean {
  const bin = installedBinary(l, CRIU);
  let build: string;
  try {
    const st = statSync(bin);
    build = `${st.size}:${st.mtimeMs}`;
  } catch {
    return false;
  }
  const memo = path.join(l.stampDir, `criu-${key}`);
  try {
    const [k, v] = readFileSync(memo, 'utf8').trim().split(' ');
    if (k === build) return v === 'yes';
  } catch {
    // not recorded yet
  }
  const has = readFileSync(bin).includes(text);
  try {
    mkdirSync(l.stampDir, { recursive: true });
    writeFileSync(memo, `${build} ${has ? 'yes' : 'no'}\n`);
  } catch {
    // a read-only state directory only costs the next command the same read
  }
  return has;
}

/** Whether the installed CRIU has background capture (patch 0003). */
export const criuHasBackgroundPages = (l: Layout): boolean => criuHasOption(l, BACKGROUND_PAGES_OPTION);

/** The mode a capture runs in here, and why. */
export function captureMode(l: Layout, env: NodeJS.ProcessEnv = process.env): CaptureModeInfo {
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
  return { mode: 'background', reason: 'pages are drained and write-protected while frozen, written after the source runs on (userfaultfd)' };
}
