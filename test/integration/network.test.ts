/**
 * Network semantics of live clones: own namespace and IP per clone, published
 * ports moved to free host ports, established connections kept by the source
 * and closed in the clones, connected UDP sockets and listeners bound to the
 * source's address working from each clone's own address.
 */
import { createSocket } from 'node:dgram';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, engineGate, exec, podman, startContainer, sweep, waitFor } from '../helpers/host.js';
import { rm, sleep } from '../helpers/workloads.js';

const skip = await engineGate('live clone networking');

/** A container's network setting, as podman inspect gives it (IPAddress, Gateway). */
async function net(name: string, field: 'IPAddress' | 'Gateway'): Promise<string> {
  return (await podman().run(['inspect', '-f', `{{.NetworkSettings.${field}}}`, name])).stdout.trim();
}
const ipOf = (name: string) => net(name, 'IPAddress');

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
    const ips = await Promise.all([src, ...copies.map((c) => c.name)].map(ipOf));
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
      const gw = await net(probe, 'Gateway');
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

  it("a UDP socket connected from the source's address sends on from each clone's own address, and after a rollback", async () => {
    // Datagrams per sender address, as the host sees them (traffic to the gateway is not masqueraded).
    const got = new Map<string, number>();
    const server = createSocket('udp4');
    server.on('message', (_m, from) => got.set(from.address, (got.get(from.address) ?? 0) + 1));
    await new Promise<void>((r) => server.bind(0, '0.0.0.0', () => r()));
    const port = server.address().port;
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 100 && !ok(); i++) await sleep(100);
      expect(ok(), what).toBe(true);
    };
    try {
      const probe = await startContainer('localhost/tfork/tiny', ['sleep', '60']);
      const gw = await net(probe, 'Gateway');
      // connect() alone binds the socket to the container's address: CRIU binds it there again on restore.
      const script = [
        'import socket, time',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        `s.connect((${JSON.stringify(gw)}, ${port}))`,
        'while True:',
        '    try: s.send(b"tick")',
        '    except OSError: pass',
        '    time.sleep(0.1)',
      ].join('\n');
      const src = await startContainer('localhost/tfork/desktop', ['python3', '-c', script]);
      const srcIp = await ipOf(src);
      await until(`datagrams from the source (${srcIp})`, () => (got.get(srcIp) ?? 0) > 2);
      const r = await cli(['container', 'clone', '--live', '--copies=2', '--name', `${src}-u`, '--format', 'json', src]);
      expect(r.exitCode, r.stderr).toBe(0);
      const names = (JSON.parse(r.stdout).copies as { name: string }[]).map((c) => c.name);
      const atClone = got.get(srcIp)!;
      for (const n of names) {
        const ip = await ipOf(n);
        expect(ip).not.toBe(srcIp);
        await until(`datagrams from clone ${n} (${ip})`, () => (got.get(ip) ?? 0) > 3);
      }
      await until('datagrams from the source after the clone', () => got.get(srcIp)! > atClone + 3);
      await rm(...names);
      // A rollback restores the source under the address it gets then: the socket sends from there.
      const ck = await cli(['checkpoint', 'create', '--format', 'json', src]);
      expect(ck.exitCode, ck.stderr).toBe(0);
      const id = JSON.parse(ck.stdout).id as string;
      const rb = await cli(['rollback', src, id]);
      await cli(['checkpoint', 'rm', id]);
      expect(rb.exitCode, rb.stderr).toBe(0);
      const back = await ipOf(src);
      const before = got.get(back) ?? 0;
      await until(`datagrams from the rolled-back source (${back})`, () => (got.get(back) ?? 0) > before + 3);
    } finally {
      server.close();
    }
  });

  it("a TCP server listening on the source's own address listens on each clone's own address", async () => {
    // The program binds its listener to the container's address (not the wildcard), as servers told
    // to listen on one interface do; each connection is answered with the address it came in on.
    const script = [
      'import socket',
      'ip = socket.gethostbyname(socket.gethostname())',
      's = socket.socket()',
      's.bind((ip, 8080))',
      's.listen()',
      'while True:',
      '    c, _ = s.accept()',
      '    c.sendall(("served on %s\\n" % c.getsockname()[0]).encode())',
      '    c.close()',
    ].join('\n');
    const src = await startContainer('localhost/tfork/desktop', ['python3', '-c', script]);
    const ask = (ip: string) =>
      new Promise<string>((resolve, reject) => {
        const c = connect(8080, ip);
        let text = '';
        c.on('data', (d) => (text += d.toString()));
        c.on('end', () => resolve(text.trim()));
        c.on('error', reject);
        c.setTimeout(5000, () => c.destroy(new Error(`no answer from ${ip}:8080`)));
      });
    const srcIp = await ipOf(src);
    for (let i = 0; i < 50; i++) if (await ask(srcIp).then(() => true, () => false)) break; else await sleep(100);
    expect(await ask(srcIp)).toBe(`served on ${srcIp}`);
    const r = await cli(['container', 'clone', '--live', '--copies=2', '--name', `${src}-l`, '--format', 'json', src]);
    expect(r.exitCode, r.stderr).toBe(0);
    const names = (JSON.parse(r.stdout).copies as { name: string }[]).map((c) => c.name);
    for (const n of names) {
      const ip = await ipOf(n);
      expect(ip).not.toBe(srcIp);
      expect(await ask(ip)).toBe(`served on ${ip}`);
    }
    expect(await ask(srcIp)).toBe(`served on ${srcIp}`);
    await rm(...names);
  });

  it('--tfork-tcp-close=false keeps CRIU refusing to dump an established connection, and the source runs on', async () => {
    const server = createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
    const port = (server.address() as { port: number }).port;
    try {
      const probe = await startContainer('localhost/tfork/tiny', ['sleep', '60']);
      const gw = await net(probe, 'Gateway');
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
