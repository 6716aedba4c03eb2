/**
 * The one wrapper through which every external tool runs: argv arrays (never a
 * shell string), a timeout and an AbortSignal on every call, bounded output
 * capture, LC_ALL=C, and one error object for every kind of failure.
 */
import { execa, type Options as ExecaOptions } from 'execa';
import { existsSync } from 'node:fs';
import { TforkError } from '../errors.js';

export interface RunOptions {
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

/** Run a tool by absolute path (or a name resolved through PATH by `which`). */
export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  const options: ExecaOptions = {
    timeout: opts.timeoutMs ?? 10 * 60_000,
    cancelSignal: opts.signal,
    env: { LC_ALL: 'C', ...opts.env },
    extendEnv: opts.extendEnv ?? true,
    cwd: opts.cwd,
    reject: false,
    maxBuffer: MAX_CAPTURE,
    stripFinalNewline: false,
    encoding: opts.binary ? 'buffer' : 'utf8',
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.inherit ? { stdio: 'inherit' as const } : {}),
    ...(opts.onLine ? { lines: false } : {}),
  };
  const child = execa(file, args, options);
  if (opts.onLine) {
    const feed = (stream: NodeJS.ReadableStream | null) => {
      let buf = '';
      stream?.on('data', (d: Buffer) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          opts.onLine!(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    };
    feed(child.stdout);
    feed(child.stderr);
  }
  const r = await child;
  const durationMs = performance.now() - t0;
  const stdoutBuffer = opts.binary ? Buffer.from(r.stdout as unknown as Uint8Array) : undefined;
  const stdout = opts.binary ? '' : String(r.stdout ?? '');
  const stderr = opts.binary ? Buffer.from((r.stderr as unknown as Uint8Array) ?? []).toString() : String(r.stderr ?? '');
  if ((r as { code?: string }).code === 'ENOENT' || (r.failed && r.exitCode === undefined && /ENOENT/.test(String(r.message)))) {
    throw new TforkError('E_TOOL_MISSING', `${file} was not found`, { suggestions: ['run `podman-tfork setup`'] });
  }
  const failed = r.timedOut || r.isCanceled || r.signal !== undefined || (r.exitCode ?? 0) !== 0;
  if (failed && (opts.reject !== false || r.timedOut || r.isCanceled)) {
    throw new ToolError(file.split('/').pop() ?? file, [file, ...args], {
      exitCode: r.exitCode,
      signal: r.signal,
      timedOut: r.timedOut,
      cancelled: r.isCanceled,
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
