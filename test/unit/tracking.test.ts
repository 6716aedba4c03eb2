/**
 * Incremental checkpoints, the engine's side (checkpoint/tracking.ts and the
 * store): when a checkpoint may be written against another, and how the store
 * keeps the images a chain stands on. The CRIU side runs in
 * test/integration/incremental.test.ts.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HOLDER_COMM, kernelHasWpAsync, MAX_CHAIN, planTracking, readBaseline, sweepRemovedTracking, TRACK_AFTER_BACKGROUND_TEXT, trackDir, trackingSupport, tracksAfterBackground, writeBaseline } from '../../src/core/checkpoint/tracking.js';
import { CRIU, installedBinary } from '../../src/core/setup/toolchain.js';
import { chainLength, listStored, removeStored, storeCheckpoint } from '../../src/core/checkpoint/store.js';
import type { CapturedState } from '../../src/core/state/capture.js';
import { layout } from '../../src/drivers/layout.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'tfork-tracking-'));
const l = layout({ TFORK_ROOT: root, TFORK_RUN_DIR: path.join(root, 'run') });
afterAll(() => rmSync(root, { recursive: true, force: true }));

const CONTAINER = { id: 'c'.repeat(64), name: 'box' };

/** A stored checkpoint with a small pages file, written against `imagesParent` if given. */
function store(id: string, imagesParent?: string): void {
  const dir = path.join(l.staging, `capture-${id}`);
  const images = path.join(dir, 'images');
  mkdirSync(images, { recursive: true });
  writeFileSync(path.join(images, 'pages-1.img'), 'x'.repeat(1000));
  const state: CapturedState = {
    dir,
    images,
    rootfs: path.join(dir, 'rootfs'),
    config: path.join(dir, 'config.json'),
    source: { id: CONTAINER.id, name: CONTAINER.name, rootfs: '/nowhere', image: 'img' },
    timings: { dumpMs: 1 },
  };
  storeCheckpoint(l, state, { id, container: CONTAINER, image: 'img', createdAt: new Date().toISOString(), timings: { dumpMs: 1, totalMs: 1 }, imagesParent });
}

describe('incremental checkpoints: when and against what', () => {
  it('starts a chain in the background only with a CRIU whose help says it arms the tracking after (patch 0023), read again when the binary changes', () => {
    const bin = installedBinary(l, CRIU);
    mkdirSync(path.dirname(bin), { recursive: true });
    writeFileSync(bin, 'criu --track-written DIR --background-pages');
    expect(tracksAfterBackground(l)).toBe(false);
    writeFileSync(bin, `criu --track-written DIR --background-pages; with --background-pages it is armed\n ${TRACK_AFTER_BACKGROUND_TEXT}\n`);
    expect(tracksAfterBackground(l)).toBe(true);
    rmSync(bin);
    expect(tracksAfterBackground(l)).toBe(false);
  });

  it('needs Linux 6.7 for PAGEMAP_SCAN and asynchronous write-protection', () => {
    expect(kernelHasWpAsync('6.6.30-amd64')).toBe(false);
    expect(kernelHasWpAsync('6.7.0')).toBe(true);
    expect(kernelHasWpAsync('6.18.44-fc-v669')).toBe(true);
    expect(kernelHasWpAsync('7.0.1')).toBe(true);
    expect(trackingSupport(l, { TFORK_INCREMENTAL: '0' })).toMatchObject({ ok: false, reason: expect.stringMatching(/TFORK_INCREMENTAL=0/) });
    expect(trackingSupport(l, {}, '6.1.0-56-amd64')).toMatchObject({ ok: false });
    // No CRIU is installed under this root: said as such.
    const r = trackingSupport(l, {}, '6.18.0');
    expect(r.ok).toBe(false);
    if (existsSync('/dev/userfaultfd')) expect(r.reason).toMatch(/lacks --track-written/);
  });

  it('is full unless the baseline is the head, still stored, short of the chain limit, and its holder runs', () => {
    const dir = trackDir(l, CONTAINER.id);
    expect(path.basename(dir)).toHaveLength(12);
    store('ck-a');
    expect(planTracking(l, CONTAINER.id, 'ck-a', () => 1).reason).toMatch(/^full: the first/);
    writeBaseline(dir, 'ck-a');
    // writeBaseline keeps no baseline without a live holder.
    expect(readBaseline(dir)).toBeUndefined();
    // No holder runs here (no tracker.pid): each case below is decided before that, until the last.
    writeFileSync(path.join(dir, 'baseline'), 'ck-a\n');
    expect(planTracking(l, CONTAINER.id, 'ck-other', () => 1).reason).toMatch(/not from ck-a/);
    expect(readBaseline(dir), 'planning drops the baseline until the new checkpoint is stored').toBeUndefined();
    writeFileSync(path.join(dir, 'baseline'), 'ck-a\n');
    expect(planTracking(l, CONTAINER.id, 'ck-a', () => undefined).reason).toMatch(/ck-a is gone/);
    writeFileSync(path.join(dir, 'baseline'), 'ck-a\n');
    const p = planTracking(l, CONTAINER.id, 'ck-a', () => 1);
    expect(p.parent).toBeUndefined();
    expect(p.reason).toMatch(/holder is gone/);
    expect(MAX_CHAIN).toBeGreaterThan(1);
  });

  it('keeps the images a chain stands on until the last checkpoint on them goes', async () => {
    store('ck-b', 'ck-a');
    store('ck-c', 'ck-b');
    expect(chainLength(l, 'ck-c')).toBe(3);
    await removeStored(l, 'ck-a');
    await removeStored(l, 'ck-b');
    expect(listStored(l).map((c) => c.id)).toEqual(['ck-c']);
    expect(chainLength(l, 'ck-b')).toBeUndefined();
    expect(existsSync(path.join(l.checkpointStore, 'ck-a', 'images', 'pages-1.img'))).toBe(true);
    expect(existsSync(path.join(l.checkpointStore, 'ck-b', 'images', 'pages-1.img'))).toBe(true);
    await removeStored(l, 'ck-c');
    for (const id of ['ck-a', 'ck-b', 'ck-c']) expect(existsSync(path.join(l.checkpointStore, id)), id).toBe(false);
  });

  it('sweeps the tracking of removed containers, but not of live ones nor one whose holder still runs', async () => {
    const live = 'a'.repeat(64);
    const gone = 'b'.repeat(64);
    const held = 'd'.repeat(64);
    mkdirSync(path.join(l.graphroot, 'btrfs-containers', live), { recursive: true });
    for (const id of [live, gone, held]) {
      mkdirSync(trackDir(l, id), { recursive: true });
      writeFileSync(path.join(trackDir(l, id), 'baseline'), 'ck\n');
    }
    // A process named like the holder, as CRIU's re-executed holder is.
    const bin = path.join(root, HOLDER_COMM);
    copyFileSync('/bin/sleep', bin);
    const holder = spawn(bin, ['30'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      writeFileSync(path.join(trackDir(l, held), 'tracker.pid'), `${holder.pid}\n`);
      sweepRemovedTracking(l);
      expect(existsSync(trackDir(l, live))).toBe(true);
      expect(existsSync(trackDir(l, held))).toBe(true);
      expect(existsSync(trackDir(l, gone))).toBe(false);
      // A checkpoint planning its own tracking sweeps too.
      mkdirSync(trackDir(l, gone), { recursive: true });
      planTracking(l, live, undefined, () => undefined);
      expect(existsSync(trackDir(l, gone))).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
