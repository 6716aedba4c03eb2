import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLimits, parseMountinfo } from '../../src/drivers/host.js';
import { parseSubvolumeList } from '../../src/drivers/btrfs.js';
import { parseCriuVersion } from '../../src/drivers/criu.js';
import { computeStamp, StampStore } from '../../src/core/stamps.js';
import { importChanges, parseImageDef } from '../../src/core/setup/images.js';
import { frozenCopiesKiB, prefaultMiB } from '../../src/core/state/capture.js';

describe('tool output parsers', () => {
  it('reads /proc/<pid>/limits', () => {
    const text = `Limit                     Soft Limit           Hard Limit           Units
Max processes             96365                96365                processes
Max open files            1024                 20000                files
Max locked memory         unlimited            unlimited            bytes
`;
    const l = parseLimits(text);
    expect(l['Max processes']).toEqual({ soft: 96365, hard: 96365 });
    expect(l['Max open files']).toEqual({ soft: 1024, hard: 20000 });
    expect(l['Max locked memory']!.hard).toBe(Number.MAX_SAFE_INTEGER);
  });
  it('reads mountinfo, unescaping paths', () => {
    const m = parseMountinfo('36 25 0:32 / /var/lib/my\\040dir rw,relatime shared:1 - btrfs /dev/loop0 rw\n');
    expect(m).toEqual([{ target: '/var/lib/my dir', fstype: 'btrfs', source: '/dev/loop0', options: 'rw,relatime' }]);
  });
  it('reads btrfs subvolume list', () => {
    expect(parseSubvolumeList('ID 256 gen 9 top level 5 path btrfs/subvolumes/abc\nID 257 gen 10 top level 5 path tfork/staging/op1/root\n')).toEqual([
      'btrfs/subvolumes/abc',
      'tfork/staging/op1/root',
    ]);
  });
  it('reads criu --version', () => {
    expect(parseCriuVersion('Version: 4.1.1\n')).toBe('4.1.1');
    expect(parseCriuVersion('garbage')).toBeUndefined();
  });
});

describe('stamps', () => {
  it('change when any input changes and persist', () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'stamp-'));
    mkdirSync(path.join(d, 'img'));
    writeFileSync(path.join(d, 'img', 'a'), '1');
    const s1 = computeStamp(['x', { dir: path.join(d, 'img') }]);
    expect(computeStamp(['x', { dir: path.join(d, 'img') }])).toBe(s1);
    writeFileSync(path.join(d, 'img', 'a'), '2');
    expect(computeStamp(['x', { dir: path.join(d, 'img') }])).not.toBe(s1);
    expect(computeStamp(['y', { dir: path.join(d, 'img') }])).not.toBe(computeStamp(['x', { dir: path.join(d, 'img') }]));
    const store = new StampStore(path.join(d, 'stamps'));
    expect(store.matches('criu', s1)).toBe(false);
    store.set('criu', s1);
    expect(store.matches('criu', s1)).toBe(true);
  });
});

describe('image definitions', () => {
  it('parse and turn into podman import changes', () => {
    const d = parseImageDef('desktop', '/x', 'base: debootstrap\npackages: [xvfb]\nenv: {DISPLAY: ":0"}\nexpose: [5900]\ncmd: ["/bin/run"]\n');
    expect(d.suite).toBe('bookworm');
    expect(importChanges(d)).toEqual(['ENV DISPLAY=:0', 'EXPOSE 5900', 'LABEL io.podman-tfork.image=desktop', 'CMD ["/bin/run"]']);
    expect(() => parseImageDef('bad', '/x', 'base: docker\ncmd: [a]\n')).toThrow(/base must be/);
  });
});

describe("a background capture's memory touched before the freeze", () => {
  const line = (pid: number, kib: number) =>
    `(00.063157) bg-pages: ${pid}: 6 ranges protected, ${kib} KiB outside them copied while frozen, 0 KiB shared copy-on-write left in the pipes, 32 KiB of read-only file memory left in the pipes and watched`;

  it("sums what every task's line says was copied while frozen", () => {
    expect(frozenCopiesKiB([line(1, 32), '(00.07) bg-pages: Writing pages of 1 in the background', line(2, 400), line(3, 936)].join('\n'))).toBe(1368);
    expect(frozenCopiesKiB(line(1, 0))).toBe(0);
    // A frozen dump, or a CRIU without the line: nothing to go by.
    expect(frozenCopiesKiB('(00.09) Dumping finished successfully')).toBeUndefined();
  });

  it("is sized from the container's previous capture, with a quarter to spare", () => {
    const bundle = mkdtempSync(path.join(os.tmpdir(), 'tfork-bundle-'));
    expect(prefaultMiB(bundle)).toBe(16);
    const hint = path.join(bundle, 'tfork-frozen-copies');
    for (const [kib, mib] of [[1368, 2], [0, 1], [12 * 1024, 15], [4096 * 1024, 256]] as const) {
      writeFileSync(hint, `${kib}\n`);
      expect(prefaultMiB(bundle)).toBe(mib);
    }
    writeFileSync(hint, 'garbage');
    expect(prefaultMiB(bundle)).toBe(16);
  });
});
