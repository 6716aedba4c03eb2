/**
 * W4: the OSWorld desktop (images/osworld) with chromium showing a local page
 * and a LibreOffice Writer document with typed text, the way an agent leaves
 * it mid-task. Opt-in (`--workloads W4`): the image is built on demand
 * (`podman-tfork setup --image osworld`). Verified like W2: every clone's
 * screen is the source's at the clone instant.
 */
import { randomBytes } from 'node:crypto';
import { imageRef } from '../core/setup/images.js';
import { TforkError } from '../errors.js';
import { execIn, sleep, waitUntil } from './containers.js';
import { pixelDiff, screenshot } from './screen.js';
import { SCREEN_THRESHOLD, verifyScreen } from './verify.js';
import type { Workload } from './workloads.js';
import type { Podman } from '../drivers/podman.js';

const PAGE = '<!doctype html><title>tfork-w4</title><body style="font:32px sans-serif"><h1 style="color:#06c">W4: a local page</h1><p>chromium beside a document</p>';

/** Launch a program in the session through the guest API, as an agent harness does. */
function launch(command: string[]): string[] {
  const body = JSON.stringify({ command, shell: false });
  return ['curl', '-s', '-m', '20', '-X', 'POST', '-H', 'Content-Type: application/json', '-d', body, 'http://127.0.0.1:5000/setup/launch'];
}

/**
 * Type `text` where the keyboard focus is (the Writer document once prepared), the pointer parked in a
 * corner so that no hover effect differs between screens.
 */
export async function typeOnDesktop(podman: Podman, name: string, text: string): Promise<void> {
  await execIn(podman, name, ['python3', '-c', `import pyautogui; pyautogui.write(${JSON.stringify(text)}); pyautogui.moveTo(1915, 1075)`]);
}

export const w4: Workload = {
  id: 'W4',
  title: 'W4 OSWorld desktop (chromium + LibreOffice Writer)',
  image: imageRef('osworld'),
  args: () => [],
  async prepare(podman, name) {
    await waitUntil(podman, name, ['curl', '-sf', '-m', '5', 'http://127.0.0.1:5000/platform'], 'the guest API', 120_000);
    await execIn(podman, name, ['sh', '-c', `printf '%s' '${PAGE}' > /home/user/Desktop/w4.html`]);
    await execIn(podman, name, launch(['chromium', '--new-window', '--window-position=0,0', '--window-size=1100,900', 'file:///home/user/Desktop/w4.html']));
    await waitUntil(podman, name, ['sh', '-c', 'wmctrl -l | grep -q tfork-w4'], 'the chromium window', 180_000);
    await execIn(podman, name, launch(['libreoffice', '--writer', '--norestore']));
    await waitUntil(podman, name, ['sh', '-c', 'wmctrl -l | grep -q "LibreOffice Writer"'], 'the LibreOffice Writer window', 180_000);
    await sleep(4000);
    const before = await screenshot(podman, name);
    // A marker of this source only, typed into the document: a restarted desktop lacks it.
    const marker = `tfork-bench-${randomBytes(6).toString('hex')}`;
    await typeOnDesktop(podman, name, `${marker} `.repeat(6));
    await sleep(2000);
    const changed = pixelDiff(await screenshot(podman, name), before);
    if (changed < 2 * SCREEN_THRESHOLD) {
      throw new TforkError('E_INVALID_STATE', `${name}: typing the marker changed only ${(changed * 100).toFixed(3)}% of the screen; verification could not tell a restarted desktop from a clone`);
    }
  },
  async check(podman, source) {
    const shot = await screenshot(podman, source);
    return (clones) => verifyScreen(podman, clones, shot);
  },
};
