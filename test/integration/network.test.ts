/**
 * Network semantics of live clones: own namespace and IP per clone, published
 * ports moved to free host ports, established connections kept by the source
 * and closed in the clones.
 */
import { createServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, engineGate, exec, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { rm, sleep } from '../helpers/workloads.js';

const skip = await engineGate('live clone networking');

async function get(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/`);
  return (await r.text()).trim();
}

describe.skipIf(skip)('live clone networking', () => {
  afterAll(sweep);

  it('clones of a source with a published port listen on their own free host ports', async () => {
    const src = await startContainer(
      'localhost/tfork/tiny',
      ['sh', '-c', 'mkdir -p /www; echo page-of-source > /www/index.html; httpd -p 80 -h /www; while true; do sleep 1; done'],
      { extra: ['--publish', '80/tcp'] },
    );
    await waitFor(src, ['test', '-s', '/www/index.html']);
    const srcPort = Number((await podman().run(['port', src, '80/tcp'])).stdout.trim().split(':').pop());
    expect(await get(srcPort)).toBe('page-of-source');
    const r = await cli(['container', 'clone', '--live', '--copies=2', '--name', `${src}-p`, '--format', 'json', src]);
    expect(r.exitCode, r.stderr).toBe(0);
    const copies = JSON.parse(r.stdout).copies as { name: string; state: string; ports: string[] }[];
    const ports = copies.map((c) => Number(c.ports[0]!.split(':')[0]));
    expect(new Set([srcPort, ...ports]).size).toBe(3);
    for (const [i, c] of copies.entries()) {
      expect(c.state).toBe('running');
      expect((await podman().run(['port', c.name, '80/tcp'])).stdout).toContain(`:${ports[i]}`);
      // The clone's httpd (restored, not restarted) answers on the new port.
      expect(await get(ports[i]!)).toBe('page-of-source');
    }
    // Each has its own network namespace and IP; the source keeps its port.
    const ips = await Promise.all([src, ...copies.map((c) => c.name)].map(async (n) => (await podman().run(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', n])).stdout.trim()));
    expect(new Set(ips).size).toBe(3);
    await exec(copies[0]!.name, ['sh', '-c', 'echo changed-in-clone > /www/index.html']);
    expect(await get(ports[0]!)).toBe('changed-in-clone');
    expect(await get(srcPort)).toBe('page-of-source');
    await rm(...copies.map((c) => c.name));
  });

  it('an established connection survives in the source and is closed in the clones', async () => {
    const lines = new Map<Socket, number>();
    const server = createServer((s) => {
      lines.set(s, 0);
      s.on('data', (d) => lines.set(s, (lines.get(s) ?? 0) + d.toString().split('\n').length - 1));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
    const port = (server.address() as { port: number }).port;
    try {
      const probe = await startContainer('localhost/tfork/tiny', ['sleep', '60']);
      const gw = (await podman().run(['inspect', '-f', '{{.NetworkSettings.Gateway}}', probe])).stdout.trim();
      const src = await startContainer('localhost/tfork/tiny', [
        'sh',
        '-c',
        `(while true; do echo tick; sleep 0.2; done) | nc ${gw} ${port}; echo closed > /tmp/closed; while true; do sleep 1; done`,
      ]);
      for (let i = 0; i < 50 && lines.size === 0; i++) await sleep(100);
      expect(lines.size).toBe(1);
      const conn = [...lines.keys()][0]!;
      const r = await cli(['container', 'clone', '--live', '--copies=2', '--name', `${src}-t`, '--format', 'json', src]);
      expect(r.exitCode, r.stderr).toBe(0);
      const names = (JSON.parse(r.stdout).copies as { name: string }[]).map((c) => c.name);
      const atClone = lines.get(conn)!;
      await sleep(1500);
      // The source's connection is the same socket, still carrying data.
      expect(lines.get(conn)!).toBeGreaterThan(atClone + 3);
      expect(conn.destroyed).toBe(false);
      expect((await podman().run(['exec', src, 'test', '-e', '/tmp/closed'], { reject: false })).exitCode).not.toBe(0);
      // The clones got the connection back closed: their nc ended, the script went on.
      for (const n of names) await waitFor(n, ['test', '-e', '/tmp/closed'], 10_000);
      expect(lines.size).toBe(1);
      await rm(...names);
    } finally {
      for (const s of lines.keys()) s.destroy();
      server.close();
    }
  });

  it('--tfork-tcp-close=false keeps CRIU refusing to dump an established connection, and the source runs on', async () => {
    const server = createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
    const port = (server.address() as { port: number }).port;
    try {
      const probe = await startContainer('localhost/tfork/tiny', ['sleep', '60']);
      const gw = (await podman().run(['inspect', '-f', '{{.NetworkSettings.Gateway}}', probe])).stdout.trim();
      const src = await startContainer('localhost/tfork/tiny', ['sh', '-c', `(while true; do echo tick; sleep 0.2; done) | nc ${gw} ${port}`]);
      await sleep(800);
      const r = await cli(['container', 'clone', '--live', '--tfork-tcp-close=false', '--name', `${src}-r`, src]);
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toMatch(/dump/);
      expect((await podman().run(['inspect', '-f', '{{.State.Status}}', src])).stdout.trim()).toBe('running');
      expect((await podman().run(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n')).not.toContain(`${src}-r`);
    } finally {
      server.close();
    }
  });
});
