/**
 * Renderers: progress on a terminal (one line rewritten in place), plain
 * lines in CI or when piped, nothing but the result with --format json.
 * Results go to stdout, diagnostics to stderr.
 */
import type { StepEvent } from '../core/setup/steps.js';
import { TforkError } from '../errors.js';

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  debug: boolean;
}

export function defaultIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, debug: /^debug$/i.test(process.env.TFORK_LOG_LEVEL ?? '') };
}

export function ms(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}s` : n >= 1000 ? `${(n / 1000).toFixed(2)}s` : `${Math.round(n)}ms`;
}

export function isInteractive(io: Io): boolean {
  return !!io.stderr.isTTY && !process.env.CI;
}

/** Render setup/build step events on stderr. */
export function stepRenderer(io: Io, quiet = false): (e: StepEvent) => void {
  const tty = isInteractive(io);
  const tailLines: string[] = [];
  let current = '';
  const status = (text: string) => {
    if (tty) io.stderr.write(`\r\x1b[2K${text.slice(0, (process.stderr.columns ?? 100) - 1)}`);
  };
  return (e) => {
    if (quiet) return;
    switch (e.type) {
      case 'step-start':
        current = e.title;
        tailLines.length = 0;
        if (tty) status(`… ${e.title}`);
        else io.stderr.write(`[setup] ${e.title} ...\n`);
        break;
      case 'step-detail':
        if (tty) status(`… ${current}: ${e.text}`);
        else io.stderr.write(`[setup]   ${e.text}\n`);
        break;
      case 'step-output':
        if (io.debug) io.stderr.write(`${tty ? '\r\x1b[2K' : ''}  | ${e.line}\n`);
        else if (tty) status(`… ${current}: ${e.line.trim()}`);
        break;
      case 'step-end': {
        const mark = e.result === 'skipped' ? '=' : '✓';
        const line = `${mark} ${current}${e.note ? ` (${e.note})` : ''} ${ms(e.durationMs)}`;
        io.stderr.write(tty ? `\r\x1b[2K${line}\n` : `[setup] ${line}\n`);
        break;
      }
      case 'step-failed':
        io.stderr.write(`${tty ? '\r\x1b[2K' : ''}✗ ${current} failed after ${ms(e.durationMs)}\n`);
        break;
    }
  };
}

export function printError(io: Io, err: TforkError, json: boolean): void {
  if (json) {
    io.stdout.write(`${JSON.stringify({ error: err.toJSON() }, null, 2)}\n`);
    return;
  }
  io.stderr.write(`Error: ${err.message}\n`);
  for (const s of err.suggestions) io.stderr.write(`  hint: ${s}\n`);
  if (io.debug && err.detail && Object.keys(err.detail).length) io.stderr.write(`${JSON.stringify(err.detail, null, 2)}\n`);
}

/**
 * An AbortSignal fired by Ctrl-C or SIGTERM: long operations unwind (thaw the
 * source, remove half-made clones) instead of dying mid-way.
 */
export function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  const stop = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write(`\n${sig}: cancelling, undoing what was done...\n`);
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  // Listeners stay: with `once`, Node restores the default action as the
  // listener is removed, and the process died of that same SIGINT before it
  // could unwind (clones of a pattern run were left behind).
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  return ac.signal;
}
