/**
 * A stack of compensations: every step that creates something registers its
 * undo at once; failure or cancellation unwinds the stack in reverse, so no
 * half-made clone, snapshot or scratch directory survives.
 */
export interface UndoFailure {
  label: string;
  error: string;
}

export class Transaction {
  private readonly undos: { label: string; fn: () => Promise<void> }[] = [];

  /** Register the undo of something just created. */
  onRollback(label: string, fn: () => Promise<void>): void {
    this.undos.push({ label, fn });
  }

  /** Forget every registered undo: the work is kept. */
  commit(): void {
    this.undos.length = 0;
  }

  /** Run every undo, newest first; undo failures are collected, never thrown. */
  async rollback(): Promise<UndoFailure[]> {
    const failures: UndoFailure[] = [];
    while (this.undos.length) {
      const u = this.undos.pop()!;
      try {
        await u.fn();
      } catch (err) {
        failures.push({ label: u.label, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return failures;
  }
}
