/**
 * Per-operation CRIU options. podman passes only PATH through to crun, and
 * crun's libcriu starts `criu` from the PATH; so each clone operation puts a
 * directory first in the PATH whose `criu` exports CRIU_CONFIG_FILE (read by
 * CRIU in RPC mode too) and execs the project's CRIU. The config file carries
 * what podman cannot pass: the action script that snapshots the root
 * filesystem while the source is frozen, the ghost limit, tcp-close.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
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
 * (pre-dump) and, once the dump is complete but before the tree is resumed
 * (post-dump), takes a read-only snapshot of the root filesystem, so that the
 * files match the memory image exactly.
 */
export function writeSnapshotScript(file: string, o: { rootfs: string; snapshot: string; timesFile: string; btrfs: string; fail?: boolean }): void {
  const q = shQuote;
  writeFileSync(
    file,
    [
      '#!/bin/sh',
      '# podman-tfork: snapshot the root filesystem while CRIU holds the source frozen.',
      'case "$CRTOOLS_SCRIPT_ACTION" in',
      `pre-dump) echo "pre-dump $(date +%s%N)" >> ${q(o.timesFile)} ;;`,
      'post-dump)',
      `  echo "post-dump-start $(date +%s%N)" >> ${q(o.timesFile)}`,
      o.fail ? '  echo "fault injected: snapshot" >&2; exit 1' : `  ${q(o.btrfs)} subvolume snapshot -r ${q(o.rootfs)} ${q(o.snapshot)} >/dev/null || exit 1`,
      `  echo "post-dump-end $(date +%s%N)" >> ${q(o.timesFile)}`,
      '  ;;',
      'esac',
      'exit 0',
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o755);
}

/** A CRIU action script that creates `marker` when CRIU reaches `action` (e.g. post-restore). */
export function writeMarkerScript(file: string, action: string, marker: string): void {
  writeFileSync(file, `#!/bin/sh\n# podman-tfork: mark that CRIU reached ${action}.\n[ "$CRTOOLS_SCRIPT_ACTION" = ${shQuote(action)} ] && : > ${shQuote(marker)}\nexit 0\n`);
  chmodSync(file, 0o755);
}

/** Parse the times the action script recorded (nanoseconds since the epoch). */
export function parseDumpTimes(text: string): { preDump?: number; snapshotStart?: number; snapshotEnd?: number } {
  const get = (k: string) => {
    const m = new RegExp(`^${k} (\\d+)$`, 'm').exec(text);
    return m ? Number(BigInt(m[1]!) / 1000n) / 1000 : undefined; // ms
  };
  return { preDump: get('pre-dump'), snapshotStart: get('post-dump-start'), snapshotEnd: get('post-dump-end') };
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
export function dispatchShimText(criuBin: string): string {
  return [
    '#!/bin/sh',
    '# Written by `podman-tfork setup`: CRIU with the options podman-tfork left in the bundle of the container it works on.',
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
