#!/usr/bin/env node
// The demo: start the reference desktop, fork it 4 ways while it runs, show
// where the time went and save each screen as a PNG, then clean up.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cloneLive, Podman, probe } from '../dist/index.js';

const podman = new Podman();
const caps = await probe();
console.log(`clone tier ${caps.tier.level} (${caps.tier.name}): ${caps.tier.reason}`);
if (caps.tier.level === 0) {
  for (const m of caps.missing) console.log(`missing: ${m.what} (fix: ${m.fix})`);
  process.exit(125);
}
const src = `tfork-demo-${process.pid}`;
const out = path.resolve('demo-output');
mkdirSync(out, { recursive: true });
let names = [];
try {
  await podman.run(['run', '-d', '--label', 'io.podman-tfork.demo=1', '--name', src, 'localhost/tfork/desktop']);
  for (let i = 0; i < 100; i++) {
    const r = await podman.run(['exec', src, 'sh', '-c', 'xwininfo -root -tree | grep -q tfork-xterm'], { reject: false });
    if (r.exitCode === 0) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  console.log(`desktop ${src} is running; forking it 4 ways...`);
  const report = await cloneLive(src, { copies: 4, name: `${src}-fork` });
  names = report.copies.map((c) => c.name);
  const t = report.timings;
  console.log(`4 clones running in ${t.totalMs.toFixed(0)} ms (dump ${t.dumpMs.toFixed(0)} ms, source frozen ${t.frozenMs?.toFixed(0)} ms, copies ${t.copiesMs.toFixed(0)} ms)`);
  for (const [i, n] of names.entries()) {
    await podman.run(['exec', n, 'sh', '-c', `xdotool search --name tfork-xterm windowactivate --sync; xdotool type "echo hello from fork ${i}"; xdotool key Return`]);
  }
  await new Promise((res) => setTimeout(res, 500));
  for (const n of [src, ...names]) {
    const png = await podman.run(['exec', n, 'import', '-window', 'root', 'png:-'], { binary: true });
    writeFileSync(path.join(out, `${n}.png`), png.stdoutBuffer);
  }
  console.log(`screens saved in ${out}/ (the source, and each fork with its own typing)`);
} finally {
  await podman.run(['rm', '-f', '-t', '0', ...names, src], { reject: false });
}
