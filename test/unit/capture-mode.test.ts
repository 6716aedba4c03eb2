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

  it('captures in the background by default where the host and the CRIU allow it', () => {
    writeFileSync(criu, 'ELF ... --background-pages ... (again)');
    utimesSync(criu, new Date(), new Date(Date.now() + 7000));
    const auto = [captureMode(l, {}), captureMode(l, { TFORK_CAPTURE: 'auto' }), captureMode(l, { TFORK_CAPTURE: 'background' })];
    if (!existsSync(USERFAULTFD_DEVICE)) {
      for (const m of auto) expect(m).toMatchObject({ mode: 'frozen', reason: expect.stringMatching(/\/dev\/userfaultfd/) });
      return;
    }
    for (const m of auto) expect(m).toMatchObject({ mode: 'background', reason: expect.stringMatching(/written after the source runs on/) });
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
