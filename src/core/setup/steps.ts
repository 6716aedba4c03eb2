/**
 * A small step runner for long work (setup, image builds): each step reports
 * start, detail lines, and end with its duration, or fails naming the step,
 * the command and the tail of its output.
 */
import type { Layout } from '../../drivers/layout.js';
import { asTforkError } from '../../errors.js';

export type StepEvent =
  | { type: 'step-start'; step: string; title: string }
  | { type: 'step-detail'; step: string; text: string }
  | { type: 'step-output'; step: string; line: string }
  | { type: 'step-end'; step: string; result: 'done' | 'skipped'; note?: string; durationMs: number }
  | { type: 'step-failed'; step: string; error: string; durationMs: number };

export interface StepContext {
  layout: Layout;
  signal?: AbortSignal;
  detail(text: string): void;
  onLine(line: string): void;
}

export interface Step {
  id: string;
  title: string;
  /** Returns a note; `skipped: true` when nothing had to be done. */
  run(ctx: StepContext): Promise<{ skipped?: boolean; note?: string } | void>;
}

export interface StepReport {
  step: string;
  result: 'done' | 'skipped' | 'failed';
  note?: string;
  durationMs: number;
}

export async function runSteps(
  steps: Step[],
  base: { layout: Layout; signal?: AbortSignal },
  emit: (e: StepEvent) => void,
): Promise<StepReport[]> {
  const reports: StepReport[] = [];
  for (const s of steps) {
    const t0 = performance.now();
    emit({ type: 'step-start', step: s.id, title: s.title });
    const ctx: StepContext = {
      ...base,
      detail: (text) => emit({ type: 'step-detail', step: s.id, text }),
      onLine: (line) => emit({ type: 'step-output', step: s.id, line }),
    };
    try {
      const r = (await s.run(ctx)) ?? {};
      const durationMs = performance.now() - t0;
      const result = r.skipped ? 'skipped' : 'done';
      emit({ type: 'step-end', step: s.id, result, note: r.note, durationMs });
      reports.push({ step: s.id, result, note: r.note, durationMs });
    } catch (err) {
      const e = asTforkError(err).inPhase(`setup step ${s.id}`);
      emit({ type: 'step-failed', step: s.id, error: e.message, durationMs: performance.now() - t0 });
      throw e;
    }
  }
  return reports;
}
