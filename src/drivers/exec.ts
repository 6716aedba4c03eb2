/**
 * The one wrapper through which every external tool runs: argv arrays (never a
 * shell string), a timeout and an AbortSignal on every call, bounded output
 * capture, LC_ALL=C, and one error object for every kind of failure.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { TforkError } from '../errors.js';

export interface RunOptions {
  /** Time limit; 0 for none (default 10 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: Record<string, string | undefined>;
  /** Replace the environment instead of extending process.env. */
  extendEnv?: boolean;
  cwd?: string;
  input?: string | Buffer;
  /** Pass stdin/stdout/stderr through to the terminal (wrapper mode). */
  inherit?: boolean;
  /** Stream stdout+stderr lines to this callback (progress). */
  onLine?: (line: string) => void;
  /** Do not throw on a non-zero exit; the caller inspects `exitCode`. */
  reject?: boolean;
  /** Log file written by the tool, named in the error (CRIU). */
  logFile?: string;
  /** Capture stdout as a Buffer. */
  binary?: boolean;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  stdoutBuffer?: Buffer;
  durationMs: number;
}

const MAX_CAPTURE = 64 * 1024 * 1024;
const TAIL_LINES = 20;

export function tail(text: string, lines = TAIL_LINES): string {
  const all = text.trimEnd().split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

export class ToolError extends TforkError {
  constructor(
    readonly tool: string,
    readonly argv: string[],
    readonly result: { exitCode?: number; signal?: string; timedOut: boolean; cancelled: boolean; durationMs: number; stderrTail: string; logFile?: string },
  ) {
    const how = result.timedOut
      ? `timed out after ${Math.round(result.durationMs)} ms`
      : result.cancelled
        ? 'was cancelled'
        : result.signal
          ? `was killed by ${result.signal}`
          : `exited with code ${result.exitCode}`;
    const msg = `${tool} ${how}` + (result.stderrTail ? `:\n${indent(result.stderrTail)}` : '');
    super(result.timedOut ? 'E_TIMEOUT' : result.cancelled ? 'E_CANCELLED' : 'E_TOOL_FAILED', msg, {
      detail: { tool, argv, ...result },
      suggestions: result.logFile ? [`see the log ${result.logFile}`] : [],
    });
  }
}

function indent(s: string): string {
  return s.split('\n').map((l) => `  ${l}`).join('\n');
}

interface Exit {
  exitCode?: number;
  signal?: string;
  timedOut: boolean;
  cancelled: boolean;
  missing: boolean;
  stdout: Buffer;
  stderr: Buffer;
}

/** Spawn, feed, capture (bounded), and wait, with the timeout and the signal: node's child_process, which loads in no time. */
function spawnTool(file: string, args: string[], opts: RunOptions): Promise<Exit> {
  return new Promise((resolve) => {
    const env: Record<string, string | undefined> = { ...(opts.extendEnv === false ? {} : process.env), LC_ALL: 'C', ...opts.env };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const child = spawn(file, args, { env, cwd: opts.cwd, stdio: opts.inherit ? 'inherit' : [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    let cancelled = false;
    let missing = false;
    const kill = () => {
      child.kill('SIGTERM');
      // What ignores SIGTERM gets SIGKILL.
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    };
    const keep = (into: Buffer[]) => (d: Buffer) => {
      if (size + d.length <= MAX_CAPTURE) into.push(d);
      size += d.length;
    };
    const lines = (stream: NodeJS.ReadableStream | null) => {
      let buf = '';
      stream?.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) opts.onLine!(buf.slice(0, i));
      });
    };
    child.stdout?.on('data', keep(out));
    child.stderr?.on('data', keep(err));
    if (opts.onLine) {
      lines(child.stdout);
      lines(child.stderr);
    }
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // a tool that exits without reading its input
      child.stdin.end(opts.input);
    }
    const limit = opts.timeoutMs ?? 10 * 60_000;
    // 0: no time limit (the passthrough to podman, long archive writes).
    const timer = limit > 0 ? setTimeout(() => {
      timedOut = true;
      kill();
    }, limit) : undefined;
    const onAbort = () => {
      cancelled = true;
      kill();
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (exitCode?: number, signal?: string) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ exitCode, signal, timedOut, cancelled, missing, stdout: Buffer.concat(out), stderr: Buffer.concat(err) });
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      missing = e.code === 'ENOENT';
      done(undefined, undefined);
    });
    child.on('close', (code, signal) => done(code ?? undefined, signal ?? undefined));
  });
}

/** Run a tool by absolute path (or a name resolved through PATH by `which`). */
export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  const r = await spawnTool(file, args, opts);
  const durationMs = performance.now() - t0;
  if (r.missing) throw new TforkError('E_TOOL_MISSING', `${file} was not found`, { suggestions: ['run `podman-tfork setup`'] });
  const stdoutBuffer = opts.binary ? r.stdout : undefined;
  const stdout = opts.binary ? '' : r.stdout.toString();
  const stderr = r.stderr.toString();
  const failed = r.timedOut || r.cancelled || r.signal !== undefined || (r.exitCode ?? 0) !== 0;
  if (failed && (opts.reject !== false || r.timedOut || r.cancelled)) {
    throw new ToolError(file.split('/').pop() ?? file, [file, ...args], {
      exitCode: r.exitCode,
      signal: r.signal,
      timedOut: r.timedOut,
      cancelled: r.cancelled,
      durationMs,
      stderrTail: tail(stderr || stdout),
      logFile: opts.logFile && existsSync(opts.logFile) ? opts.logFile : undefined,
    });
  }
  return { exitCode: r.exitCode ?? (r.signal ? 128 : 1), stdout, stderr, stdoutBuffer, durationMs };
}

/** Find an executable in the PATH (or the given directories); undefined when missing. */
export function which(name: string, dirs: string[] = (process.env.PATH ?? '').split(':')): string | undefined {
  for (const d of [...dirs, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (d && existsSync(`${d}/${name}`)) return `${d}/${name}`;
  }
  return undefined;
}
