/**
 * A copy's restore through the podman service: asked once more only when
 * podman's own check of CRIU's version failed (before podman did anything),
 * and the bundle left without the per-restore files either way. Driven with a
 * stand-in service that answers from a list.
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { restoreContainer } from '../../src/core/state/place.js';
import type { Podman } from '../../src/drivers/podman.js';

const VERSION = { status: 500, body: JSON.stringify({ cause: 'unknown', message: 'checkpoint/restore requires at least CRIU 31100', response: 500 }) };
const CRIU_FAILED = { status: 500, body: JSON.stringify({ cause: 'unknown', message: 'crun: CRIU restore failed', response: 500 }) };
const OK = { status: 200, body: '{}' };

function target(answers: { status: number; body: string }[]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-restore-'));
  const bundle = path.join(dir, 'bundle');
  const links = path.join(dir, 'links');
  mkdirSync(bundle);
  mkdirSync(links);
  // As placeState leaves it: the bundle's checkpoint links to the copy's directory of images.
  symlinkSync(links, path.join(bundle, 'checkpoint'));
  const asked: string[] = [];
  const podman = {
    mode: 'rest',
    api: {
      async call(method: string, url: string) {
        asked.push(`${method} ${url}`);
        // CRIU's log lands beside the images, through the bundle's link.
        expect(lstatSync(path.join(bundle, 'restore.log')).isSymbolicLink()).toBe(true);
        return answers.shift()!;
      },
    },
  } as unknown as Podman;
  return { podman, asked, t: { id: 'c0ffee', bundle, rootfs: path.join(dir, 'rootfs') }, o: { scratch: dir, tag: '0', tcpClose: false }, bundle, links };
}

describe("a copy's restore", () => {
  it("is asked once more when podman's version check of CRIU failed", async () => {
    const { podman, asked, t, o, bundle, links } = target([VERSION, OK]);
    await restoreContainer(podman, t, o);
    expect(asked).toEqual(['POST /containers/c0ffee/restore?fileLocks=true', 'POST /containers/c0ffee/restore?fileLocks=true']);
    for (const f of ['restore.log', 'checkpoint', 'tfork-criu.conf']) expect(existsSync(path.join(bundle, f))).toBe(false);
    expect(existsSync(links)).toBe(false);
  });

  it('fails with podman\'s words when the check fails again', async () => {
    const { podman, asked, t, o } = target([VERSION, VERSION]);
    await expect(restoreContainer(podman, t, o)).rejects.toThrow(/requires at least CRIU 31100/);
    expect(asked.length).toBe(2);
  });

  it('is not asked again after any other failure', async () => {
    const { podman, asked, t, o, bundle } = target([CRIU_FAILED, OK]);
    await expect(restoreContainer(podman, t, o)).rejects.toThrow(/CRIU restore failed/);
    expect(asked.length).toBe(1);
    expect(existsSync(path.join(bundle, 'restore.log'))).toBe(false);
  });
});
