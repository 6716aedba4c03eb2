import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { captureMode, criuHasBackgroundPages, USERFAULTFD_DEVICE } from '../../src/core/state/capture-mode.js';
import { layout } from '../../src/drivers/layout.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'tfork-capture-mode-'));
const l = layout({ TFORK_ROOT: root });
const criu = path.join(l.prefix, 'sbin', 'criu');
mkdirSync(path.dirname(criu), { recursive: true });
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('capture mode', () => {
  it('knows a CRIU by the option in its binary, and remembers the answer per build', () => {
    writeFileSync(criu, 'ELF ... --lazy-pages ... --background-pages ...');
    expect(criuHasBackgroundPages(l)).toBe(true);
    writeFileSync(criu, 'ELF ... --lazy-pages ... (a stock build, longer than the first one)');
    utimesSync(criu, new Date(), new Date(Date.now() + 5000));
    expect(criuHasBackgroundPages(l)).toBe(false);
  });

  it('by default protects only sources large enough to gain from it', () => {
    writeFileSync(criu, 'ELF ... --background-pages ... (again)');
    utimesSync(criu, new Date(), new Date(Date.now() + 7000));
    const small = captureMode(l, {}, 100 * 2 ** 20);
    const forced = captureMode(l, { TFORK_CAPTURE: 'background' }, 100 * 2 ** 20);
    const large = captureMode(l, { TFORK_CAPTURE: 'auto' }, 1024 * 2 ** 20);
    if (!existsSync(USERFAULTFD_DEVICE)) {
      for (const m of [small, forced, large]) expect(m).toMatchObject({ mode: 'frozen', reason: expect.stringMatching(/\/dev\/userfaultfd/) });
      return;
    }
    expect(small).toMatchObject({ mode: 'frozen', reason: expect.stringMatching(/holds 100 MiB, under 256 MiB/) });
    expect(forced.mode).toBe('background');
    expect(large.mode).toBe('background');
  });

  it('falls back to the stock dump when asked, or with a CRIU that lacks the option, and says why', () => {
    expect(captureMode(l, { TFORK_CAPTURE: 'frozen' })).toMatchObject({ mode: 'frozen', reason: expect.stringMatching(/TFORK_CAPTURE=frozen/) });
    expect(captureMode(l, { TFORK_CAPTURE: 'sometimes' })).toMatchObject({ mode: 'frozen', reason: expect.stringMatching(/not one of auto, background, frozen/) });
    writeFileSync(criu, 'ELF stock');
    utimesSync(criu, new Date(), new Date(Date.now() + 10_000));
    const stock = captureMode(l, {});
    expect(stock.mode).toBe('frozen');
    expect(stock.reason).toMatch(/lacks --background-pages|no \/dev\/userfaultfd/);
  });
});
