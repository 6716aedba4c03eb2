/**
 * The project's error contract: one base class with a stable string code.
 * Only the CLI maps codes to exit codes (src/cli/exit-codes.ts); nothing deep
 * calls process.exit.
 */
export type ErrorCode =
  | 'E_USAGE'
  | 'E_NOT_FOUND'
  | 'E_EXISTS'
  | 'E_INVALID_STATE'
  | 'E_CAPABILITY_MISSING'
  | 'E_NOT_ROOT'
  | 'E_SETUP_REQUIRED'
  | 'E_TOOL_MISSING'
  | 'E_TOOL_FAILED'
  | 'E_TIMEOUT'
  | 'E_CANCELLED'
  | 'E_INTERNAL';

export interface TforkErrorOptions {
  suggestions?: string[];
  cause?: unknown;
  /** The phase of a multi-step operation that failed (freeze, dump, snapshot, ...). */
  phase?: string;
  /** Extra detail for --format json and --log-level=debug. */
  detail?: Record<string, unknown>;
}

export class TforkError extends Error {
  readonly code: ErrorCode;
  readonly suggestions: string[];
  readonly phase: string | undefined;
  readonly detail: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: TforkErrorOptions = {}) {
    super(message, { cause: opts.cause });
    this.name = 'TforkError';
    this.code = code;
    this.suggestions = opts.suggestions ?? [];
    this.phase = opts.phase;
    this.detail = opts.detail ?? {};
  }

  /** The same error, attributed to a phase of a larger operation. */
  inPhase(phase: string): TforkError {
    if (this.phase) return this;
    const e = new TforkError(this.code, `${phase}: ${this.message}`, {
      suggestions: this.suggestions,
      cause: this.cause,
      phase,
      detail: this.detail,
    });
    e.stack = this.stack;
    return e;
  }

  /** The same error with more suggestions (what the user can do now). */
  withSuggestions(more: string[]): TforkError {
    const e = new TforkError(this.code, this.message, { suggestions: [...this.suggestions, ...more], cause: this.cause, phase: this.phase, detail: this.detail });
    e.stack = this.stack;
    return e;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.phase ? { phase: this.phase } : {}),
      ...(this.suggestions.length ? { suggestions: this.suggestions } : {}),
      ...this.detail,
    };
  }
}

export function asTforkError(err: unknown, phase?: string): TforkError {
  let e: TforkError;
  if (err instanceof TforkError) e = err;
  else if (err instanceof Error && err.name === 'AbortError') e = new TforkError('E_CANCELLED', 'cancelled', { cause: err });
  else e = new TforkError('E_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
  return phase ? e.inPhase(phase) : e;
}
