/**
 * `podman-tfork --tfork-help`: the reference of everything podman-tfork adds
 * to podman. Generated from the command tables, so it cannot drift; a test
 * checks that every TFORK_* variable the code reads is listed here.
 */
import type { Command } from './commands/command.js';

export const ENV_VARS: { name: string; description: string }[] = [
  { name: 'TFORK_ROOT', description: 'state directory: toolchain prefix, podman config, btrfs storage (default /var/lib/podman-tfork)' },
  { name: 'TFORK_RUN_DIR', description: 'volatile state: podman runroot, libpod tmp dir, host-wide locks, commit ledgers, the kept specs of cloned containers (default /run/podman-tfork)' },
  { name: 'TFORK_STORAGE_SIZE', description: 'size of the loop-file btrfs created by setup when the host has none (default 40G)' },
  { name: 'TFORK_RUNTIME', description: 'OCI runtime for passed-through podman commands: crun (patched, default) or runc' },
  { name: 'TFORK_LOG_LEVEL', description: 'debug prints tool output and full error detail on stderr, and keeps CRIU\'s debug lines in its logs' },
  { name: 'TFORK_ATTEMPT', description: 'set by speculate, best-of-n and reflexion in each candidate command: its index (0 first)' },
  { name: 'TFORK_FEEDBACK', description: 'set by reflexion in each retry: the critique of the previous failed attempt' },
  { name: 'TFORK_EXIT_CODE', description: 'set by reflexion in the --critique command: the failed attempt\'s exit code' },
  { name: 'TFORK_EXEC_ID', description: 'set by the agent layer in every command it runs in a sandbox, so a timed-out command and its children can be killed' },
  { name: 'TFORK_PODMAN_API', description: 'rest (default): per-copy podman work (create, restore, inspect, rm) goes to the project\'s podman service; cli: a podman process per call' },
  { name: 'TFORK_PODMAN_SERVICE_IDLE', description: 'seconds without requests after which the podman service (socket $TFORK_RUN_DIR/podman.sock) exits (default 120)' },
  { name: 'TFORK_SHM_DIR', description: 'tmpfs where a live clone keeps the CRIU images all its copies read, when they fit (default /dev/shm/podman-tfork)' },
  { name: 'TFORK_CAPTURE', description: 'auto or background (the default): write the memory pages after the source runs on (background capture, where /dev/userfaultfd and the patched CRIU allow it; `info` says); frozen: keep the source frozen until every page is written (the stock dump)' },
  { name: 'TFORK_INCREMENTAL', description: '0: every `checkpoint create` writes all memory. Default: after the first, a checkpoint writes only the pages written since the previous one (userfaultfd write tracking, Linux 6.7+ and the patched CRIU; `info` says); an increment is captured frozen (it writes little), the first of a chain in the background with a second short freeze that arms the tracking (CRIU patch 0023); a live clone of a tracked container borrows the tracking and gives it back, captured in the background (CRIU patch 0028)' },
  { name: 'TFORK_GRAFT', description: '0: keep every live clone on the stock tier (each copy restores the source\'s pages). Default: where tfork_graft is loaded (/dev/tfork-graft) and the patched CRIU has --graft-from, copies share the source\'s pages copy-on-write (tier 2; `info` and the clone\'s JSON `tier` say which ran and why)' },
  { name: 'TFORK_IMAGES_IN', description: 'disk: keep a live clone\'s CRIU images on the storage filesystem even when they would fit in memory' },
  { name: 'TFORK_SKIP_DUMP_CHECK', description: '1: skip the check (also run by `doctor`) that refuses a capture when a process is in a nested namespace or holds io_uring or a device CRIU cannot dump' },
  { name: 'TFORK_SCREEN', description: 'osworld and osworld-core images (podman run -e): the X screen, WxHxDEPTH (default 1920x1080x24; osworld-core 1280x800x24)' },
  { name: 'TFORK_SESSION_USER', description: 'osworld images (podman run -e): the desktop session\'s user, root (default: CRIU must read every process\'s rlimits) or user' },
  { name: 'TFORK_GUEST_PORT', description: 'osworld images (podman run -e): the port of the OSWorld-compatible guest HTTP API (default 5000)' },
  { name: 'TFORK_OPENAI_BASE_URL', description: 'run-task --agent openai: base URL of an OpenAI-compatible chat-completions endpoint with image input (.../v1; OPENAI_BASE_URL also read)' },
  { name: 'TFORK_OPENAI_MODEL', description: 'run-task --agent openai: the model name (OPENAI_MODEL also read)' },
  { name: 'TFORK_OPENAI_API_KEY', description: 'run-task --agent openai: bearer key, when the endpoint wants one (OPENAI_API_KEY also read)' },
  { name: 'TFORK_FAULT', description: 'fault injection for tests: the phase of a clone to fail (freeze, dump, snapshot, register[:N], restore[:N], graft[:N] (tier 2: the copy grafts from a process that does not exist), thaw, persist), or restore:rollback (the CRIU restore of a rollback); kill@POINT makes the command SIGKILL itself at POINT (validate, dump, thaw, register:N, place:N, restore:N, persist; store, checkpoint-rm; stop, place, restore:rollback; commit:claimed; persist-writer) to test crash recovery' },
  { name: 'TFORK_OWNER', description: 'set by podman-tfork in every tool it starts: its own pid and start time, so that cleanup waits for the tools of a command that died before undoing its work' },
  { name: 'TFORK_APT_MIRROR', description: 'Debian archive for image builds and source packages (default: the archive in the host\'s apt sources, /etc/apt/sources.list.d/*.sources or sources.list)' },
];

export const SYSCTLS: { name: string; description: string }[] = [
  { name: 'vm.unprivileged_userfaultfd', description: 'read by `info` (CRIU uffd feature); lazy restores need userfaultfd, which root always has' },
  { name: 'kernel.pid_max', description: 'clones restore the source\'s PIDs inside their own PID namespace; the host limit bounds how many processes all clones hold' },
];

export function renderHelp(commands: Command[]): string {
  const out: string[] = [];
  out.push('podman-tfork: podman with live clones of running containers', '');
  out.push('Usage:', '  podman-tfork <podman command and flags>   run podman with the project configuration', '  podman-tfork <tfork command> [flags]', '');
  out.push('tfork commands:');
  for (const c of commands) {
    out.push(`  ${c.usage}`, `      ${c.summary}`);
    for (const f of c.flags) {
      const arg = f.type === 'boolean' ? '' : f.bareValue !== undefined ? `[=${f.arg ?? 'VALUE'}]` : ` ${f.arg ?? 'VALUE'}`;
      out.push(`      ${f.short ? `-${f.short}, ` : ''}--${f.name}${arg}`.padEnd(40) + ` ${f.description}`);
    }
    out.push('');
  }
  out.push('Global:', '  --tfork-help                            this reference', '');
  out.push('Environment variables:');
  for (const e of ENV_VARS) out.push(`  ${e.name.padEnd(24)} ${e.description}`);
  out.push('', 'Sysctls that matter:');
  for (const s of SYSCTLS) out.push(`  ${s.name.padEnd(28)} ${s.description}`);
  out.push('', 'Exit codes: 0 success, 125 podman-tfork or tool failure, 126 cannot run (not root), 127 tool not found;', 'speculate, best-of-n and reflexion exit 1 when no candidate succeeded; run-task exits 1 when the task did not pass;', 'passed-through podman commands exit with podman\'s own code.', '');
  return out.join('\n');
}
