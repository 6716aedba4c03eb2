/**
 * Real apps of the osworld image live-clone: chromium with a local page open,
 * firefox-esr, a LibreOffice Writer document with typed text, the mousepad
 * editor and VLC. For each, 2 copies: every copy's screen (from its own guest
 * API) matches the source's, and typing into one copy changes only that one.
 * The image is large: it is built on demand (once, stamped) by this suite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, engineGate, exec, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { diffIn, ensureTestImage, Guest, hostPort, ipOf, waitWindow, type Decoded } from '../helpers/osworld.js';
import { sleep } from '../helpers/workloads.js';

const skip = await engineGate('osworld apps live clone');
const IMAGE = 'localhost/tfork/osworld';
const W = 1280;
const H = 800;
// An editable page: a click anywhere in it puts the caret there, and typing shows.
const PAGE = `<!doctype html><html style="height:100%"><head><title>tfork-page</title></head>
<body contenteditable="true" style="min-height:100%;margin:0;background:#fff;font:28px sans-serif"><h1 style="color:#c00">A local page</h1>
<p>typed text goes here: </p></body></html>`;

const changed = (a: Decoded, b: Decoded) => diffIn(a, b, { x: 0, y: 0, w: 0, h: 0 }).outside;

interface App {
  name: string;
  launch: string[];
  window: string;
  /** After the window shows: put the app in the state to clone (pyautogui code). */
  prepare?: string;
  settleMs: number;
}

const APPS: App[] = [
  { name: 'chromium', launch: ['chromium', '--new-window', 'file:///home/user/Desktop/page.html'], window: 'tfork-page', settleMs: 4000, prepare: "pyautogui.click(640, 500); pyautogui.write('typed in source ')" },
  { name: 'firefox-esr', launch: ['firefox', '--new-instance', 'file:///home/user/Desktop/page.html'], window: 'Mozilla Firefox', settleMs: 6000, prepare: "pyautogui.hotkey('ctrl', 'l'); pyautogui.write('file:///home/user/Desktop/page.html'); pyautogui.press('enter'); time.sleep(3); pyautogui.click(640, 500); pyautogui.write('typed in source ')" },
  { name: 'libreoffice-writer', launch: ['libreoffice', '--writer', '--norestore'], window: 'LibreOffice Writer', settleMs: 4000, prepare: "pyautogui.click(640, 450); pyautogui.write('Typed into the document before the clone. ')" },
  { name: 'mousepad', launch: ['mousepad'], window: 'Mousepad', settleMs: 2000, prepare: "pyautogui.write('Typed into the editor before the clone. ')" },
  { name: 'vlc', launch: ['vlc'], window: 'VLC media player', settleMs: 3000 },
];

describe.skipIf(skip)('osworld apps live-clone (real chromium, firefox-esr, LibreOffice, mousepad, VLC)', () => {
  beforeAll(() => ensureTestImage('osworld'), 3_600_000);
  afterAll(sweep);

  for (const app of APPS) {
    it(`${app.name}: 2 copies show the source's screen; typing into one changes only that one`, async () => {
      const src = await startContainer(IMAGE, [], { extra: ['--publish', '5000/tcp', '--env', `TFORK_SCREEN=${W}x${H}x24`, '--shm-size', '512m'] });
      const g = new Guest(`http://127.0.0.1:${await hostPort(src, 5000)}`);
      await g.ready();
      const form = new FormData();
      form.append('file_path', '/home/user/Desktop/page.html');
      form.append('file_data', new Blob([PAGE]), 'page.html');
      expect((await g.raw('/setup/upload', { method: 'POST', body: form })).status).toBe(200);
      const l = await g.postJson('/setup/launch', { command: app.launch, shell: false });
      expect(l.status, JSON.stringify(l.body)).toBe(200);
      await waitWindow(src, app.window, 120_000);
      await sleep(app.settleMs);
      if (app.prepare) {
        const pre = await g.screenshot();
        const p = await g.pyautogui(app.prepare);
        expect(p.returncode, p.error).toBe(0);
        await sleep(1500);
        // The typing shows in the source itself.
        expect(changed(pre, await g.screenshot())).toBeGreaterThan(300);
      }
      const doctor = await cli(['doctor', src]);
      expect(doctor.exitCode, doctor.stdout).toBe(0);
      // The cursor out of the way, so that screens differ only by what apps draw.
      await g.pyautogui('pyautogui.moveTo(1275, 795)');
      await sleep(500);
      const before = await g.screenshot();
      const r = await cli(['container', 'clone', '--live', '--copies=2', '--format', 'json', src]);
      expect(r.exitCode, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout);
      console.log(`${app.name}: clone 2 copies total ${Math.round(report.timings.totalMs)} ms, dump ${Math.round(report.timings.dumpMs)} ms, frozen ${Math.round(report.timings.frozenMs ?? -1)} ms`);
      const copies = report.copies as { name: string; state: string }[];
      const guests = await Promise.all(copies.map(async (c) => new Guest(`http://127.0.0.1:${await hostPort(c.name, 5000)}`)));
      for (const x of guests) await x.ready(60_000);
      await sleep(1000);
      const shots = await Promise.all(guests.map((x) => x.screenshot()));
      for (const s of shots) expect(changed(before, s) / (W * H)).toBeLessThan(0.01);
      // Typing into copy 0 only.
      const type = async () => {
        const t = await guests[0]!.pyautogui("pyautogui.write('ONLY-IN-COPY-0 ONLY-IN-COPY-0'); pyautogui.moveTo(1275, 795)");
        expect(t.returncode, t.error).toBe(0);
      };
      // A copy still busy after its restore (firefox-esr under the full suite's load) draws late: wait
      // for copy 0 to show the typing (10 s at most), then look at all three.
      const shown = async () => {
        let s = await guests[0]!.screenshot();
        for (let i = 0; i < 20 && app.name !== 'vlc' && changed(shots[0]!, s) <= 300; i++) {
          await sleep(500);
          s = await guests[0]!.screenshot();
        }
        return s;
      };
      await type();
      let s0 = await shown();
      if (app.name !== 'vlc' && changed(shots[0]!, s0) <= 300) {
        // Twice in CI (never alone, nor under two busy loops by hand) firefox-esr's copy showed nothing
        // of the typing, 10 s on: the keys went nowhere. Typed once more, said here; a copy that never
        // answers still fails below.
        console.warn(`${app.name}: copy 0 showed nothing of the typing after 10 s; typing again`);
        await type();
        s0 = await shown();
      }
      await sleep(1500);
      const [s1, sSrc] = await Promise.all([guests[1]!.screenshot(), g.screenshot()]);
      const d0 = changed(shots[0]!, s0);
      const d1 = changed(shots[1]!, s1);
      const dSrc = changed(before, sSrc);
      console.log(`${app.name}: pixels changed after typing: copy 0 ${d0}, copy 1 ${d1}, source ${dSrc}`);
      if (app.name !== 'vlc') expect(d0).toBeGreaterThan(300);
      expect(d1).toBeLessThan(Math.max(150, d0 / 10));
      expect(dSrc).toBeLessThan(Math.max(150, d0 / 10));
      if (app.name === 'chromium') {
        // The DevTools protocol answers from the host on port 9222 of a copy's own address, with the copy's page.
        const v = await fetch(`http://${await ipOf(copies[1]!.name)}:9222/json/list`, { signal: AbortSignal.timeout(10_000) });
        expect(JSON.stringify(await v.json())).toContain('tfork-page');
      }
      if (app.name === 'vlc') {
        const s = await exec(copies[1]!.name, ['curl', '-s', '-m', '10', '-u', ':password', 'http://127.0.0.1:8080/requests/status.xml']);
        expect(s.stdout).toContain('<state>');
      }
      await podman().run(['rm', '-f', '-t', '0', src, ...copies.map((c) => c.name)]);
    }, 600_000);
  }

  it('firefox-esr with its default sandbox is refused before anything freezes, naming the sandbox variables', async () => {
    const src = await startContainer(IMAGE, [], { extra: ['--env', `TFORK_SCREEN=${W}x${H}x24`] });
    await waitFor(src, ['curl', '-sf', '-m', '5', 'http://127.0.0.1:5000/platform'], 60_000);
    // Debian's firefox-esr itself, not the image's wrapper.
    await exec(src, ['curl', '-s', '-m', '20', '-X', 'POST', '-H', 'Content-Type: application/json', '-d', '{"command": ["/usr/bin/firefox-esr", "about:blank"], "shell": false}', 'http://127.0.0.1:5000/setup/launch']);
    await waitWindow(src, 'Mozilla Firefox', 120_000);
    await waitFor(src, ['sh', '-c', 'pgrep -f contentproc'], 60_000);
    const r = await cli(['container', 'clone', '--live', '--copies=2', src]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/nothing was frozen/);
    expect(r.stderr).toMatch(/firefox-esr -contentproc.*runs in nested [a-z, ]*namespaces/);
    expect(r.stderr).toContain('MOZ_DISABLE_CONTENT_SANDBOX=1');
    const names = (await podman().run(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n');
    expect(names.filter((n) => n.startsWith(`${src}-`))).toEqual([]);
  }, 300_000);

  it('/start_recording and /end_recording return an mp4 of the screen (ffmpeg x11grab)', async () => {
    const src = await startContainer(IMAGE, [], { extra: ['--publish', '5000/tcp', '--env', `TFORK_SCREEN=${W}x${H}x24`] });
    const g = new Guest(`http://127.0.0.1:${await hostPort(src, 5000)}`);
    await g.ready();
    expect((await g.raw('/start_recording', { method: 'POST' })).status).toBe(200);
    await g.pyautogui('pyautogui.moveTo(100, 100, duration=1); pyautogui.moveTo(600, 500, duration=1)');
    const r = await g.raw('/end_recording', { method: 'POST', timeoutMs: 60_000 });
    expect(r.status).toBe(200);
    const mp4 = Buffer.from(await r.arrayBuffer());
    expect(mp4.length).toBeGreaterThan(1000);
    expect(mp4.subarray(4, 8).toString('ascii')).toBe('ftyp');
  }, 300_000);
});
