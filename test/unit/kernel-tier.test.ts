import { describe, expect, it } from 'vitest';
import { PROJECT_MODULES } from '../../src/core/probe.js';
import { cloneTier, graftAvailable } from '../../src/core/clone/tier.js';
import { layout } from '../../src/drivers/layout.js';
import { modulesSupported } from '../../src/drivers/host.js';
import { existsSync } from 'node:fs';

describe('kernel tier', () => {
  it('names tfork_graft as the project module', () => {
    expect(PROJECT_MODULES).toEqual(['tfork_graft']);
  });
  it('is off with TFORK_GRAFT=0, saying so', () => {
    const g = graftAvailable(layout(), { TFORK_GRAFT: '0' });
    expect(g.ok).toBe(false);
    expect(g.reason).toMatch(/TFORK_GRAFT=0/);
  });
  it.skipIf(modulesSupported())('says why it is off on a kernel without loadable modules', () => {
    const g = graftAvailable(layout(), {});
    expect(g.ok).toBe(false);
    expect(g.reason).toMatch(/cannot load modules/);
    expect(g.reason).toMatch(/CONFIG_MODULES/);
    expect(g.reason).toMatch(/npm run test:kernel/);
  });
  it.skipIf(!existsSync('/dev/tfork-graft'))('is on where the module is loaded', () => {
    expect(graftAvailable(layout(), {}).ok).toBe(true);
  });
  it('grafts a live clone unless it needs the pages or the source is tracked, each with its reason', () => {
    const on = { ok: true, reason: 'loaded' };
    const plain = { persistent: false, viaImport: false, tracked: false };
    expect(cloneTier(on, plain)).toMatchObject({ level: 2, name: 'graft' });
    expect(cloneTier({ ok: false, reason: 'no module' }, plain)).toEqual({ level: 1, name: 'stock-kernel', reason: 'no module' });
    expect(cloneTier(on, { ...plain, persistent: true })).toMatchObject({ level: 1, reason: expect.stringMatching(/--persistent/) });
    expect(cloneTier(on, { ...plain, viaImport: true })).toMatchObject({ level: 1, reason: expect.stringMatching(/publishes ports/) });
    expect(cloneTier(on, { ...plain, tracked: true })).toMatchObject({ level: 1, reason: expect.stringMatching(/track its written pages/) });
  });
});

describe('kernel module setup', () => {
  it('builds from the packaged module sources against the running kernel', async () => {
    const path = await import('node:path');
    const { kernelBuildDir, moduleSource } = await import('../../src/core/setup/kernel-module.js');
    const src = moduleSource(layout());
    for (const f of ['Makefile', 'tfork_graft.c', 'include/uapi/linux/tfork_graft.h']) expect(existsSync(path.join(src, f))).toBe(true);
    expect(kernelBuildDir('6.1.0-56-amd64')).toBe('/lib/modules/6.1.0-56-amd64/build');
  });
});
