/**
 * podman, run with the project's configuration. The CLI serves one-shot
 * calls here: a podman process costs ~100 ms, less than starting the REST
 * service for a single call. Long-lived users (the library, agents) that make
 * many inspect/list calls can use the REST socket (drivers/podman-api.ts).
 */
import { layout as defaultLayout, type Layout } from './layout.js';
import { run, which, type RunOptions, type RunResult } from './exec.js';
import { podmanEnv } from '../core/podman-config.js';
import { TforkError } from '../errors.js';

export class Podman {
  readonly bin: string;
  readonly env: Record<string, string>;

  constructor(readonly layout: Layout = defaultLayout()) {
    const bin = which('podman', []);
    if (!bin) throw new TforkError('E_TOOL_MISSING', 'podman is not installed', { suggestions: ['run `podman-tfork setup`'] });
    this.bin = bin;
    this.env = podmanEnv(layout);
  }

  run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(this.bin, args, { ...opts, env: { ...this.env, ...opts.env } });
  }

  async json<T>(args: string[], opts: RunOptions = {}): Promise<T> {
    const r = await this.run(args, opts);
    try {
      return JSON.parse(r.stdout) as T;
    } catch (err) {
      throw new TforkError('E_TOOL_FAILED', `podman ${args.join(' ')} printed output that is not JSON`, { cause: err });
    }
  }

  async imageExists(ref: string, opts: RunOptions = {}): Promise<boolean> {
    return (await this.run(['image', 'exists', ref], { ...opts, reject: false })).exitCode === 0;
  }

  async containerExists(nameOrId: string, opts: RunOptions = {}): Promise<boolean> {
    return (await this.run(['container', 'exists', nameOrId], { ...opts, reject: false })).exitCode === 0;
  }

  async version(): Promise<string> {
    return (await this.run(['--version'])).stdout.trim().replace(/^podman version /, '');
  }
}
