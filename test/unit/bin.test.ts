/** The CLI in a checkout that was never built says what to run (exit 127), instead of a module loader trace. */
import { cpSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/drivers/exec.js';

const repo = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tfork-bin-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('bin/podman-tfork.js', () => {
  it('without dist/ names the command to run and exits 127', async () => {
    mkdirSync(path.join(tmp, 'bin'));
    cpSync(path.join(repo, 'bin', 'podman-tfork.js'), path.join(tmp, 'bin', 'podman-tfork.js'));
    cpSync(path.join(repo, 'package.json'), path.join(tmp, 'package.json'));
    const r = await run(process.execPath, [path.join(tmp, 'bin', 'podman-tfork.js'), 'ps'], { reject: false });
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toMatch(/podman-tfork is not built/);
    expect(r.stderr).toContain('npm run setup');
    expect(r.stderr).toContain('npm run build');
    expect(r.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|at async/);
  });
  it('with the build runs the CLI', async () => {
    const r = await run(process.execPath, [path.join(repo, 'bin', 'podman-tfork.js'), '--tfork-help'], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('tfork commands:');
  });
  it('npm install builds it (prepare), the one-file CLI included', async () => {
    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { scripts: Record<string, string> };
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.scripts.build).toMatch(/^tsc .*&& npm run bundle/);
    expect(pkg.scripts.bundle).toMatch(/esbuild dist\/cli\/main\.js --bundle .*--outfile=dist\/cli\/main\.bundle\.js/);
  });
  it('runs the one-file CLI only while it is not older than the build', async () => {
    const cli = path.join(tmp, 'bundled');
    mkdirSync(path.join(cli, 'bin'), { recursive: true });
    mkdirSync(path.join(cli, 'dist', 'cli'), { recursive: true });
    cpSync(path.join(repo, 'bin', 'podman-tfork.js'), path.join(cli, 'bin', 'podman-tfork.js'));
    cpSync(path.join(repo, 'package.json'), path.join(cli, 'package.json'));
    const entry = (name: string) => `export async function main() { process.stdout.write('${name}'); return 0; }\n`;
    const modules = path.join(cli, 'dist', 'cli', 'main.js');
    const bundle = path.join(cli, 'dist', 'cli', 'main.bundle.js');
    writeFileSync(modules, entry('modules'));
    writeFileSync(bundle, entry('bundle'));
    const ran = async () => (await run(process.execPath, [path.join(cli, 'bin', 'podman-tfork.js')])).stdout;
    utimesSync(modules, 1000, 1000);
    utimesSync(bundle, 2000, 2000);
    expect(await ran()).toBe('bundle');
    utimesSync(modules, 3000, 3000); // rebuilt with tsc alone: the bundle is stale
    expect(await ran()).toBe('modules');
  });
});
