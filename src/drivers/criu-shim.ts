/**
 * Per-operation CRIU options. podman passes only PATH through to crun, and
 * crun's libcriu starts `criu` from the PATH; so each clone operation puts a
 * directory first in the PATH whose `criu` exports CRIU_CONFIG_FILE (read by
 * CRIU in RPC mode too) and execs the project's CRIU. The config file carries
 * what podman cannot pass: the action script that snapshots the root
 * filesystem while the source is frozen, the ghost limit, tcp-close.
 */
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { run } from './exec.js';
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
 * The action script of a dump: records when CRIU is about to freeze the tree
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
 * The `criu` the project's podman runs (first in its PATH, the service's
 * too): crun starts CRIU with `--work-path <bundle>` on its own command line,
 * and a tfork-criu.conf in that bundle, written by podman-tfork around one
 * dump or restore, becomes CRIU's configuration file. So the options of one
 * operation reach CRIU whichever podman process (a CLI or the long-lived
 * service) runs it. Without such a file CRIU runs as is.
 */
export function dispatchShimText(criuBin: string, kdatDir?: string): string {
  return [
    '#!/bin/sh',
    '# Written by `podman-tfork setup`: CRIU with the options podman-tfork left in the bundle of the container it works on.',
    // CRIU keeps what it learnt of the kernel in a cache only on a tmpfs, /run by default; where
    // /run is not one, every dump and restore probed the kernel again (~20 ms of CPU each).
    // The directory is per build of CRIU (criu-modules/patches/0009).
    ...(kdatDir ? [`CRIU_KDAT_DIR=${shQuote(kdatDir)}`, 'export CRIU_KDAT_DIR'] : []),
    `if [ -z "$CRIU_CONFIG_FILE" ] && [ -r /proc/$PPID/cmdline ]; then`,
    `  wp=$(tr '\\0' '\\n' < /proc/$PPID/cmdline | sed -n -e '/^--work-path$/{n;p;q;}' -e 's/^--work-path=//p')`,
    `  if [ -n "$wp" ] && [ -f "$wp/${CONTAINER_CRIU_CONF}" ]; then`,
    `    CRIU_CONFIG_FILE="$wp/${CONTAINER_CRIU_CONF}"`,
    '    export CRIU_CONFIG_FILE',
    '  fi',
    'fi',
    `exec ${shQuote(criuBin)} "$@"`,
    '',
  ].join('\n');
}

/** Leave CRIU options for the next dump or restore of the container whose bundle this is. */
export function writeContainerCriuConf(bundle: string, lines: string[]): void {
  writeFileSync(path.join(bundle, CONTAINER_CRIU_CONF), `${lines.join('\n')}\n`);
}

export function removeContainerCriuConf(bundle: string): void {
  rmSync(path.join(bundle, CONTAINER_CRIU_CONF), { force: true });
}
