/** podman's exit-code conventions, applied to the project's error codes. */
import type { ErrorCode } from '../errors.js';

export const EXIT = { ok: 0, failure: 125, cannotInvoke: 126, notFound: 127 } as const;

export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case 'E_TOOL_MISSING':
      return EXIT.notFound;
    case 'E_NOT_ROOT':
      return EXIT.cannotInvoke;
    default:
      return EXIT.failure;
  }
}
