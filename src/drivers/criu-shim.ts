/**
 * Per-operation CRIU options. podman passes only PATH through to crun, and
 * crun's libcriu starts `criu` from the PATH; so each clone operation puts a
 * directory first in the PATH whose `criu` exports CRIU_CONFIG_FILE (read by
 * CRIU in RPC mode too) and execs the project's CRIU. The config file carries
 * what podman cannot pass: the root filesystem's snapshot while the source is
 * frozen (CRIU patch 0025, or else the action script below), the ghost limit,
 * tcp-close.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { run, which } from './exec.js';
import { PACKAGE_DIR } from './layout.js';
import { TforkError } from '../errors.js';
import path from 'node:path';

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Write `<dir>/criu` that runs `criu` with the given config file; returns `dir`. */
export function writeCriuShim(dir: string, criuBin: string, configFile: string, configLines: string[]): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(configFile, `${configLines.join('\n')}\n`);
  const shim = path.join(dir, 'criu');
  writeFileSync(shim, `#!/bin/sh\nCRIU_CONFIG_FILE=${shQuote(configFile)}\nexport CRIU_CONFIG_FILE\nexec ${shQuote(criuBin)} "$@"\n`);
  chmodSync(shim, 0o755);
  return dir;
}

/**
 * The action script of a dump, for a CRIU without patch 0025 (which takes the
 * snapshot on a thread of its own, with no process started in the frozen
 * window): records when CRIU is about to freeze the tree
 * (pre-dump) and takes a read-only snapshot of the root filesystem while the
 * tree is frozen, so that the files match the memory image exactly. The
 * snapshot starts at network-lock, CRIU's first action after the freeze, and
 * runs beside the dump on another core; post-dump, the last action before
 * the resume, waits for it (a lock its process holds) and fails the dump if
 * it failed. A tree without its own network namespace has no network-lock
 * action: post-dump then takes the snapshot itself.
 */
export function writeSnapshotScript(file: string, o: { rootfs: string; snapshot: string; timesFile: string; btrfs: string; fail?: boolean }): void {
  const q = shQuote;
  const { lock, rc, err } = snapshotFiles(file);
  writeFileSync(
    file,
    [
      '#!/bin/sh',
      '# podman-tfork: snapshot the root filesystem while CRIU holds the source frozen.',
      'snap() {',
      `  echo "snapshot-start $(date +%s%N)" >> ${q(o.timesFile)}`,
      o.fail ? `  echo "fault injected: snapshot" > ${q(err)}; false` : `  ${q(o.btrfs)} subvolume snapshot -r ${q(o.rootfs)} ${q(o.snapshot)} >/dev/null 2>${q(err)}`,
      `  echo $? > ${q(rc)}`,
      `  echo "snapshot-end $(date +%s%N)" >> ${q(o.timesFile)}`,
      '}',
      'case "$CRTOOLS_SCRIPT_ACTION" in',
      `pre-dump) echo "pre-dump $(date +%s%N)" >> ${q(o.timesFile)} ;;`,
      'network-lock)',
      `  exec 9>${q(lock)} && flock 9 || exit 1`,
      '  (snap) </dev/null >/dev/null 2>&1 &',
      '  ;;',
      'post-dump)',
      `  if [ -e ${q(lock)} ]; then flock ${q(lock)} true; else snap; fi`,
      `  read status < ${q(rc)}`,
      `  [ "$status" = 0 ] && exit 0`,
      `  echo "snapshot-failed $(date +%s%N)" >> ${q(o.timesFile)}`,
      `  cat ${q(err)} >&2; exit 1`,
      '  ;;',
      'esac',
      'exit 0',
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o755);
}

/** The files the snapshot script keeps beside itself: the lock its snapshot holds, its status, its errors. */
export function snapshotFiles(script: string): { lock: string; rc: string; err: string } {
  return { lock: `${script}.lock`, rc: `${script}.rc`, err: `${script}.err` };
}

/**
 * Wait until a snapshot the script started is over (a dump that failed after
 * the freeze leaves it running): the caller may then remove what it made.
 */
export async function snapshotSettled(script: string, timeoutMs = 60_000): Promise<void> {
  const { lock } = snapshotFiles(script);
  if (!existsSync(lock)) return;
  await run('flock', ['--timeout', String(Math.ceil(timeoutMs / 1000)), lock, 'true'], { reject: false, timeoutMs: timeoutMs + 5_000 });
}

/** A CRIU action script that creates `marker` when CRIU reaches `action` (e.g. post-restore). */
export function writeMarkerScript(file: string, action: string, marker: string): void {
  writeFileSync(file, `#!/bin/sh\n# podman-tfork: mark that CRIU reached ${action}.\n[ "$CRTOOLS_SCRIPT_ACTION" = ${shQuote(action)} ] && : > ${shQuote(marker)}\nexit 0\n`);
  chmodSync(file, 0o755);
}

/** Parse the times the action script recorded (nanoseconds since the epoch). */
export function parseDumpTimes(text: string): { preDump?: number; snapshotStart?: number; snapshotEnd?: number; snapshotFailed: boolean } {
  const get = (k: string) => {
    const m = new RegExp(`^${k} (\\d+)$`, 'm').exec(text);
    return m ? Number(BigInt(m[1]!) / 1000n) / 1000 : undefined; // ms
  };
  return { preDump: get('pre-dump'), snapshotStart: get('snapshot-start'), snapshotEnd: get('snapshot-end'), snapshotFailed: get('snapshot-failed') !== undefined };
}

/** The per-container CRIU configuration file, in the container's bundle, that the dispatching `criu` picks up. */
export const CONTAINER_CRIU_CONF = 'tfork-criu.conf';

/**
 * The numbers of CRIU's answer to a VERSION request, from its `criu --version`
 * (`Version: MAJOR.MINOR[.SUBLEVEL[.EXTRA]]`), as the dispatcher's defines. None
 * for a CRIU built from git (a `GitID:` line: its answer carries the id too) or
 * output not of that form: the dispatcher then leaves the checks to CRIU.
 */
export function versionDefines(text: string): string[] {
  const m = /^Version: (\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/m.exec(text);
  if (!m || /^GitID:/m.test(text)) return [];
  return (['MAJOR', 'MINOR', 'SUBLEVEL', 'EXTRA'] as const).flatMap((k, i) => (m[i + 1] === undefined ? [] : [`-DDISPATCH_VERSION_${k}=${Number(m[i + 1])}`]));
}

/** The dispatching `criu`'s source (see its header). */
export const DISPATCH_SOURCE = path.join(PACKAGE_DIR, 'criu-modules', 'dispatch', 'criu-dispatch.c');

/**
 * Build the `criu` the project's podman runs (first in its PATH, the
 * service's too): crun starts CRIU with `--work-path <bundle>` on its own
 * command line, and a tfork-criu.conf in that bundle, written by podman-tfork
 * around one dump or restore, becomes CRIU's configuration file. So the
 * options of one operation reach CRIU whichever podman process (a CLI or the
 * long-lived service) runs it. Without such a file CRIU runs as is.
 * `kdatDir`: where CRIU caches its kernel facts (CRIU_KDAT_DIR, patch 0009).
 * `criuVersionText`: the CRIU's `criu --version`; with it the dispatcher
 * answers the version checks of podman and crun itself (see the source's
 * header). Compiled (criu-modules/dispatch/criu-dispatch.c) only when its
 * source or these change; returns true when it was.
 */
export async function buildCriuDispatcher(dest: string, criuBin: string, o: { kdatDir?: string; criuVersionText?: string; src?: string } = {}): Promise<boolean> {
  const { kdatDir, src = DISPATCH_SOURCE } = o;
  for (const v of [criuBin, kdatDir ?? '']) {
    if (/["\\\n]/.test(v)) throw new TforkError('E_INVALID_STATE', `cannot build the criu dispatcher for a path with a quote, backslash or newline: ${v}`);
  }
  const defines = [`-DDISPATCH_CRIU_BIN="${criuBin}"`, ...(kdatDir ? [`-DDISPATCH_KDAT_DIR="${kdatDir}"`] : []), ...versionDefines(o.criuVersionText ?? '')];
  const stamp = createHash('sha256').update(readFileSync(src)).update(JSON.stringify(defines)).digest('hex');
  const stampFile = `${dest}.stamp`;
  if (existsSync(dest) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stamp) return false;
  const gcc = which('gcc', []);
  if (!gcc) throw new TforkError('E_TOOL_MISSING', `gcc is needed to build ${path.basename(src)}`, { suggestions: ['apt-get install gcc libc6-dev'] });
  mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.new-${process.pid}`;
  try {
    await run(gcc, ['-O2', '-Wall', ...defines, '-o', tmp, src]);
    // A rename, not a write: a podman running the old one keeps it until it is done.
    renameSync(tmp, dest);
  } finally {
    rmSync(tmp, { force: true });
  }
  writeFileSync(stampFile, `${stamp}\n`);
  return true;
}

/**
 * CRIU's log level in the project's dumps and restores. crun asks for the debug level (4), one
 * write() per line, most of a dump's inside the frozen window: ~12,000 lines for a desktop, ~71,000
 * for the OSWorld desktop. 3 keeps errors, warnings and CRIU's account of each step (~31,000 lines
 * there); patch 0014 lets the configuration file's level stand. TFORK_LOG_LEVEL=debug keeps crun's.
 */
export function criuVerbosity(env: NodeJS.ProcessEnv = process.env): string[] {
  return /^debug$/i.test(env.TFORK_LOG_LEVEL ?? '') ? [] : ['verbosity=3'];
}

/** Leave CRIU options for the next dump or restore of the container whose bundle this is. */
export function writeContainerCriuConf(bundle: string, lines: string[]): void {
  writeFileSync(path.join(bundle, CONTAINER_CRIU_CONF), `${lines.join('\n')}\n`);
}

export function removeContainerCriuConf(bundle: string): void {
  rmSync(path.join(bundle, CONTAINER_CRIU_CONF), { force: true });
}
