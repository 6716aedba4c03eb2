/**
 * The dispatching criu: CRIU gets the options left in the bundle named by its
 * parent's --work-path (crun's command line), and nothing otherwise. Built
 * from its C source with gcc as setup builds it, and run for real: a parent
 * shell standing in for crun and a stand-in for CRIU that prints what it was
 * given.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildCriuDispatcher, CONTAINER_CRIU_CONF, parseDumpTimes, snapshotSettled, versionDefines, writeContainerCriuConf, writeSnapshotScript, removeContainerCriuConf } from '../../src/drivers/criu-shim.js';
import { CRIU, installedBinary } from '../../src/core/setup/toolchain.js';
import { layout } from '../../src/drivers/layout.js';
import { writeCgroupYard } from '../../src/drivers/cgroups.js';
import { parseMemoryStat } from '../../src/drivers/memory.js';
import { apiErrorMessage, serviceEnv } from '../../src/drivers/podman-api.js';

async function setup() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-shim-'));
  const fake = path.join(dir, 'criu-real');
  writeFileSync(fake, '#!/bin/sh\necho "conf=${CRIU_CONFIG_FILE:-none} args=$*"\n');
  chmodSync(fake, 0o755);
  const shim = path.join(dir, 'criu');
  await buildCriuDispatcher(shim, fake);
  const bundle = path.join(dir, 'bundle');
  execFileSync('mkdir', ['-p', bundle]);
  return { shim, bundle };
}

/** Run the shim as the child of a process whose command line is `argv` (as crun runs CRIU). */
function underParent(shim: string, argv: string[], env: Record<string, string> = {}): string {
  return execFileSync('/bin/sh', ['-c', '"$0" swrk 3; :', shim, ...argv], { env: { PATH: process.env.PATH, ...env } }).toString().trim();
}

describe('dispatching criu', () => {
  it("takes the options of the bundle in its parent's --work-path", async () => {
    const { shim, bundle } = await setup();
    writeContainerCriuConf(bundle, ['file-locks', 'tcp-close']);
    expect(underParent(shim, ['restore', '--work-path', bundle, 'id'])).toBe(`conf=${path.join(bundle, CONTAINER_CRIU_CONF)} args=swrk 3`);
    expect(underParent(shim, ['restore', `--work-path=${bundle}`, 'id'])).toBe(`conf=${path.join(bundle, CONTAINER_CRIU_CONF)} args=swrk 3`);
  });

  it('runs CRIU as is without a file, without --work-path, or when CRIU_CONFIG_FILE is set', async () => {
    const { shim, bundle } = await setup();
    expect(underParent(shim, ['restore', '--work-path', bundle, 'id'])).toBe('conf=none args=swrk 3');
    writeContainerCriuConf(bundle, ['file-locks']);
    expect(underParent(shim, ['check'])).toBe('conf=none args=swrk 3');
    expect(underParent(shim, ['restore', '--work-path', bundle], { CRIU_CONFIG_FILE: '/x.conf' })).toBe('conf=/x.conf args=swrk 3');
    removeContainerCriuConf(bundle);
    expect(underParent(shim, ['restore', '--work-path', bundle, 'id'])).toBe('conf=none args=swrk 3');
  });
});

describe('dispatching criu and the kernel facts cache', () => {
  it('names the cache directory it was built with, and none without; rebuilt only when that or its source changes', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-shim-'));
    const fake = path.join(dir, 'criu-real');
    writeFileSync(fake, '#!/bin/sh\necho "kdat=${CRIU_KDAT_DIR:-none}"\n');
    chmodSync(fake, 0o755);
    const shim = path.join(dir, 'criu');
    for (const [kdat, want] of [['/dev/shm/x/kdat-1', 'kdat=/dev/shm/x/kdat-1'], [undefined, 'kdat=none']] as const) {
      expect(await buildCriuDispatcher(shim, fake, { kdatDir: kdat })).toBe(true);
      expect(await buildCriuDispatcher(shim, fake, { kdatDir: kdat })).toBe(false);
      expect(underParent(shim, ['check'])).toBe(want);
    }
    await expect(buildCriuDispatcher(shim, '/bin/"criu')).rejects.toThrow(/quote/);
  });

  it('says which CRIU it could not run', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-shim-'));
    const shim = path.join(dir, 'criu');
    await buildCriuDispatcher(shim, path.join(dir, 'no-such-criu'));
    const r = spawnSync(shim, ['check']);
    expect(r.status).toBe(127);
    expect(r.stderr.toString()).toContain(`cannot run ${path.join(dir, 'no-such-criu')}`);
  });
});

/**
 * Send one request over a SOCK_SEQPACKET pair to `criu swrk FD` (as go-criu and libcriu do, with
 * python3, which setup installs: node has no such socket pair) and return the answer in hex.
 */
function swrk(bin: string, requestHex: string): { answer: string; status: number | null } {
  const py = `import socket,subprocess,sys
a,b=socket.socketpair(socket.AF_UNIX,socket.SOCK_SEQPACKET)
p=subprocess.Popen([sys.argv[1],'swrk',str(b.fileno())],pass_fds=[b.fileno()],stderr=subprocess.DEVNULL)
b.close(); a.send(bytes.fromhex(sys.argv[2]))
try: r=a.recv(65536)
except OSError: r=b''
a.close(); print(r.hex()); sys.exit(p.wait())`;
  const r = spawnSync('python3', ['-c', py, bin, requestHex]);
  return { answer: r.stdout.toString().trim(), status: r.status };
}

describe('dispatching criu and the version checks', () => {
  // criu_req { type: VERSION }, as go-criu (podman) sends it; libcriu (crun) adds the options it holds.
  const VERSION = '080a';
  const VERSION_WITH_OPTS = '080a120408034002';
  // criu_resp { type: VERSION, success: true, version { major: 4, minor: 1, sublevel: 1 } }
  const ANSWER_4_1_1 = '080a10015206080410012001';

  async function built(versionText: string) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-shim-'));
    const fake = path.join(dir, 'criu-real');
    writeFileSync(fake, `#!/bin/sh\necho ran > ${dir}/ran\n`);
    chmodSync(fake, 0o755);
    const shim = path.join(dir, 'criu');
    await buildCriuDispatcher(shim, fake, { criuVersionText: versionText });
    const marker = path.join(dir, 'ran');
    // Whether CRIU ran since the last ask (the marker is taken away each time).
    const ran = () => {
      const was = existsSync(marker);
      rmSync(marker, { force: true });
      return was;
    };
    return { shim, ran };
  }

  it("answers a version request itself, as CRIU would, and leaves any other request to CRIU", async () => {
    const { shim, ran } = await built('Version: 4.1.1\n');
    expect(swrk(shim, VERSION)).toEqual({ answer: ANSWER_4_1_1, status: 0 });
    expect(swrk(shim, VERSION_WITH_OPTS)).toEqual({ answer: ANSWER_4_1_1, status: 0 });
    expect(ran()).toBe(false);
    // keep_open asks for a session CRIU serves; a CHECK request is CRIU's.
    for (const req of ['080a2001', '0803']) {
      swrk(shim, req);
      expect(ran()).toBe(true);
    }
  });

  it('leaves the version checks to CRIU when its version is unknown or carries a git id', async () => {
    expect(versionDefines('Version: 4.1.1\n')).toEqual(['-DDISPATCH_VERSION_MAJOR=4', '-DDISPATCH_VERSION_MINOR=1', '-DDISPATCH_VERSION_SUBLEVEL=1']);
    expect(versionDefines('Version: 4.2\n')).toEqual(['-DDISPATCH_VERSION_MAJOR=4', '-DDISPATCH_VERSION_MINOR=2']);
    expect(versionDefines('Version: 4.1.1\nGitID: v4.1.1-12-gabc\n')).toEqual([]);
    for (const text of ['', 'Version: 4.1.1\nGitID: v4.1.1-12-gabc\n']) {
      const { shim, ran } = await built(text);
      swrk(shim, VERSION);
      expect(ran()).toBe(true);
    }
  });

  it("answers exactly what the installed CRIU answers", async (ctx) => {
    const criu = installedBinary(layout(), CRIU);
    if (!existsSync(criu)) {
      console.log(`skipped: no CRIU installed at ${criu} (run \`podman-tfork setup\`)`);
      return ctx.skip();
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-shim-'));
    const shim = path.join(dir, 'criu');
    await buildCriuDispatcher(shim, criu, { criuVersionText: execFileSync(criu, ['--version']).toString() });
    for (const req of [VERSION, VERSION_WITH_OPTS]) expect(swrk(shim, req)).toEqual(swrk(criu, req));
    expect(swrk(shim, VERSION).answer).not.toBe('');
  });
});

describe('the snapshot action script', () => {
  /** Run the script as CRIU would, action by action, with a stand-in for btrfs that records its call. */
  function script(o: { fail?: boolean; btrfsExit?: number } = {}) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-snap-'));
    const btrfs = path.join(dir, 'btrfs');
    writeFileSync(btrfs, `#!/bin/sh\nsleep 0.2\necho "$*" > ${dir}/called\necho "btrfs says no" >&2\nexit ${o.btrfsExit ?? 0}\n`);
    chmodSync(btrfs, 0o755);
    const hook = path.join(dir, 'dump-hook');
    const timesFile = path.join(dir, 'times');
    writeSnapshotScript(hook, { rootfs: '/src', snapshot: path.join(dir, 'snap'), timesFile, btrfs, fail: o.fail });
    const act = (action: string) => spawnSync(hook, [], { env: { PATH: process.env.PATH, CRTOOLS_SCRIPT_ACTION: action } });
    return { dir, hook, timesFile, act };
  }

  it('starts the snapshot at network-lock and post-dump waits for it', () => {
    const { dir, act, timesFile } = script();
    expect(act('pre-dump').status).toBe(0);
    const t0 = Date.now();
    expect(act('network-lock').status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(150); // not waited for here
    expect(act('post-dump').status).toBe(0);
    expect(readFileSync(path.join(dir, 'called'), 'utf8').trim()).toBe(`subvolume snapshot -r /src ${path.join(dir, 'snap')}`);
    const times = parseDumpTimes(readFileSync(timesFile, 'utf8'));
    expect(times.snapshotEnd! - times.snapshotStart!).toBeGreaterThanOrEqual(150);
    expect(times.snapshotFailed).toBe(false);
  });

  it('takes the snapshot at post-dump when there was no network-lock (no network namespace of its own)', () => {
    const { dir, act } = script();
    expect(act('post-dump').status).toBe(0);
    expect(readFileSync(path.join(dir, 'called'), 'utf8')).toContain('subvolume snapshot -r /src');
  });

  it('fails post-dump with the tool\'s words when the snapshot failed, and says so', async () => {
    for (const o of [{ btrfsExit: 1 }, { fail: true }]) {
      const { act, timesFile, hook } = script(o);
      act('network-lock');
      await snapshotSettled(hook);
      const r = act('post-dump');
      expect(r.status).toBe(1);
      expect(r.stderr.toString()).toMatch(o.fail ? /fault injected: snapshot/ : /btrfs says no/);
      expect(parseDumpTimes(readFileSync(timesFile, 'utf8')).snapshotFailed).toBe(true);
    }
  });
});

describe('cgroup yard', () => {
  const MOUNTINFO = [
    '30 1 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755',
    '31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate',
    '32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
    '33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
    '34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
    '35 30 0:30 /sub /mnt/memory-sub rw - cgroup cgroup rw,memory',
  ].join('\n');
  function proc(cgroup: string, mountinfo = MOUNTINFO): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-proc-'));
    mkdirSync(path.join(dir, '7'));
    mkdirSync(path.join(dir, 'self'));
    writeFileSync(path.join(dir, '7', 'cgroup'), cgroup);
    writeFileSync(path.join(dir, 'self', 'mountinfo'), `${mountinfo}\n`);
    return dir;
  }

  it("links each of the process's hierarchies, named as CRIU names them, to where the host mounts it whole", () => {
    const p = proc('4:memory:/libpod_parent/x\n3:cpu,cpuacct:/libpod_parent/x\n1:name=systemd:/libpod_parent/x\n0::/libpod_parent/x\n');
    const yard = writeCgroupYard(path.join(p, 'yard'), 7, p)!;
    expect(readdirSync(yard).sort()).toEqual(['cpu,cpuacct', 'memory', 'systemd', 'unified']);
    expect(readlinkSync(path.join(yard, 'memory'))).toBe('/sys/fs/cgroup/memory');
    expect(readlinkSync(path.join(yard, 'systemd'))).toBe('/sys/fs/cgroup/systemd');
    expect(readlinkSync(path.join(yard, 'unified'))).toBe('/sys/fs/cgroup/unified');
  });

  it('gives none when a hierarchy is not mounted whole (CRIU then mounts its own)', () => {
    const p = proc('5:pids:/x\n4:memory:/x\n', MOUNTINFO);
    expect(writeCgroupYard(path.join(p, 'yard'), 7, p)).toBeUndefined();
    const q = proc('0::/x\n', MOUNTINFO.split('\n').filter((l) => !l.includes('cgroup2')).join('\n'));
    expect(writeCgroupYard(path.join(q, 'yard'), 7, q)).toBeUndefined();
    expect(writeCgroupYard(path.join(q, 'yard'), 99, q)).toBeUndefined(); // no such process
  });
});

describe('parsers of host and podman output', () => {
  it('memory.stat of a cgroup v1 memory controller', () => {
    const s = parseMemoryStat('cache 4096\nrss 1073741824\nshmem 8192\ntotal_rss 1073745920\ntotal_shmem 8192\nbogus x\n');
    expect(s.total_rss).toBe(1073745920);
    expect(s.shmem).toBe(8192);
    expect(s.bogus).toBeUndefined();
  });

  it("libpod's error bodies", () => {
    expect(apiErrorMessage({ status: 500, body: '{"cause":"x","message":"no such container","response":500}' })).toBe('no such container');
    expect(apiErrorMessage({ status: 502, body: 'bad gateway\n' })).toBe('bad gateway');
  });
});

describe('podman service environment', () => {
  it("carries the project's podman settings and none of one command's own", () => {
    const env = serviceEnv({ CONTAINERS_CONF: '/etc/x.conf', PATH: '/shim:/usr/bin' }, { HOME: '/root', PATH: '/bin', TFORK_FAULT: 'restore:1', CRIU_CONFIG_FILE: '/tmp/c.conf' });
    expect(env).toEqual({ HOME: '/root', PATH: '/shim:/usr/bin', CONTAINERS_CONF: '/etc/x.conf' });
  });
});
