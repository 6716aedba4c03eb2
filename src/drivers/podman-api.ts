/**
 * podman's REST API (the libpod endpoints) over the unix socket of a
 * long-lived `podman system service` run with the project's configuration.
 *
 * The engine asks the service for what it does once per copy (create,
 * restore, remove, inspect), so a fork of N copies starts no podman process
 * per copy. The service is started on first use, shared by every command
 * (a socket and a pid file under TFORK_RUN_DIR), stops by itself after an
 * idle time, and is started again when it died.
 *
 * Requests go through node:http: dockerode (the client the design names)
 * costs ~0.1 s to import, more than the podman process it would save per
 * call, and the five endpoints used here are plain JSON requests.
 */
import http from 'node:http';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from './layout.js';
import { spawnDetached } from './detached.js';
import { withLock } from './lock.js';
import { pidAlive } from './host.js';
import { TforkError } from '../errors.js';

/** The libpod API version podman 4.3 serves. */
const API = '/v4.0.0/libpod';
/** Seconds without a connection after which the service exits (podman's --time). */
export const DEFAULT_IDLE_SECONDS = 120;

export interface ApiResponse {
  status: number;
  body: string;
}

export interface ServicePaths {
  socket: string;
  pidFile: string;
  logFile: string;
}

export function servicePaths(l: Layout): ServicePaths {
  return {
    socket: path.join(l.runDir, 'podman.sock'),
    pidFile: path.join(l.runDir, 'podman-service.pid'),
    logFile: path.join(l.runDir, 'podman-service.log'),
  };
}

/** One request to the socket; a connection failure rejects with the errno code in `code`. */
export function request(socket: string, method: string, urlPath: string, o: { body?: unknown; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const options: http.RequestOptions & { servername: string } = {
      socketPath: socket,
      method,
      path: urlPath,
      headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      // No TLS here: without a server name node derives one from the host for every request,
      // and the first one compiles its IPv6 pattern (~7 ms of a command's start).
      servername: '',
      signal: o.signal,
      timeout: o.timeoutMs ?? 10 * 60_000,
    };
    const req = http.request(
      options,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`podman API ${method} ${urlPath} timed out`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The message of a libpod error body ({"cause","message","response"}), or the raw text. */
export function apiErrorMessage(r: ApiResponse): string {
  try {
    const j = JSON.parse(r.body) as { message?: string; cause?: string };
    return (j.message ?? j.cause ?? r.body).trim();
  } catch {
    return r.body.trim();
  }
}

/** A client of the project's podman service; `ensure()` starts the service when it is not up. */
export class PodmanApi {
  readonly paths: ServicePaths;
  private ready?: Promise<void>;
  /** A request found no service behind the socket: the next start() asks before it trusts one. */
  private mustAsk = false;

  constructor(
    readonly layout: Layout,
    private readonly service: { bin: string; env: Record<string, string>; idleSeconds?: number },
  ) {
    this.paths = servicePaths(layout);
  }

  /** The pid of the running service, if any. */
  pid(): number | undefined {
    try {
      const pid = Number(readFileSync(this.paths.pidFile, 'utf8').trim());
      return pid > 0 && pidAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  private async ping(timeoutMs = 2000): Promise<boolean> {
    try {
      return (await request(this.paths.socket, 'GET', `${API}/_ping`, { timeoutMs })).status === 200;
    } catch {
      return false;
    }
  }

  /** Make sure the service answers (start it once per process at most; others wait on the same lock). */
  ensure(signal?: AbortSignal): Promise<void> {
    this.ready ??= this.start(signal).catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private async start(signal?: AbortSignal): Promise<void> {
    // A service whose process is alive behind its socket is taken as up without asking it (a
    // round trip, ~8 ms of every command's start): when it went away meanwhile, call() finds the
    // socket refusing or gone and comes back here.
    if (!this.mustAsk && existsSync(this.paths.socket) && this.pid()) return;
    if (existsSync(this.paths.socket) && (await this.ping())) return;
    await withLock(this.layout, 'podman-service', { what: 'the podman service', signal }, async () => {
      if (existsSync(this.paths.socket) && (await this.ping())) return;
      const old = this.pid();
      if (old) process.kill(old, 'SIGTERM'); // alive but not answering
      mkdirSync(path.dirname(this.paths.socket), { recursive: true });
      rmSync(this.paths.socket, { force: true });
      const idle = this.service.idleSeconds ?? DEFAULT_IDLE_SECONDS;
      // podman reads its configuration (CONTAINERS_CONF, PATH with the project's CRIU) from this environment.
      const pid = spawnDetached(this.service.bin, ['system', 'service', '--time', String(idle), `unix://${this.paths.socket}`], this.paths.logFile, serviceEnv(this.service.env));
      writeFileSync(this.paths.pidFile, `${pid}\n`);
      const deadline = Date.now() + 15_000;
      for (let wait = 5; Date.now() < deadline; wait = Math.min(wait * 2, 100)) {
        if (signal?.aborted) throw new TforkError('E_CANCELLED', 'cancelled while the podman service was starting');
        if (existsSync(this.paths.socket) && (await this.ping(1000))) return;
        if (!pidAlive(pid)) break;
        await new Promise((r) => setTimeout(r, wait));
      }
      throw new TforkError('E_TOOL_FAILED', `podman system service did not come up on ${this.paths.socket}:\n${logTail(this.paths.logFile)}`, {
        suggestions: ['set TFORK_PODMAN_API=cli to run every podman call as a process'],
      });
    });
  }

  /** Stop the service (setup does, so that a new configuration takes effect). */
  stop(): boolean {
    const pid = this.pid();
    rmSync(this.paths.pidFile, { force: true });
    if (!pid) return false;
    process.kill(pid, 'SIGTERM');
    return true;
  }

  /** A request to a libpod path (below /libpod); the service is started first when needed. */
  async call(method: string, libpodPath: string, o: { body?: unknown; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ApiResponse> {
    await this.ensure(o.signal);
    try {
      return await request(this.paths.socket, method, `${API}${libpodPath}`, o);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ABORT_ERR' || o.signal?.aborted) throw new TforkError('E_CANCELLED', `podman API ${method} ${libpodPath} was cancelled`);
      if (code === 'ECONNREFUSED' || code === 'ENOENT') {
        // The service went away between two calls (idle timeout, killed) and the request never
        // reached it: once more on a new one. A request cut short (ECONNRESET) is not repeated.
        this.ready = undefined;
        this.mustAsk = true;
        await this.ensure(o.signal);
        return request(this.paths.socket, method, `${API}${libpodPath}`, o);
      }
      throw new TforkError('E_TOOL_FAILED', `podman API ${method} ${libpodPath} failed: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * The service outlives the command that starts it and serves every later one:
 * it gets the project's podman environment and nothing of one command's own
 * (no CRIU_CONFIG_FILE, no TFORK_* test settings).
 */
export function serviceEnv(podmanEnv: Record<string, string>, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith('TFORK_') && k !== 'CRIU_CONFIG_FILE') out[k] = v;
  return { ...out, ...podmanEnv };
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}
