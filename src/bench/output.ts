/** What a run leaves behind: results.json (every sample), table.txt and the SVG charts, and drawing them again. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { TforkError } from '../errors.js';
import { charts } from './charts.js';
import type { ContenderId } from './contenders.js';
import type { Machine } from './machine.js';
import type { BenchOptions, WorkloadId } from './options.js';
import type { RollbackSample } from './rollback.js';
import type { Results } from './report.js';
import type { Sample, SetInfo } from './runner.js';
import { renderTable } from './table.js';

export const RESULT_SCHEMA = 1;

export interface ResultDoc {
  schema: number;
  run: string;
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  /** Load average and other containers when the run ended. */
  end?: { load: number; otherContainers: number };
  options: BenchOptions;
  contenders: ContenderId[];
  notes: string[];
  sets: SetInfo[];
  samples: Sample[];
  /** Checkpoint and rollback of one container (absent in runs before they were measured). */
  rollbackSets?: { workload: WorkloadId; sizeBytes?: number; source: string; error?: string }[];
  rollbackSamples?: RollbackSample[];
  results: Results;
  charts?: { file: string; title: string }[];
}

/** Charts, table.txt and results.json in the directory; returns the table. */
export function writeOutputs(doc: ResultDoc, outDir: string, o: { json?: boolean; table?: boolean } = {}): string {
  const table =
    renderTable({
      machine: doc.machine,
      startedAt: doc.startedAt,
      run: doc.run,
      reps: doc.options.reps,
      contenders: doc.contenders,
      results: doc.results,
      sets: doc.sets,
      loadAtEnd: doc.end?.load,
      otherContainersAtEnd: doc.end?.otherContainers,
    }) + doc.notes.map((n) => `note: ${n}\n`).join('');
  mkdirSync(outDir, { recursive: true });
  const files = charts(doc.results, doc.machine);
  for (const c of files) writeFileSync(path.join(outDir, c.file), c.svg);
  if (o.table !== false) writeFileSync(path.join(outDir, 'table.txt'), table);
  doc.charts = files.map((c) => ({ file: c.file, title: c.title }));
  if (o.json !== false) writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(doc, null, 2)}\n`);
  return table;
}

/** --from: draw an earlier run's charts again (and its table, when the file records how the run ended). */
export function redraw(file: string): string {
  let doc: ResultDoc;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as ResultDoc;
  } catch (err) {
    throw new TforkError('E_NOT_FOUND', `cannot read a results.json at ${file}: ${(err as Error).message}`);
  }
  if (doc.schema !== RESULT_SCHEMA) throw new TforkError('E_USAGE', `${file} has schema ${doc.schema}; this benchmark reads schema ${RESULT_SCHEMA}`);
  return writeOutputs(doc, path.dirname(path.resolve(file)), { json: false, table: doc.end !== undefined });
}

