/**
 * podman, run with the project's configuration. Every call goes through the
 * CLI for now: each command of podman-tfork makes a handful of one-shot calls
 * (inspect, ps, checkpoint, clone, restore), and a podman process (~100 ms)
 * costs less than starting `podman system service` for them. The REST socket
 * (through dockerode) pays off for long-lived users that inspect, list, wait
 * and follow events many times: the agent layer, when it comes.
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
