/**
 * The copies' spec is kept per source container: asked of podman once, then
 * read back while podman and the container's configuration are the same.
 * Driven with a stand-in podman that counts its `generate spec` runs.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cloneSpec } from '../../src/drivers/containers.js';
import type { Podman } from '../../src/drivers/podman.js';

function fakePodman() {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tfork-spec-'));
  const layout = { runDir: path.join(root, 'run'), graphroot: path.join(root, 'graph') };
  const calls: string[][] = [];
  const podman = {
    mode: 'rest',
    layout,
    bin: process.execPath,
    async run(args: string[]) {
      calls.push(args);
      return { exitCode: 0, stdout: JSON.stringify({ name: 'src', image: 'localhost/tfork/tiny', asked: calls.length }), stderr: '' };
    },
  } as unknown as Podman;
  const exists = (id: string) => mkdirSync(path.join(layout.graphroot, 'btrfs-containers', id), { recursive: true });
  return { podman, calls, layout, exists };
}

describe('the copies spec of a source', () => {
  it('is asked of podman once per configuration, and read back after', async () => {
    const { podman, calls, exists } = fakePodman();
    exists('aaa');
    const first = await cloneSpec(podman, { id: 'aaa', configDigest: 'd1' });
    const again = await cloneSpec(podman, { id: 'aaa', configDigest: 'd1' });
    expect(calls).toEqual([['generate', 'spec', 'aaa']]);
    expect(again).toEqual(first);
    // `podman update` or `podman network connect` changed it: asked again.
    const changed = await cloneSpec(podman, { id: 'aaa', configDigest: 'd2' });
    expect(calls.length).toBe(2);
    expect(changed!.spec.asked).toBe(2);
  });

  it('drops the entries of containers that are gone when it writes another', async () => {
    const { podman, layout, exists } = fakePodman();
    exists('aaa');
    exists('bbb');
    await cloneSpec(podman, { id: 'aaa', configDigest: 'd' });
    const dir = path.join(layout.runDir, 'specs');
    expect(readdirSync(dir)).toEqual(['aaa.json']);
    rmSync(path.join(layout.graphroot, 'btrfs-containers', 'aaa'), { recursive: true });
    await cloneSpec(podman, { id: 'bbb', configDigest: 'd' });
    expect(readdirSync(dir)).toEqual(['bbb.json']);
    expect(existsSync(path.join(dir, 'aaa.json'))).toBe(false);
  });

  it('is not used through podman processes (TFORK_PODMAN_API=cli registers with podman container clone)', async () => {
    const { podman, calls } = fakePodman();
    (podman as { mode: string }).mode = 'cli';
    expect(await cloneSpec(podman, { id: 'aaa', configDigest: 'd' })).toBeUndefined();
    expect(calls).toEqual([]);
  });
});
