/**
 * Crash consistency: a command SIGKILLed at any phase of a live clone, a
 * checkpoint, a rollback or a pattern's commit leaves nothing that `cleanup`
 * does not roll back. The kill is deterministic: TFORK_FAULT=kill@POINT makes
 * the CLI SIGKILL itself at that point (right after starting the tool of that
 * phase, which then goes on alone, as it does after a kill from outside).
 *
 * After `cleanup`: the source runs and is thawed, no clone, process, cgroup,
 * mount, subvolume, staging directory, checkpoint half or journal record of
 * the operation is left, and every complete checkpoint is listed and restorable.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, engineGate, exec, leaks, newLeaks, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { COUNTER, count, idOf, rm, sleep, stateOf } from '../helpers/workloads.js';
import { isFrozen } from '../../src/drivers/freezer.js';
import { layout } from '../../src/drivers/layout.js';
import { journalDir, type OpRecord } from '../../src/core/journal.js';
import { conmonsByContainer, containerCgroups, cgroupParents } from '../../src/drivers/cgroups.js';
import { generationOf } from '../../src/drivers/commit-ledger.js';

const skip = await engineGate('crash consistency');
const l = layout();

/** Journal records written by a process (the killed CLI). */
function recordsOf(pid: number): OpRecord[] {
  if (!existsSync(journalDir(l))) return [];
  return readdirSync(journalDir(l))
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(path.join(journalDir(l), f), 'utf8')) as OpRecord)
    .filter((r) => Number(r.owner.split(' ')[0]) === pid);
}

/** Run the CLI with a crash point; returns its pid and how it ended. */
function crashAt(point: string, args: string[]): Promise<{ pid: number; signal: string | null; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../bin/podman-tfork.js'), ...args], {
      env: { ...process.env, TFORK_FAULT: `kill@${point}` },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ pid: child.pid!, signal, code, stderr }));
  });
}

async function cleanup(): Promise<{ items: { kind: string; path: string; removed: boolean; recovery?: { notes: string[]; killed: unknown[] } }[] }> {
  const r = await cli(['cleanup', '--format', 'json']);
  const out = r.stdout.startsWith('{') ? JSON.parse(r.stdout) : { items: [] };
  const failed = (out.items as { error?: string }[]).filter((i) => i.error);
  expect(r.exitCode, `${JSON.stringify(failed, null, 1)}\n${r.stderr}`).toBe(0);
  return out;
}

/** Nothing of these containers is left: no container, conmon, cgroup or mount. */
async function gone(ids: string[], names: string[]): Promise<void> {
  const all = (await podman().run(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n');
  for (const n of names) expect(all, n).not.toContain(n);
  const cg = containerCgroups();
  const conmons = conmonsByContainer();
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  for (const id of ids) {
    expect(cg.get(id) ?? [], `cgroups of ${id}`).toEqual([]);
    expect(conmons.get(id) ?? [], `conmon of ${id}`).toEqual([]);
    expect(mounts.includes(id), `mounts of ${id}`).toBe(false);
  }
}

async function runsAndThawed(name: string): Promise<void> {
  expect(await stateOf(name)).toBe('running');
  // No dump's images (or their link) left in its bundle.
  const bundle = (await podman().run(['inspect', '-f', '{{.StaticDir}}', name])).stdout.trim();
  expect(existsSync(path.join(bundle, 'checkpoint')), `${bundle}/checkpoint`).toBe(false);
  expect(isFrozen(await idOf(name))).toBe(false);
  const v = await count(name);
  await sleep(300);
  expect(await count(name)).toBeGreaterThan(v);
}

const containerIds = (recs: OpRecord[]) => recs.flatMap((r) => Object.values(r.entries).flatMap((e) => (e.kind === 'container' && e.id ? [e.id] : [])));

describe.skipIf(skip)('a killed live clone leaves nothing after cleanup', () => {
  let src = '';
  beforeAll(async () => {
    src = await startContainer('localhost/tfork/tiny', COUNTER);
    await waitFor(src, ['test', '-s', '/tmp/count']);
  });
  afterAll(sweep);

  for (const [point, extra] of [
    ['validate', []],
    ['dump', []],
    ['thaw', []],
    ['register:1', []],
    ['place:1', []],
    ['restore:1', []],
    ['persist', ['--persistent=sync']],
  ] as [string, string[]][]) {
    it(`killed at ${point}`, async () => {
      const before = await leaks();
      const base = `${src}-k${point.replace(':', '')}`;
      const names = [0, 1, 2].map((i) => `${base}-${i}`);
      const r = await crashAt(point, ['container', 'clone', '--live', '--copies=3', '--name', base, ...extra, src]);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      const recs = recordsOf(r.pid);
      expect(recs.map((x) => x.op)).toEqual(['clone']);
      // The journal names what it made before it made it: every clone podman now has is in it.
      const made = (await podman().run(['ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.Names}}'])).stdout.split('\n').filter((x) => names.some((n) => x.endsWith(` ${n}`)));
      const journaled = Object.values(recs[0]!.entries).flatMap((e) => (e.kind === 'container' ? [e.name] : []));
      for (const m of made) expect(journaled).toContain(m.split(' ')[1]);
      const ids = [...new Set([...containerIds(recs), ...made.map((m) => m.split(' ')[0]!)])];

      const c = await cleanup();
      expect(c.items.find((i) => i.kind === 'operation')?.removed).toBe(true);
      expect(recordsOf(r.pid)).toEqual([]);
      await gone(ids, names);
      await runsAndThawed(src);
      expect(await newLeaks(before)).toEqual([]);
      // A durable checkpoint the command had started is gone, status record included.
      if (existsSync(l.checkpoints)) expect(readdirSync(l.checkpoints).filter((f) => f.startsWith(`${src}-`))).toEqual([]);
    });
  }

  it('the next clone of the same source rolls a dead clone back first', async () => {
    const base = `${src}-next`;
    const r = await crashAt('restore:0', ['container', 'clone', '--live', '--copies=2', '--name', base, src]);
    expect(r.signal).toBe('SIGKILL');
    expect(recordsOf(r.pid).length).toBe(1);
    const again = await cli(['container', 'clone', '--live', '--copies=2', '--name', base, src]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(recordsOf(r.pid)).toEqual([]);
    try {
      for (const n of [`${base}-0`, `${base}-1`]) expect(await stateOf(n)).toBe('running');
    } finally {
      await rm(`${base}-0`, `${base}-1`);
    }
  });

  it('cleanup --dry-run lists a dead operation and what it would do, and changes nothing', async () => {
    const base = `${src}-dry`;
    const r = await crashAt('place:0', ['container', 'clone', '--live', '--name', base, src]);
    expect(r.signal).toBe('SIGKILL');
    const dry = await cli(['cleanup', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`would roll back operation .*clone of ${src}`));
    expect(dry.stdout).toContain(`remove container ${base}`);
    expect(recordsOf(r.pid).length).toBe(1);
    expect((await podman().run(['container', 'exists', base], { reject: false })).exitCode).toBe(0);
    await cleanup();
    expect((await podman().run(['container', 'exists', base], { reject: false })).exitCode).not.toBe(0);
  });
});

describe.skipIf(skip)('a killed checkpoint or rollback leaves nothing after cleanup; complete checkpoints stay', () => {
  let src = '';
  let base = '';
  beforeAll(async () => {
    src = await startContainer('localhost/tfork/tiny', COUNTER);
    await waitFor(src, ['test', '-s', '/tmp/count']);
    await exec(src, ['sh', '-c', 'echo base > /tmp/f']);
    const r = await cli(['checkpoint', 'create', '--format', 'json', src]);
    expect(r.exitCode, r.stderr).toBe(0);
    base = JSON.parse(r.stdout).id;
  });
  afterAll(async () => {
    await cli(['checkpoint', 'rm', ...(await listed())]);
    await sweep();
  });
  const listed = async () => (JSON.parse((await cli(['checkpoint', 'list', '--format', 'json', src])).stdout) as { id: string }[]).map((c) => c.id);

  for (const point of ['dump', 'store']) {
    it(`checkpoint create killed at ${point}`, async () => {
      const before = await leaks();
      const had = await listed();
      const r = await crashAt(point, ['checkpoint', 'create', src]);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      expect(recordsOf(r.pid).map((x) => x.op)).toEqual(['checkpoint']);
      await cleanup();
      expect(recordsOf(r.pid)).toEqual([]);
      await runsAndThawed(src);
      // No half in the store: what is listed is what was there, each with its record (a pruned
      // checkpoint that a later one's images still point into keeps its record as held.json).
      expect(await listed()).toEqual(had);
      const recorded = (d: string) => ['meta.json', 'held.json'].some((f) => existsSync(path.join(l.checkpointStore, d, f)));
      for (const d of readdirSync(l.checkpointStore).filter((d) => d.startsWith('ck-'))) expect(recorded(d), d).toBe(true);
      expect(await newLeaks(before)).toEqual([]);
    });
  }

  it('checkpoint rm killed half way: unlisted at once, and cleanup removes the rest', async () => {
    const before = await leaks();
    const r0 = await cli(['checkpoint', 'create', '--format', 'json', src]);
    expect(r0.exitCode, r0.stderr).toBe(0);
    const id = JSON.parse(r0.stdout).id as string;
    const r = await crashAt('checkpoint-rm', ['checkpoint', 'rm', id]);
    expect(r.signal, r.stderr).toBe('SIGKILL');
    expect(await listed()).not.toContain(id);
    expect(await listed()).toContain(base);
    const halves = readdirSync(l.checkpointStore).filter((d) => d.startsWith(`.rm-${id}-`));
    expect(halves.length).toBe(1);
    const dry = await cli(['cleanup', '--dry-run']);
    expect(dry.stdout).toContain(`would remove staging ${path.join(l.checkpointStore, halves[0]!)}`);
    await cleanup();
    expect(readdirSync(l.checkpointStore).filter((d) => d.includes(id))).toEqual([]);
    expect(await newLeaks(before)).toEqual([]);
  });

  for (const point of ['stop', 'place', 'restore:rollback']) {
    it(`rollback killed at ${point}: the container is left as cleanup says, and a rollback brings it back`, async () => {
      const before = await leaks();
      await exec(src, ['sh', '-c', 'echo changed > /tmp/f']);
      const r = await crashAt(point, ['rollback', src, base]);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      expect(recordsOf(r.pid).map((x) => x.op)).toEqual(['rollback']);
      const c = await cleanup();
      const op = c.items.find((i) => i.kind === 'operation');
      const note = op?.recovery?.notes.join('\n') ?? '';
      const state = await stateOf(src);
      if (state === 'running') expect(note).toMatch(/rollback completed/);
      else {
        expect(state).toBe('exited');
        expect(note).toContain(`retry: podman-tfork rollback ${src} ${base}`);
      }
      expect(recordsOf(r.pid)).toEqual([]);
      expect(await newLeaks(before)).toEqual([]);
      // What the note says works, and the complete checkpoint restores.
      const again = await cli(['rollback', src, base]);
      expect(again.exitCode, again.stderr).toBe(0);
      expect((await exec(src, ['cat', '/tmp/f'])).stdout.trim()).toBe('base');
      await runsAndThawed(src);
      expect(await listed()).toContain(base);
    });
  }

  it('the next rollback of the same container rolls a dead one back first', async () => {
    const r = await crashAt('place', ['rollback', src, base]);
    expect(r.signal).toBe('SIGKILL');
    expect(recordsOf(r.pid).length).toBe(1);
    const again = await cli(['rollback', src, base]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(recordsOf(r.pid)).toEqual([]);
    await runsAndThawed(src);
  });
});

describe.skipIf(skip)("a killed pattern run (forks, commit) leaves nothing after cleanup", () => {
  let src = '';
  beforeAll(async () => {
    src = await startContainer('localhost/tfork/tiny', COUNTER);
    await waitFor(src, ['test', '-s', '/tmp/count']);
  });
  afterAll(sweep);
  const forksLeft = async () => (await podman().run(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter((n) => n.startsWith(`${src}-`));

  for (const point of ['restore:1', 'commit:claimed', 'dump', 'store', 'restore:rollback']) {
    it(`speculate killed at ${point}`, async () => {
      const before = await leaks();
      const id = await idOf(src);
      const generation = generationOf(l, id);
      const r = await crashAt(point, ['speculate', src, '-c', 'echo won > /tmp/spec', '-c', 'sleep 1000']);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      expect(recordsOf(r.pid).map((x) => x.op)).toContain('pattern');
      const forks = (await podman().run(['ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.Names}}'])).stdout.split('\n').filter((x) => x.includes(` ${src}-`));
      const c = await cleanup();
      expect(c.items.filter((i) => i.kind === 'operation').every((i) => i.removed)).toBe(true);
      expect(recordsOf(r.pid)).toEqual([]);
      expect(await forksLeft()).toEqual([]);
      await gone(forks.map((f) => f.split(' ')[0]!), []);
      // The source runs: either the commit reached it (and the claim stays) or it did not (and the claim is given back).
      const notes = c.items.flatMap((i) => i.recovery?.notes ?? []).join('\n');
      if ((await stateOf(src)) !== 'running') {
        expect(notes).toMatch(/retry: podman-tfork rollback|finishes it/);
        const ck = /rollback \S+ (ck-[a-z0-9-]+)/.exec(notes)![1]!;
        expect((await cli(['rollback', src, ck])).exitCode).toBe(0);
        await cli(['checkpoint', 'rm', ck]);
      }
      await runsAndThawed(src);
      const committed = (await exec(src, ['sh', '-c', 'cat /tmp/spec 2>/dev/null || true'])).stdout.trim() === 'won';
      expect(generationOf(l, id)).toBe(committed ? generation + 1 : generation);
      expect(await newLeaks(before)).toEqual([]);
      await exec(src, ['rm', '-f', '/tmp/spec']);
    });
  }
});

describe.skipIf(skip)('processes left in the cgroup of a container podman does not know', () => {
  it('are killed and reported; those of known containers are never touched', async () => {
    const src = await startContainer('localhost/tfork/tiny', COUNTER);
    try {
      await waitFor(src, ['test', '-s', '/tmp/count']);
      // An orphan as a removed half-made clone leaves it: a process in libpod_parent/libpod-<id of no container>.
      const fake = 'f'.repeat(48) + Date.now().toString(16).padStart(16, '0');
      const parent = cgroupParents().find((p) => p.includes('/pids/')) ?? cgroupParents()[0]!;
      const dir = path.join(parent, `libpod-${fake}`);
      mkdirSync(dir);
      const orphan = spawn('/bin/sleep', ['1000'], { stdio: 'ignore', detached: true });
      orphan.unref();
      writeFileSync(path.join(dir, 'cgroup.procs'), String(orphan.pid));
      const dry = await cli(['cleanup', '--dry-run']);
      expect(dry.stdout).toContain(`would kill process ${dir}`);
      expect(dry.stdout).toContain(`kill ${orphan.pid} sleep`);
      const c = await cleanup();
      const item = c.items.find((i) => i.kind === 'process' && i.path === dir) as { killed: { pid: number; comm: string }[] } | undefined;
      expect(item?.killed).toEqual([{ pid: orphan.pid, comm: 'sleep' }]);
      await sleep(100);
      expect(existsSync(`/proc/${orphan.pid}`)).toBe(false);
      expect(existsSync(dir)).toBe(false);
      // The known container's processes run on.
      await runsAndThawed(src);
    } finally {
      await rm(src);
    }
  });
});

describe.skipIf(skip)('a killed durable checkpoint writer', () => {
  it('is reported failed, on disk too after cleanup, and leaves no part, log or staging', async () => {
    const src = await startContainer('localhost/tfork/tiny', COUNTER);
    try {
      await waitFor(src, ['test', '-s', '/tmp/count']);
      const before = await leaks();
      // The detached writer inherits TFORK_FAULT and kills itself while writing the archive; the command returns first.
      const r = await cli(['container', 'clone', '--live', '--persistent', '--name', `${src}-w`, '--format', 'json', src], { env: { TFORK_FAULT: 'kill@persist-writer' } });
      expect(r.exitCode, r.stderr).toBe(0);
      const id = JSON.parse(r.stdout).persistent.id as string;
      const w = await cli(['persist', 'wait', id]);
      expect(w.exitCode).not.toBe(0);
      await cleanup();
      const status = JSON.parse(readFileSync(path.join(l.checkpoints, `${id}.json`), 'utf8'));
      expect(status).toMatchObject({ state: 'failed' });
      expect(status.finishedAt).toBeTruthy();
      expect(readdirSync(l.checkpoints).filter((f) => f.includes(id) && !f.endsWith('.json'))).toEqual([]);
      expect(readdirSync(l.staging).filter((d) => d.includes(id))).toEqual([]);
      expect(await newLeaks(before)).toEqual([]);
      expect((await cli(['persist', 'rm', id])).exitCode).toBe(0);
      await runsAndThawed(src);
      expect(await stateOf(`${src}-w`)).toBe('running');
    } finally {
      await rm(`${src}-w`, src);
    }
  });
});
