/**
 * The guest HTTP API of the osworld desktop, driven from the host the way
 * OSWorld's PythonController and SetupController drive it (same paths and
 * encodings), against a real X server (the osworld-core image: Xvfb,
 * openbox, xterm, lxterminal, AT-SPI): real clicks and keys through the
 * pyautogui module, real screenshots. Then the desktop is live-cloned and
 * every clone's server answers on its own published port with its own screen.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, engineGate, exec, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { diffIn, ensureTestImage, Guest, hostPort, ipOf, waitWindow } from '../helpers/osworld.js';
import { sleep } from '../helpers/workloads.js';

const skip = await engineGate('osworld guest API');
const IMAGE = 'localhost/tfork/osworld-core';

describe.skipIf(skip)('osworld guest API (osworld-core, real X server)', () => {
  let src = '';
  let g: Guest;
  beforeAll(async () => {
    await ensureTestImage('osworld-core');
    src = await startContainer(IMAGE, [], { extra: ['--publish', '5000/tcp'] });
    g = new Guest(`http://127.0.0.1:${await hostPort(src, 5000)}`);
    await g.ready();
    // Two xterms side by side, each writing the line it reads to a file.
    for (const [n, x] of [['a', 20], ['b', 660]] as const) {
      const r = await g.postJson('/setup/launch', { command: ['xterm', '-geometry', `60x10+${x}+300`, '-title', `tfork-${n}`, '-e', 'sh', '-c', `read line; echo "$line" > /tmp/${n}.txt; sleep 100000`], shell: false });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      await waitWindow(src, `tfork-${n}`);
    }
  }, 600_000);
  afterAll(sweep);

  it('platform, screen size, desktop path, cursor position', async () => {
    expect(await (await g.raw('/platform')).text()).toBe('Linux');
    expect((await g.postJson('/screen_size', {})).body).toEqual({ width: 1280, height: 800 });
    expect((await g.raw('/screen_size', { method: 'POST' })).status).toBe(200);
    expect((await g.postJson('/desktop_path', {})).body).toEqual({ desktop_path: '/home/user/Desktop' });
    const moved = await g.pyautogui('pyautogui.moveTo(123, 456)');
    expect(moved.returncode, moved.error).toBe(0);
    expect((await g.getJson('/cursor_position')).body).toEqual([123, 456]);
  });

  it('/execute and /setup/execute: list or string commands, clean stdout, stderr and exit code apart', async () => {
    const size = await g.pyautogui('print(pyautogui.size()); print(pyautogui.position())');
    expect(size).toMatchObject({ status: 'success', returncode: 0, error: '' });
    expect(size.output).toBe('Size(width=1280, height=800)\nPoint(x=123, y=456)\n');
    const sh = await g.postJson('/setup/execute', { command: 'echo out; echo err >&2; exit 3', shell: true });
    expect(sh.body).toEqual({ status: 'error', output: 'out\n', error: 'err\n', returncode: 3 });
    // The session runs as root (TFORK_SESSION_USER, so that CRIU may read its rlimits) in user's home.
    const who = await g.postJson('/execute', { command: 'id -un; echo $HOME; id user', shell: true });
    expect(who.body.output).toMatch(/^root\n\/home\/user\nuid=1000\(user\).*\(sudo\)/);
    // OSWorld tasks use sudo with the password `password`.
    const sudo = await g.postJson('/execute', { command: 'echo password | sudo -S -p "" id -un', shell: true });
    expect(sudo.body.output).toBe('root\n');
    const missing = await g.postJson('/execute', { command: ['no-such-program'], shell: false });
    expect(missing.body).toMatchObject({ status: 'error', returncode: 127 });
  });

  it('a pyautogui click picks the window and typing goes there: only that window changes on screen', async () => {
    const before = await g.screenshot();
    expect([before.width, before.height]).toEqual([1280, 800]);
    // Click inside tfork-b (right), then type (shifted and non-ASCII characters too).
    const r = await g.pyautogui("pyautogui.click(900, 360); pyautogui.write('Hello_World! é'); pyautogui.press('enter'); pyautogui.moveTo(1270, 10)");
    expect(r.returncode, r.error).toBe(0);
    await waitFor(src, ['test', '-s', '/tmp/b.txt']);
    expect((await exec(src, ['cat', '/tmp/b.txt'])).stdout).toBe('Hello_World! é\n');
    expect((await exec(src, ['sh', '-c', 'test -e /tmp/a.txt && echo yes || echo no'])).stdout.trim()).toBe('no');
    await sleep(300);
    const after = await g.screenshot();
    // xterm b (60x10 cells of 6x13 pixels from 660,300) shows the typed line; a's inside is untouched.
    expect(diffIn(before, after, { x: 660, y: 290, w: 440, h: 170 }).inside).toBeGreaterThan(100);
    expect(diffIn(before, after, { x: 30, y: 320, w: 330, h: 100 }).inside).toBeLessThan(20);
  });

  it('hotkey, keyDown/keyUp, mouseDown/mouseUp, dragTo, scroll, hscroll, right/middle/double click run', async () => {
    const r = await g.pyautogui(
      "pyautogui.hotkey('ctrl', 'shift', 'x'); pyautogui.keyDown('shift'); pyautogui.keyUp('shift'); pyautogui.mouseDown(300, 100); pyautogui.mouseUp(); " +
        "pyautogui.dragTo(320, 120, duration=0.2); pyautogui.scroll(-3); pyautogui.hscroll(2); pyautogui.rightClick(100, 100); pyautogui.press('esc'); " +
        "pyautogui.middleClick(5, 5); pyautogui.doubleClick(10, 10); pyautogui.moveRel(5, 5); pyautogui.typewrite(['a', 'b']); print(pyautogui.position())",
    );
    expect(r.returncode, r.error).toBe(0);
    expect(r.output).toBe('Point(x=15, y=15)\n');
    const bad = await g.pyautogui("pyautogui.click(button='nose')");
    expect(bad.status).toBe('error');
    expect(bad.error).toContain("button must be 'left'");
  });

  it('/run_python and /run_bash_script', async () => {
    const ok = await g.postJson('/run_python', { code: 'import os\nprint(6 * 7)\nprint(os.getcwd())' });
    expect(ok.body).toMatchObject({ status: 'success', output: '42\n/home/user\n', return_code: 0 });
    const bad = await g.postJson('/run_python', { code: '1/0' });
    expect(bad.body.status).toBe('error');
    expect(bad.body.message).toContain('ZeroDivisionError');
    const sh = await g.postJson('/run_bash_script', { script: 'pwd; echo to-stderr >&2; exit 4', timeout: 10, working_dir: '/tmp' });
    expect(sh.body).toMatchObject({ status: 'error', output: '/tmp\nto-stderr\n', returncode: 4 });
    const t0 = Date.now();
    const slow = await g.postJson('/run_bash_script', { script: 'sleep 30', timeout: 1 });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(slow.body.error).toContain('timed out');
  });

  it('/setup/upload (multipart) then /file (form) returns the same bytes; /list_directory sees the file', async () => {
    const bytes = randomBytes(200_000);
    const form = new FormData();
    form.append('file_path', '/home/user/Desktop/blob.bin');
    form.append('file_data', new Blob([bytes]), 'blob.bin');
    const up = await g.raw('/setup/upload', { method: 'POST', body: form });
    expect(up.status, await up.clone().text()).toBe(200);
    const got = await g.postForm('/file', { file_path: '/home/user/Desktop/blob.bin' });
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
    const tree = await g.postJson('/list_directory', { path: '~/Desktop' });
    expect(tree.body.directory_tree).toMatchObject({ name: 'Desktop', type: 'directory' });
    expect(tree.body.directory_tree.children).toContainEqual({ name: 'blob.bin', type: 'file' });
  });

  it('windows: /window_size (form), /setup/activate_window, /setup/close_window', async () => {
    const ws = await g.postForm('/window_size', { app_class_name: 'xterm' });
    expect(ws.status).toBe(200);
    const size = await ws.json();
    expect(size.width).toBeGreaterThan(300);
    expect(size.height).toBeGreaterThan(100);
    expect((await g.postJson('/setup/activate_window', { window_name: 'tfork-a', strict: true })).status).toBe(200);
    expect((await g.postJson('/setup/close_window', { window_name: 'tfork-a', strict: true })).status).toBe(200);
    await waitFor(src, ['sh', '-c', '! wmctrl -l | grep -q tfork-a']);
    expect((await g.postJson('/setup/activate_window', { window_name: 'tfork-a', strict: true })).status).toBe(404);
  });

  it("/setup/activate_window waits for a window that comes well after the task's sleep", async () => {
    // A window that takes 8 s to come, as an app's does on a busy host after a task's fixed sleep.
    const r = await g.postJson('/setup/launch', { command: ['sh', '-c', 'sleep 8; exec xterm -title tfork-late -e sleep 100000'], shell: false });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const a = await g.postJson('/setup/activate_window', { window_name: 'tfork-late', strict: true });
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect((await exec(src, ['xdotool', 'getactivewindow', 'getwindowname'])).stdout.trim()).toBe('tfork-late');
    expect((await g.postJson('/setup/close_window', { window_name: 'tfork-late', strict: true })).status).toBe(200);
  });

  it('/accessibility lists the running apps over AT-SPI and /terminal reads a terminal', async () => {
    const r = await g.postJson('/setup/launch', { command: 'lxterminal --title=tfork-term', shell: true });
    expect(r.status).toBe(200);
    await waitWindow(src, 'tfork-term');
    await sleep(1000);
    // Type into the terminal (it has the focus as the newest window).
    await g.pyautogui("pyautogui.write('echo TERMINAL-MARK-$((6*7))'); pyautogui.press('enter')");
    let at = '';
    for (let i = 0; i < 20 && !at.includes('TERMINAL-MARK-42'); i++) {
      await sleep(500);
      const a = await g.getJson('/accessibility');
      expect(a.status).toBe(200);
      at = a.body.AT;
    }
    expect(at).toMatch(/^<desktop-frame/);
    expect(at).toMatch(/<application [^>]*name="lxterminal"/);
    expect(at).toContain('TERMINAL-MARK-42');
    expect(at).toContain('https://accessibility.ubuntu.example.org/ns/state');
    const t = await g.getJson('/terminal');
    expect(t.status).toBe(200);
    expect(t.body.output).toContain('TERMINAL-MARK-42');
  });

  it('bad requests get a JSON error body, never a hang', async () => {
    const cases: [string, RequestInit, number, RegExp][] = [
      ['/no-such-endpoint', {}, 404, /no such endpoint/],
      ['/execute', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{not json' }, 400, /not JSON/],
      ['/execute', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' }, 400, /missing command/],
      ['/execute', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"command": [1, 2]}' }, 400, /list of strings/],
      ['/execute', {}, 405, /takes POST/],
      ['/file', { method: 'POST', body: new URLSearchParams({}) }, 400, /missing form field file_path/],
      ['/file', { method: 'POST', body: new URLSearchParams({ file_path: '/nope/none' }) }, 404, /file not found/],
      ['/list_directory', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"path": "/nope"}' }, 404, /directory not found/],
      ['/setup/upload', { method: 'POST', body: new URLSearchParams({ file_path: '/tmp/x' }) }, 400, /multipart/],
      ['/setup/open_file', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"path": "/tmp/none.odt"}' }, 404, /file not found/],
      ['/window_size', { method: 'POST', body: new URLSearchParams({ app_class_name: 'no-such-class' }) }, 404, /no window/],
      ['/end_recording', { method: 'POST' }, 400, /no recording/],
      // This image has no ffmpeg: the recording cannot start, and says so.
      ['/start_recording', { method: 'POST' }, 500, /ffmpeg/],
    ];
    for (const [path, init, status, msg] of cases) {
      const r = await g.raw(path, { ...init, timeoutMs: 15_000 });
      const body = await r.json();
      expect([path, r.status]).toEqual([path, status]);
      expect(body.status).toBe('error');
      expect(body.message).toMatch(msg);
    }
  });

  it('live clones keep serving: each on its own published port and address, with its own screen', async () => {
    const before = await g.screenshot();
    const r = await cli(['container', 'clone', '--live', '--copies=2', '--format', 'json', src]);
    expect(r.exitCode, r.stderr).toBe(0);
    const copies = JSON.parse(r.stdout).copies as { name: string; state: string; ports: string[] }[];
    const guests = await Promise.all(copies.map(async (c) => new Guest(`http://127.0.0.1:${await hostPort(c.name, 5000)}`)));
    const ports = new Set([g.base, ...guests.map((x) => x.base)]);
    expect(ports.size).toBe(3);
    for (const x of guests) await x.ready(30_000);
    const shots = await Promise.all(guests.map((x) => x.screenshot()));
    for (const s of shots) expect(diffIn(before, s, { x: 0, y: 0, w: 0, h: 0 }).outside / (1280 * 800)).toBeLessThan(0.002);
    // Each clone's own address on the bridge answers too.
    const ip = await ipOf(copies[1]!.name);
    expect(await (await fetch(`http://${ip}:5000/platform`, { signal: AbortSignal.timeout(10_000) })).text()).toBe('Linux');
    // Typing into clone 0 changes clone 0's screen only.
    const t = await guests[0]!.pyautogui("pyautogui.write('only-in-clone-0 '); pyautogui.press('enter')");
    expect(t.returncode, t.error).toBe(0);
    await sleep(500);
    const [s0, s1, sSrc] = await Promise.all([guests[0]!.screenshot(), guests[1]!.screenshot(), g.screenshot()]);
    expect(diffIn(shots[0]!, s0, { x: 0, y: 0, w: 0, h: 0 }).outside).toBeGreaterThan(300);
    expect(diffIn(shots[1]!, s1, { x: 0, y: 0, w: 0, h: 0 }).outside).toBeLessThan(100);
    expect(diffIn(before, sSrc, { x: 0, y: 0, w: 0, h: 0 }).outside).toBeLessThan(100);
    await podman().run(['rm', '-f', '-t', '0', ...copies.map((c) => c.name)]);
  });
});
