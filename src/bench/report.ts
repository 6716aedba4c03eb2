/**
 * From samples to results: per set and contender the median with min/max of
 * every measure, the engine's speedup over stock pair by pair (repetition r
 * of one against repetition r of the other), and W3's cost per GiB.
 */
import { summarize, linearFit, type Summary } from './stats.js';
import type { ContenderId } from './contenders.js';
import type { Sample, SetKey } from './runner.js';
import type { RollbackRatio, RollbackRow } from './rollback.js';

export interface Row extends SetKey {
  contender: ContenderId;
  runs: number;
  failures: number;
  /** The failures' own words (first few). */
  errors: string[];
  wallMs?: Summary;
  frozenMs?: Summary;
  sourceMs?: Summary;
  copiesMs?: Summary;
  restoreMaxMs?: Summary;
  podmanRestoreMs?: Summary;
  durableMs?: Summary;
  pssMiB?: Summary;
  /** Memory added per clone (runner.ts addedPerCloneKiB), MiB. */
  addedMiB?: Summary;
  rssMiB?: Summary;
  /** The source's longest stop as its own probe saw it. */
  pauseMs?: Summary;
  phases: Record<string, Summary>;
}

export interface Ratio extends SetKey {
  pairs: number;
  /** stock wall / engine wall: how many times faster the engine is. */
  speedup?: Summary;
  /** stock frozen / engine frozen. */
  frozenRatio?: Summary;
  /** stock wall / engine+persist wall (the engine also writing a durable archive, as stock's export is). */
  persistSpeedup?: Summary;
  /** Where the engine grafts: engine-tier1 wall / engine wall, pair by pair. */
  tierSpeedup?: Summary;
  /** engine-tier1 memory added per clone / engine's (runner.ts addedPerCloneKiB). */
  tierMemory?: Summary;
}

export interface Slope {
  contender: ContenderId;
  copies: number;
  sizes: number;
  wallMsPerGiB?: number;
  frozenMsPerGiB?: number;
}

export interface Results {
  rows: Row[];
  ratios: Ratio[];
  slopes: Slope[];
  rollback?: { rows: RollbackRow[]; ratios: RollbackRatio[] };
}

export const sameSet = (a: SetKey, b: SetKey) => a.workload === b.workload && a.sizeBytes === b.sizeBytes && a.copies === b.copies;

function setKeys(samples: Sample[]): SetKey[] {
  const keys: SetKey[] = [];
  for (const s of samples) if (!keys.some((k) => sameSet(k, s))) keys.push({ workload: s.workload, sizeBytes: s.sizeBytes, copies: s.copies });
  return keys;
}

function row(key: SetKey, contender: ContenderId, samples: Sample[]): Row {
  const all = samples.filter((s) => sameSet(s, key) && s.contender === contender);
  const ok = all.filter((s) => s.ok);
  const pick = (f: (s: Sample) => number | undefined) => summarize(ok.map(f));
  const phaseNames = [...new Set(ok.flatMap((s) => Object.keys(s.phases ?? {})))];
  const phases: Record<string, Summary> = {};
  for (const p of phaseNames) {
    const sm = pick((s) => s.phases?.[p]);
    if (sm) phases[p] = sm;
  }
  return {
    ...key,
    contender,
    runs: all.length,
    failures: all.length - ok.length,
    errors: all.filter((s) => !s.ok).slice(0, 3).map((s) => `rep ${s.rep} ${s.failedAt}: ${s.error}`),
    wallMs: pick((s) => s.wallMs),
    frozenMs: pick((s) => s.frozenMs),
    pauseMs: pick((s) => s.pauseMs),
    sourceMs: pick((s) => s.sourceMs),
    copiesMs: pick((s) => s.copiesMs),
    restoreMaxMs: pick((s) => s.restoreMaxMs),
    podmanRestoreMs: pick((s) => s.podmanRestoreMs),
    durableMs: pick((s) => s.durableMs),
    pssMiB: pick((s) => (s.memoryPerClone ? s.memoryPerClone.pssKiB / 1024 : undefined)),
    rssMiB: pick((s) => (s.memoryPerClone ? s.memoryPerClone.rssKiB / 1024 : undefined)),
    addedMiB: pick((s) => (s.addedPerCloneKiB !== undefined ? s.addedPerCloneKiB / 1024 : undefined)),
    phases,
  };
}

function ratio(key: SetKey, samples: Sample[]): Ratio {
  const of = (c: ContenderId) => samples.filter((s) => sameSet(s, key) && s.contender === c && s.ok);
  const stock = of('stock');
  /** Verified runs of a contender, each with stock's verified run of the same repetition. */
  const pairsWith = (c: ContenderId) =>
    of(c).flatMap((e) => {
      const b = stock.find((s) => s.rep === e.rep);
      return b ? [[e, b] as const] : [];
    });
  const pairs = pairsWith('engine');
  return {
    ...key,
    pairs: pairs.length,
    speedup: summarize(pairs.map(([e, b]) => b.wallMs! / e.wallMs!)),
    frozenRatio: summarize(pairs.map(([e, b]) => (e.frozenMs && b.frozenMs ? b.frozenMs / e.frozenMs : undefined))),
    persistSpeedup: summarize(pairsWith('engine+persist').map(([e, b]) => b.wallMs! / e.wallMs!)),
    ...tierRatios(of('engine'), of('engine-tier1')),
  };
}

/** The engine on tier 2 against itself on tier 1, repetition by repetition. */
function tierRatios(engine: Sample[], tier1: Sample[]): Pick<Ratio, 'tierSpeedup' | 'tierMemory'> {
  const pairs = engine.flatMap((e) => tier1.filter((t) => t.rep === e.rep).map((t) => [e, t] as const));
  if (!pairs.length) return {};
  return {
    tierSpeedup: summarize(pairs.map(([e, t]) => t.wallMs! / e.wallMs!)),
    tierMemory: summarize(pairs.map(([e, t]) => (e.addedPerCloneKiB && t.addedPerCloneKiB && e.addedPerCloneKiB > 0 ? t.addedPerCloneKiB / e.addedPerCloneKiB : undefined))),
  };
}

/** W3: least-squares slope of the median wall and frozen times over the sizes, per contender and N. */
function slopes(rows: Row[]): Slope[] {
  const out: Slope[] = [];
  const w3 = rows.filter((r) => r.workload === 'W3' && r.sizeBytes !== undefined);
  for (const copies of [...new Set(w3.map((r) => r.copies))]) {
    for (const contender of [...new Set(w3.map((r) => r.contender))]) {
      const rs = w3.filter((r) => r.copies === copies && r.contender === contender);
      const fit = (f: (r: Row) => Summary | undefined) =>
        linearFit(rs.flatMap((r) => (f(r) ? [[r.sizeBytes! / 2 ** 30, f(r)!.median] as [number, number]] : [])))?.slope;
      if (new Set(rs.map((r) => r.sizeBytes)).size < 2) continue;
      out.push({ contender, copies, sizes: rs.length, wallMsPerGiB: fit((r) => r.wallMs), frozenMsPerGiB: fit((r) => r.frozenMs) });
    }
  }
  return out;
}

export function aggregate(samples: Sample[]): Results {
  const keys = setKeys(samples);
  const contenders = [...new Set(samples.map((s) => s.contender))];
  const rows = keys.flatMap((k) => contenders.map((c) => row(k, c, samples)));
  return { rows, ratios: keys.map((k) => ratio(k, samples)), slopes: slopes(rows) };
}
