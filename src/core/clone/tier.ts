/**
 * Which tier a live clone runs on, and why.
 *
 *   2 graft         the source's private anonymous memory is not written at
 *                   all: CRIU dumps everything else (--graft-pages) while the
 *                   source stays frozen, and each copy's restorer grafts the
 *                   source's pages copy-on-write through tfork_graft
 *                   (criu-modules/kernel, patch 0004). A copy costs page
 *                   tables, not the source's size. The source is thawed once
 *                   the last copy has grafted.
 *   1 stock-kernel  one CRIU dump with the pages, every copy restores them.
 *
 * Tier 2 needs the module loaded (/dev/tfork-graft) and a CRIU with patch
 * 0004. Some clones stay on tier 1 all the same, each for a stated reason;
 * TFORK_GRAFT=0 keeps every clone on tier 1.
 */
import { existsSync, statSync } from 'node:fs';
import type { Layout } from '../../drivers/layout.js';
import { loadedModules, modulesSupported } from '../../drivers/host.js';
import { criuHasOption } from '../state/capture-mode.js';
import { GRAFT_MODULE } from '../setup/kernel-module.js';

export const GRAFT_DEVICE = '/dev/tfork-graft';
/** CRIU's options of patch 0004: dump without the private anonymous pages, restore grafting them. */
export const GRAFT_PAGES_OPTION = 'graft-pages';
export const GRAFT_FROM_OPTION = 'graft-from';

export interface CloneTier {
  level: 1 | 2;
  name: 'stock-kernel' | 'graft';
  reason: string;
}

const stock = (reason: string): CloneTier => ({ level: 1, name: 'stock-kernel', reason });

/** Whether this host can graft at all (the module and CRIU), and why not. */
export function graftAvailable(l: Layout, env: NodeJS.ProcessEnv = process.env): { ok: boolean; reason: string } {
  if (env.TFORK_GRAFT === '0') return { ok: false, reason: 'TFORK_GRAFT=0: every clone restores its pages (stock tier)' };
  if (!isCharDevice(GRAFT_DEVICE)) {
    if (!modulesSupported()) return { ok: false, reason: 'this kernel cannot load modules (no /proc/modules: CONFIG_MODULES is off), so tfork_graft is only exercised in a QEMU guest (npm run test:kernel)' };
    if (!loadedModules().includes(GRAFT_MODULE)) return { ok: false, reason: `${GRAFT_MODULE} is not loaded (podman-tfork setup builds and loads it where the kernel headers are installed)` };
    return { ok: false, reason: `${GRAFT_MODULE} is loaded but ${GRAFT_DEVICE} is missing` };
  }
  if (!criuHasOption(l, GRAFT_FROM_OPTION)) return { ok: false, reason: `the installed CRIU lacks --${GRAFT_FROM_OPTION} (patch 0004; run podman-tfork setup)` };
  return { ok: true, reason: `${GRAFT_MODULE} is loaded: copies share the source's pages copy-on-write` };
}

/** The tier of one live clone, given what the host can do (graftAvailable). */
export function cloneTier(g: { ok: boolean; reason: string }, o: { persistent: boolean; viaImport: boolean; tracked: boolean }): CloneTier {
  if (!g.ok) return stock(g.reason);
  // The archive holds the pages; a graft dump leaves them in the source.
  if (o.persistent) return stock('--persistent writes an archive with the pages, which a graft dump leaves in the source: this clone restores them (stock tier)');
  if (o.viaImport) return stock('the source publishes ports, so its copies are restored from an archive with the pages (stock tier)');
  // Its tracked memory is registered with a userfaultfd; a graft would carry that state into the copy.
  if (o.tracked) return stock("the source's checkpoints track its written pages (userfaultfd): its copies restore their pages (stock tier)");
  return { level: 2, name: 'graft', reason: 'only the state without the private anonymous pages is dumped; each copy grafts them copy-on-write from the frozen source (tfork_graft)' };
}

function isCharDevice(p: string): boolean {
  try {
    return existsSync(p) && statSync(p).isCharacterDevice();
  } catch {
    return false;
  }
}
